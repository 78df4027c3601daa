# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curve: backup time against database size, pg_backup (custom, directory with jobs) and bare pg_dump.

A benchmark, not a test: it asserts nothing about time. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

from bench_backup import (
    BENCH_DATABASE,
    COLLECTIONS_ROOT,
    MIB,
    Case,
    Server,
    build_database,
    database_size,
    pg_backup_case,
    pg_dump_case,
    run_tool,
    timed_run,
)
from bench_common import BenchError, run_with_cluster
from bench_curve_common import (
    curve_arguments,
    curve_report,
    load_average,
    print_and_plot,
    ratio_comparisons,
    series_figures,
)

NAME = "bench_backup_curve"
FULL_SIZES_MIB = (100, 500, 2048)
QUICK_SIZES_MIB = (10, 30, 60)
JOBS = 2
# (baseline, candidate): pg_dump and the pg_backup that wraps it with the same format
CASES = (
    ("pg_dump -Fc", ["--format=custom"], "pg_backup custom", {}),
    ("pg_dump -Fd -j%d" % JOBS, ["--format=directory", "--jobs=%d" % JOBS],
     "pg_backup directory j%d" % JOBS, {"format": "directory", "jobs": JOBS}),
)  # fmt: skip


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


def size_label(mib: int) -> str:
    return "%d GB" % (mib // 1024) if mib >= 1024 else "%d MB" % mib


def measure_size(server: Server, work_dir: str, target_mib: int, repeat: int) -> tuple[float, dict[str, list[float]]]:
    """The database rebuilt at target_mib, then every case timed `repeat` times, baseline and candidate alternating."""
    server.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % BENCH_DATABASE)
    build_database(server, target_mib, "md5")
    size_mib = database_size(server) / MIB
    progress("database built: %.1f MiB" % size_mib)
    pairs: list[tuple[Case, Case]] = [
        (
            pg_dump_case(server, work_dir, baseline, dump_args),
            pg_backup_case(server, work_dir, candidate, options),
        )
        for baseline, dump_args, candidate, options in CASES
    ]
    # one untimed dump puts the database in the page cache for every case alike
    timed_run(pairs[0][0])
    timings: dict[str, list[float]] = {case.label: [] for pair in pairs for case in pair}
    for round_number in range(repeat):
        for baseline, candidate in pairs:
            order = (baseline, candidate) if round_number % 2 == 0 else (candidate, baseline)
            for case in order:
                timings[case.label].append(timed_run(case))
                progress("%s %-24s %.2f s" % (size_label(target_mib), case.label, timings[case.label][-1]))
    for pair in pairs:
        for case in pair:
            shutil.rmtree(case.out_dir, ignore_errors=True)
    return size_mib, timings


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    if not os.path.isdir(os.path.join(COLLECTIONS_ROOT, "ansible_collections", "safedeploy", "migrations")):
        raise BenchError("%s does not hold the collection; run `make setup` first" % COLLECTIONS_ROOT)
    progress("starting an ephemeral PostgreSQL cluster")
    server = Server.from_harness(harness.start(os.path.join(work_dir, "pg")))
    sizes = QUICK_SIZES_MIB if args.quick else FULL_SIZES_MIB
    points: dict[str, list[dict]] = {}
    for target_mib in sizes:
        size_mib, timings = measure_size(server, work_dir, target_mib, args.repeat)
        for label, seconds in timings.items():
            point = {
                "work": round(size_mib, 1),
                "label": size_label(target_mib),
                "seconds": statistics.median(seconds),
                "load_average_1min": load_average(),
            }
            points.setdefault(label, []).append(dict(point, runs=[round(value, 3) for value in seconds]))
    series = [series_figures(label, series_points) for label, series_points in points.items()]
    comparisons = ratio_comparisons(points, [(candidate, baseline) for baseline, _args, candidate, _options in CASES])
    return curve_report(
        "backup_curve",
        "Backup time against database size",
        "database size",
        "MiB",
        series,
        args.quick,
        comparisons=comparisons,
        repeat=args.repeat,
        postgresql=server.query("SHOW server_version"),
        pg_dump=run_tool([server.tool("pg_dump"), "--version"], server.env()).strip(),
        filler="md5",
    )


def main() -> int:
    args = curve_arguments(__doc__, repeat=1)
    return run_with_cluster(NAME, args, run_benchmark, lambda report: print_and_plot(report, args))


if __name__ == "__main__":
    sys.exit(main())
