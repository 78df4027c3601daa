# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_info import (
    SESSION_FIELDS,
    advisory_key,
    advisory_lock_entry,
    bad_names_message,
    blocking_entry,
    blocking_query,
    invalid_index_entry,
    missing_relations,
    pooler_finding,
    relation_lock_entry,
    relation_locks_query,
    root_blocking_pids,
    seconds,
    session_entry,
    session_query,
    shorten_query,
    summarize,
    transaction_pooling_message,
    wait_start_expression,
)


def session_row(prefix: str = "", **overrides) -> dict:
    row = {
        "pid": 4200,
        "database": "shop",
        "user": "app",
        "application_name": "gunicorn",
        "client_addr": "10.0.3.7",
        "backend_type": "client backend",
        "state": "idle in transaction",
        "wait_event_type": "Client",
        "wait_event": "ClientRead",
        "xact_age_seconds": 75.23456,
        "state_age_seconds": 70.1,
        "query": "UPDATE orders\n   SET paid = true",
    }
    row.update(overrides)
    return {prefix + key: value for key, value in row.items()}


@pytest.mark.parametrize(
    ("text", "query_length", "expected"),
    [
        (None, 200, None),
        ("SELECT 1", 0, None),
        ("SELECT 1", 200, "SELECT 1"),
        ("SELECT\n\t a,\n  b   FROM t", 200, "SELECT a, b FROM t"),
        ("SELECT 123", 10, "SELECT 123"),
        ("SELECT 1234", 10, "SELECT ..."),
        ("SELECT 1234", 3, "SEL"),
        ("SELECT 1234", 4, "S..."),
        ("", 10, ""),
    ],
)
def test_shorten_query(text, query_length, expected):
    assert shorten_query(text, query_length) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, 0.0),
        (1.23456, 1.235),
        (Decimal("12.0004"), 12.0),
        (-0.002, 0.0),
    ],
)
def test_seconds(value, expected):
    assert seconds(value) == expected


@pytest.mark.parametrize(
    ("classid", "objid", "objsubid", "expected"),
    [
        (0, 1, 1, {"key": 1, "key_pair": None}),
        (1, 0, 1, {"key": 2**32, "key_pair": None}),
        (0xFFFFFFFF, 0xFFFFFFFF, 1, {"key": -1, "key_pair": None}),
        (0x7FFFFFFF, 0xFFFFFFFF, 1, {"key": 2**63 - 1, "key_pair": None}),
        (0x80000000, 0, 1, {"key": -(2**63), "key_pair": None}),
        (5, 2**32 - 7, 2, {"key": None, "key_pair": [5, -7]}),
        (0x80000000, 0x7FFFFFFF, 2, {"key": None, "key_pair": [-(2**31), 2**31 - 1]}),
    ],
)
def test_advisory_key(classid, objid, objsubid, expected):
    assert advisory_key(classid, objid, objsubid) == expected


@pytest.mark.parametrize(
    ("row", "prefix", "query_length", "expected"),
    [
        (
            session_row(),
            "",
            200,
            dict(session_row(), xact_age_seconds=75.235, state_age_seconds=70.1, query="UPDATE orders SET paid = true"),
        ),
        (
            session_row("blocking."),
            "blocking.",
            6,
            dict(session_row(), xact_age_seconds=75.235, state_age_seconds=70.1, query="UPD..."),
        ),
        (
            session_row(client_addr=None, xact_age_seconds=None, query="<insufficient privilege>"),
            "",
            0,
            dict(session_row(), client_addr=None, xact_age_seconds=None, state_age_seconds=70.1, query=None),
        ),
        ({}, "blocking.", 200, dict.fromkeys(SESSION_FIELDS)),
        (
            session_row(query="ALTER ROLE app\n  PASSWORD 'S3cret-of-app' VALID UNTIL 'infinity'"),
            "",
            44,
            dict(
                session_row(),
                xact_age_seconds=75.235,
                state_age_seconds=70.1,
                query="ALTER ROLE app PASSWORD '<redacted>' VALI...",
            ),
        ),
    ],
    ids=["plain", "prefixed-and-cut", "unprivileged-view", "no-backend", "password-redacted-before-the-cut"],
)
def test_session_entry(row, prefix, query_length, expected):
    assert session_entry(row, query_length, prefix) == expected


