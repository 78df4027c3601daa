# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark how long a reader stalls behind a migration blocked by a long transaction: plain alembic vs ours.

A benchmark, not a test: it asserts nothing about time, it prints figures and a ratio. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
from bench_common import REPO_ROOT, BenchError, Cluster, cpu_model, meminfo_kib, run_with_cluster

NAME = "bench_lock_stall"
EXAMPLE_APP = os.path.join(REPO_ROOT, "examples", "orchestrator")
BUILD_DIR = os.path.join(REPO_ROOT, ".build")
COLLECTIONS_ROOT = os.path.join(BUILD_DIR, "collections")
PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks", "lock_stall_migrate.yml")
BENCH_DATABASE = "bench_lock_stall"
# the pending revision at the start of every case is 0004, which drops a column of customers
START_REVISION = "0003_jobs_queue_index"
HEAD_REVISION = "0004_drop_customer_legacy_code"
LOCKED_TABLE = "customers"
CUSTOMER_ROWS = 10000
# a reader that pauses between queries, like an application, leaves the 2 cores to the migration
READER_PAUSE_SECONDS = 0.01
# a reader query slower than this counts as stalled in the total
STALL_THRESHOLD_SECONDS = 0.1
# the migration starts after the blocker holds its lock, and readers keep going after it ends
MIGRATION_DELAY_SECONDS = 1.0
SETTLE_SECONDS = 0.5
BLOCKER_APPLICATION_NAME = "bench_lock_stall blocker"
MIB = 1024 * 1024


class Server(Cluster):
    application_name = "bench_lock_stall"

    def client_env(self, database: str) -> dict:
        """What alembic and ansible-playbook get: PG* variables and a DATABASE_URL without the password."""
        env = {key: value for key, value in os.environ.items() if key != "PGOPTIONS"}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            # the password reaches libpq through the environment only, never argv or the URL
            PGPASSWORD=self.password,
            DATABASE_URL="postgresql://%s@%s:%d/%s" % (self.user, self.host, self.port, database),
        )
        return env


@dataclass
class Migration:
    """What one migration run left behind: its wall time and, for alembic_migrate, the module's result."""

    wall_seconds: float
    module_result: dict | None = None


@dataclass
class Timeline:
    blocker_locked: float = 0.0
    blocker_committed: float = 0.0
    migration_started: float = 0.0


@dataclass
class ReaderQuery:
    started: float
    seconds: float


class Reader(threading.Thread):
    """`SELECT count(*)` on the locked table in a loop on its own connection, timing every query."""

    def __init__(self, server: Server):
        super().__init__(name="reader", daemon=True)
        self.connection = server.connect(BENCH_DATABASE, application_name="bench_lock_stall reader")
        self.stop_requested = threading.Event()
        self.queries: list[ReaderQuery] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while not self.stop_requested.is_set():
                started = time.perf_counter()
                self.connection.execute("SELECT count(*) FROM %s" % LOCKED_TABLE).fetchone()
                self.queries.append(ReaderQuery(started, time.perf_counter() - started))
                self.stop_requested.wait(READER_PAUSE_SECONDS)
        except psycopg.Error as exc:
            self.error = exc
        finally:
            self.connection.close()


class Blocker(threading.Thread):
    """A transaction that reads one row (ACCESS SHARE on the table) and stays idle in transaction, then commits."""

    def __init__(self, server: Server, hold_seconds: float, timeline: Timeline):
        super().__init__(name="blocker", daemon=True)
        self.connection = server.connect(BENCH_DATABASE, autocommit=False, application_name=BLOCKER_APPLICATION_NAME)
        self.hold_seconds = hold_seconds
        self.timeline = timeline
        self.locked = threading.Event()
        self.release_early = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.connection.execute("SELECT * FROM %s LIMIT 1" % LOCKED_TABLE).fetchall()
            self.timeline.blocker_locked = time.perf_counter()
            self.locked.set()
            self.release_early.wait(self.hold_seconds)
            self.connection.commit()
            self.timeline.blocker_committed = time.perf_counter()
        except psycopg.Error as exc:
            self.error = exc
            self.locked.set()
        finally:
            self.connection.close()


def progress(message: str) -> None:
    # progress goes to stderr so that stdout holds only the report
    print("bench_lock_stall: %s" % message, file=sys.stderr, flush=True)


