# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_reach import (
    SMALL_RELATION_BYTES,
    long_reach,
)

BIG = SMALL_RELATION_BYTES
SMALL = SMALL_RELATION_BYTES - 1


def statement(kind, *relations, rewrites=False, scans=False, bookkeeping=False) -> dict:
    """A statement as migration_plan_info analyses it: its command tag and the relations it locks."""
    return {
        "kind": kind,
        "bookkeeping": bookkeeping,
        "relations": [{"relation": name, "rewrites_table": rewrites, "scans_table": scans} for name in relations],
    }


def plan(*statements, **sizes) -> dict:
    """One revision with these statements; sizes: relation -> total_bytes, None for one that did not exist."""
    relations = [{"relation": name, "exists": size is not None, "total_bytes": size} for name, size in sizes.items()]
    return {"revisions": [{"revision": "0007", "statements": list(statements), "relations": relations}]}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # the catalog only: whatever the tables' sizes
        (plan(statement("ALTER TABLE", "orders"), orders=BIG), None),
        (plan(statement("DROP TABLE", "orders"), orders=BIG), None),
        (plan(statement("CREATE FUNCTION")), None),
        (plan(statement("CREATE INDEX", "orders", scans=True), orders=SMALL), None),
        # rows of a table the plan creates, or of a small one
        (plan(statement("CREATE TABLE", "audit"), statement("INSERT", "audit"), audit=None), None),
        (plan(statement("UPDATE", "orders"), orders=SMALL), None),
        (plan(statement("UPDATE", "orders"), orders=0), None),
        # alembic's own row
        (plan(statement("UPDATE", "alembic_version", bookkeeping=True)), None),
        (plan(), None),
        # rows of a big table: read, written, scanned or rewritten
        (plan(statement("UPDATE", "orders"), orders=BIG), "0007: UPDATE reads orders (%d bytes)" % BIG),
        (
            plan(statement("INSERT", "audit", "orders"), audit=None, orders=BIG),
            "0007: INSERT reads orders (%d bytes)" % BIG,
        ),
        (
            plan(statement("CREATE INDEX", "orders", scans=True), orders=BIG),
            "0007: CREATE INDEX reads orders (%d bytes)" % BIG,
        ),
        (
            plan(statement("ALTER TABLE", "orders", rewrites=True), orders=BIG),
            "0007: ALTER TABLE reads orders (%d bytes)" % BIG,
        ),
        # rows it does not name, or a size the plan did not read
        (plan(statement("SELECT")), "0007: SELECT names no table, so its reach is unknown"),
        (plan(statement("DO")), "0007: DO names no table, so its reach is unknown"),
        (plan(statement("CALL")), "0007: CALL names no table, so its reach is unknown"),
        (plan(statement("UPDATE", "orders")), "0007: UPDATE reads orders, whose size the plan did not read"),
        (plan(statement("UPDATE", "orders"), orders="big"), "0007: UPDATE reads orders, whose size is 'big'"),
        (plan(statement("UPDATE", "orders"), orders=True), "0007: UPDATE reads orders, whose size is True"),
        # the first long statement is named
        (
            plan(statement("ALTER TABLE", "orders"), statement("DELETE", "orders"), statement("DO"), orders=BIG),
            "0007: DELETE reads orders (%d bytes)" % BIG,
        ),
        # a plan without revisions
        ({}, "the plan lists no revisions"),
        (None, "the plan lists no revisions"),
        ({"revisions": []}, None),
    ],
)
def test_a_migration_is_long_when_it_reaches_rows_of_a_big_or_unknown_table(given, expected):
    assert long_reach(given) == expected
