# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_plan import apply_trace, read_trace
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import (
    bookkeeping_read,
    cut_into_revisions,
    inline_parameters,
    overlay_traced_locks,
    traced_locks,
    traced_sql,
    version_write,
)


def event(statement, command=0, parameters=None, outside=False, locks=(), held=(), rewrites=(), many=False):
    return {
        "command": command,
        "statement": statement,
        "parameters": parameters,
        "paramstyle": "pyformat",
        "many": many,
        "outside": outside,
        "locks": [list(lock) for lock in locks],
        "held": [list(lock) for lock in held],
        "rewrites": list(rewrites),
    }


@pytest.mark.parametrize(
    "statement, parameters, paramstyle, expected",
    [
        ("SELECT 1", None, "pyformat", "SELECT 1"),
        (
            "UPDATE orders SET status=%(status)s WHERE id = %(id_1)s",
            {"status": "it's open", "id_1": 7},
            "pyformat",
            "UPDATE orders SET status='it''s open' WHERE id = 7",
        ),
        ("SELECT %s, %s LIKE 'a%%'", [None, True], "format", "SELECT NULL, true LIKE 'a%'"),
        ("SELECT $2, $1", [1.5, "x"], "numeric_dollar", "SELECT 'x', 1.5"),
        ("SELECT :name, '::text'", {"name": "n"}, "named", "SELECT 'n', '::text'"),
        ("SELECT ?", [{"a": 1}], "qmark", """SELECT '{"a": 1}'"""),
        # a statement without parameters keeps its percent signs as they are
        ("SELECT 'a%%'", {}, "pyformat", "SELECT 'a%%'"),
    ],
)
def test_parameters_are_written_in(statement, parameters, paramstyle, expected):
    assert inline_parameters(statement, parameters, paramstyle) == expected


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("INSERT INTO alembic_version (version_num) VALUES ('0001_shop') RETURNING", ("INSERT", "0001_shop", None)),
        (
            "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'",
            ("UPDATE", "0002", "0001"),
        ),
        ("DELETE FROM app.\"alembic_version\" WHERE version_num = '0001'", ("DELETE", None, "0001")),
        ("UPDATE alembic_versions SET x = 'y'", None),
        ("SELECT version_num FROM alembic_version", None),
    ],
)
def test_version_writes(sql, expected):
    assert version_write(sql, "alembic_version") == expected


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT alembic_version.version_num FROM alembic_version", True),
        ("SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid", True),
        ("SELECT relname FROM pg_class", True),
        ("show standard_conforming_strings", True),
        ("SELECT orders.id FROM orders WHERE orders.status = 'new'", False),
        ("SELECT version_num FROM alembic_version FOR UPDATE", False),
        ("SELECT setval('orders_id_seq', 10)", False),
        ("UPDATE orders SET status = 'open'", False),
    ],
)
def test_bookkeeping_reads(sql, expected):
    assert bookkeeping_read(sql, "alembic_version") is expected


UPGRADE = [
    event("SELECT alembic_version.version_num FROM alembic_version"),
    event("ALTER TABLE orders ADD COLUMN note TEXT", locks=[("orders", "AccessExclusiveLock")]),
    event("INSERT INTO alembic_version (version_num) VALUES ('0001')"),
    event(
        "UPDATE orders SET status=%(status)s", parameters={"status": "open"}, held=[("orders", "AccessExclusiveLock")]
    ),
    event("CREATE INDEX CONCURRENTLY ix ON orders (status)", outside=True),
    event("UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'"),
    event("INSERT INTO tags (name) VALUES (%(name)s)", parameters=[{"name": "a"}, {"name": "b"}], many=True),
]


def test_statements_are_cut_at_the_version_writes():
    done, rest = cut_into_revisions(UPGRADE, "alembic_version")
    assert [revision for revision, _statements in done] == ["0001", "0002"]
    assert [statement["sql"] for statement in done[1][1]] == [
        "UPDATE orders SET status='open'",
        "CREATE INDEX CONCURRENTLY ix ON orders (status)",
        "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'",
    ]
    # an executemany is one statement per parameter set; what follows the last version write is unfinished
    assert [statement["sql"] for statement in rest] == [
        "INSERT INTO tags (name) VALUES ('a')",
        "INSERT INTO tags (name) VALUES ('b')",
    ]


def test_a_downgrade_ends_each_revision_where_it_leaves_the_version_table():
    events = [
        event("DROP INDEX CONCURRENTLY ix", command=1, outside=True),
        event("UPDATE alembic_version SET version_num='0001' WHERE alembic_version.version_num = '0002'", command=1),
        event("ALTER TABLE orders DROP COLUMN note", command=1),
        event("DELETE FROM alembic_version WHERE alembic_version.version_num = '0001'", command=1),
    ]
    done, rest = cut_into_revisions(events, "alembic_version", "downgrade")
    assert [revision for revision, _statements in done] == ["0002", "0001"] and rest == []


def test_traced_sql_shows_the_transactions():
    statements = [
        {"sql": "UPDATE orders SET status='open'", "outside": False},
        {"sql": "CREATE INDEX CONCURRENTLY ix ON orders (status);", "outside": True},
        {"sql": "UPDATE alembic_version SET version_num='0002'", "outside": False},
    ]
    assert traced_sql(statements) == (
        "BEGIN;\n\nUPDATE orders SET status='open';\n\nCOMMIT;\n\nCREATE INDEX CONCURRENTLY ix ON orders (status);"
        "\n\nBEGIN;\n\nUPDATE alembic_version SET version_num='0002';\n\nCOMMIT;\n"
    )


