# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._data_check_run import message, severity
from ansible_collections.safedeploy.migrations.plugins.module_utils._data_checks import (
    check_queries,
    plan_data_checks,
    statement_checks,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import mark_data_migration_reads
from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import analyze_sql


def kinds(sql: str) -> list[tuple]:
    return [(found["kind"], found["relation"], found["columns"]) for found in statement_checks(sql)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE orders ALTER COLUMN status SET NOT NULL", [("not_null", "orders", ["status"])]),
        ("ALTER TABLE shop.orders ADD COLUMN code text NOT NULL", [("not_null_column", "shop.orders", ["code"])]),
        ("ALTER TABLE orders ADD COLUMN code text NOT NULL DEFAULT 'x'", []),
        ("ALTER TABLE orders ADD COLUMN id2 bigserial NOT NULL", []),
        ("ALTER TABLE orders ADD COLUMN code text", []),
        ("CREATE UNIQUE INDEX ux ON orders (lower(email))", [("unique", "orders", ["lower(email)"])]),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY ux ON orders (email, shop_id)",
            [("unique", "orders", ["email", "shop_id"])],
        ),
        ("CREATE INDEX ix ON orders (email)", []),
        ("ALTER TABLE orders ADD CONSTRAINT uq UNIQUE (email)", [("unique", "orders", ["email"])]),
        ("ALTER TABLE orders ADD CONSTRAINT uq UNIQUE USING INDEX ux", []),
        (
            "ALTER TABLE orders ADD PRIMARY KEY (id)",
            [("not_null", "orders", ["id"]), ("unique", "orders", ["id"])],
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id)",
            [("foreign_key", "orders", ["customer_id"])],
        ),
        ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers NOT VALID", []),
        ("ALTER TABLE orders ADD CONSTRAINT ck CHECK (quantity > 0)", [("check", "orders", [])]),
        ("ALTER TABLE orders ADD CONSTRAINT ck CHECK (quantity > 0) NOT VALID", []),
        ("ALTER TABLE orders ALTER COLUMN total TYPE integer", [("type_change", "orders", ["total"])]),
        ('ALTER TABLE "Orders" ALTER COLUMN "Total" SET NOT NULL', [("not_null", '"Orders"', ['"Total"'])]),
        ("CREATE TABLE t (id int NOT NULL)", []),
        ("UPDATE orders SET status = 'new' WHERE status IS NULL", []),
    ],
)
def test_which_statements_need_which_checks(sql, expected):
    assert kinds(sql) == expected


def queries(sql: str, key=("id",), referenced=None, version=150000):
    (found,) = statement_checks(sql)
    return check_queries(found, list(key), referenced, version)


@pytest.mark.parametrize(
    ("sql", "count", "example"),
    [
        (
            "ALTER TABLE orders ALTER COLUMN status SET NOT NULL",
            "SELECT count(*) FROM orders AS checked WHERE checked.status IS NULL",
            "SELECT checked.id FROM orders AS checked WHERE checked.status IS NULL LIMIT 1",
        ),
        (
            "ALTER TABLE orders ADD COLUMN code text NOT NULL",
            "SELECT count(*) FROM orders AS checked WHERE true",
            "SELECT checked.id FROM orders AS checked WHERE true LIMIT 1",
        ),
        (
            "CREATE UNIQUE INDEX ux ON orders (lower(email)) WHERE deleted_at IS NULL",
            "SELECT count(*) FROM (SELECT lower(email) FROM orders AS checked WHERE (deleted_at IS NULL) AND "
            "(lower(email)) IS NOT NULL GROUP BY lower(email) HAVING count(*) > 1) AS duplicates",
            "SELECT lower(email) FROM orders AS checked WHERE (deleted_at IS NULL) AND (lower(email)) IS NOT NULL "
            "GROUP BY lower(email) HAVING count(*) > 1 LIMIT 1",
        ),
        (
            "CREATE UNIQUE INDEX ux ON orders (email) NULLS NOT DISTINCT",
            "SELECT count(*) FROM (SELECT checked.email FROM orders AS checked GROUP BY checked.email "
            "HAVING count(*) > 1) AS duplicates",
            "SELECT checked.email FROM orders AS checked GROUP BY checked.email HAVING count(*) > 1 LIMIT 1",
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT ck CHECK (quantity > 0)",
            "SELECT count(*) FROM orders AS checked WHERE (quantity > 0) IS FALSE",
            "SELECT checked.id FROM orders AS checked WHERE (quantity > 0) IS FALSE LIMIT 1",
        ),
        (
            "ALTER TABLE orders ALTER COLUMN total TYPE integer USING total::integer",
            "SELECT count((CAST(total AS integer))::integer) FROM orders AS checked",
            None,
        ),
    ],
)
def test_the_queries_count_rows_and_show_one(sql, count, example):
    assert queries(sql) == (count, example)


