# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Worker hand-over during an online deploy: every job enqueued while deploy.yml runs is processed exactly once.

The worker spends WORKER_JOB_SECONDS on each job and jobs arrive a little faster than it finishes them; once the
new release's worker runs, a burst of jobs keeps both busy, so the SIGTERM the deploy sends the old one lands
while a job is in progress (its log says it released the job; the new worker then does it, once). A test-only
trigger writes a row to job_completions for every committed update that sets a job done, so a job processed twice
shows two rows.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import psycopg
import pytest
from compose_stack import docker
from conftest import wait_for

pytest_plugins = ("compose_stack", "deploy_stack")

# 4 jobs/s per worker against 5 enqueued/s: a queue that never runs dry while the deploy replaces the worker
WORKER_ENVIRONMENT = {"WORKER_JOB_SECONDS": "0.25", "WORKER_POLL_INTERVAL": "0.2"}
ENQUEUE_INTERVAL = 0.2
JOB_KIND = "handover"
DRAIN_TIMEOUT = 60
# jobs queued at once when 1.1.0's worker starts: about 20 s of work for both workers together
BURST = 60
RELEASED = re.compile(r"job (\d+): stop requested, released to the queue")

COMPLETION_AUDIT = """
CREATE TABLE job_completions (
    job_id bigint NOT NULL,
    finished_by text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION record_job_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_completions (job_id, finished_by) VALUES (NEW.id, NEW.result);
    RETURN NEW;
END
$$;
-- OF status: the 1.1.0 backfill of priority must not count; no OLD check: marking a done job done again counts
CREATE TRIGGER jobs_completion_audit AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'done') EXECUTE FUNCTION record_job_completion();
"""
JOBS_OF_THE_DEPLOY = """
SELECT j.id, j.status, j.result, count(c.job_id) AS completions
FROM jobs j LEFT JOIN job_completions c ON c.job_id = j.id
WHERE j.kind = %s
GROUP BY j.id ORDER BY j.id
"""


class Enqueuer:
    """Inserts a job every ENQUEUE_INTERVAL in a thread of its own, with only the columns 1.0.0 and 1.1.0 share."""

    def __init__(self, target, customer_id: int):
        self.target = target
        self.customer_id = customer_id
        self.job_ids: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.target.connect() as connection:
                    self.enqueue_until_stopped(connection)
            except psycopg.OperationalError as error:
                # an insert waiting behind the migration's lock may fail; the next one goes on
                self.errors.append(str(error))
                self._stop.wait(ENQUEUE_INTERVAL)

    def enqueue_until_stopped(self, connection: psycopg.Connection) -> None:
        while not self._stop.is_set():
            row = connection.execute(
                "INSERT INTO jobs (customer_id, kind) VALUES (%s, %s) RETURNING id", (self.customer_id, JOB_KIND)
            ).fetchone()
            self.job_ids.append(row[0])
            self._stop.wait(ENQUEUE_INTERVAL)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def burst_when_the_new_worker_starts(target, customer_id: int, stop: threading.Event) -> None:
    """Fills the queue once 1.1.0's worker runs, so the old worker is mid-job when the deploy stops it."""
    while not stop.is_set():
        new_worker = docker(
            "ps", "-q",
            "--filter", "label=com.docker.compose.project=%s" % target.project,
            "--filter", "label=com.docker.compose.service=worker",
            "--filter", "label=io.safedeploy.release=1.1.0",
        ).strip()  # fmt: skip
        if new_worker:
            with target.connect() as connection:
                connection.execute(
                    "INSERT INTO jobs (customer_id, kind) SELECT %s, %s FROM generate_series(1, %s)",
                    (customer_id, JOB_KIND, BURST),
                )
            return
        stop.wait(0.2)


def install_completion_audit(target) -> int:
    """The audit table and trigger, and the customer the jobs belong to; returns the customer's id."""
    with target.connect() as connection:
        connection.execute(COMPLETION_AUDIT)
        return connection.execute(
            "INSERT INTO customers (name, email) VALUES ('Hand-over', 'handover@example.invalid') RETURNING id"
        ).fetchone()[0]


