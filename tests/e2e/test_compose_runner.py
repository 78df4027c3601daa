# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""alembic_migrate with a compose one-shot runner against a real stack: the image's alembic, the stack's postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

# the fixtures' module is a plugin of this one; rewrite its asserts before the import below loads it
pytest.register_assert_rewrite("compose_stack")
pytest_plugins = ("compose_stack",)

from compose_stack import docker, start_stack_playbook
from conftest import EXAMPLE_APP, finish_playbook, hold_access_share, sleeping_backend, wait_for

RELEASES = ["0001_initial", "0002_job_priority", "0003_jobs_queue_index", "0004_drop_customer_legacy_code"]
HEAD = RELEASES[-1]
SLOW = "0102_slow_customer_audit"
# the scripts as the host sees them; alembic inside the container reports /app/migrations/... paths
SCRIPTS = str(EXAMPLE_APP / "migrations")


def revisions(result: dict) -> list[str]:
    return [entry["revision"] for entry in result["applied"]]


def test_upgrade_to_head_through_the_one_shot(compose_stack, stack_database, run_stack_playbook):
    runner = compose_stack.runner()
    first = run_stack_playbook(runner=runner, script_location=SCRIPTS, migrate_options={"script_location": SCRIPTS})
    migrate = first.task("Migrate")
    assert migrate["changed"] and not migrate.get("failed"), migrate
    assert revisions(migrate) == RELEASES
    assert migrate["from_revision"] is None and migrate["to_revision"] == HEAD
    assert [attempt["outcome"] for attempt in migrate["attempts"]] == ["applied"]
    # the module names the one-shot container so that it can stop it if the controller goes away
    command = migrate["commands"][-1]
    name_at = command.index("--name")
    assert command[:name_at] + command[name_at + 2 :] == [*runner, "upgrade", HEAD]
    assert command[name_at + 1].startswith("safedeploy-alembic-")
    assert stack_database.current_revisions() == [HEAD]
    assert stack_database.advisory_locks() == 0
    # checksums of scripts that only the container has, found by name under script_location
    recorded = stack_database.scalar(
        "SELECT count(*) FROM safedeploy.applied_revisions WHERE script_sha256 IS NOT NULL "
        "AND script_path LIKE '/app/migrations/versions/%%'"
    )
    assert recorded == len(RELEASES)

    second = run_stack_playbook(runner=runner, script_location=SCRIPTS, migrate_options={"script_location": SCRIPTS})
    rerun = second.task("Migrate")
    assert not rerun["changed"] and not rerun.get("failed"), rerun
    assert rerun["applied"] == [] and rerun["attempts"] == []
    info = second.task("Info")
    assert info["current"] == [HEAD] and info["up_to_date"] and info["modified_after_apply"] == []
    assert compose_stack.one_off_containers(all_states=True) == []


def test_lock_timeout_reaches_alembic_inside_the_container(compose_stack, stack_database, run_stack_playbook):
    runner = compose_stack.runner()
    run_stack_playbook(runner=runner, migrate_options={"revision": "0003"})
    assert stack_database.current_revisions() == ["0003_jobs_queue_index"]
    blocker = hold_access_share(stack_database, "customers")
    blocker_pid = blocker.info.backend_pid
    started = time.monotonic()
    contended = run_stack_playbook(
        # a budget that fits three attempts of a one-shot container even on a loaded machine
        runner=runner,
        migrate_options={"lock_timeout": "300ms", "retries": 2, "retry_budget": 60},
    ).task("Migrate")
    elapsed = time.monotonic() - started
    blocker.rollback()
    blocker.close()

    # without lock_timeout on its connection, alembic's DROP COLUMN would have queued behind the blocker for good
    assert contended["failed"], contended
    assert [attempt["lock_timeout"] for attempt in contended["attempts"]] == ["300ms", "600ms", "1200ms"]
    assert all(attempt["outcome"] == "lock_timeout" for attempt in contended["attempts"])
    assert blocker_pid in [session["pid"] for session in contended["attempts"][0]["blockers"]]
    assert "canceling statement due to lock timeout" in contended["stderr"]
    assert "failed in revision %s" % HEAD in contended["msg"]
    assert "blocked by pid %s (e2e-long-report" % blocker_pid in contended["msg"]
    assert elapsed < 60 + 15, "the retry budget was not honoured (%.1f s)" % elapsed
    assert stack_database.current_revisions() == ["0003_jobs_queue_index"]
    assert stack_database.advisory_locks() == 0

    released = run_stack_playbook(runner=runner, migrate_options={"lock_timeout": "300ms"}).task("Migrate")
    assert released["changed"] and not released.get("failed"), released
    assert revisions(released) == [HEAD]
    assert [attempt["outcome"] for attempt in released["attempts"]] == ["applied"]
    assert stack_database.current_revisions() == [HEAD]


