# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark pg_backup (the module code, run directly) against bare pg_dump on an ephemeral cluster.

A benchmark, not a test: it asserts nothing about time, it prints figures and ratios. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable

from bench_common import REPO_ROOT, BenchError, Cluster, cpu_model, meminfo_kib, run_with_cluster

NAME = "bench_backup"
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")
MODULE_PATH = os.path.join(REPO_ROOT, "plugins", "modules", "pg_backup.py")
BENCH_DATABASE = "bench"
MIB = 1024 * 1024
# pgbench -i at scale 1 takes about 15 MiB with its indexes; only the first guess of the scale depends on it
MIB_PER_SCALE = 15.0
ACCOUNTS_PER_SCALE = 100000
TARGET_RATIO = 1.3


class Server(Cluster):
    def tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def env(self) -> dict:
        # libpq tools read the password from the environment, never from argv
        return dict(os.environ, PGPASSWORD=self.password)

    def connection_args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port), "--username", self.user]

    def query(self, statement: str, database: str = "postgres") -> str:
        psql = [self.tool("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", *self.connection_args(), "--dbname", database]
        return run_tool([*psql, "-c", statement], self.env()).strip()


@dataclass
class Output:
    size_bytes: int
    # what the module itself reports as dump + verify time, without interpreter start-up
    inner_seconds: float | None = None


@dataclass
class Case:
    label: str
    out_dir: str
    run_once: Callable[[], Output]
    seconds: list[float] = field(default_factory=list)
    inner_seconds: list[float] = field(default_factory=list)
    size_bytes: int = 0


def run_tool(argv: list[str], env: dict) -> str:
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        name = os.path.basename(argv[0])
        raise BenchError("%s failed (rc=%d): %s" % (name, result.returncode, result.stderr.strip() or result.stdout))
    return result.stdout


def progress(message: str) -> None:
    # progress goes to stderr so that stdout holds only the report
    print("bench_backup: %s" % message, file=sys.stderr, flush=True)


def database_size(server: Server) -> int:
    return int(server.query("SELECT pg_database_size(%s)" % quote_literal(BENCH_DATABASE)))


def quote_literal(text: str) -> str:
    return "'%s'" % text.replace("'", "''")


def build_database(server: Server, target_mib: int, filler: str) -> int:
    """Fill the bench database with pgbench tables of at least target_mib; returns the pgbench scale."""
    server.query("CREATE DATABASE %s" % BENCH_DATABASE)
    scale = max(1, math.ceil(target_mib / MIB_PER_SCALE))
    for _attempt in range(3):
        progress("building the database: pgbench -i -s %d, %s filler" % (scale, filler))
        if filler == "md5":
            pgbench_init(server, scale, "dtG")
            fill_accounts_with_md5(server, scale)
            pgbench_init(server, scale, "vp")
        else:
            pgbench_init(server, scale, "dtGvp")
        size = database_size(server)
        if size >= target_mib * MIB:
            server.query("CHECKPOINT")
            return scale
        # the tables grow linearly with the scale, so one correction is normally enough
        scale = math.ceil(scale * target_mib * MIB / size) + 1
    raise BenchError("could not build a database of %d MiB with pgbench" % target_mib)


def pgbench_init(server: Server, scale: int, steps: str) -> None:
    # server-side generation (G) is much faster than streaming rows from pgbench
    init = [server.tool("pgbench"), "-i", "-s", str(scale), "-I", steps, *server.connection_args()]
    run_tool([*init, BENCH_DATABASE], server.env())


def fill_accounts_with_md5(server: Server, scale: int) -> None:
    """pgbench_accounts again, its blank filler replaced by 84 hex characters, which compress about 2:1."""
    server.query(
        "TRUNCATE pgbench_accounts; INSERT INTO pgbench_accounts (aid, bid, abalance, filler) "
        "SELECT aid, (aid - 1) / %d + 1, 0, md5(aid::text) || md5((-aid)::text) || left(md5((2 * aid)::text), 20) "
        "FROM generate_series(1, %d) AS aid" % (ACCOUNTS_PER_SCALE, scale * ACCOUNTS_PER_SCALE),
        BENCH_DATABASE,
    )


def tree_size(path: str) -> int:
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _dirs, names in os.walk(path) for name in names)


