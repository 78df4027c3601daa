# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""alembic_migrate under concurrency, lock contention and crashes: real processes, real locks."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import (
    EXAMPLE_APP,
    Playbook,
    alembic_runner,
    finish_playbook,
    hold_access_share,
    playbook_command,
    playbook_environment,
    sleeping_backend,
    wait_for,
)

# lock waits are measured in milliseconds: `make e2e` runs this module alone
pytestmark = pytest.mark.exclusive

RELEASES_HEAD = "0004_drop_customer_legacy_code"
SLOW = "0102_slow_customer_audit"


def start_playbook(database, env: dict | None = None, **extra_vars) -> subprocess.Popen:
    return subprocess.Popen(
        playbook_command("migrate.yml", extra_vars),
        env=playbook_environment(database, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_four_concurrent_runs_migrate_exactly_once(example_venv, database):
    runner = alembic_runner(example_venv, EXAMPLE_APP, "slow")
    runs = [
        start_playbook(database, {"ORCHESTRATOR_SLOW_SECONDS": "3"}, runner=runner, db=database.name)
        for _run in range(4)
    ]
    results = [finish_playbook(run).task("Migrate") for run in runs]
    assert not any(result.get("failed") for result in results), results
    winners = [result for result in results if result["changed"]]
    assert len(winners) == 1
    assert [entry["revision"] for entry in winners[0]["applied"]][-1] == SLOW
    losers = [result for result in results if not result["changed"]]
    assert all(loser["applied"] == [] and loser["attempts"] == [] for loser in losers)
    assert max(loser["lock_wait_seconds"] for loser in losers) > 1
    assert database.current_revisions() == [SLOW]
    assert database.advisory_locks() == 0


class Reader(threading.Thread):
    """Reads the table in a loop and keeps the longest time one read had to wait."""

    def __init__(self, database, table: str):
        super().__init__(daemon=True)
        self.connection = database.connect()
        self.table = table
        self.longest = 0.0
        self.reads = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            self.connection.execute("SELECT count(*) FROM %s" % self.table)
            self.longest = max(self.longest, time.monotonic() - started)
            self.reads += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)
        self.connection.close()


CONTENTION = {"lock_timeout": "300ms", "max_lock_timeout": "600ms", "retries": 20, "retry_budget": 60}


def wait_for_lock_waits(database, blocker_pid: int, count: int) -> None:
    """Returns once `count` distinct statements have queued behind the blocker: the playbook's start-up time varies."""
    seen = set()

    def enough() -> bool:
        with database.connect() as connection:
            rows = connection.execute(
                "SELECT pid, query_start FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [blocker_pid]
            ).fetchall()
        seen.update(rows)
        return len(seen) >= count

    wait_for(enough, timeout=60, what="%d lock waits behind the blocker" % count)


def test_lock_contention_retries_without_stalling_readers(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0003"})
    blocker = hold_access_share(database, "customers")
    blocker_pid = blocker.info.backend_pid
    reader = Reader(database, "customers")
    reader.start()
    migration = start_playbook(database, runner=runner, db=database.name, migrate_options=CONTENTION)
    # two attempts time out for sure; the third or a later one gets the lock
    wait_for_lock_waits(database, blocker_pid, 3)
    blocker.commit()
    blocker.close()
    result = finish_playbook(migration).task("Migrate")
    reader.stop()

    assert result["changed"] and not result.get("failed"), result
    outcomes = [attempt["outcome"] for attempt in result["attempts"]]
    assert outcomes[0] == "lock_timeout" and outcomes[-1] == "applied" and len(outcomes) >= 3
    assert blocker_pid in [session["pid"] for session in result["attempts"][0]["blockers"]]
    assert result["attempts"][0]["lock_timeout"] == "300ms" and result["attempts"][1]["lock_timeout"] == "600ms"
    # a waiting ALTER queues every reader behind it, but never longer than the lock_timeout it waits with
    assert reader.longest < 0.6 + 0.5, "a reader was stalled for %.2f s" % reader.longest
    assert reader.reads > 50
    assert database.current_revisions() == [RELEASES_HEAD]


def test_lock_contention_gives_up_within_budget_naming_the_blocker(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0003"})
    blocker = hold_access_share(database, "customers")
    started = time.monotonic()
    result = run_playbook(
        "migrate.yml",
        runner=runner,
        db=database.name,
        migrate_options={"lock_timeout": "200ms", "retries": 50, "retry_budget": 4},
    ).task("Migrate")
    elapsed = time.monotonic() - started
    blocker_pid = blocker.info.backend_pid
    blocker.rollback()
    blocker.close()

    assert result["failed"]
    assert "failed in revision %s" % RELEASES_HEAD in result["msg"]
    assert "the database is at revision 0003_jobs_queue_index after" in result["msg"]
    assert "blocked by pid %s (e2e-long-report" % blocker_pid in result["msg"]
    assert all(attempt["outcome"] == "lock_timeout" for attempt in result["attempts"])
    assert elapsed < 4 + 10, "the retry budget was not honoured (%.1f s)" % elapsed
    assert database.current_revisions() == ["0003_jobs_queue_index"]
    assert database.advisory_locks() == 0


def alembic_pids(runner_config: str) -> list[int]:
    pattern = "%s -n slow" % runner_config
    listing = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in listing.stdout.split()]


def crash_during_slow_revision(example_venv, database, run_playbook, kill) -> Playbook:
    runner = alembic_runner(example_venv, EXAMPLE_APP, "slow")
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": RELEASES_HEAD})
    migration = start_playbook(database, {"ORCHESTRATOR_SLOW_SECONDS": "60"}, runner=runner, db=database.name)
    wait_for(lambda: sleeping_backend(database), what="the slow revision to start")
    kill(migration)
    outcome = finish_playbook(migration)
    # the server cancels the orphaned statement at its next client_connection_check_interval
    wait_for(lambda: not sleeping_backend(database), timeout=10, what="the slow statement to be cancelled")
    wait_for(lambda: database.advisory_locks() == 0, timeout=10, what="the advisory lock to be released")
    assert database.current_revisions() == [RELEASES_HEAD]
    assert database.scalar("SELECT to_regclass('customer_audit') IS NULL")
    rerun = run_playbook("migrate.yml", env={"ORCHESTRATOR_SLOW_SECONDS": "0"}, runner=runner, db=database.name)
    assert rerun.task("Migrate")["changed"]
    assert database.current_revisions() == [SLOW]
    return outcome


def test_kill_alembic_during_a_revision(example_venv, database, run_playbook):
    config = str(EXAMPLE_APP / "alembic.ini")

    def kill_alembic(_migration):
        for pid in wait_for(lambda: alembic_pids(config), what="the alembic process"):
            os.kill(pid, signal.SIGKILL)

    outcome = crash_during_slow_revision(example_venv, database, run_playbook, kill_alembic)
    migrate = outcome.task("Migrate")
    assert migrate["failed"] and "failed in revision %s" % SLOW in migrate["msg"]
    assert "the database is at revision %s" % RELEASES_HEAD in migrate["msg"]


def test_kill_ansible_playbook_during_a_revision(example_venv, database, run_playbook):
    def kill_playbook(migration):
        os.killpg(migration.pid, signal.SIGKILL)

    outcome = crash_during_slow_revision(example_venv, database, run_playbook, kill_playbook)
    assert outcome.rc == -signal.SIGKILL
    assert not alembic_pids(str(EXAMPLE_APP / "alembic.ini"))


def test_lock_wait_timeout_names_the_holder(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    first = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0001"})
    key = first.task("Migrate")["advisory_lock_key"]
    holder = database.connect(application_name="e2e-other-deploy")
    holder.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        refused = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"lock_wait_timeout": 1})
    finally:
        holder_pid = holder.info.backend_pid
        holder.close()
    migrate = refused.task("Migrate")
    assert migrate["failed"] and not migrate["changed"]
    assert migrate["msg"].startswith(
        "another migration holds the advisory lock %s on database %s" % (key, database.name)
    )
    assert "pid %s, application_name e2e-other-deploy" % holder_pid in migrate["msg"]
    assert migrate["lock_wait_seconds"] >= 1
    assert database.current_revisions() == ["0001_initial"]
