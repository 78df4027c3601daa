# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._preflight import (
    DEFAULT_POLICIES,
    action_entry,
    blocked_message,
    decide,
    describe_session,
    drop_allowed,
    drop_transactions_begun_since,
    planned_invalid_indexes,
    relations_by_pid,
    session_findings,
    signal_query,
    state_verdicts,
    would,
)


def session(pid: int, application_name: str = "app", age: float | None = 100.0, **overrides) -> dict:
    entry = {
        "pid": pid,
        "database": "shop",
        "user": "web",
        "application_name": application_name,
        "state": "idle in transaction",
        "xact_age_seconds": age,
    }
    entry.update(overrides)
    return entry


def lock(pid: int, relation: str, **overrides) -> dict:
    return dict(session(pid, **overrides), relation=relation, mode="AccessShareLock", granted=True)


def lock_info(**lists) -> dict:
    info = {
        "database": "shop",
        "locks": [],
        "long_transactions": [],
        "idle_in_transaction": [],
        "dumps_running": [],
        "invalid_indexes": [],
        "missing_relations": [],
    }
    info.update(lists)
    return info


def policies(**overrides) -> dict:
    return dict(DEFAULT_POLICIES, **overrides)


@pytest.mark.parametrize(
    "locks, expected",
    [
        ([], {}),
        ([lock(1, "orders"), lock(1, "customers"), lock(1, "orders")], {1: "orders, customers"}),
        ([lock(1, "orders"), lock(2, "orders")], {1: "orders", 2: "orders"}),
        ([lock(None, "orders")], {}),
    ],
)
def test_relations_by_pid(locks, expected):
    assert relations_by_pid(locks) == expected


def test_session_findings_one_entry_per_pid_and_only_this_database():
    info = lock_info(
        locks=[lock(1, "orders"), lock(1, "customers"), lock(2, "orders", granted=False)],
        idle_in_transaction=[session(1), session(3, database="other")],
        long_transactions=[session(4, state="active")],
        dumps_running=[session(5, "pg_dump", state="active")],
    )
    findings = session_findings(info)
    assert [s["pid"] for s in findings["lock_holders"]] == [1, 2]
    assert findings["lock_holders"][0]["relation"] == "orders, customers"
    assert findings["idle_in_transaction"] == [
        {
            "pid": 1,
            "application_name": "app",
            "user": "web",
            "state": "idle in transaction",
            "xact_age_seconds": 100.0,
            "relation": "orders, customers",
        }
    ]
    assert findings["long_transactions"][0]["relation"] is None
    assert findings["dumps_running"][0]["application_name"] == "pg_dump"


def test_findings_and_decisions_never_carry_the_query_text():
    secret = "ALTER ROLE app PASSWORD 'S3cret-of-app'"
    info = lock_info(
        locks=[dict(lock(1, "orders"), query=secret)],
        idle_in_transaction=[dict(session(1), query=secret)],
        long_transactions=[dict(session(4, state="active"), query=secret)],
        dumps_running=[dict(session(5, "pg_dump", state="active"), query=secret)],
    )
    findings = session_findings(info)
    decisions = decide(findings, DEFAULT_POLICIES, 0)
    assert "S3cret" not in repr(findings) + repr(decisions) + repr([action_entry(d, "wait") for d in decisions])


@pytest.mark.parametrize(
    "allow, expected_pids",
    [
        ([], [1, 2]),
        (["psql"], [1]),
        (["app", "psql"], []),
        (["other"], [1, 2]),
    ],
)
def test_drop_allowed(allow, expected_pids):
    findings = {"idle_in_transaction": [session(1, "app"), session(2, "psql")]}
    assert [s["pid"] for s in drop_allowed(findings, allow)["idle_in_transaction"]] == expected_pids


@pytest.mark.parametrize(
    "policy_overrides, age, signal_min_age, expected",
    [
        ({}, 100.0, 60, [(1, "wait", ["lock_holders", "idle_in_transaction"])]),
        ({"lock_holders": "fail"}, 100.0, 60, [(1, "fail", ["lock_holders", "idle_in_transaction"])]),
        ({"idle_in_transaction": "terminate"}, 100.0, 60, [(1, "terminate", ["lock_holders", "idle_in_transaction"])]),
        # too young to signal: waited for instead
        ({"idle_in_transaction": "terminate"}, 10.0, 60, [(1, "wait", ["lock_holders", "idle_in_transaction"])]),
        ({"idle_in_transaction": "cancel"}, None, 0, [(1, "cancel", ["lock_holders", "idle_in_transaction"])]),
        ({"idle_in_transaction": "cancel"}, None, 1, [(1, "wait", ["lock_holders", "idle_in_transaction"])]),
        # terminate outranks cancel, fail outranks terminate
        ({"lock_holders": "cancel", "idle_in_transaction": "terminate"}, 100.0, 60, [(1, "terminate", None)]),
        ({"lock_holders": "fail", "idle_in_transaction": "terminate"}, 100.0, 60, [(1, "fail", None)]),
        ({"lock_holders": "ignore"}, 100.0, 60, [(1, "wait", ["idle_in_transaction"])]),
        ({"lock_holders": "ignore", "idle_in_transaction": "ignore"}, 100.0, 60, []),
    ],
)
def test_decide(policy_overrides, age, signal_min_age, expected):
    holder = dict(session(1, age=age), relation="orders")
    findings = {"lock_holders": [holder], "idle_in_transaction": [holder], "long_transactions": [], "dumps_running": []}
    decisions = decide(findings, policies(**policy_overrides), signal_min_age)
    assert [(d["pid"], d["action"]) for d in decisions] == [entry[:2] for entry in expected]
    for decision, entry in zip(decisions, expected):
        if entry[2] is not None:
            assert decision["findings"] == entry[2]