def pg_dump_case(server: Server, work_dir: str, label: str, format_args: list[str]) -> Case:
    out_dir = os.path.join(work_dir, slug(label))
    target = os.path.join(out_dir, BENCH_DATABASE + ".dump")
    argv = [server.tool("pg_dump"), *format_args, "--file", target, *server.connection_args(), BENCH_DATABASE]

    def run_once() -> Output:
        run_tool(argv, server.env())
        return Output(tree_size(target))

    return Case(label, out_dir, run_once)


def pg_backup_case(server: Server, work_dir: str, label: str, options: dict) -> Case:
    """The module file run by the interpreter with an args file, as Ansible would run it, minus the controller."""
    out_dir = os.path.join(work_dir, slug(label))
    args_path = os.path.join(work_dir, slug(label) + ".args.json")
    module_args = dict(
        options,
        login_host=server.host,
        login_port=server.port,
        login_user=server.user,
        login_db=BENCH_DATABASE,
        dest=out_dir,
        bin_dir=server.bin_dir,
    )
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    python_path = os.pathsep.join(filter(None, [COLLECTIONS_ROOT, os.environ.get("PYTHONPATH")]))
    # login_password falls back to PGPASSWORD, so the password stays out of the args file too
    env = dict(server.env(), PYTHONPATH=python_path)

    def run_once() -> Output:
        result = subprocess.run(
            [sys.executable, MODULE_PATH, args_path],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        response = parse_module_response(result)
        # AnsibleModule overwrites a result's `size` with the lstat() of `path`, wrong for a directory backup
        manifest = response["manifest"]
        return Output(manifest["size"], manifest["duration_seconds"])

    return Case(label, out_dir, run_once)


def parse_module_response(result: subprocess.CompletedProcess) -> dict:
    try:
        response = json.loads(result.stdout)
    except ValueError:
        message = "pg_backup printed no JSON (rc=%d): %s" % (result.returncode, result.stderr.strip())
        raise BenchError(message) from None
    if result.returncode != 0 or response.get("failed"):
        raise BenchError("pg_backup failed: %s" % response.get("msg", result.stderr.strip()))
    return response


def slug(label: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in label)


def timed_run(case: Case) -> float:
    shutil.rmtree(case.out_dir, ignore_errors=True)
    os.mkdir(case.out_dir, 0o700)
    # flush the previous run's writes now rather than during the next timed run
    os.sync()
    started = time.perf_counter()
    output = case.run_once()
    elapsed = time.perf_counter() - started
    case.size_bytes = output.size_bytes
    if output.inner_seconds is not None:
        case.inner_seconds.append(output.inner_seconds)
    return elapsed


def measure(pairs: list[tuple[Case, Case]], repeat: int) -> None:
    """One untimed warm-up per case, then `repeat` rounds with baseline and candidate in alternating order."""
    cases = [case for pair in pairs for case in pair]
    for case in cases:
        progress("warm-up: %s" % case.label)
        timed_run(case)
        case.inner_seconds.clear()
    for round_number in range(repeat):
        for baseline, candidate in pairs:
            order = (baseline, candidate) if round_number % 2 == 0 else (candidate, baseline)
            for case in order:
                case.seconds.append(timed_run(case))
                progress("round %d/%d: %-24s %.2f s" % (round_number + 1, repeat, case.label, case.seconds[-1]))


def machine_description(server: Server) -> dict:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "ram_gib": round(meminfo_kib("MemTotal") / MIB, 1),
        "kernel": platform.release(),
        "postgresql_server": server.query("SHOW server_version"),
        "pg_dump": run_tool([server.tool("pg_dump"), "--version"], server.env()).strip(),
        "python": platform.python_version(),
    }


def case_figures(case: Case) -> dict:
    figures = {
        "case": case.label,
        "seconds": [round(value, 3) for value in case.seconds],
        "median_s": round(statistics.median(case.seconds), 3),
        "min_s": round(min(case.seconds), 3),
        "size_bytes": case.size_bytes,
    }
    if case.inner_seconds:
        figures["module_reported_median_s"] = round(statistics.median(case.inner_seconds), 3)
    return figures


