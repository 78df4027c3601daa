# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import (
    COLUMN_NAMES,
    OPTION_COLUMNS,
    column_values,
    ddl_statements,
    entries_to_restore,
    entry_problems,
    expected_entry,
    filter_clause,
    finish_query,
    finished_changes,
    insert_query,
    iso_timestamp,
    misplaced_options,
    newest_query,
    normalized_entry,
    row_to_entry,
    select_by_id_query,
    sequence_query,
    upsert_query,
)

UTC = datetime.timezone.utc
CEST = datetime.timezone(datetime.timedelta(hours=2))


def entry(**overrides) -> dict:
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(
        id=7,
        kind="deploy",
        environment="production",
        app_version_to="1.3.0",
        started_at="2024-05-01T10:15:03.120000+00:00",
        outcome="running",
    )
    row.update(overrides)
    return row


def text(composed) -> str:
    return composed.as_string(None)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (datetime.datetime(2024, 5, 1, 12, 15, 3, 120000, tzinfo=CEST), "2024-05-01T10:15:03.120000+00:00"),
        (datetime.datetime(2024, 5, 1, 10, 15, 3), "2024-05-01T10:15:03+00:00"),
        ("2024-05-01T10:15:03Z", "2024-05-01T10:15:03+00:00"),
        ("2024-05-01T12:15:03.120000+02:00", "2024-05-01T10:15:03.120000+00:00"),
        ("2024-05-01T10:15:03.120000+00:00", "2024-05-01T10:15:03.120000+00:00"),
    ],
)
def test_iso_timestamp_is_utc(value, expected):
    assert iso_timestamp(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00+00:00", 1714558503])
def test_iso_timestamp_refuses_what_is_no_timestamp(value):
    with pytest.raises((TypeError, ValueError)):
        iso_timestamp(value)


def test_row_to_entry_has_every_column_and_iso_timestamps():
    started = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=CEST)
    converted = row_to_entry({"id": 3, "started_at": started, "finished_at": None, "details": {"a": 1}})
    assert list(converted) == list(COLUMN_NAMES)
    assert converted["started_at"] == "2024-05-01T10:00:00+00:00"
    assert converted["finished_at"] is None
    assert converted["details"] == {"a": 1}
    assert row_to_entry(None) is None


@pytest.mark.parametrize(
    "params, names, expected",
    [
        ({"kind": "deploy", "message": None}, ("kind", "message"), {"kind": "deploy"}),
        ({"details": {"b": 1, "a": [2]}}, ("details",), {"details": '{"a": [2], "b": 1}'}),
        ({"rescue": "", "strategy": None}, ("rescue", "strategy"), {"rescue": ""}),
        ({"environment": "x", "deploy_id": 4}, ("environment",), {"environment": "x"}),
        ({"msg": "health check failed", "message": "ignored"}, ("message",), {"message": "health check failed"}),
    ],
)
def test_column_values_keeps_what_was_given(params, names, expected):
    assert column_values(params, names) == expected


@pytest.mark.parametrize(
    "state, params, expected",
    [
        ("started", {"environment": "p", "app_version_to": "1"}, []),
        ("started", {"deploy_id": 3, "outcome": "failed"}, ["deploy_id", "outcome"]),
        ("started", {"entries": []}, ["entries"]),
        ("finished", {"deploy_id": 3, "outcome": "failed", "rescue": "r", "details": {}}, []),
        ("finished", {"deploy_id": 3, "entries": [{}]}, ["entries"]),
        ("restored", {"entries": [], "msg": "m", "kind": "deploy"}, ["kind", "msg"]),
        ("restored", {"entries": [], "environment": None}, []),
    ],
)
def test_misplaced_options(state, params, expected):
    assert misplaced_options(state, params) == expected


@pytest.mark.parametrize(
    "before, outcome, values, expected",
    [
        (entry(), "succeeded", {}, {"finished_at": (None, "now()"), "outcome": ("running", "succeeded")}),
        (entry(finished_at="t", outcome="succeeded"), "succeeded", {}, {}),
        (entry(finished_at="t", outcome="succeeded", rescue="r"), "succeeded", {"rescue": "r"}, {}),
        (
            entry(finished_at="t", outcome="succeeded"),
            "failed",
            {"rescue": "downgraded to 0003"},
            {"outcome": ("succeeded", "failed"), "rescue": (None, "downgraded to 0003")},
        ),
        (
            entry(finished_at="t", outcome="failed", details={"a": 1}),
            "failed",
            {"details": '{"b": 2}'},
            {"details": ({"a": 1}, {"a": 1, "b": 2})},
        ),
        (entry(finished_at="t", outcome="failed", details={"a": 1, "b": 2}), "failed", {"details": '{"b": 2}'}, {}),
    ],
)
def test_finished_changes(before, outcome, values, expected):
    assert finished_changes(before, outcome, values) == expected


def test_expected_entry_leaves_the_server_timestamps():
    before = entry()
    after = expected_entry(before, finished_changes(before, "failed", {"rescue": "restored backup"}))
    assert after["outcome"] == "failed" and after["rescue"] == "restored backup"
    assert after["finished_at"] is None and after["started_at"] == before["started_at"]
    assert before["outcome"] == "running"


