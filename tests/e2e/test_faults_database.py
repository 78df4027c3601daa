# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults in and around the database during a real deploy, in release order on one compose project.

A release of several revisions failing half-way, an INVALID index left by an interrupted CREATE INDEX
CONCURRENTLY, a pg_dump running when the deploy starts, the disk filling during the backup, the migration's
one-shot container killed, PostgreSQL restarted during the migration. Each ends with test_faults.assert_consistent.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from compose_stack import docker
from conftest import wait_for
from test_faults import CANARY, HEADS, assert_consistent, lock_phase, slow_revision_running, write_canary

pytest_plugins = ("compose_stack", "deploy_stack")

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
# what the migration says when the server goes away under it
LOST_CONNECTION = re.compile(r"terminating connection|server closed the connection|connection .*(lost|closed)", re.I)


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0-broken", "1.4.0-slow"):
        release_images(version)
    first = deploy_target.deploy("1.1.0")
    assert first.rc == 0, first.failures()
    write_canary(deploy_target)
    return deploy_target


def service_container(target, service: str) -> str:
    names = docker(
        "ps",
        "--filter",
        "label=com.docker.compose.project=%s" % target.project,
        "--filter",
        "label=com.docker.compose.service=%s" % service,
        "--format",
        "{{.Names}}",
    ).split()
    return names[0] if names else ""


def test_a_release_failing_half_way_is_restored_to_the_start_revision(target):
    # 1.1.0 -> 1.4.0-broken: 0003 and 0004 commit, 0101 fails; 0004 loses data on downgrade, so the plan says restore
    before = len(target.ledger())
    playbook = target.deploy("1.4.0-broken")
    assert playbook.rc != 0
    assert "0101_broken_invoices" in playbook.failures()
    entry = target.ledger()[before]
    assert (entry["outcome"], entry["app_version_to"]) == ("failed", "1.4.0-broken")
    assert "restored" in entry["rescue"] and "restarted 1.1.0" in entry["rescue"], entry["rescue"]
    assert_consistent(target, "1.1.0")


