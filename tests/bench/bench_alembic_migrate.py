# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""alembic_migrate against plain `alembic upgrade head` of the same generated history, from base to head.

A benchmark, not a test: it asserts nothing about time, it prints figures and ratios. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

from bench_common import BenchError, Cluster, run_with_cluster
from bench_curve_common import check_collection, load_average, machine_description, module_runner, tool_version
from bench_lock_stall import example_venv
from bench_plan_curve import write_project

NAME = "bench_alembic_migrate"
DATABASE = "bench_alembic_migrate"
# issue 19: alembic_migrate's own duration at most this times plain `alembic upgrade head`
TARGET = 1.3

PLAIN = "alembic upgrade head"
HISTORY = "alembic history --verbose"
MIGRATE = "alembic_migrate"
MIGRATE_WITH_HISTORY = "alembic_migrate, history given"
# (candidate, baseline, which time of the candidate, target)
RATIOS = (
    (MIGRATE, PLAIN, "duration", TARGET),
    (MIGRATE, PLAIN, "wall", None),
    (MIGRATE_WITH_HISTORY, PLAIN, "duration", None),
    (MIGRATE, MIGRATE_WITH_HISTORY, "duration", None),
)


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=70, help="revisions of the generated history (default 70)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (default 7), median reported")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    if args.repeat < 1 or args.revisions < 1:
        parser.error("--repeat and --revisions must be at least 1")
    return args


def recreate_database(server: Cluster) -> None:
    """Every upgrade starts from an empty database, outside the timed part."""
    with server.connect("postgres") as admin:
        admin.execute('DROP DATABASE IF EXISTS "%s"' % DATABASE)
        admin.execute('CREATE DATABASE "%s"' % DATABASE)


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    check_collection()
    venv = example_venv()
    progress("starting an ephemeral PostgreSQL cluster")
    server = Cluster.from_harness(harness.start(os.path.join(work_dir, "pg")))
    alembic_ini = write_project(os.path.join(work_dir, "project"), args.revisions)
    alembic = os.path.join(venv, "bin", "alembic")
    database_url = "postgresql+psycopg://%s@%s:%d/%s" % (server.user, server.host, server.port, DATABASE)
    # the password reaches libpq through PGPASSWORD only, never argv, the URL or the args file
    env = {key: value for key, value in os.environ.items() if key != "PGOPTIONS"}
    env.update(PGPASSWORD=server.password, DATABASE_URL=database_url)
    module_args = {
        "runner": [alembic, "-c", alembic_ini],
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "db": DATABASE,
        "revision": "head",
    }
    migrate = module_runner("alembic_migrate", module_args, os.path.join(work_dir, "migrate.json"), env)
    recreate_database(server)
    info = module_runner("alembic_info", module_args, os.path.join(work_dir, "info.json"), env)()
    migrate_with_history = module_runner(
        "alembic_migrate", dict(module_args, history=info["history"]), os.path.join(work_dir, "migrate-h.json"), env
    )

    def alembic_run(*command: str) -> dict:
        started = time.perf_counter()
        result = subprocess.run(
            [alembic, "-c", alembic_ini, *command], env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise BenchError("alembic %s failed: %s" % (" ".join(command), result.stderr.strip()[-2000:]))
        return {"wall": wall}

    def module_run(run_once) -> dict:
        started = time.perf_counter()
        response = run_once()
        wall = time.perf_counter() - started
        if len(response["applied"]) != args.revisions:
            raise BenchError(
                "alembic_migrate applied %d revisions, not %d" % (len(response["applied"]), args.revisions)
            )
        return {"wall": wall, "duration": response["duration_seconds"], "commands": len(response["commands"])}

    cases = {
        PLAIN: (True, lambda: alembic_run("upgrade", "head")),
        HISTORY: (False, lambda: alembic_run("history", "--verbose")),
        MIGRATE: (True, lambda: module_run(migrate)),
        MIGRATE_WITH_HISTORY: (True, lambda: module_run(migrate_with_history)),
    }
    timings: dict = {name: [] for name in cases}
    load_before = load_average()
    # one untimed round, then rounds alternating the order of the cases
    for round_number in range(args.repeat + 1):
        order = list(cases) if round_number % 2 else list(reversed(cases))
        for name in order:
            upgrades, run_once = cases[name]
            if upgrades:
                recreate_database(server)
            figures = run_once()
            if round_number:
                timings[name].append(figures)
        if round_number:
            progress("round %d of %d done" % (round_number, args.repeat))
    return report(args, timings, alembic, load_before)


def median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if key in run]
    return round(statistics.median(values), 3) if values else None


def seconds(case: dict, key: str) -> float:
    """A case's median of `key` (wall or the module's own duration); plain alembic has only its wall time."""
    return case["duration_s"] if key == "duration" and case["duration_s"] is not None else case["wall_s"]


def report(args: argparse.Namespace, timings: dict, alembic: str, load_before: float) -> dict:
    cases = [
        {
            "case": name,
            "wall_s": median(runs, "wall"),
            "duration_s": median(runs, "duration"),
            # the runner commands the module reports (`commands`): the history and the upgrade, or the upgrade alone
            "alembic_commands": runs[-1].get("commands"),
            "walls": [round(run["wall"], 3) for run in runs],
            "durations": [run["duration"] for run in runs if "duration" in run],
        }
        for name, runs in timings.items()
    ]
    by_name = {case["case"]: case for case in cases}
    ratios = [
        {
            "ratio": "%s (%s) / %s" % (candidate, "own duration" if key == "duration" else "wall", baseline),
            "value": round(seconds(by_name[candidate], key) / seconds(by_name[baseline], key), 2),
            "target": target,
        }
        for candidate, baseline, key, target in RATIOS
    ]
    return {
        "benchmark": "alembic_migrate",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_description(),
        "revisions": args.revisions,
        "repeat": args.repeat,
        "alembic": tool_version([alembic, "--version"]),
        "load_average_1min": {"before": load_before, "after": load_average()},
        "cases": cases,
        "ratios": ratios,
        "target": TARGET,
        "target_met": ratios[0]["value"] <= TARGET,
    }


def print_report(report: dict) -> None:
    machine = report["machine"]
    print("alembic_migrate against plain alembic upgrade head, %d revisions from base" % report["revisions"])
    print(
        "machine: %d cores, %s, %.1f GiB RAM, Linux %s; %s; 1-min load average %.2f before, %.2f after"
        % (machine["cores"], machine["cpu_model"], machine["ram_gib"], machine["kernel"], report["alembic"],
           report["load_average_1min"]["before"], report["load_average_1min"]["after"])
    )  # fmt: skip
    print()
    heading = ("case (median of %d)" % report["repeat"], "wall s", "own duration s", "alembic commands")
    print("%-32s %10s %16s %18s" % heading)
    for case in report["cases"]:
        duration = "%.3f" % case["duration_s"] if case["duration_s"] is not None else "-"
        commands = str(case["alembic_commands"]) if case["alembic_commands"] is not None else "-"
        print("%-32s %10.3f %16s %18s" % (case["case"], case["wall_s"], duration, commands))
    print()
    for ratio in report["ratios"]:
        target = "  (target <= %.1f)" % ratio["target"] if ratio["target"] else ""
        print("%s: %.2f%s" % (ratio["ratio"], ratio["value"], target))
    print("target met: %s" % ("yes" if report["target_met"] else "no"))


def main() -> int:
    return run_with_cluster(NAME, arguments(), run_benchmark, print_report)


if __name__ == "__main__":
    sys.exit(main())
