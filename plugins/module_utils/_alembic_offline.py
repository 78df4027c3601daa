# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""alembic's offline SQL (`upgrade a:b --sql`) cut into revisions, and the plan hash over them (pure functions)."""

from __future__ import annotations

import hashlib
import re

_MARKER = re.compile(r"^-- Running (upgrade|downgrade) (\S*) -> (\S+)[ \t]*$", re.MULTILINE)
# the BEGIN that alembic writes just before a revision's marker belongs to that revision
_LEADING_BEGIN = re.compile(r"BEGIN;\s*$")


def split_offline_sql(text: str) -> list[dict]:
    """One entry per revision step, in order: {direction, from_revision, to_revision, sql}."""
    markers = list(_MARKER.finditer(text))
    starts = [segment_start(text, marker.start()) for marker in markers]
    steps = []
    for index, marker in enumerate(markers):
        end = starts[index + 1] if index + 1 < len(markers) else len(text)
        steps.append(
            {
                "direction": marker.group(1),
                "from_revision": marker.group(2) or None,
                "to_revision": marker.group(3),
                "sql": text[starts[index] : end].strip() + "\n",
            }
        )
    return steps


def segment_start(text: str, marker_start: int) -> int:
    before = text[:marker_start]
    match = _LEADING_BEGIN.search(before)
    return match.start() if match else marker_start


def normalize_sql(sql: str) -> str:
    """Trailing blanks and blank lines vary between alembic versions and editors; they do not change the plan."""
    lines = [line.rstrip() for line in sql.strip().splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


def plan_hash(steps: list[tuple[str, str]]) -> str:
    """sha256 over the ordered (revision, SQL) pairs: the same code and starting revision give the same hash."""
    digest = hashlib.sha256()
    for revision, sql in steps:
        digest.update(("%s\n%s\0" % (revision, normalize_sql(sql))).encode())
    return digest.hexdigest()


def offline_range(current: list[str], target: str, direction: str = "upgrade") -> str:
    """`from:to` for alembic's offline mode; an upgrade from base takes the target alone."""
    if not current and direction == "upgrade":
        return target
    return "%s:%s" % (",".join(current), target)
