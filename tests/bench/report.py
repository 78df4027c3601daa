# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write docs/benchmarks.md from the benchmarks' JSON (what `make bench` leaves in .build/bench) and the template.

The plots are drawn again from the JSON into docs/benchmarks/ (not committed), so the page and its pictures always
show the same figures. A benchmark without its JSON gets a line saying so; the prose of the template stays.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import statistics
import sys

import jinja2
from bench_common import REPO_ROOT
from bench_curve_common import draw_curve, machine_description, tool_version

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks.md.j2")
DEFAULT_RESULTS = os.path.join(REPO_ROOT, ".build", "bench")
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "docs", "benchmarks.md")
# the output's own directory is where the plots go, linked relative to the page
PLOT_DIRECTORY = "benchmarks"
CURVES = ("backup_curve", "plan_curve", "lock_info_curve", "app_hosts_curve")


def load(results: str, name: str):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def postgresql_version() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(path.split("/")[-3]))
    return tool_version([found[-1], "--version"]) if found else "not installed"


def machine() -> dict:
    """The curves' machine description (without the load of one moment) and the versions the page names."""
    description = {name: value for name, value in machine_description().items() if name != "load_average_1min"}
    return {
        **description,
        "postgresql": postgresql_version(),
        "docker": tool_version(["docker", "version", "--format", "{{.Server.Version}}"]),
        "compose": tool_version(["docker", "compose", "version", "--short"]),
        "date": datetime.date.today().isoformat(),
    }


def deploy_overhead_view(figures: dict | None) -> dict | None:
    """Medians and ratios of bench_deploy_overhead.py's JSON."""
    if not figures:
        return None
    noop_manual = statistics.median(figures["noop"]["manual"])
    noop_deploy = statistics.median(figures["noop"]["deploy"])
    update = figures["update"]
    return {
        "noop_manual": noop_manual,
        "noop_deploy": noop_deploy,
        "update_manual": update["manual"],
        "update_full_procedure": update.get("full_procedure"),
        "update_deploy": update["deploy"],
        "update_deploy_stop_the_world": update.get("deploy_stop_the_world"),
        "update_stop_the_world_ratio": (
            update["deploy_stop_the_world"] / update["manual"] if update.get("deploy_stop_the_world") else None
        ),
        "update_stop_the_world_tasks": figures.get("update_stop_the_world_tasks"),
        "noop_ratio": noop_deploy / noop_manual,
        "update_ratio": update["deploy"] / update["manual"],
        "update_full_ratio": update["deploy"] / update["full_procedure"] if update.get("full_procedure") else None,
        "noop_tasks": figures.get("noop_tasks"),
        "update_tasks": figures.get("update_tasks"),
        "noop_profile": figures.get("noop_profile", []),
        "update_profile": figures.get("update_profile", []),
        "update_steps": figures.get("update_steps", {}),
        "update_added": figures.get("update_added"),
        "update_added_ratio": figures["update_added"] / update["manual"] if "update_added" in figures else None,
        "startup": figures.get("startup_median"),
        "floors": figures.get("floors", []),
    }


def render(results: str, output: str, notes: list[str]) -> str:
    plot_dir = os.path.join(os.path.dirname(output), PLOT_DIRECTORY)
    curves = {}
    for name in CURVES:
        report = load(results, name)
        if report:
            os.makedirs(plot_dir, exist_ok=True)
            draw_curve(report, os.path.join(plot_dir, name + ".png"))
            report["plot"] = "%s/%s.png" % (PLOT_DIRECTORY, name)
        curves[name] = report
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(TEMPLATE)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template(os.path.basename(TEMPLATE))
    text = template.render(
        machine=machine(),
        notes=notes,
        results_dir=os.path.relpath(results, REPO_ROOT),
        curves=curves,
        backup=load(results, "backup"),
        lock_stall=load(results, "lock_stall"),
        alembic_migrate=load(results, "alembic_migrate"),
        data_checks=load(results, "data_checks"),
        zero_downtime=load(results, "zero_downtime"),
        deploy_overhead=deploy_overhead_view(load(results, "deploy_overhead")),
    )
    # the template's optional blocks leave runs of blank lines; Markdown needs one
    return re.sub(r"\n{3,}", "\n\n", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="directory of the benchmarks' JSON")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="the page to write (default docs/benchmarks.md)")
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a sentence on the run's conditions, printed under the machine (repeatable)",
    )
    args = parser.parse_args()
    text = render(args.results, args.output, args.note)
    with open(args.output, "w") as handle:
        handle.write(text)
    print("report: wrote %s" % os.path.relpath(args.output, REPO_ROOT), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
