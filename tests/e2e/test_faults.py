# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults during a real deploy: ansible-playbook SIGKILLed in each phase, two deploys started at the same moment.

Each scenario ends with the same checks (`assert_consistent`): the alembic revision, no INVALID index, no advisory
lock and no deploy lock left, the ledger's entries, the app answering the release that matches the schema, and the
row written before the fault still there. docs/reliability.md lists the scenarios and these tests.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from conftest import Playbook, wait_for

pytest_plugins = ("compose_stack", "deploy_stack")

CANARY = "fault-canary@example.com"
# the rerun after a kill: take over as soon as nothing of the killed deploy is connected, wait for that long enough
# the shortest lease deploy_lock takes: the killed deploy is silent that long before the rerun takes over
TAKE_OVER = {"deploy_lock_lease": 10, "deploy_lock_wait": 180}
HEADS = {"1.1.0": "0002_job_priority", "1.2.0": "0003_jobs_queue_index", "1.3.0": "0004_drop_customer_legacy_code"}
HEADS["1.4.0-slow"] = "0102_slow_customer_audit"


def write_canary(target) -> None:
    target.scalar("INSERT INTO customers (email, name) VALUES (%s, 'kept through every fault') RETURNING id", (CANARY,))


def serving(target) -> tuple | None:
    answer = target.health()
    return answer if answer[0] == 200 else None


def assert_consistent(target, release: str) -> None:
    assert target.revision() == HEADS[release]
    assert target.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert target.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    assert target.scalar("SELECT count(*) FROM safedeploy.deploy_locks") == 0
    status, health = wait_for(lambda: serving(target), 60, "the app to answer 200")
    assert (status, health["app_version"], health["revision"]) == (200, release, HEADS[release])
    assert target.scalar("SELECT count(*) FROM customers WHERE email = %s", (CANARY,)) == 1


def finish(process) -> Playbook:
    stdout, stderr = process.communicate(timeout=600)
    return Playbook(type("Completed", (), {"returncode": process.returncode, "stdout": stdout, "stderr": stderr}))


def lock_phase(target) -> str | None:
    try:
        return target.scalar("SELECT phase FROM safedeploy.deploy_locks")
    except Exception:  # noqa: BLE001 - the table appears with the first lock
        return None