@pytest.mark.parametrize(
    ("row", "expected_blocking"),
    [
        (
            dict(
                session_row("blocking.", pid=4200),
                **{"blocking_pid": 4200},
            ),
            dict(session_row(pid=4200), xact_age_seconds=75.235, query="UPDATE orders SET paid = true"),
        ),
        ({"blocking_pid": 0}, dict.fromkeys(SESSION_FIELDS)),
    ],
    ids=["session", "prepared-transaction"],
)
def test_blocking_entry(row, expected_blocking):
    row = dict(
        row,
        blocked_pid=4242,
        locktype="relation",
        mode="AccessExclusiveLock",
        relation="orders",
        wait_seconds=12.3456,
        **session_row("blocked.", pid=4242, state="active", query="ALTER TABLE orders ADD c int"),
    )
    entry = blocking_entry(row, 200)
    assert entry["blocked_pid"] == 4242
    assert entry["blocking_pid"] == row["blocking_pid"]
    assert (entry["locktype"], entry["mode"], entry["relation"]) == ("relation", "AccessExclusiveLock", "orders")
    assert entry["wait_seconds"] == 12.346
    assert entry["blocked"]["pid"] == 4242
    assert entry["blocked"]["query"] == "ALTER TABLE orders ADD c int"
    assert entry["blocking"] == expected_blocking


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], []),
        ([(2, 1)], [1]),
        ([(2, 1), (3, 1), (3, 2)], [1]),
        ([(2, 1), (4, 3)], [1, 3]),
        ([(1, 2), (2, 1)], []),
        ([(5, 0), (6, 5)], [0]),
    ],
    ids=["none", "one-pair", "queue-behind-waiter", "two-chains", "deadlock-cycle", "prepared-transaction"],
)
def test_root_blocking_pids(pairs, expected):
    blocking = [{"blocked_pid": blocked, "blocking_pid": blocker} for blocked, blocker in pairs]
    assert root_blocking_pids(blocking) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], []),
        ([{"name": "orders", "relation": "orders"}], []),
        ([{"name": "Orders", "relation": None}, {"name": "s.t", "relation": "s.t"}], ["Orders"]),
    ],
)
def test_missing_relations(rows, expected):
    assert missing_relations(rows) == expected


@pytest.mark.parametrize(
    ("granted", "wait_seconds", "expected_wait"),
    [(True, None, None), (False, 3.14159, 3.142)],
)
def test_relation_lock_entry(granted, wait_seconds, expected_wait):
    row = dict(session_row(), relation="orders", mode="RowExclusiveLock", granted=granted, wait_seconds=wait_seconds)
    entry = relation_lock_entry(row, 200)
    assert entry["relation"] == "orders"
    assert entry["mode"] == "RowExclusiveLock"
    assert entry["granted"] is granted
    assert entry["wait_seconds"] == expected_wait
    assert entry["pid"] == 4200
    assert set(entry) == set(SESSION_FIELDS) | {"relation", "mode", "granted", "wait_seconds"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            dict(session_row(application_name="safedeploy.migrate"), classid=0, objid=42, objsubid=1),
            {"key": 42, "key_pair": None, "pid": 4200, "application_name": "safedeploy.migrate"},
        ),
        (
            {"classid": 1, "objid": 2, "objsubid": 2},
            {"key": None, "key_pair": [1, 2], "pid": None, "application_name": None},
        ),
    ],
    ids=["session-holder", "prepared-transaction"],
)
def test_advisory_lock_entry(row, expected):
    entry = advisory_lock_entry(dict(row, mode="ExclusiveLock", granted=True), 200)
    assert {key: entry[key] for key in expected} == expected
    assert entry["mode"] == "ExclusiveLock"
    assert entry["granted"] is True
    assert set(entry) == set(SESSION_FIELDS) | {"key", "key_pair", "mode", "granted"}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {
                "blocking": [],
                "long_transactions": [],
                "idle_in_transaction": [],
                "dumps_running": [],
                "advisory_locks": [],
                "locks": [],
                "invalid_indexes": [],
            },
            {
                "blocked_sessions": 0,
                "blocking_sessions": 0,
                "max_wait_seconds": 0.0,
                "long_transactions": 0,
                "idle_in_transaction": 0,
                "dumps_running": 0,
                "advisory_locks": 0,
                "locks_granted": 0,
                "locks_waiting": 0,
                "invalid_indexes": 0,
            },
        ),
        (
            {
                "blocking": [
                    {"blocked_pid": 2, "blocking_pid": 1, "wait_seconds": 4.5},
                    {"blocked_pid": 3, "blocking_pid": 1, "wait_seconds": 2.0},
                    {"blocked_pid": 3, "blocking_pid": 2, "wait_seconds": None},
                ],
                "long_transactions": [{}, {}],
                "idle_in_transaction": [{}],
                "dumps_running": [{}],
                "advisory_locks": [{}],
                "locks": [{"granted": True}, {"granted": False}, {"granted": False}],
                "invalid_indexes": [{}],
            },
            {
                "blocked_sessions": 2,
                "blocking_sessions": 2,
                "max_wait_seconds": 4.5,
                "long_transactions": 2,
                "idle_in_transaction": 1,
                "dumps_running": 1,
                "advisory_locks": 1,
                "locks_granted": 1,
                "locks_waiting": 2,
                "invalid_indexes": 1,
            },
        ),
    ],
    ids=["quiet", "chain"],
)
def test_summarize(result, expected):
    assert summarize(result) == expected