def test_decide_orders_by_pid_and_keeps_sessions_apart():
    findings = {
        "lock_holders": [],
        "long_transactions": [dict(session(9, age=100.0), relation=None)],
        "idle_in_transaction": [],
        "dumps_running": [dict(session(3, "pg_dump", age=100.0), relation=None)],
    }
    decisions = decide(findings, policies(dumps_running="terminate"), 60)
    assert [(d["pid"], d["action"]) for d in decisions] == [(3, "terminate"), (9, "wait")]


@pytest.mark.parametrize(
    "action, age, since_previous_read, kept",
    [
        # the first read has nothing to compare with: every session counts
        ("wait", 0.2, None, True),
        # a worker's next short transaction: the one waited for is over
        ("wait", 0.2, 2.0, False),
        # the same transaction, open across both reads
        ("wait", 2.1, 2.0, True),
        ("wait", None, 2.0, True),
        # only waits are dropped: a fail stays a fail
        ("fail", 0.2, 2.0, True),
    ],
)
def test_drop_transactions_begun_since(action, age, since_previous_read, kept):
    decision = dict(session(1, age=age), relation="jobs", findings=["lock_holders"], action=action)
    assert drop_transactions_begun_since([decision], since_previous_read) == ([decision] if kept else [])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, "pid 7 (application_name=app, user=web, state=idle in transaction, transaction age 100.0 s)"),
        (
            {"relation": "orders", "xact_age_seconds": None, "application_name": ""},
            "pid 7 (application_name='', user=web, state=idle in transaction, transaction age none, relation orders)",
        ),
    ],
)
def test_describe_session(overrides, expected):
    entry = dict(session(7), relation=None)
    entry.update(overrides)
    assert describe_session(entry) == expected


def test_action_entry_and_blocked_message():
    decision = dict(session(7, "psql"), relation="orders", findings=["lock_holders"], action="fail")
    entry = action_entry(decision, would("terminate"))
    assert entry["pid"] == 7
    assert entry["action"] == "would_terminate"
    assert entry["application_name"] == "psql"
    assert entry["reason"].startswith("lock_holders: pid 7 (application_name=psql")
    assert blocked_message("blocked", [decision]).startswith("blocked: lock_holders pid 7 (")


@pytest.mark.parametrize(
    "action, function",
    [("cancel", "pg_cancel_backend"), ("terminate", "pg_terminate_backend")],
)
def test_signal_query(action, function):
    assert signal_query(action) == "SELECT %s(%%(pid)s) AS signalled" % function


INVALID = [{"schema": "public", "index": "orders_code_idx", "table": "orders"}]
POOLING = {"transaction_pooling": True, "detail": "backend pid changed"}
DIRECT = {"transaction_pooling": False, "detail": "stayed"}


@pytest.mark.parametrize(
    "invalid, pooler, overrides, failures, warnings",
    [
        ([], DIRECT, {}, 0, 0),
        (INVALID, DIRECT, {}, 0, 1),
        (INVALID, DIRECT, {"invalid_indexes": "fail"}, 1, 0),
        (INVALID, DIRECT, {"invalid_indexes": "ignore"}, 0, 0),
        ([], POOLING, {}, 1, 0),
        ([], POOLING, {"transaction_pooling": "warn"}, 0, 1),
        ([], POOLING, {"transaction_pooling": "ignore"}, 0, 0),
        (INVALID, POOLING, {"invalid_indexes": "fail"}, 2, 0),
        (INVALID, None, {}, 0, 1),
    ],
)
def test_state_verdicts(invalid, pooler, overrides, failures, warnings):
    found_failures, found_warnings = state_verdicts(lock_info(invalid_indexes=invalid), pooler, policies(**overrides))
    assert (len(found_failures), len(found_warnings)) == (failures, warnings)
    for sentence in found_failures + found_warnings:
        assert "public.orders_code_idx on orders" in sentence or "transaction-pooling" in sentence


INVALID = [
    {"schema": "public", "index": "ix_orders_email", "table": "orders"},
    {"schema": "public", "index": "ix_old", "table": "customers"},
]


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        (["ix_orders_email"], ["ix_orders_email"]),
        (["public.ix_orders_email"], ["ix_orders_email"]),
        (['"IX_Orders_Email"'], ["ix_orders_email"]),
        (["shop.ix_orders_email"], []),
        ([], []),
    ],
)
def test_the_invalid_indexes_the_plan_builds_again(planned, expected):
    assert [index["index"] for index in planned_invalid_indexes(INVALID, planned)] == expected


def test_with_drop_the_planned_invalid_index_is_no_warning_and_the_others_are():
    lock_info = {"invalid_indexes": INVALID}
    policies = dict(DEFAULT_POLICIES, invalid_indexes="drop")
    failures, warnings = state_verdicts(lock_info, None, policies, ["ix_orders_email"])
    assert failures == [] and len(warnings) == 1
    assert "public.ix_old on customers" in warnings[0] and "ix_orders_email" not in warnings[0]