def slow_revision_running(target) -> bool:
    return bool(target.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"))


def kill_in_phase(target, release: str, phase: str, started=lambda: True) -> dict:
    """Starts a deploy, SIGKILLs ansible-playbook and all its processes once the deploy lock names the phase and
    `started` says the phase's work began; returns the ledger entry the killed deploy left."""
    entries_before = len(target.ledger())
    process = target.start("deploy.yml", app_version=release)
    wait_for(lambda: lock_phase(target) == phase and started(), 240, "the deploy to reach its %s" % phase)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    entries = target.ledger()
    assert len(entries) == entries_before + 1 and entries[-1]["outcome"] == "running", entries[-1:]
    return entries[-1]


def assert_reconciled(target, killed: dict, phase: str, release: str) -> Playbook:
    """The rerun closed the killed deploy's entry from what the database said, then deployed the release."""
    rerun = target.deploy(release, **TAKE_OVER)
    assert rerun.rc == 0, rerun.failures()
    takeover = rerun.task("Report the wait or the takeover")["msg"]
    assert "took over the deploy lock" in takeover and "interrupted during its %s" % phase in takeover
    closed, last = [entry for entry in target.ledger() if entry["id"] >= killed["id"]][:2]
    assert (closed["id"], closed["outcome"]) == (killed["id"], "failed")
    assert closed["message"].startswith("interrupted during its %s" % phase), closed["message"]
    assert (last["outcome"], last["app_version_to"], last["revision_reached"]) == ("succeeded", release, HEADS[release])
    assert_consistent(target, release)
    return rerun


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0-slow"):
        release_images(version)
    first = deploy_target.deploy("1.1.0")
    assert first.rc == 0, first.failures()
    write_canary(deploy_target)
    return deploy_target


def test_killed_during_the_backup_the_next_deploy_takes_over_and_completes(target):
    killed = kill_in_phase(target, "1.2.0", "backup")
    assert_reconciled(target, killed, "backup", "1.2.0")


def test_killed_during_the_roll_the_next_deploy_takes_over_and_completes(target):
    killed = kill_in_phase(target, "1.3.0", "roll")
    # status.yml names the dead deploy's lock, and with a lease of 0 calls it a problem
    status = target.run("status.yml", status_lock_lease=0)
    assert status.rc == 0, status.failures()
    summary = "\n".join(status.task("Show the status")["msg"])
    assert re.search(r"deploy lock: \S+ held by .*\(app 1\.3\.0, ledger id %s, phase roll\)" % killed["id"], summary)
    assert "deploy looks dead and the next deploy takes the lock over" in summary, summary
    # a rollback (to 1.1.0, the backup test before this one having deployed 1.2.0) refuses while the lock is held,
    # naming the holder; its check mode says so
    files = target.files()
    preview = target.run("rollback.yml", check=True)
    assert "is being deployed by" in preview.task("Report the deploy that holds the lock (check mode)")["msg"]
    refused = target.run("rollback.yml")
    assert refused.rc != 0 and "is being deployed by" in refused.failures(), refused.failures()
    assert "phase roll" in refused.failures() and target.files() == files
    assert_reconciled(target, killed, "roll", "1.3.0")


def test_killed_during_the_migration_the_migration_finishes_and_the_next_deploy_completes(target):
    killed = kill_in_phase(target, "1.4.0-slow", "migration", lambda: slow_revision_running(target))
    # the migration runs as an async job on the host, so the kill does not stop it: the rerun waits for its session
    assert slow_revision_running(target)
    rerun = assert_reconciled(target, killed, "migration", "1.4.0-slow")
    assert rerun.task("Deploy lock acquired")["waited_seconds"] > 0
    # the killed deploy's entry says where its migration got to, as read from the database
    assert [entry["revision_reached"] for entry in target.ledger()][-2:] == [HEADS["1.4.0-slow"]] * 2


@pytest.fixture(scope="module")
def racing_target(tmp_path_factory, release_images):
    from deploy_stack import deploy_target_lifetime  # noqa: PLC0415 - the plugin module, loaded by pytest_plugins

    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0-slow"):
        release_images(version)
    for target in deploy_target_lifetime(tmp_path_factory.mktemp("race")):
        first = target.deploy("1.1.0")
        assert first.rc == 0, first.failures()
        write_canary(target)
        yield target


def start_together(target, *releases: str) -> list[Playbook]:
    processes = [target.start("deploy.yml", app_version=release, deploy_lock_wait=300) for release in releases]
    return [finish(process) for process in processes]


def test_the_same_release_twice_at_once_deploys_once(racing_target):
    entries_before = len(racing_target.ledger())
    runs = start_together(racing_target, "1.2.0", "1.2.0")
    assert [run.rc for run in runs] == [0, 0], [run.failures() for run in runs]
    waited = [run for run in runs if re.search(r"waited [0-9.]+ s for", run.stdout) and "nothing to do: " in run.stdout]
    assert len(waited) == 1, [run.stdout[-2000:] for run in runs]
    new_entries = racing_target.ledger()[entries_before:]
    assert [(entry["app_version_to"], entry["outcome"]) for entry in new_entries] == [("1.2.0", "succeeded")]
    assert_consistent(racing_target, "1.2.0")


def test_two_releases_at_once_one_wins_the_other_names_it(racing_target):
    entries_before = len(racing_target.ledger())
    runs = start_together(racing_target, "1.3.0", "1.4.0-slow")
    winners = [run for run in runs if run.rc == 0]
    losers = [run for run in runs if run.rc != 0]
    assert len(winners) == 1 and len(losers) == 1, [run.failures() for run in runs]
    new_entries = racing_target.ledger()[entries_before:]
    assert len(new_entries) == 1 and new_entries[0]["outcome"] == "succeeded", new_entries
    winner = new_entries[0]["app_version_to"]
    message = losers[0].failures()
    assert "while this deploy waited for the deploy lock" in message and "deployed %s" % winner in message, message
    assert_consistent(racing_target, winner)
