# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The revision graph from `alembic history --verbose`, and the paths through it (pure functions)."""

from __future__ import annotations

import re

BASE = "<base>"
_LIST_FIELDS = {
    "Parent": "down_revisions",
    "Merges": "down_revisions",
    "Also depends on": "depends_on",
    "Branches into": "branches_into",
    "Branch names": "branch_labels",
}


class RevisionError(Exception):
    """A revision that cannot be resolved, or a graph that cannot be walked as asked."""


def parse_history(text: str) -> dict:
    """{revision id: {revision, down_revisions, message, path, ...}} from `alembic history --verbose`."""
    revisions = {}
    for block in re.split(r"^(?=Rev: )", text, flags=re.MULTILINE):
        if not block.startswith("Rev: "):
            continue
        entry = parse_entry(block)
        revisions[entry["revision"]] = entry
    return revisions


def parse_entry(block: str) -> dict:
    lines = block.splitlines()
    revision = lines[0][len("Rev: ") :].split()[0]
    entry = {"revision": revision, "down_revisions": [], "depends_on": [], "branch_labels": [], "path": None}
    doc_lines = []
    for line in lines[1:]:
        if line.startswith("    ") or not line.strip():
            doc_lines.append(line.strip())
            continue
        name, _sep, value = line.partition(": ")
        if name == "Path":
            entry["path"] = value.strip()
        elif name in _LIST_FIELDS and _LIST_FIELDS[name] in entry:
            entry[_LIST_FIELDS[name]] = [item.strip() for item in value.split(",") if item.strip() not in ("", BASE)]
    entry["message"] = next((line for line in doc_lines if line), "")
    return entry


def heads(revisions: dict) -> list[str]:
    """Revisions nothing else builds on, sorted for stable output."""
    parents = {parent for entry in revisions.values() for parent in entry["down_revisions"] + entry["depends_on"]}
    return sorted(revision for revision in revisions if revision not in parents)


def ancestors(revisions: dict, tips: list[str]) -> set[str]:
    """The tips and everything they build on."""
    seen: set[str] = set()
    stack = list(tips)
    while stack:
        revision = stack.pop()
        if revision in seen:
            continue
        if revision not in revisions:
            raise RevisionError("revision %s is not in the migration scripts" % revision)
        seen.add(revision)
        stack.extend(revisions[revision]["down_revisions"] + revisions[revision]["depends_on"])
    return seen


def topological_order(revisions: dict, subset: set[str]) -> list[str]:
    """The subset ordered parents first; ties broken by revision id so the order is stable."""
    ordered: list[str] = []
    placed: set[str] = set()
    remaining = sorted(subset)
    while remaining:
        ready = [r for r in remaining if all(p in placed or p not in subset for p in parents_of(revisions, r))]
        if not ready:
            raise RevisionError("the revision graph has a cycle among %s" % ", ".join(remaining))
        ordered.extend(ready)
        placed.update(ready)
        remaining = [r for r in remaining if r not in placed]
    return ordered


def parents_of(revisions: dict, revision: str) -> list[str]:
    return revisions[revision]["down_revisions"] + revisions[revision]["depends_on"]


def resolve_target(revisions: dict, target: str) -> list[str]:
    """The head(s) a target names: 'head' (must be unique), 'heads', 'base', a revision id or a unique prefix."""
    all_heads = heads(revisions)
    if target == "head":
        if len(all_heads) > 1:
            raise RevisionError(
                "the scripts have multiple heads (%s): merge them with `alembic merge` or name one revision"
                % ", ".join(all_heads)
            )
        return all_heads
    if target == "heads":
        return all_heads
    if target == "base":
        return []
    if target in revisions:
        return [target]
    matches = [revision for revision in revisions if revision.startswith(target)]
    if len(matches) == 1:
        return matches
    if matches:
        raise RevisionError("revision %s is ambiguous: %s" % (target, ", ".join(sorted(matches))))
    raise RevisionError("revision %s is not in the migration scripts" % target)


def upgrade_path(revisions: dict, current: list[str], target: list[str]) -> list[str]:
    """Revisions to apply, in order, to bring current up to target."""
    applied = ancestors(revisions, current)
    return topological_order(revisions, ancestors(revisions, target) - applied)


def downgrade_path(revisions: dict, current: list[str], target: list[str]) -> list[str]:
    """Revisions to undo, in order (newest first), to bring current down to target."""
    keep = ancestors(revisions, target)
    return list(reversed(topological_order(revisions, ancestors(revisions, current) - keep)))


def unknown_revisions(revisions: dict, current: list[str]) -> list[str]:
    """Revisions recorded in the database that the scripts do not know: the database is ahead of the code."""
    return sorted(revision for revision in current if revision not in revisions)