def interrupt_concurrent_index_build(target) -> None:
    """A real interrupted CREATE INDEX CONCURRENTLY: it waits for an old snapshot, and is cancelled there."""
    with target.connect() as snapshot_holder, target.connect() as builder:
        snapshot_holder.autocommit = False
        snapshot_holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot_holder.execute("SELECT count(*) FROM customers")
        failure = []

        def build() -> None:
            try:
                builder.execute(
                    "CREATE INDEX CONCURRENTLY ix_jobs_queue ON jobs (priority DESC NULLS LAST, id) "
                    "WHERE status = 'queued'"
                )
            except psycopg.errors.QueryCanceled as error:
                failure.append(error)

        thread = threading.Thread(target=build)
        thread.start()
        pid = builder.info.backend_pid
        wait_for(lambda: target.scalar("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)))
        target.scalar("SELECT pg_cancel_backend(%s)", (pid,))
        thread.join(timeout=30)
        snapshot_holder.rollback()
    assert failure, "the index build was not interrupted"


def test_an_invalid_index_left_by_an_interrupted_build_is_rebuilt(target):
    interrupt_concurrent_index_build(target)
    assert target.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 1
    playbook = target.deploy("1.2.0")
    assert playbook.rc == 0, playbook.failures()
    # the pre-flight names it, and the revision drops and builds it again rather than skipping it as existing
    warnings = playbook.task("Find the sessions in the way of the plan's relations").get("warnings", [])
    assert any("public.ix_jobs_queue on jobs" in warning for warning in warnings), warnings
    assert target.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_jobs_queue'::regclass") is True
    assert_consistent(target, "1.2.0")


class SlowDump:
    """A real pg_dump whose reader waits to be released: it holds its ACCESS SHARE locks until then."""

    def __init__(self, target, directory: Path):
        # more than the pipe and socket buffers, so pg_dump blocks writing while it holds its locks
        with target.connect() as connection:
            connection.execute(
                "INSERT INTO jobs (customer_id, kind, status, result) SELECT c.id, 'bulk', 'done', "
                "repeat(md5(i::text), 10) FROM generate_series(1, 60000) AS i, customers AS c WHERE c.email = %s",
                (CANARY,),
            )
        self.target = target
        self.released = directory / "released"
        environment = dict(target.environment, PGPASSWORD=target.password)
        command = "%s/pg_dump -h 127.0.0.1 -p %d -U orchestrator orchestrator | " % (PG_BIN[-1], target.postgres_port)
        command += "(while [ ! -e %s ]; do sleep 0.2; done; cat > /dev/null)" % self.released
        self.process = subprocess.Popen(["bash", "-c", command], env=environment)
        # the dump's backend: the session the pre-flight must name
        self.pid = wait_for(
            lambda: target.scalar("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump'"),
            what="pg_dump to connect",
        )

    def release(self) -> None:
        self.released.touch()

    def release_once_the_preflight_waits(self) -> None:
        """Releases the dump once the deploy's pre-flight has seen it and checked again (its interval is 2 s)."""

        def waiting() -> bool:
            return bool(
                self.target.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'safedeploy.pg_preflight%%'"
                )
            )

        def release_later() -> None:
            wait_for(waiting, 300, "the pre-flight")
            time.sleep(3)
            self.release()

        threading.Thread(target=release_later, daemon=True).start()

    def wait(self) -> None:
        assert self.process.wait(timeout=120) == 0
        # later backups stay small
        with self.target.connect() as connection:
            connection.execute("DELETE FROM jobs WHERE kind = 'bulk'")
            connection.execute("VACUUM FULL jobs")


@pytest.mark.skipif(not PG_BIN, reason="no PostgreSQL client binaries under /usr/lib/postgresql")
def test_a_running_pg_dump_is_refused_by_policy_before_anything_changes(target, tmp_path):
    before = (len(target.ledger()), target.containers())
    dump = SlowDump(target, tmp_path)
    try:
        playbook = target.deploy("1.3.0", preflight_policies={"dumps_running": "fail"})
    finally:
        dump.release()
        dump.wait()
    assert playbook.rc != 0 and "pg_dump" in playbook.failures(), playbook.failures()
    assert (len(target.ledger()), target.containers()) == before
    assert_consistent(target, "1.2.0")


@pytest.mark.skipif(not PG_BIN, reason="no PostgreSQL client binaries under /usr/lib/postgresql")
def test_a_running_pg_dump_is_waited_for_and_the_migration_never_queues_behind_it(target, tmp_path):
    dump = SlowDump(target, tmp_path)
    # the pre-flight waits up to preflight_wait_timeout (60 s) for it
    dump.release_once_the_preflight_waits()
    playbook = target.deploy("1.3.0")
    dump.wait()
    assert playbook.rc == 0, playbook.failures()
    waited = playbook.task("Find the sessions in the way of the plan's relations")
    # the pre-flight found the dump's own backend, waited on it and was cleared once it ended
    assert [session["pid"] for session in waited["findings"]["dumps_running"]] == [dump.pid], waited["findings"]
    assert [(action["pid"], action["action"]) for action in waited["actions"]] == [(dump.pid, "wait")], waited
    assert waited["cleared"] and waited["waited_seconds"] > 0, waited
    # the migration took its locks at the first attempt
    attempts = playbook.task("Migrate the database with the scripts of 1.3.0")["attempts"]
    assert [attempt["outcome"] for attempt in attempts] == ["applied"], attempts
    assert_consistent(target, "1.3.0")


@pytest.fixture
def small_backup_disk(tmp_path):
    mount_point = tmp_path / "backups"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill_when_the_dump_starts(directory: Path, stop: threading.Event) -> None:
    """Another writer fills the disk once pg_dump's partial file appears."""
    while not stop.is_set() and not any(directory.glob(".*.partial")):
        time.sleep(0.005)
    if stop.is_set():
        return
    try:
        with open(directory / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 1048576)
                filler.flush()
    except OSError:
        pass


def test_a_disk_filling_during_the_backup_stops_the_deploy_before_any_ddl(target, small_backup_disk):
    before = len(target.ledger())
    stop = threading.Event()
    filler = threading.Thread(target=fill_when_the_dump_starts, args=(small_backup_disk, stop))
    filler.start()
    try:
        playbook = target.deploy("1.4.0-slow", deploy_backup_dir=str(small_backup_disk))
    finally:
        stop.set()
        filler.join(timeout=30)
    assert playbook.rc != 0
    assert "No space left on device" in playbook.failures(), playbook.failures()
    assert [path.name for path in small_backup_disk.iterdir()] == ["filler"]
    entry = target.ledger()[before]
    assert entry["outcome"] == "failed" and entry["backup_path"] is None
    assert_consistent(target, "1.3.0")


def test_the_migration_container_killed_is_a_clear_failure_and_rescued(target):
    before = len(target.ledger())
    process = target.start("deploy.yml", app_version="1.4.0-slow")
    wait_for(lambda: lock_phase(target) == "migration" and slow_revision_running(target), 240, "the slow revision")
    docker("kill", "--signal", "KILL", service_container(target, "migration"))
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode != 0
    entry = target.ledger()[before]
    assert entry["outcome"] == "failed" and "restarted 1.3.0" in entry["rescue"], entry
    assert "137" in entry["message"], entry["message"]
    assert_consistent(target, "1.3.0")


def test_postgres_restarted_during_the_migration_fails_clearly_and_a_rerun_succeeds(target):
    before = len(target.ledger())
    process = target.start("deploy.yml", app_version="1.4.0-slow")
    wait_for(lambda: lock_phase(target) == "migration" and slow_revision_running(target), 240, "the slow revision")
    docker("restart", service_container(target, "postgres"))
    process.communicate(timeout=600)
    assert process.returncode != 0
    assert target.revision() == HEADS["1.3.0"]
    # the migration's lost connection is the failure, and the rescue brought the previous release back
    failed = target.ledger()[before]
    assert failed["outcome"] == "failed" and "restarted 1.3.0" in failed["rescue"], failed
    assert LOST_CONNECTION.search(failed["message"]), failed["message"]
    status, health = target.health()
    assert (status, health.get("app_version")) == (200, "1.3.0"), health
    rerun = target.deploy("1.4.0-slow", deploy_lock_lease=10)
    assert rerun.rc == 0, rerun.failures()
    entries = target.ledger()[before:]
    assert entries[0]["outcome"] == "failed" and entries[-1]["outcome"] == "succeeded", entries
    assert_consistent(target, "1.4.0-slow")