def follow_logs(container_id: str) -> subprocess.Popen:
    """The old worker's log until its container stops: the only record of a job it released."""
    return subprocess.Popen(
        ["docker", "logs", "--follow", container_id], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def collect_logs(follower: subprocess.Popen) -> str:
    try:
        return follower.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        follower.kill()
        return follower.communicate()[0]


def queue_is_empty(target) -> bool:
    return target.scalar("SELECT count(*) = 0 FROM jobs WHERE status = 'queued'")


def jobs_of_the_deploy(target) -> list[dict]:
    with target.connect(row_factory=psycopg.rows.dict_row) as connection:
        return connection.execute(JOBS_OF_THE_DEPLOY, (JOB_KIND,)).fetchall()


def done_by(jobs: list[dict]) -> dict[str, int]:
    """The release of the worker that completed each job (its result's "done by worker <version>") -> how many."""
    counts: dict[str, int] = {}
    for job in jobs:
        worker = (job["result"] or "").rpartition("done by worker ")[2] or "nobody"
        counts[worker] = counts.get(worker, 0) + 1
    return counts


def print_hand_over(jobs: list[dict], old_worker_log: str, deploy_seconds: float, drain_seconds: float) -> None:
    released = [int(job_id) for job_id in RELEASED.findall(old_worker_log)]
    last_words = (old_worker_log.strip().splitlines() or ["(no log)"])[-1]
    finished_by = {job["id"]: job["result"] for job in jobs}
    released_jobs = ", ".join("job %d (then %s)" % (job_id, finished_by.get(job_id)) for job_id in released)
    print(
        "\nworker hand-over: %d jobs enqueued during a %.1f s deploy, queue drained %.1f s after it; done by %s"
        % (len(jobs), deploy_seconds, drain_seconds, done_by(jobs))
    )
    print("released by the old worker at SIGTERM: %s; its last log line: %s" % (released_jobs or "none", last_words))


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.0.0", "1.1.0"):
        release_images(version)
    playbook = deploy_target.deploy("1.0.0", stack_env=WORKER_ENVIRONMENT)
    assert playbook.rc == 0, playbook.failures()
    return deploy_target


def test_jobs_enqueued_during_an_online_deploy_are_each_processed_exactly_once(target, capsys):
    customer_id = install_completion_audit(target)
    old_worker = follow_logs(target.containers()["worker"][0])
    started = time.monotonic()
    stop = threading.Event()
    burst = threading.Thread(target=burst_when_the_new_worker_starts, args=(target, customer_id, stop))
    burst.start()
    with Enqueuer(target, customer_id) as enqueuer:
        playbook = target.deploy("1.1.0", deploy_strategy="online", stack_env=WORKER_ENVIRONMENT)
    stop.set()
    burst.join(timeout=30)
    deploy_seconds = time.monotonic() - started
    assert playbook.rc == 0, playbook.failures()
    assert target.ledger()[-1]["strategy"] == "online"
    old_worker_log = collect_logs(old_worker)

    wait_for(lambda: queue_is_empty(target), timeout=DRAIN_TIMEOUT, what="the worker to empty the queue")
    drain_seconds = time.monotonic() - started - deploy_seconds
    jobs = jobs_of_the_deploy(target)

    assert len(enqueuer.job_ids) >= 20, (len(enqueuer.job_ids), enqueuer.errors)
    # an insert cut off at commit may have landed without an id coming back: the database's list is the reference
    assert set(enqueuer.job_ids) <= {job["id"] for job in jobs}
    assert [job for job in jobs if job["status"] != "done"] == []
    assert [job for job in jobs if job["completions"] != 1] == []
    # the hand-over happened: the old release's worker and the new one's each completed some of the jobs
    workers = done_by(jobs)
    assert {"1.0.0", "1.1.0"} <= set(workers), workers
    # the SIGTERM landed mid-job: the old worker gave its job back, and the new one did it, once
    released = [int(job_id) for job_id in RELEASED.findall(old_worker_log)]
    assert released, old_worker_log[-2000:]
    by_id = {job["id"]: job for job in jobs}
    assert all(by_id[job_id]["result"].endswith("done by worker 1.1.0") for job_id in released), released
    with capsys.disabled():
        print_hand_over(jobs, old_worker_log, deploy_seconds, drain_seconds)
