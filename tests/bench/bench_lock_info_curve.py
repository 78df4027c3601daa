# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curve: pg_lock_info time against the number of sessions holding and awaiting locks.

A benchmark, not a test: it asserts nothing about time. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import psycopg
from bench_common import BenchError, Cluster, run_with_cluster
from bench_curve_common import (
    check_collection,
    curve_arguments,
    curve_report,
    load_average,
    median_seconds,
    module_runner,
    print_and_plot,
    series_figures,
)

NAME = "bench_lock_info_curve"
FULL_COUNTS = (10, 50, 200)
QUICK_COUNTS = (4, 10, 20)
BENCH_DATABASE = "bench_locks"
# the harness starts the cluster with 200 connections; the largest point needs those plus the module's own
MAX_CONNECTIONS = 300


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


class Sessions:
    """Half the sessions hold ROW EXCLUSIVE on a table of their own and an advisory lock, idle in transaction; the
    other half each wait for ACCESS EXCLUSIVE on one of those tables, so every pair is a blocking chain."""

    def __init__(self, server: Cluster, count: int):
        self.server = server
        self.count = count
        self.connections: list[psycopg.Connection] = []

    def connect(self, name: str) -> psycopg.Connection:
        connection = self.server.connect(BENCH_DATABASE, autocommit=False, application_name=name)
        self.connections.append(connection)
        return connection

    def __enter__(self) -> Sessions:
        pairs = self.count // 2
        with self.server.connect(BENCH_DATABASE) as admin:
            for pair in range(pairs):
                admin.execute("CREATE TABLE IF NOT EXISTS t%04d (id int PRIMARY KEY)" % pair)
        for pair in range(pairs):
            holder = self.connect("bench holder %d" % pair)
            holder.execute("LOCK TABLE t%04d IN ROW EXCLUSIVE MODE" % pair)
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (pair,))
        for pair in range(pairs):
            waiter = self.connect("bench waiter %d" % pair)
            # sent without waiting for the answer: the statement stays blocked behind its holder
            waiter.pgconn.send_query(b"BEGIN; LOCK TABLE t%04d IN ACCESS EXCLUSIVE MODE" % pair)
            # psycopg keeps libpq non-blocking, so the query may still sit in the output buffer
            while waiter.pgconn.flush():
                time.sleep(0.01)
        self.wait_until_blocked(pairs)
        return self

    def wait_until_blocked(self, waiters: int) -> None:
        with self.connect("bench observer") as observer:
            observer.autocommit = True
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                blocked = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
                    (BENCH_DATABASE,),
                ).fetchone()[0]
                if blocked >= waiters:
                    return
                time.sleep(0.1)
        raise BenchError("%d of %d waiters were blocked after 60 s" % (blocked, waiters))

    def __exit__(self, *_exc) -> None:
        # waiters first, so that no waiter is granted its lock while the holders go
        for connection in reversed(self.connections):
            connection.close()


def raise_max_connections(harness, server_info: dict) -> None:
    """Restart the cluster with the harness' own options and more connections (command-line -c beats ALTER SYSTEM)."""
    with open(os.path.join(server_info["data_dir"], "postmaster.opts")) as handle:
        argv = shlex.split(handle.read())
    options = [argument for argument in argv[1:] if argument != "-D" and argument != server_info["data_dir"]]
    options += ["-c", "max_connections=%d" % MAX_CONNECTIONS]
    pg_ctl = os.path.join(server_info["bin_dir"], "pg_ctl")
    # -l: without a log file the server would inherit, and hold open, the pipe that captures pg_ctl's output
    log = os.path.join(server_info["state_dir"], "server.log")
    restart = [pg_ctl, "restart", "-w", "-t", "60", "-D", server_info["data_dir"], "-m", "fast", "-l", log]
    result = harness.run_as_server([*restart, "-o", shlex.join(options)], harness.server_account())
    if result.returncode != 0:
        raise BenchError("pg_ctl restart failed: %s" % (result.stderr or result.stdout))


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    check_collection()
    progress("starting an ephemeral PostgreSQL cluster")
    info = harness.start(os.path.join(work_dir, "pg"))
    raise_max_connections(harness, info)
    server = Cluster.from_harness(info)
    with server.connect("postgres") as admin:
        admin.execute("CREATE DATABASE %s" % BENCH_DATABASE)
    module_args = {
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "db": BENCH_DATABASE,
        # every open transaction is reported, so the module's work grows with the sessions too
        "min_xact_age": 0,
    }
    # login_password falls back to PGPASSWORD, so the password stays out of the args file
    env = dict(os.environ, PGPASSWORD=server.password)
    run_once = module_runner("pg_lock_info", module_args, os.path.join(work_dir, "lock_info.json"), env)
    points = []
    for count in QUICK_COUNTS if args.quick else FULL_COUNTS:
        with Sessions(server, count):
            response = run_once()
            chains = response["blocking"]
            if len(chains) < count // 2:
                raise BenchError("pg_lock_info saw %d blocked sessions of %d" % (len(chains), count // 2))
            seconds, timings = median_seconds(run_once, args.repeat)
        progress("%d sessions: %s s" % (count, ", ".join("%.2f" % value for value in timings)))
        points.append(
            {
                "work": count,
                "label": str(count),
                "seconds": seconds,
                "load_average_1min": load_average(),
                "blocking": len(chains),
                "locks": len(response["locks"]),
                "advisory_locks": len(response["advisory_locks"]),
            }
        )
    return curve_report(
        "lock_info_curve",
        "pg_lock_info time against sessions holding and awaiting locks",
        "sessions",
        "session",
        [series_figures("pg_lock_info", points)],
        args.quick,
        repeat=args.repeat,
        postgresql=server_version(server),
    )


def server_version(server: Cluster) -> str:
    with server.connect("postgres") as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


def main() -> int:
    args = curve_arguments(__doc__, repeat=5)
    return run_with_cluster(NAME, args, run_benchmark, lambda report: print_and_plot(report, args))


if __name__ == "__main__":
    sys.exit(main())