def test_traced_locks_take_the_strongest_and_what_the_transaction_still_holds():
    statements = [
        {"sql": "UPDATE orders SET status='open'", "locks": [["orders", "RowExclusiveLock"]],
         "held": [["orders", "RowExclusiveLock"], ["public.orders", "AccessExclusiveLock"], ["other", "ShareLock"]],
         "rewrites": []},
        {"sql": "CREATE INDEX CONCURRENTLY ix ON orders (status)", "locks": [], "held": [], "rewrites": []},
        {"sql": "UPDATE alembic_version SET version_num='2'", "locks": [["alembic_version", "RowExclusiveLock"],
         ["alembic_version_pkc", "RowExclusiveLock"]], "held": [], "rewrites": ["public.orders"]},
    ]  # fmt: skip
    sampled = {"CREATE INDEX CONCURRENTLY ix ON orders (status)": [["ix", "AccessExclusiveLock"]]}
    held, seen_running, rewritten = traced_locks(statements, sampled, {"orders"}, "alembic_version")
    # `other` is held from an earlier revision but this one never names it; the version table is bookkeeping
    assert held == {"orders": "AccessExclusiveLock"}
    assert seen_running == {"ix": "AccessExclusiveLock"}
    assert rewritten == {"orders"}


def test_traced_modes_overlay_the_parsed_ones():
    parsed = [
        {"relation": "orders", "lock_mode": "AccessExclusiveLock", "rewrites_table": True, "scans_table": False,
         "notes": []},
        {"relation": "customers", "lock_mode": "ShareLock", "rewrites_table": False, "scans_table": False, "notes": []},
    ]  # fmt: skip
    held = {"orders": "ShareUpdateExclusiveLock", "orders_pkey": "ShareLock"}
    result = overlay_traced_locks(parsed, held, {}, set())
    assert [
        (r["relation"], r["lock_mode"], r["parsed_lock_mode"], r["lock_source"], r["rewrites_table"]) for r in result
    ] == [
        ("orders", "ShareUpdateExclusiveLock", "AccessExclusiveLock", "traced", False),
        ("customers", "ShareLock", "ShareLock", "parsed", False),
        ("orders_pkey", "ShareLock", None, "traced", False),
    ]


def test_a_sampled_mode_only_adds_to_the_parsed_one():
    parsed = [
        {"relation": "orders", "lock_mode": "AccessExclusiveLock", "rewrites_table": False, "scans_table": True,
         "notes": []},
        {"relation": "products", "lock_mode": "ShareUpdateExclusiveLock", "rewrites_table": False,
         "scans_table": False, "notes": []},
    ]  # fmt: skip
    # an autocommit VALIDATE was sampled, the ADD CONSTRAINT and SET NOT NULL around it were too short
    sampled = {"orders": "ShareUpdateExclusiveLock", "products": "ShareLock", "ux_products_name": "ShareLock"}
    result = overlay_traced_locks(parsed, {}, sampled, set())
    assert [(r["relation"], r["lock_mode"], r["lock_source"]) for r in result] == [
        ("orders", "AccessExclusiveLock", "sampled"),
        ("products", "ShareLock", "sampled"),
        ("ux_products_name", "ShareLock", "sampled"),
    ]


def answer(rc=0, stderr=""):
    return {"rc": rc, "stdout": "", "stderr": stderr}


def test_read_trace_names_the_revision_that_failed_on_the_copy():
    events = UPGRADE[:3]
    trace = read_trace([answer(1, 'Traceback ...\npsycopg.errors.NotNullViolation: column "x" contains nulls\n')],
                       events, "alembic_version", ["0001", "0002"])  # fmt: skip
    assert list(trace["upgrades"]) == ["0001"]
    assert trace["failure"] == {
        "revision": "0002",
        "error": 'psycopg.errors.NotNullViolation: column "x" contains nulls',
    }


def test_read_trace_keeps_the_downgrades_that_ran_and_names_the_one_that_failed():
    events = UPGRADE[:6] + [
        event("UPDATE alembic_version SET version_num='0001' WHERE alembic_version.version_num = '0002'", command=1),
    ]
    trace = read_trace(
        [answer(), answer(1, "NotImplementedError: no way back\n")], events, "alembic_version", ["0001", "0002"]
    )
    assert trace["failure"] is None
    assert list(trace["downgrades"]) == ["0002"]
    assert trace["downgrade_failure"] == {"revision": "0001", "error": "NotImplementedError: no way back"}
    # the version table's first read is no part of revision 0001
    assert [s["sql"] for s in trace["upgrades"]["0001"]][0] == "ALTER TABLE orders ADD COLUMN note TEXT"


def test_apply_trace_names_the_relations_of_the_revision():
    entry = {"relations": [{"relation": "orders", "lock_mode": "RowExclusiveLock", "rewrites_table": False,
                            "scans_table": False, "notes": []}]}  # fmt: skip
    statements = [{"sql": "UPDATE orders SET a = 1", "locks": [], "held": [["orders", "AccessExclusiveLock"]],
                   "rewrites": []}]  # fmt: skip
    apply_trace(entry, statements, {}, "alembic_version")
    assert entry["traced_locks"] == [
        {"relation": "orders", "lock_mode": "AccessExclusiveLock", "lock_source": "traced"}
    ]
    assert entry["relations"][0]["lock_source"] == "traced"