def test_without_a_primary_key_the_example_is_the_rows_ctid():
    count, example = queries("ALTER TABLE log ALTER COLUMN at SET NOT NULL", key=())
    assert example == "SELECT checked.ctid FROM log AS checked WHERE checked.at IS NULL LIMIT 1"


def test_a_foreign_key_finds_orphans_and_skips_null_keys():
    sql = "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers"
    count, _example = queries(sql, referenced=["id"])
    assert count == (
        "SELECT count(*) FROM orders AS checked WHERE checked.customer_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM customers AS referenced WHERE referenced.id = checked.customer_id)"
    )


def test_a_type_change_counts_per_row_from_postgresql_16():
    count, example = queries("ALTER TABLE orders ALTER COLUMN total TYPE integer", version=160002)
    predicate = "checked.total IS NOT NULL AND NOT pg_input_is_valid(checked.total::text, 'integer')"
    assert count == "SELECT count(*) FROM orders AS checked WHERE " + predicate
    assert queries("ALTER TABLE orders ALTER COLUMN total TYPE integer", version=150004)[1] is None


def plan(*revisions: tuple[str, str]) -> list[dict]:
    return plan_data_checks([{"revision": rev, "statements": analyze_sql(sql)} for rev, sql in revisions])


def test_tables_the_plan_creates_get_no_checks_and_earlier_writes_are_named():
    checks = plan(
        ("0001", "CREATE TABLE tags (id int, name text);"),
        ("0002", "CREATE UNIQUE INDEX ux_tags ON tags (name); UPDATE orders SET status = 'new' WHERE status IS NULL;"),
        ("0003", "ALTER TABLE orders ALTER COLUMN status SET NOT NULL; ALTER TABLE customers ADD UNIQUE (email);"),
    )
    assert [(c["revision"], c["relation"], c["written_by"]) for c in checks] == [
        ("0003", "orders", "0002"),
        ("0003", "customers", None),
    ]


def test_the_version_table_is_never_checked():
    checks = plan(("0002", "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '1';"))
    assert checks == []


@pytest.mark.parametrize(
    ("finding", "expected_severity", "expected_message"),
    [
        (
            {"violations": 3, "example": {"id": "17"}, "error": None, "written_by": None},
            "error",
            "0003 (orders): 3 rows with NULL in status, e.g. id=17",
        ),
        (
            {"violations": 3, "example": {"id": "17"}, "error": None, "written_by": "0002"},
            "warning",
            "0003 (orders): 3 rows with NULL in status, e.g. id=17; revision 0002 writes to orders earlier in the plan "
            "and may fix them",
        ),
        (
            {"violations": None, "example": None, "error": "did not finish within statement_timeout 5000 ms",
             "written_by": None},
            "warning",
            "0003 (orders): rows with NULL in status: did not finish within statement_timeout 5000 ms",
        ),
        (
            {"violations": 0, "example": None, "error": None, "written_by": None},
            "ok",
            "0003 (orders): no rows with NULL in status",
        ),
    ],
)  # fmt: skip
def test_severity_and_message(finding, expected_severity, expected_message):
    (found,) = statement_checks("ALTER TABLE orders ALTER COLUMN status SET NOT NULL")
    found["revision"] = "0003"
    assert severity(finding) == expected_severity
    assert message(found, finding) == expected_message


def test_a_statement_the_builder_cannot_render_is_a_warning_not_a_failure(monkeypatch):
    from ansible_collections.safedeploy.migrations.plugins.module_utils import _data_checks

    def broken(_node):
        raise NotImplementedError("node X")

    monkeypatch.setattr(_data_checks, "render", broken)
    (found,) = statement_checks("ALTER TABLE orders ADD CONSTRAINT ck CHECK (quantity > 0)")
    assert (found["kind"], found["relation"]) == ("unbuilt", "orders")
    finding = {"violations": None, "example": None, "error": found["error"], "written_by": None}
    found["revision"] = "0003"
    assert message(found, finding) == (
        "0003 (orders): rows the statement requires: no check query could be built: node X"
    )


def test_alter_table_only_checks_the_parents_own_rows():
    count, _example = queries("ALTER TABLE ONLY measurements ALTER COLUMN at SET NOT NULL")
    assert count == "SELECT count(*) FROM ONLY measurements AS checked WHERE checked.at IS NULL"


def test_a_traced_data_migration_that_read_the_rows_may_fix_them():
    revisions = [
        {"revision": "0002", "statements": analyze_sql("SELECT orders.id FROM orders WHERE orders.email IS NULL;")},
        {"revision": "0003", "statements": analyze_sql("ALTER TABLE orders ALTER COLUMN email SET NOT NULL;")},
    ]
    assert [c["written_by"] for c in plan_data_checks(revisions)] == [None]
    # on the empty copy the ORM found nothing to update: its read is what shows the data migration
    mark_data_migration_reads(revisions[0]["statements"])
    assert [c["written_by"] for c in plan_data_checks(revisions)] == ["0002"]