def ratio_figures(cases: dict[str, Case]) -> list[dict]:
    wanted = [
        ("pg_backup custom", "pg_dump -Fc", TARGET_RATIO),
        ("pg_backup directory j2", "pg_dump -Fd -j2", None),
        ("pg_dump -Fd -j2", "pg_dump -Fc", None),
        ("pg_backup directory j2", "pg_backup custom", None),
    ]
    ratios = []
    for numerator, denominator, target in wanted:
        top, bottom = cases[numerator], cases[denominator]
        ratios.append(
            {
                "ratio": "%s / %s" % (numerator, denominator),
                "median": round(statistics.median(top.seconds) / statistics.median(bottom.seconds), 3),
                "min": round(min(top.seconds) / min(bottom.seconds), 3),
                "target": target,
            }
        )
    return ratios


def print_report(report: dict) -> None:
    machine, database = report["machine"], report["database"]
    print(
        "machine:    %d CPUs, %s, %.1f GiB RAM, Linux %s, Python %s"
        % (machine["nproc"], machine["cpu_model"], machine["ram_gib"], machine["kernel"], machine["python"])
    )
    print("postgresql: server %s, %s" % (machine["postgresql_server"], machine["pg_dump"]))
    print(
        "database:   pgbench scale %d, %s filler, %.1f MiB (pg_database_size)"
        % (database["scale"], database["filler"], database["size_mib"])
    )
    load = report["load_average_1min"]
    print(
        "runs:       %d timed per case after 1 untimed warm-up, baseline/candidate order alternating; "
        "1-min load average %.2f before, %.2f after" % (report["repeat"], load["before"], load["after"])
    )
    print()
    print("%-24s %9s %9s %10s" % ("case", "median s", "min s", "size MiB"))
    for case in report["cases"]:
        print("%-24s %9.2f %9.2f %10.1f" % (case["case"], case["median_s"], case["min_s"], case["size_bytes"] / MIB))
    print()
    print("%-43s %7s %7s" % ("ratio", "median", "min"))
    for ratio in report["ratios"]:
        target = "  (target <= %.1f)" % ratio["target"] if ratio["target"] else ""
        print("%-43s %7.2f %7.2f%s" % (ratio["ratio"], ratio["median"], ratio["min"], target))
    inner = [case for case in report["cases"] if "module_reported_median_s" in case]
    if inner:
        print()
        print("pg_backup's own duration_seconds (dump + verify, without interpreter start-up), median:")
        for case in inner:
            print("  %-22s %7.2f s" % (case["case"], case["module_reported_median_s"]))


def start_server(harness: ModuleType, state_dir: str) -> Server:
    info = harness.start(state_dir)
    return Server.from_harness(info)


def run_benchmark(harness: ModuleType, work_dir: str, args: argparse.Namespace) -> dict:
    if not os.path.isdir(os.path.join(COLLECTIONS_ROOT, "ansible_collections", "safedeploy", "migrations")):
        raise BenchError("%s does not hold the collection; run `make setup` first" % COLLECTIONS_ROOT)
    progress("starting an ephemeral PostgreSQL cluster")
    server = start_server(harness, os.path.join(work_dir, "pg"))
    scale = build_database(server, args.size_mb, args.filler)
    size = database_size(server)
    progress("database built: %.1f MiB" % (size / MIB))
    pairs = [
        (
            pg_dump_case(server, work_dir, "pg_dump -Fc", ["--format=custom"]),
            pg_backup_case(server, work_dir, "pg_backup custom", {}),
        ),
        (
            pg_dump_case(server, work_dir, "pg_dump -Fd -j2", ["--format=directory", "--jobs=2"]),
            pg_backup_case(server, work_dir, "pg_backup directory j2", {"format": "directory", "jobs": 2}),
        ),
    ]
    # other work on the machine skews the figures; the load average makes that visible
    load_before = os.getloadavg()[0]
    measure(pairs, args.repeat)
    load_after = os.getloadavg()[0]
    cases = {case.label: case for pair in pairs for case in pair}
    return {
        "machine": machine_description(server),
        "database": {"scale": scale, "filler": args.filler, "size_bytes": size, "size_mib": round(size / MIB, 1)},
        "repeat": args.repeat,
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "cases": [case_figures(case) for case in cases.values()],
        "ratios": ratio_figures(cases),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="minimum database size in MiB (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (default 3)")
    parser.add_argument(
        "--filler",
        choices=["blank", "md5"],
        default="md5",
        help="pgbench_accounts.filler: md5 text (~2:1 like business data, the default) or pgbench's blanks (~50:1)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    return args


def main() -> int:
    return run_with_cluster(NAME, parse_args(), run_benchmark, print_report)


if __name__ == "__main__":
    sys.exit(main())