def test_one_shot_on_another_database_is_an_error(compose_stack, stack_database, run_stack_playbook):
    # the one-shot migrates the stack's default database, the module reads and locks the test's
    other = run_stack_playbook(env={"MIGRATION_DB": "orchestrator"}, runner=compose_stack.runner()).task("Migrate")
    assert stack_database.current_revisions() == []
    assert other.get("failed"), other
    assert other["msg"].startswith("alembic reported success but database %s is at revision base" % stack_database.name)


SLOW_ENV = ("ORCHESTRATOR_SLOW_SECONDS",)


def start_slow_migration(compose_stack, stack_database, run_stack_playbook, seconds: int):
    """The database at the last release, then the slow revision under way in a one-shot container."""
    runner = compose_stack.runner("-n", "slow", pass_env=SLOW_ENV)
    run_stack_playbook(runner=runner, migrate_options={"revision": HEAD})
    assert stack_database.current_revisions() == [HEAD]
    migration = start_stack_playbook(
        compose_stack, stack_database, {"ORCHESTRATOR_SLOW_SECONDS": str(seconds)}, runner=runner
    )
    wait_for(lambda: sleeping_backend(stack_database), what="the slow revision to start")
    return runner, migration


def assert_rolled_back_and_rerun(compose_stack, stack_database, run_stack_playbook, runner) -> None:
    # the server cancels the orphaned statement at its next client_connection_check_interval
    wait_for(lambda: not sleeping_backend(stack_database), timeout=10, what="the slow statement to end")
    wait_for(lambda: stack_database.advisory_locks() == 0, timeout=10, what="the advisory lock to be released")
    assert stack_database.current_revisions() == [HEAD]
    assert stack_database.scalar("SELECT to_regclass('customer_audit') IS NULL")
    rerun = run_stack_playbook(env={"ORCHESTRATOR_SLOW_SECONDS": "0"}, runner=runner).task("Migrate")
    assert rerun["changed"] and revisions(rerun) == [SLOW], rerun
    assert stack_database.current_revisions() == [SLOW]


def test_killed_one_shot_leaves_the_previous_revision(compose_stack, stack_database, run_stack_playbook):
    runner, migration = start_slow_migration(compose_stack, stack_database, run_stack_playbook, 60)
    (container,) = compose_stack.one_off_containers()
    docker("kill", "--signal", "KILL", container)
    migrate = finish_playbook(migration).task("Migrate")

    assert migrate["failed"] and migrate["rc"] == 137, migrate
    assert "failed in revision %s" % SLOW in migrate["msg"]
    assert "the database is at revision %s" % HEAD in migrate["msg"]
    assert_rolled_back_and_rerun(compose_stack, stack_database, run_stack_playbook, runner)


def test_killed_playbook_stops_the_one_shot(compose_stack, stack_database, run_stack_playbook):
    runner, migration = start_slow_migration(compose_stack, stack_database, run_stack_playbook, 30)
    os.killpg(migration.pid, signal.SIGKILL)
    finish_playbook(migration)
    try:
        wait_for(lambda: not compose_stack.one_off_containers(), timeout=10, what="the one-shot container to stop")
        assert_rolled_back_and_rerun(compose_stack, stack_database, run_stack_playbook, runner)
    finally:
        compose_stack.remove_one_offs()


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            with open("/proc/%d/stat" % pid) as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def module_processes(playbook_pid: int) -> list[int]:
    """The processes running alembic_migrate's AnsiballZ payload for this playbook (other tests run theirs)."""
    listing = subprocess.run(["pgrep", "-f", "AnsiballZ_alembic_migrate"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in listing.stdout.split() if descends_from(int(pid), playbook_pid)]


def test_killed_module_takes_its_one_shot_with_it(compose_stack, stack_database, run_stack_playbook):
    # the out-of-memory killer's way: the module's own process, SIGKILLed, with no chance to stop the container
    runner, migration = start_slow_migration(compose_stack, stack_database, run_stack_playbook, 60)
    try:
        for pid in wait_for(lambda: module_processes(migration.pid), what="the alembic_migrate module"):
            os.kill(pid, signal.SIGKILL)
        finish_playbook(migration)
        # the container must not go on migrating once the module's advisory lock is gone
        wait_for(lambda: not compose_stack.one_off_containers(), timeout=10, what="the one-shot container to go")
        assert_rolled_back_and_rerun(compose_stack, stack_database, run_stack_playbook, runner)
    finally:
        compose_stack.remove_one_offs()
