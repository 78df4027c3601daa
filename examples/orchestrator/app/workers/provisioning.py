# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The provisioning worker, started as `python -m app.workers.provisioning`.

Takes queued jobs one at a time with SELECT ... FOR UPDATE SKIP LOCKED, so any number of workers share the
queue, and marks each done in the same transaction. SIGTERM or SIGINT stops it cleanly: a job in progress is
released (its transaction rolls back, it stays queued for the next worker) and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

import psycopg

from app.db import connect
from app.release import APP_VERSION, USES_JOB_PRIORITY

LOG = logging.getLogger("app.workers.provisioning")
APPLICATION_NAME = "orchestrator-worker"
# the 1.2.0 index ix_jobs_queue serves exactly this order
QUEUE_ORDER = "priority DESC NULLS LAST, id" if USES_JOB_PRIORITY else "id"
NEXT_JOB = (
    "SELECT id, customer_id, kind FROM jobs WHERE status = 'queued' ORDER BY %s LIMIT 1 FOR UPDATE SKIP LOCKED"
    % QUEUE_ORDER
)
MARK_DONE = "UPDATE jobs SET status = 'done', result = %s, finished_at = now() WHERE id = %s"


class StopRequest:
    """Set by SIGTERM/SIGINT. The handler only flips a flag: setting a threading.Event there can deadlock."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop was requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.requested


def process_next_job(connection: psycopg.Connection, stop: StopRequest, job_seconds: float) -> bool:
    """Handle one queued job; False when the queue is empty."""
    with connection.transaction():
        job = connection.execute(NEXT_JOB).fetchone()
        if job is None:
            return False
        LOG.info("job %s: %s for customer %s", job["id"], job["kind"], job["customer_id"])
        # stands in for the real provisioning work; a stop request cuts it short
        if stop.wait(job_seconds):
            # leaving the transaction without the update releases the row lock: the job stays queued
            LOG.info("job %s: stop requested, released to the queue", job["id"])
            return True
        connection.execute(MARK_DONE, ("%s done by worker %s" % (job["kind"], APP_VERSION), job["id"]))
    LOG.info("job %s: done", job["id"])
    return True


def run(once: bool, poll_interval: float, job_seconds: float, stop: StopRequest) -> int:
    while not stop.requested:
        try:
            with connect(APPLICATION_NAME) as connection:
                while not stop.requested:
                    if process_next_job(connection, stop, job_seconds):
                        continue
                    if once:
                        return 0
                    stop.wait(poll_interval)
        except psycopg.OperationalError as error:
            if once:
                LOG.error("database unavailable: %s", error)
                return 1
            # the database restarts or is briefly unreachable during a deploy: wait, then reconnect
            LOG.warning("database unavailable, retrying in %ss: %s", poll_interval, error)
            stop.wait(poll_interval)
    LOG.info("stopped")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.workers.provisioning", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="process the queued jobs, then exit")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(os.environ.get("WORKER_POLL_INTERVAL", "1.0")),
        help="seconds between polls of an empty queue (env WORKER_POLL_INTERVAL, default 1.0)",
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=float(os.environ.get("WORKER_JOB_SECONDS", "0")),
        help="simulated work per job, in seconds (env WORKER_JOB_SECONDS, default 0)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = StopRequest()
    stop.install()
    LOG.info("worker %s started (poll interval %ss)", APP_VERSION, args.poll_interval)
    return run(args.once, args.poll_interval, args.job_seconds, stop)


if __name__ == "__main__":
    sys.exit(main())
