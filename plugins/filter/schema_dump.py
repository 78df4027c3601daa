# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters that compare two `pg_dump --schema-only` outputs: normalize_schema_dump and schema_diff."""

from __future__ import annotations

import difflib
import re

from ansible.errors import AnsibleFilterError

# lines that change from one dump to the next while the schema does not: comments (server version, object
# headers), session settings, and pg_dump's per-dump \restrict key (PostgreSQL 13.22, 14.19, 15.14, 16.10, 17.6+)
_VOLATILE_LINE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config\(|\\(un)?restrict\b)")
_CREATE_TABLE = re.compile(r"^CREATE (UNLOGGED |FOREIGN )?TABLE .*\($")


def normalize_schema_dump(dump, ignore_column_order: bool = False) -> list[str]:
    """The schema statements of a dump, one line each, without what varies between two dumps of one schema.

    With ignore_column_order, the column lines of each CREATE TABLE are sorted (and lose their trailing comma): a
    downgrade that adds back a dropped column puts it last, which no query by column name notices.
    """
    if isinstance(dump, (list, tuple)):
        lines = [str(line) for line in dump]
    elif isinstance(dump, str):
        lines = dump.splitlines()
    else:
        raise AnsibleFilterError("normalize_schema_dump expects the dump as a string or a list of lines")
    kept = [line.rstrip() for line in lines if line.strip() and not _VOLATILE_LINE.match(line)]
    return sorted_columns(kept) if ignore_column_order else kept


def sorted_columns(lines: list[str]) -> list[str]:
    result: list[str] = []
    columns: list[str] | None = None
    for line in lines:
        if columns is None:
            result.append(line)
            if _CREATE_TABLE.match(line):
                columns = []
        elif line.startswith(")"):
            result.extend(sorted(columns))
            result.append(line)
            columns = None
        else:
            columns.append(line[:-1] if line.endswith(",") else line)
    # a table statement the dump never closed: keep its lines as they came
    return result + (columns or [])


def schema_diff(
    before,
    after,
    before_name: str = "before",
    after_name: str = "after",
    max_lines: int = 40,
    ignore_column_order: bool = False,
) -> list[str]:
    """A unified diff of two normalised dumps, at most max_lines long; empty when they are the same."""
    if not isinstance(max_lines, int) or isinstance(max_lines, bool) or max_lines < 1:
        raise AnsibleFilterError("schema_diff: max_lines must be a positive integer")
    diff = list(
        difflib.unified_diff(
            normalize_schema_dump(before, ignore_column_order),
            normalize_schema_dump(after, ignore_column_order),
            fromfile=before_name,
            tofile=after_name,
            n=1,
            lineterm="",
        )
    )
    if len(diff) > max_lines:
        return diff[:max_lines] + ["... %d more diff lines" % (len(diff) - max_lines)]
    return diff


class FilterModule:
    def filters(self):
        return {"normalize_schema_dump": normalize_schema_dump, "schema_diff": schema_diff}
