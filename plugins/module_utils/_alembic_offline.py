# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""alembic's offline SQL (`upgrade a:b --sql`) cut into revisions, and the plan hash over them (pure functions)."""

from __future__ import annotations

import bisect
import hashlib
import re

# the downgrade of a root revision ends at nothing: "-- Running downgrade 0001 -> " (as an upgrade from base starts)
_MARKER = re.compile(r"^-- Running (upgrade|downgrade) (\S*) ->[ \t]*(\S*)[ \t]*$", re.MULTILINE)
# the BEGIN that alembic writes just before a revision's marker belongs to that revision
_LEADING_BEGIN = re.compile(r"BEGIN;\s*$")
_TRANSACTION_LINE = re.compile(r"^(BEGIN|COMMIT);[ \t]*$", re.MULTILINE)


def split_offline_sql(text: str) -> list[dict]:
    """One entry per revision step, in order: {direction, from_revision, to_revision, sql, lint_sql}.

    `sql` is alembic's text as it is; `lint_sql` is the same step closed on its own: with alembic's default (no
    transaction_per_migration) the whole range is one BEGIN ... COMMIT, so a step may begin or end inside it."""
    markers = [marker for marker in _MARKER.finditer(text) if marker.group(2) or marker.group(3)]
    starts = [segment_start(text, marker.start()) for marker in markers]
    controls = [(match.start(), match.group(1)) for match in _TRANSACTION_LINE.finditer(text)]
    steps = []
    for index, marker in enumerate(markers):
        end = starts[index + 1] if index + 1 < len(markers) else len(text)
        sql = text[starts[index] : end].strip() + "\n"
        steps.append(
            {
                "direction": marker.group(1),
                "from_revision": marker.group(2) or None,
                "to_revision": marker.group(3) or None,
                "sql": sql,
                "lint_sql": closed_on_its_own(
                    sql, transaction_open_at(controls, starts[index]), transaction_open_at(controls, end)
                ),
            }
        )
    return steps


def transaction_open_at(controls: list[tuple[int, str]], position: int) -> bool:
    """Whether alembic's last BEGIN;/COMMIT; line before the position left a transaction open; `controls` are in
    the order of the text, so a binary search finds it (a long range has thousands of them)."""
    index = bisect.bisect_left(controls, (position, ""))
    return index > 0 and controls[index - 1][1] == "BEGIN"


def closed_on_its_own(sql: str, open_at_start: bool, open_at_end: bool) -> str:
    """The step as if it ran in a transaction of its own, which is what a linter of one step must see."""
    return ("BEGIN;\n\n" if open_at_start else "") + sql + ("\nCOMMIT;\n" if open_at_end else "")


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