@pytest.mark.parametrize(
    "entries, expected",
    [
        ([entry(), entry(id=8)], []),
        ([entry(id="8")], []),
        (["x"], ["entries[0] is not a dict"]),
        ([{"kind": "deploy"}], ["entries[0] lacks id, environment, app_version_to, started_at, outcome"]),
        ([entry(colour="red", shape="x")], ["entries[0] has unknown keys: colour, shape"]),
        ([entry(id=0)], ["entries[0] has id 0, not a positive integer"]),
        ([entry(id=True)], ["entries[0] has id True, not a positive integer"]),
        ([entry(id="7a")], ["entries[0] has id '7a', not a positive integer"]),
        ([entry(), entry()], ["entries[1] repeats id 7"]),
        ([entry(kind="hotfix")], ["entries[0] has kind 'hotfix', not one of deploy, rollback, restore"]),
        ([entry(outcome="ok")], ["entries[0] has outcome 'ok', not one of running, succeeded, failed"]),
        ([entry(details=[1])], ["entries[0] has details that are not a dict"]),
        ([entry(finished_at="soon")], ["entries[0] has finished_at 'soon', not an ISO 8601 timestamp"]),
    ],
)
def test_entry_problems(entries, expected):
    assert entry_problems(entries) == expected


def test_normalized_entry_fills_columns_and_normalizes():
    normalized = normalized_entry({"id": "9", "started_at": "2024-05-01T12:00:00+02:00", "kind": "restore"})
    assert list(normalized) == list(COLUMN_NAMES)
    assert normalized["id"] == 9
    assert normalized["started_at"] == "2024-05-01T10:00:00+00:00"
    assert normalized["finished_at"] is None


@pytest.mark.parametrize(
    "current, expected_ids",
    [
        ({}, [7, 8]),
        ({7: entry(), 8: entry(id=8)}, []),
        ({7: entry(outcome="succeeded"), 8: entry(id=8)}, [7]),
        ({8: entry(id=8, details={"a": 1})}, [7, 8]),
    ],
)
def test_entries_to_restore(current, expected_ids):
    wanted = [normalized_entry(entry()), normalized_entry(entry(id=8))]
    assert [e["id"] for e in entries_to_restore(wanted, current)] == expected_ids


def test_ddl_declares_every_column_in_order():
    schema, table = (text(statement) for statement in ddl_statements('odd "schema'))
    assert schema == 'CREATE SCHEMA IF NOT EXISTS "odd ""schema"'
    assert table.startswith('CREATE TABLE IF NOT EXISTS "odd ""schema"."deploys" (')
    declared = [line.split()[0].strip('"') for line in table.splitlines()[1:-1]]
    assert declared == list(COLUMN_NAMES)
    assert '"id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' in table
    assert '"started_at" timestamptz NOT NULL DEFAULT now()' in table


def test_queries_carry_placeholders_never_values():
    values = column_values({"environment": "production", "details": {"token": "v"}}, OPTION_COLUMNS)
    queries = [
        insert_query("safedeploy", list(values) + ["outcome"]),
        finish_query("safedeploy", list(values)),
        upsert_query("safedeploy"),
    ]
    for query in map(text, queries):
        assert "production" not in query and "token" not in query
    assert text(queries[0]) == (
        'INSERT INTO "safedeploy"."deploys" ("environment", "details", "outcome") '
        "VALUES (%(environment)s::text, %(details)s::jsonb, %(outcome)s::text) RETURNING *"
    )


def test_finish_query_merges_details_and_sets_the_end():
    query = text(finish_query("safedeploy", ["rescue", "details"]))
    assert query.startswith('UPDATE "safedeploy"."deploys" SET finished_at = now(), outcome = %(outcome)s::text, ')
    assert "details = COALESCE(details, '{}'::jsonb) || %(details)s::jsonb" in query
    assert query.endswith("WHERE id = %(deploy_id)s RETURNING *")


def test_upsert_writes_only_missing_or_different_rows():
    query = text(upsert_query("safedeploy"))
    assert "FROM jsonb_to_recordset(%(entries)s::jsonb)" in query
    assert "ON CONFLICT (id) DO UPDATE SET" in query
    assert '"id" = EXCLUDED."id"' not in query
    assert ") IS DISTINCT FROM (" in query
    assert query.endswith("RETURNING ledger.id")


def test_sequence_only_moves_forward():
    query = text(sequence_query("safedeploy"))
    assert "setval" in query and "WHERE m.top > COALESCE(pg_sequence_last_value(s.seq), 0)" in query


@pytest.mark.parametrize("lock, suffix", [(True, " FOR UPDATE"), (False, "")])
def test_select_by_id_locks_only_when_asked(lock, suffix):
    assert text(select_by_id_query("s", lock)) == 'SELECT * FROM "s"."deploys" WHERE id = %(deploy_id)s' + suffix


@pytest.mark.parametrize(
    "arguments, where, params",
    [
        ((None, None, None, None), "", {}),
        ((None, None, [], None), "", {}),
        ((None, "staging", None, None), " WHERE environment = %(environment)s", {"environment": "staging"}),
        (
            (4, None, ["deploy", "rollback"], "failed"),
            " WHERE id = %(deploy_id)s AND kind = ANY(%(kinds)s) AND outcome = %(outcome)s",
            {"deploy_id": 4, "kinds": ["deploy", "rollback"], "outcome": "failed"},
        ),
    ],
)
def test_filter_clause(arguments, where, params):
    clause, values = filter_clause(*arguments)
    assert text(clause) == where
    assert values == params
    assert text(newest_query("safedeploy", clause)) == (
        'SELECT * FROM "safedeploy"."deploys"' + where + " ORDER BY id DESC LIMIT %(limit)s"
    )


def test_details_survive_a_json_round_trip():
    values = column_values({"details": {"pending": ["0004"], "seconds": 1.5}}, ("details",))
    assert json.loads(values["details"]) == {"pending": ["0004"], "seconds": 1.5}
