# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    MIN_LEASE_SECONDS,
    describe_holder,
    is_stale,
    lock_entry,
    new_owner,
    option_problems,
    working_patterns,
)

ACQUIRED = datetime.datetime(2024, 5, 1, 10, 15, 3, tzinfo=datetime.timezone.utc)
ROW = dict(
    environment="staging",
    token="run-a",
    holder="awx job 12 by alice",
    app_version="1.4.0",
    deploy_id=42,
    phase="migration",
    acquired_at=ACQUIRED,
    heartbeat_at=ACQUIRED,
    silent_seconds=75.04,
)
BACKUP_SESSION = dict(pid=4242, application_name="safedeploy.pg_backup", state="active", connected_seconds=70.0)


@pytest.mark.parametrize(
    "silent, lease, sessions, stale",
    [
        (75.0, 600, [], False),
        (601.0, 600, [], True),
        (601.0, 600, [BACKUP_SESSION], False),
        (0.1, 0, [], True),
        (0.1, 0, [BACKUP_SESSION], False),
    ],
)
def test_a_holder_is_dead_only_when_silent_past_its_lease_with_nothing_connected(silent, lease, sessions, stale):
    assert is_stale(dict(ROW, silent_seconds=silent), lease, sessions) is stale


def test_the_entry_hides_the_owner_and_speaks_iso_utc():
    entry = lock_entry(ROW)
    assert "token" not in entry
    assert entry["acquired_at"] == "2024-05-01T10:15:03+00:00"
    assert entry["silent_seconds"] == 75.0
    assert entry["deploy_id"] == 42


def test_a_run_that_did_not_name_itself_gets_a_fresh_name():
    names = {new_owner() for _attempt in range(100)}
    assert len(names) == 100
    assert all(len(name) == 20 and int(name, 16) >= 0 for name in names)


def test_the_holder_is_described_with_what_it_still_does():
    text = describe_holder(ROW, [BACKUP_SESSION])
    assert text.startswith("awx job 12 by alice (app 1.4.0, ledger id 42, phase migration) since 2024-05-01T10:15:03")
    assert "last heard of 75 s ago" in text
    assert text.endswith("still at work in the database: safedeploy.pg_backup (pid 4242)")


def test_an_unnamed_holder_before_its_ledger_entry():
    text = describe_holder(dict(ROW, holder=None, deploy_id=None, app_version=None, phase=None), [])
    assert text.startswith("an unnamed deploy (app unknown, phase unknown) since")


def test_working_sessions_are_matched_by_prefix_since_alembic_migrate_adds_its_host_and_pid():
    assert "safedeploy.alembic_migrate%" in working_patterns()
    assert all(pattern.startswith("safedeploy.") and pattern.endswith("%") for pattern in working_patterns())


OPTIONS = dict(environment="staging", owner="run-a", wait=0, lease=600, deploy_id=None)


@pytest.mark.parametrize(
    "overrides, problems",
    [
        ({}, []),
        ({"lease": MIN_LEASE_SECONDS, "wait": 300, "deploy_id": 1}, []),
        ({"lease": 0}, ["lease must be at least 10 seconds, got 0"]),
        ({"lease": 9}, ["lease must be at least 10 seconds, got 9"]),
        ({"lease": -1}, ["lease must be at least 10 seconds, got -1"]),
        ({"wait": -1}, ["wait must be 0 or more seconds, got -1"]),
        ({"deploy_id": 0}, ["deploy_id must be a positive id, got 0"]),
        ({"deploy_id": -5}, ["deploy_id must be a positive id, got -5"]),
        ({"environment": ""}, ["environment must not be empty"]),
        ({"owner": "", "wait": -2}, ["owner must not be empty", "wait must be 0 or more seconds, got -2"]),
    ],
)
def test_option_problems_name_the_option(overrides, problems):
    found = option_problems(dict(OPTIONS, **overrides))
    assert [problem.split(":")[0] for problem in found] == problems


def test_a_lease_below_the_minimum_says_why():
    (problem,) = option_problems(dict(OPTIONS, lease=0))
    assert problem.endswith(
        "a live deploy is silent that long between two heartbeats, and a shorter lease lets a "
        "second deploy take its lock"
    )
