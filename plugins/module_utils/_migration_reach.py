# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Whether a migration plan can take long: which existing rows its statements read or write (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping

# a table this small is read, rewritten or indexed in well under a second on any server
SMALL_RELATION_BYTES = 16 * 1024 * 1024
# command tags of statements that read or write rows, whatever locks they take (migration_plan_info's `kind`)
ROW_KINDS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "DO", "CALL", "COPY", "CREATE TABLE AS",
        "CREATE MATERIALIZED VIEW", "REFRESH MATERIALIZED VIEW", "VACUUM", "ANALYZE", "CLUSTER", "REINDEX",
    }
)  # fmt: skip


def long_reach(plan) -> str | None:
    """Why the plan's migration may take long, or None when it changes the catalog and small or new tables only.

    A statement reaches rows when it reads or writes them (ROW_KINDS) or rewrites or scans a table; it is quick when
    every table it reaches is one the plan creates or holds less than SMALL_RELATION_BYTES. One that reaches rows
    without naming a table (a DO block, SELECT of a function) may do anything.
    """
    revisions = plan.get("revisions") if isinstance(plan, Mapping) else None
    if not isinstance(revisions, list):
        return "the plan lists no revisions"
    for revision in revisions:
        sizes = relation_sizes(revision)
        for statement in revision.get("statements") or []:
            reason = statement_reach(statement, sizes)
            if reason:
                return "%s: %s" % (revision.get("revision"), reason)
    return None


def relation_sizes(revision: Mapping) -> dict:
    """relation -> its size as the plan read it: None for one that did not exist then, else total_bytes."""
    return {
        relation.get("relation"): (relation.get("total_bytes") if relation.get("exists", True) else None)
        for relation in revision.get("relations") or []
    }


def statement_reach(statement: Mapping, sizes: Mapping) -> str | None:
    """Why this statement may take long, or None."""
    if statement.get("bookkeeping"):
        return None
    relations = statement.get("relations") or []
    kind = statement.get("kind")
    if kind in ROW_KINDS:
        if not relations:
            return "%s names no table, so its reach is unknown" % kind
        reached = relations
    else:
        reached = [relation for relation in relations if relation.get("rewrites_table") or relation.get("scans_table")]
    for relation in reached:
        reason = size_reason(relation.get("relation"), sizes)
        if reason:
            return "%s %s" % (kind, reason)
    return None


def size_reason(name, sizes: Mapping) -> str | None:
    """Why reaching the rows of this relation may take long, or None for a new or small one."""
    if name not in sizes:
        return "reads %s, whose size the plan did not read" % name
    size = sizes[name]
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int):
        return "reads %s, whose size is %r" % (name, size)
    if size >= SMALL_RELATION_BYTES:
        return "reads %s (%d bytes)" % (name, size)
    return None
