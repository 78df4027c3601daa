# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The workers' shared loop: one unit of work per tick, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

import redis
from sqlalchemy.exc import SQLAlchemyError

from storefront.settings import settings


def run_every_tick(name: str, work: Callable[[], str]) -> None:
    """Runs work() every WORKER_INTERVAL seconds; returns (exit status 0) once told to stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(name)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # the tick in progress finishes: its transaction commits or rolls back as a whole
        signal.signal(signum, lambda received, frame: stop.set())
    log.info("started, release %s, every %ss", settings.app_version, settings.worker_interval)
    while not stop.is_set():
        try:
            done = work()
            if done:
                log.info(done)
        except (SQLAlchemyError, redis.RedisError) as error:
            # the database or redis is away for a moment (restart, deploy): try again on the next tick
            log.warning("%s; retrying", str(error).splitlines()[0])
        stop.wait(settings.worker_interval)
    log.info("stopped")
