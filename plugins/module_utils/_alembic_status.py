# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""What alembic_info and alembic_migrate both need: options, the script graph and the database's revision."""

from __future__ import annotations

import os

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    heads,
    parse_history,
    unknown_revisions,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import runner_argument_spec
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_state import (
    read_applied,
    read_current_revisions,
    script_checksum,
)


def alembic_argument_spec() -> dict:
    spec = runner_argument_spec()
    spec.update(
        version_table=dict(type="str", default="alembic_version"),
        version_table_schema=dict(type="str"),
        state_schema=dict(type="str", default="safedeploy"),
        script_location=dict(type="path"),
    )
    return spec


HISTORY_DEFAULTS = {"down_revisions": [], "depends_on": [], "branch_labels": [], "path": None, "message": ""}
HISTORY_LISTS = ("down_revisions", "depends_on", "branch_labels")


def history_entry(entry: dict) -> dict:
    """An entry of a `history` option as the graph needs it; ValueError names what is wrong.

    A single revision id stands for a list of one, as alembic's own down_revision may be a string.
    """
    revision = entry.get("revision")
    if not isinstance(revision, str) or not revision:
        raise ValueError("every entry of history needs its revision id, as alembic_info returns it")
    normalized = dict(HISTORY_DEFAULTS, **entry)
    for key in HISTORY_LISTS:
        value = normalized[key]
        value = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
            raise ValueError(
                "history entry %s: %s must be a revision id or a list of them, got %r"
                % (revision, key, normalized[key])
            )
        normalized[key] = list(value)
    return normalized


def history_graph(history: list[dict]) -> dict:
    """{revision id: entry} of a `history` option."""
    return {entry["revision"]: entry for entry in map(history_entry, history)}


def revision_files(revisions: dict) -> dict:
    """{file name: revision} of the history's scripts, to name the revision a traceback points at."""
    return {os.path.basename(entry["path"]): revision for revision, entry in revisions.items() if entry.get("path")}


class AlembicStatus:
    """The scripts (one `alembic history` run) against the database (read directly, not through alembic)."""

    def __init__(self, revisions: dict, current: list[str]):
        self.revisions = revisions
        self.current = current
        self.heads = heads(revisions)
        self.unknown = unknown_revisions(revisions, current)

    @classmethod
    def read(cls, runner, connection, params: dict, current: list[str] | None = None) -> AlembicStatus:
        revisions = parse_history(runner.run(["history", "--verbose"]))
        runner.revision_files = revision_files(revisions)
        if current is None:
            current = read_current_revisions(connection, params["version_table"], params["version_table_schema"])
        return cls(revisions, current)

    @classmethod
    def from_history(cls, history: list[dict], connection, params: dict) -> AlembicStatus:
        """The graph another module read from the same scripts (its `history`): no alembic start here."""
        revisions = history_graph(history)
        current = read_current_revisions(connection, params["version_table"], params["version_table_schema"])
        return cls(revisions, current)

    def describe(self, revision_ids: list[str]) -> list[dict]:
        return [{"revision": r, "message": self.revisions[r]["message"]} for r in revision_ids]

    def history(self) -> list[dict]:
        return [
            {
                key: entry[key]
                for key in ("revision", "down_revisions", "depends_on", "message", "path", "branch_labels")
            }
            for entry in self.revisions.values()
        ]

    def checksum(self, revision: str, script_location: str | None) -> str | None:
        return script_checksum(self.revisions[revision]["path"], script_location)

    def modified_after_apply(self, connection, params: dict) -> list[dict]:
        """Scripts whose sha256 differs from the one recorded when they were applied (Flyway-style)."""
        modified = []
        for revision, recorded in sorted(read_applied(connection, params["state_schema"]).items()):
            if revision not in self.revisions or recorded is None:
                continue
            current = self.checksum(revision, params["script_location"])
            if current is not None and current != recorded:
                modified.append(
                    {
                        "revision": revision,
                        "recorded_sha256": recorded,
                        "script_sha256": current,
                        "path": self.revisions[revision]["path"],
                    }
                )
        return modified