@pytest.mark.parametrize(
    ("server_version_num", "expected"),
    [
        (130015, "blocked.state_change"),
        (140000, "COALESCE(waiting.waitstart, blocked.state_change)"),
        (150008, "COALESCE(waiting.waitstart, blocked.state_change)"),
    ],
)
def test_wait_start_expression(server_version_num, expected):
    assert wait_start_expression(server_version_num, "waiting", "blocked") == expected
    assert expected in blocking_query(server_version_num)


@pytest.mark.parametrize("sql", [blocking_query(150000), relation_locks_query(150000)], ids=["blocking", "locks"])
def test_select_list_names_are_unique(sql):
    select_list = sql[: sql.index(" FROM pg_")]
    names = re.findall(r' AS "?([\w.]+)"?(?:,|$)', select_list)
    assert len(names) == len(set(names)), names


def test_invalid_index_entry():
    row = {
        "schema": "public",
        "index": "orders_code_idx",
        "table": "orders",
        "size_bytes": 8192,
        "definition": "CREATE UNIQUE INDEX orders_code_idx ON public.orders USING btree (code)",
        "extra": "ignored",
    }
    assert invalid_index_entry(row) == {key: value for key, value in row.items() if key != "extra"}


@pytest.mark.parametrize(
    ("backend_pids", "probe_backend_pid", "probe_error", "transaction_pooling", "detail"),
    [
        (
            [7, 7, 7],
            9,
            None,
            False,
            "backend pid 7 stayed the same in 3 transactions while a second connection held "
            "backend pid 9 in an open transaction",
        ),
        (
            [7, 8, 7],
            7,
            None,
            True,
            "backend pid changed between transactions on one connection: 7, 8; "
            "a second connection got backend pid 7 of this connection",
        ),
        ([7, 8, 8], 9, None, True, "backend pid changed between transactions on one connection: 7, 8"),
        ([7, 7, 7], 7, None, True, "a second connection got backend pid 7 of this connection"),
        (
            [7, 7, 7],
            None,
            "boom",
            False,
            "backend pid 7 stayed the same in 3 transactions; the second connection failed: boom",
        ),
    ],
    ids=["direct", "transaction-pool", "round-robin", "pool-of-one", "probe-failed"],
)
def test_pooler_finding(backend_pids, probe_backend_pid, probe_error, transaction_pooling, detail):
    finding = pooler_finding(backend_pids, probe_backend_pid, probe_error)
    assert finding == {
        "transaction_pooling": transaction_pooling,
        "backend_pids": backend_pids,
        "probe_backend_pid": probe_backend_pid,
        "detail": detail,
    }


@pytest.mark.parametrize(
    ("backend_pids", "probe_backend_pid", "evidence"),
    [
        ([7, 8, 7], 7, "backend pid changed between transactions: 7, 8"),
        ([7, 7, 7], 7, "a second connection got backend pid 7 of this connection"),
    ],
    ids=["pid-changed", "pid-shared"],
)
def test_transaction_pooling_message(backend_pids, probe_backend_pid, evidence):
    message = transaction_pooling_message(
        "database shop on db:6432 as app", pooler_finding(backend_pids, probe_backend_pid)
    )
    assert message == (
        f"the connection to database shop on db:6432 as app goes through a transaction-pooling proxy ({evidence}): "
        "advisory locks and session settings are unsafe there; connect to PostgreSQL directly or through a "
        "session-pooling pool"
    )


@pytest.mark.parametrize(
    ("text", "query_length", "expected"),
    [
        ("CREATE ROLE app LOGIN PASSWORD 'S3cret-of-app'", 200, "CREATE ROLE app LOGIN PASSWORD '<redacted>'"),
        # cut first, the literal would not scan and the text would be hidden whole
        ("CREATE ROLE app LOGIN PASSWORD 'S3cret-of-app'", 40, "CREATE ROLE app LOGIN PASSWORD '<reda..."),
        (
            "ALTER ROLE app PASSWORD 'S3cret-of-a",
            200,
            "<query text hidden: it does not scan as SQL and may hold a secret>",
        ),
        ("ALTER ROLE app PASSWORD 'S3cret-of-app'", 0, None),
        (None, 200, None),
    ],
)
def test_session_query_redacts_before_it_cuts(text, query_length, expected):
    assert session_query(text, query_length) == expected


def test_a_bad_relation_name_is_named():
    message = bad_names_message(
        "database shop on db:5432 as app", [("lock probe", "invalid name syntax"), ('"open', "invalid name syntax")]
    )
    assert message == (
        "reading the relations from database shop on db:5432 as app failed: not a relation name: "
        "'lock probe' (invalid name syntax); '\"open' (invalid name syntax)"
    )
