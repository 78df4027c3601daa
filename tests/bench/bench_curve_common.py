# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the cost-curve benchmarks share: timing a point, the table, the verdict, the JSON and the plot."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

from bench_common import REPO_ROOT, BenchError, cpu_model, meminfo_kib

COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")

# time may grow up to this much faster than the work before the verdict says no (noise, fixed costs shifting)
SLACK = 1.5


def curve_arguments(docstring: str, repeat: int) -> argparse.Namespace:
    """Every curve's command line: --quick, --repeat (at least 1), --json, --plot."""
    parser = argparse.ArgumentParser(description=docstring.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes or counts, for development")
    parser.add_argument("--repeat", type=int, default=repeat, help="timed runs per point (default %d)" % repeat)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--plot", metavar="PNG", help="draw the curve to PNG (default: beside --json, .png)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def check_collection() -> None:
    if not os.path.isdir(os.path.join(COLLECTIONS_ROOT, "ansible_collections", "safedeploy", "migrations")):
        raise BenchError("%s does not hold the collection; run `make setup` first" % COLLECTIONS_ROOT)


def module_runner(module: str, module_args: dict, args_path: str, env: dict) -> Callable[[], dict]:
    """The module file run by the interpreter with an args file, as Ansible would run it, minus the controller."""
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    python_path = os.pathsep.join(filter(None, [COLLECTIONS_ROOT, os.environ.get("PYTHONPATH")]))
    argv = [sys.executable, os.path.join(REPO_ROOT, "plugins", "modules", module + ".py"), args_path]
    module_env = dict(env, PYTHONPATH=python_path)

    def run_once() -> dict:
        # a module's failure is its JSON answer, read below
        result = subprocess.run(
            argv, env=module_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        try:
            response = json.loads(result.stdout)
        except ValueError:
            message = "%s printed no JSON (rc=%d): %s" % (module, result.returncode, result.stderr[-2000:])
            raise BenchError(message) from None
        if result.returncode != 0 or response.get("failed"):
            raise BenchError("%s failed: %s" % (module, response.get("msg", result.stderr[-2000:])))
        return response

    return run_once


def median_seconds(run_once: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """The median of `repeat` timed calls of run_once, and every timing."""
    timings = []
    for _round in range(repeat):
        started = time.perf_counter()
        run_once()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), timings


def load_average() -> float:
    """The 1-min load average, recorded with each point: other work on the machine shows in the figures."""
    return round(os.getloadavg()[0], 2)


def series_figures(name: str, points: list[dict]) -> dict:
    """A series of {work, label, seconds} points with its seconds per unit and the verdict between its ends."""
    for point in points:
        point["seconds"] = round(point["seconds"], 3)
        point["seconds_per_unit"] = round(point["seconds"] / point["work"], 6)
    first, last = points[0], points[-1]
    work_ratio = last["work"] / first["work"]
    time_ratio = last["seconds"] / first["seconds"]
    return {
        "name": name,
        "points": points,
        "work_ratio": round(work_ratio, 2),
        "time_ratio": round(time_ratio, 2),
        "grows_no_faster": time_ratio <= SLACK * work_ratio,
    }


def ratio_comparisons(points: dict, pairs) -> list[dict]:
    """Per (candidate, baseline) pair of series names, the ratio of their seconds at each point."""
    return [
        {
            "series": candidate,
            "baseline": baseline,
            "ratios": [
                {"label": top["label"], "ratio": round(top["seconds"] / bottom["seconds"], 2)}
                for top, bottom in zip(points[candidate], points[baseline])
            ],
        }
        for candidate, baseline in pairs
    ]


def curve_report(benchmark: str, title: str, work: str, unit: str, series: list[dict], quick: bool, **extra) -> dict:
    return dict(
        benchmark=benchmark,
        title=title,
        work=work,
        unit=unit,
        quick=quick,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine_description(),
        series=series,
        slack=SLACK,
        grows_no_faster=all(entry["grows_no_faster"] for entry in series),
        **extra,
    )


def machine_description() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(meminfo_kib("MemTotal") / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def tool_version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return result.stdout.strip() if result.returncode == 0 else "not available"


def print_curve(report: dict) -> None:
    machine = report["machine"]
    print("%s%s" % (report["title"], " (quick sizes)" if report["quick"] else ""))
    print(
        "machine: %d cores, %s, %.1f GiB RAM, Linux %s; 1-min load average %.2f"
        % (machine["cores"], machine["cpu_model"], machine["ram_gib"], machine["kernel"], machine["load_average_1min"])
    )
    for entry in report["series"]:
        print()
        print("%-28s %14s %10s %14s" % (entry["name"], report["work"], "seconds", "s per " + report["unit"]))
        for point in entry["points"]:
            print("%-28s %14s %10.2f %14.5f" % ("", point["label"], point["seconds"], point["seconds_per_unit"]))
        print(
            "  work x%.1f, time x%.1f: grows no faster than the work: %s"
            % (entry["work_ratio"], entry["time_ratio"], "yes" if entry["grows_no_faster"] else "no")
        )
    for comparison in report.get("comparisons", []):
        ratios = ", ".join("%s %.2f" % (row["label"], row["ratio"]) for row in comparison["ratios"])
        print("%s / %s: %s" % (comparison["series"], comparison["baseline"], ratios))
    print()
    print(
        "grows no faster than the work (time ratio <= %.1f x work ratio, smallest to largest point): %s"
        % (report["slack"], "yes" if report["grows_no_faster"] else "no")
    )


def draw_curve(report: dict, path: str) -> None:
    """Seconds against the work on log-log axes, one line per series, and a dotted line proportional to the work."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot, ticker

    figure, axes = pyplot.subplots(figsize=(6.4, 4.2), dpi=100)
    for entry in report["series"]:
        works = [point["work"] for point in entry["points"]]
        axes.plot(works, [point["seconds"] for point in entry["points"]], marker="o", label=entry["name"])
    first = report["series"][0]["points"]
    works = [point["work"] for point in first]
    axes.plot(
        works,
        [first[0]["seconds"] * work / works[0] for work in works],
        linestyle=":",
        color="grey",
        label="proportional to the work",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(works, [point["label"] for point in first])
    axes.xaxis.set_minor_locator(ticker.NullLocator())
    # 1, 2, 5 per decade: a narrow range of seconds still gets labelled ticks
    axes.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_minor_locator(ticker.NullLocator())
    axes.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes.set_xlabel("%s (%s)" % (report["work"], report["unit"]))
    axes.set_ylabel("seconds")
    axes.set_title(report["title"] + (" (quick)" if report["quick"] else ""), fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def print_and_plot(report: dict, args: argparse.Namespace) -> None:
    """The table and the verdict on stdout, the PNG; run_with_cluster writes the JSON."""
    print_curve(report)
    plot = args.plot or (os.path.splitext(args.json)[0] + ".png" if args.json else None)
    if plot:
        draw_curve(report, plot)