def duration_ms(text: str) -> int:
    """Milliseconds in a PostgreSQL duration of the forms this benchmark takes: 500ms, 1s, 1.5s."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("%r is not a duration such as 500ms or 1s" % text)
    return int(float(match.group(1)) * (1000 if match.group(2) == "s" else 1))


def example_venv() -> str:
    """The example app's virtualenv that the e2e tests build, built here the same way when missing."""
    requirements = os.path.join(EXAMPLE_APP, "requirements.txt")
    with open(requirements, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    venv = os.path.join(BUILD_DIR, "example-venv-%s" % digest)
    if not os.path.exists(os.path.join(venv, ".installed")):
        progress("building the example app's virtualenv %s" % os.path.relpath(venv, REPO_ROOT))
        shutil.rmtree(venv, ignore_errors=True)
        run_checked([sys.executable, "-m", "venv", venv], dict(os.environ))
        pip = [os.path.join(venv, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check"]
        run_checked([*pip, "-r", requirements], dict(os.environ))
        open(os.path.join(venv, ".installed"), "w").close()
    return venv


def run_captured(argv: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %.0f s" % (os.path.basename(argv[0]), timeout)) from None


def run_checked(argv: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    result = run_captured(argv, env, timeout)
    if result.returncode != 0:
        name = os.path.basename(argv[0])
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise BenchError("%s failed (rc=%d): %s" % (name, result.returncode, output))
    return result


def alembic_runner(venv: str) -> list[str]:
    return [os.path.join(venv, "bin", "alembic"), "-c", os.path.join(EXAMPLE_APP, "alembic.ini")]


def recreate_database(server: Server, venv: str) -> None:
    """A fresh database at START_REVISION with CUSTOMER_ROWS customers, the same for every case."""
    with server.connect("postgres") as admin:
        admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % BENCH_DATABASE)
        admin.execute('CREATE DATABASE "%s"' % BENCH_DATABASE)
    run_checked([*alembic_runner(venv), "upgrade", START_REVISION], server.client_env(BENCH_DATABASE))
    with server.connect(BENCH_DATABASE) as connection:
        connection.execute(
            "INSERT INTO customers (name, email, legacy_code) "
            "SELECT 'customer ' || n, 'customer' || n || '@example.com', 'L' || n FROM generate_series(1, %s) AS n",
            (CUSTOMER_ROWS,),
        )
        connection.execute("VACUUM ANALYZE customers")


def current_revision(server: Server) -> str:
    with server.connect(BENCH_DATABASE) as connection:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return ",".join(row[0] for row in rows) or "base"


def plain_alembic(server: Server, venv: str, timeout: float) -> Migration:
    """`alembic upgrade head` as a deploy script runs it: no lock_timeout, so its ALTER waits as long as it takes."""
    started = time.perf_counter()
    run_checked([*alembic_runner(venv), "upgrade", "head"], server.client_env(BENCH_DATABASE), timeout)
    return Migration(time.perf_counter() - started)


def alembic_migrate(server: Server, venv: str, timeout: float, migrate_options: dict) -> Migration:
    """alembic_migrate through a real ansible-playbook run, with the collection as `make setup` exposes it."""
    extra_vars = {"runner": alembic_runner(venv), "db": BENCH_DATABASE, "migrate_options": migrate_options}
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    argv = [playbook, "-i", "localhost,", "-c", "local", PLAYBOOK, "-e", json.dumps(extra_vars)]
    env = dict(
        server.client_env(BENCH_DATABASE),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    started = time.perf_counter()
    completed = run_captured(argv, env, timeout)
    wall_seconds = time.perf_counter() - started
    result = migrate_task_result(completed)
    if completed.returncode != 0 or result.get("failed"):
        raise BenchError("alembic_migrate failed (rc=%d): %s" % (completed.returncode, result.get("msg")))
    return Migration(wall_seconds, result)


def migrate_task_result(completed: subprocess.CompletedProcess) -> dict:
    """The Migrate task's result from the ansible.posix.json callback's report."""
    stdout = completed.stdout
    try:
        report = json.loads(stdout[stdout.index("{") :])
        return next(iter(report["plays"][0]["tasks"][0]["hosts"].values()))
    except (ValueError, KeyError, IndexError, StopIteration):
        output = (completed.stderr.strip() or stdout.strip())[-2000:]
        raise BenchError(
            "ansible-playbook printed no task result (rc=%d): %s" % (completed.returncode, output)
        ) from None


def run_case(server: Server, label: str, blocker_seconds: float, migrate: Callable[[], Migration]) -> dict:
    """Reader running, blocker takes its lock, the migration starts; readers are timed until all is over."""
    timeline = Timeline()
    reader = Reader(server)
    blocker = Blocker(server, blocker_seconds, timeline)
    reader.start()
    try:
        time.sleep(SETTLE_SECONDS)
        blocker.start()
        blocker.locked.wait()
        if blocker.error:
            raise BenchError("the blocking transaction failed: %s" % blocker.error)
        time.sleep(MIGRATION_DELAY_SECONDS)
        progress("%s: migrating while the blocker holds its lock for %.0f s" % (label, blocker_seconds))
        timeline.migration_started = time.perf_counter()
        migration = migrate()
        blocker.join()
        time.sleep(SETTLE_SECONDS)
    finally:
        blocker.release_early.set()
        reader.stop_requested.set()
        reader.join()
        if blocker.is_alive():
            blocker.join()
    if reader.error:
        raise BenchError("the reader's query failed: %s" % reader.error)
    revision = current_revision(server)
    if revision != HEAD_REVISION:
        raise BenchError("%s left the database at %s, not %s" % (label, revision, HEAD_REVISION))
    return case_figures(label, reader.queries, timeline, migration)


def nearest_rank(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def case_figures(label: str, queries: list[ReaderQuery], timeline: Timeline, migration: Migration) -> dict:
    seconds = sorted(query.seconds for query in queries)
    stalled = [value for value in seconds if value > STALL_THRESHOLD_SECONDS]
    stalls = [
        {
            "began_after_migration_start_s": round(query.started - timeline.migration_started, 3),
            "seconds": round(query.seconds, 3),
        }
        for query in queries
        if query.seconds > STALL_THRESHOLD_SECONDS
    ]
    figures = {
        "case": label,
        "longest_stall_s": round(seconds[-1], 3),
        "p99_s": round(nearest_rank(seconds, 0.99), 4),
        "median_s": round(statistics.median(seconds), 4),
        "reader_queries": len(seconds),
        "stalled_queries": len(stalled),
        "stalled_total_s": round(sum(stalled), 3),
        "migration_wall_s": round(migration.wall_seconds, 3),
        "blocker_held_s": round(timeline.blocker_committed - timeline.blocker_locked, 3),
        "blocker_remaining_at_migration_start_s": round(timeline.blocker_committed - timeline.migration_started, 3),
        "stalls": stalls,
    }
    if migration.module_result is not None:
        figures["module_duration_s"] = migration.module_result.get("duration_seconds")
        figures["attempts"] = [attempt_summary(attempt) for attempt in migration.module_result.get("attempts", [])]
    return figures


def attempt_summary(attempt: dict) -> dict:
    blockers = [
        {"pid": blocker.get("pid"), "application_name": blocker.get("application_name")}
        for blocker in attempt.get("blockers", [])
    ]
    return {
        "attempt": attempt["attempt"],
        "lock_timeout": attempt["lock_timeout"],
        "outcome": attempt["outcome"],
        "blockers": blockers,
    }


def machine_description(server: Server, venv: str) -> dict:
    with server.connect("postgres") as connection:
        server_version = connection.execute("SHOW server_version").fetchone()[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "ram_gib": round(meminfo_kib("MemTotal") / MIB, 1),
        "kernel": platform.release(),
        "postgresql_server": server_version,
        "python": platform.python_version(),
        "alembic": alembic_version(venv),
    }


def alembic_version(venv: str) -> str:
    return run_checked([os.path.join(venv, "bin", "alembic"), "--version"], dict(os.environ)).stdout.strip()


def describe_attempts(attempts: list[dict]) -> str:
    """`#1 500ms lock_timeout (blocked by pid 42 bench_lock_stall blocker); #2 1000ms applied`."""
    parts = []
    for attempt in attempts:
        part = "#%d %s %s" % (attempt["attempt"], attempt["lock_timeout"], attempt["outcome"])
        if attempt["blockers"]:
            sessions = ", ".join("pid %s %s" % (b["pid"], b["application_name"]) for b in attempt["blockers"])
            part += " (blocked by %s)" % sessions
        parts.append(part)
    return "; ".join(parts)


def print_report(report: dict) -> None:
    machine, settings = report["machine"], report["settings"]
    print(
        "machine:    %d CPUs, %s, %.1f GiB RAM, Linux %s, Python %s"
        % (machine["nproc"], machine["cpu_model"], machine["ram_gib"], machine["kernel"], machine["python"])
    )
    print("postgresql: server %s; example app's %s" % (machine["postgresql_server"], machine["alembic"]))
    print("setup:      %d customers at %s, pending %s (DROP COLUMN)" % (CUSTOMER_ROWS, START_REVISION, HEAD_REVISION))
    print(
        "blocker:    SELECT * FROM customers LIMIT 1 in a transaction left open %.0f s; each migration starts %.0f s "
        "into it" % (settings["blocker_seconds"], MIGRATION_DELAY_SECONDS)
    )
    print(
        "reader:     SELECT count(*) FROM customers on its own connection every %.0f ms; a stall is one query's time"
        % (READER_PAUSE_SECONDS * 1000)
    )
    print(
        "ours:       alembic_migrate via ansible-playbook, lock_timeout %s, max_lock_timeout %s, retries %d, "
        "retry_budget %.0f s"
        % (settings["lock_timeout"], settings["max_lock_timeout"], settings["retries"], settings["retry_budget"])
    )
    print(
        "load:       1-min load average %.2f before, %.2f after"
        % (report["load_average_1min"]["before"], report["load_average_1min"]["after"])
    )
    print()
    header = ("case", "longest stall s", "p99 s", "stalled > 0.1 s", "reader queries", "migration wall s")
    print("%-24s %15s %8s %16s %14s %16s" % header)
    for case in report["cases"]:
        stalled = "%d, %.2f s" % (case["stalled_queries"], case["stalled_total_s"])
        print(
            "%-24s %15.3f %8.3f %16s %14d %16.2f"
            % (
                case["case"],
                case["longest_stall_s"],
                case["p99_s"],
                stalled,
                case["reader_queries"],
                case["migration_wall_s"],
            )
        )
    print()
    for case in report["cases"]:
        print(
            "%s: blocker committed %.2f s after the migration started; median reader query %.4f s"
            % (case["case"], case["blocker_remaining_at_migration_start_s"], case["median_s"])
        )
        if "attempts" in case:
            print(
                "  module duration_seconds %.2f; attempts: %s"
                % (case["module_duration_s"], describe_attempts(case["attempts"]))
            )
    print()
    print(
        "ratio longest stall plain alembic / alembic_migrate: %.1f  (ours bounded by max_lock_timeout %s + margin)"
        % (report["ratio_longest_stall"], settings["max_lock_timeout"])
    )


def start_server(harness, state_dir: str) -> Server:
    info = harness.start(state_dir)
    return Server.from_harness(info)


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    if not os.path.isdir(os.path.join(COLLECTIONS_ROOT, "ansible_collections", "safedeploy", "migrations")):
        raise BenchError("%s does not hold the collection; run `make setup` first" % COLLECTIONS_ROOT)
    venv = example_venv()
    progress("starting an ephemeral PostgreSQL cluster")
    server = start_server(harness, os.path.join(work_dir, "pg"))
    # every attempt fits in the budget until well after the blocker has gone
    retry_budget = 2 * args.blocker_seconds + 60
    migrate_options = {
        "lock_timeout": args.lock_timeout,
        "max_lock_timeout": args.max_lock_timeout,
        "retries": args.retries,
        "retry_budget": retry_budget,
    }
    timeout = 3 * args.blocker_seconds + 300
    cases = [
        ("plain alembic", lambda: plain_alembic(server, venv, timeout)),
        ("alembic_migrate", lambda: alembic_migrate(server, venv, timeout, migrate_options)),
    ]
    load_before = os.getloadavg()[0]
    results = []
    for label, migrate in cases:
        progress("%s: recreating %s at %s" % (label, BENCH_DATABASE, START_REVISION))
        recreate_database(server, venv)
        results.append(run_case(server, label, args.blocker_seconds, migrate))
        progress("%s: longest reader stall %.3f s" % (label, results[-1]["longest_stall_s"]))
    load_after = os.getloadavg()[0]
    return {
        "machine": machine_description(server, venv),
        "settings": dict(migrate_options, blocker_seconds=args.blocker_seconds),
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "cases": results,
        "ratio_longest_stall": round(results[0]["longest_stall_s"] / results[1]["longest_stall_s"], 2),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--blocker-seconds", type=float, default=10, help="how long the blocking transaction stays open (default 10)"
    )
    parser.add_argument("--lock-timeout", default="500ms", help="alembic_migrate's lock_timeout (default 500ms)")
    parser.add_argument("--max-lock-timeout", help="alembic_migrate's max_lock_timeout (default twice --lock-timeout)")
    parser.add_argument("--retries", type=int, default=20, help="alembic_migrate's retries (default 20)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    try:
        lock_timeout_ms = duration_ms(args.lock_timeout)
        args.max_lock_timeout = args.max_lock_timeout or "%dms" % (2 * lock_timeout_ms)
        duration_ms(args.max_lock_timeout)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.blocker_seconds <= MIGRATION_DELAY_SECONDS or args.retries < 0:
        parser.error("--blocker-seconds must exceed %.0f and --retries must not be negative" % MIGRATION_DELAY_SECONDS)
    return args


def main() -> int:
    return run_with_cluster(NAME, parse_args(), run_benchmark, print_report)


if __name__ == "__main__":
    sys.exit(main())
