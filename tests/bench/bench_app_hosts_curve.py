# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curve: a no-op deploy.yml (the running release again) against the number of app hosts on this machine.

The hosts are compose projects on this machine sharing one PostgreSQL container, as tests/e2e/test_app_hosts.py
sets them up. A benchmark, not a test: it asserts nothing about time. See tests/bench/README.md.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from bench_common import exit_on_sigterm  # noqa: E402
from bench_curve_common import (  # noqa: E402
    check_collection,
    curve_arguments,
    curve_report,
    load_average,
    median_seconds,
    print_and_plot,
    series_figures,
    tool_version,
)
from bench_zero_downtime import FROM_VERSION, prepare_images  # noqa: E402
from compose_stack import docker_works  # noqa: E402
from test_app_hosts import AppHosts  # noqa: E402

NAME = "bench_app_hosts_curve"
VERSION = FROM_VERSION
FULL_COUNTS = (1, 2, 4)
QUICK_COUNTS = (1, 2)


def fleet_of(root: Path, count: int) -> AppHosts:
    """test_app_hosts' fleet with `count` app hosts instead of two."""
    return AppHosts(root, hosts=tuple("app%d" % number for number in range(1, count + 1)), environment="bench-hosts")


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


def deploy(fleet: AppHosts) -> None:
    playbook = fleet.deploy(VERSION)
    if playbook.rc != 0:
        raise SystemExit("%s: deploy.yml of %s failed: %s" % (NAME, VERSION, playbook.failures()))


def measure_count(scratch: str, count: int, repeat: int) -> float:
    fleet = fleet_of(Path(tempfile.mkdtemp(prefix="hosts-%d-" % count, dir=scratch)), count)
    try:
        fleet.start_database()
        progress("%d app hosts: first deploy of %s" % (count, VERSION))
        deploy(fleet)
        # one untimed no-op: the first one after a deploy also warms the page cache and the controller's caches
        deploy(fleet)
        seconds, timings = median_seconds(lambda: deploy(fleet), repeat)
    finally:
        fleet.down()
    progress("%d app hosts: no-op deploy %s s" % (count, ", ".join("%.1f" % value for value in timings)))
    return seconds


def main() -> int:
    args = curve_arguments(__doc__, repeat=3)
    # SIGTERM as SystemExit, so that the fleets' containers are removed by the finally blocks
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    check_collection()
    if not docker_works():
        raise SystemExit("docker with Compose v2 does not answer; run `make docker-host` first")
    prepare_images()
    points = []
    with tempfile.TemporaryDirectory(prefix="bench-app-hosts-") as scratch:
        for count in QUICK_COUNTS if args.quick else FULL_COUNTS:
            seconds = measure_count(scratch, count, args.repeat)
            points.append({"work": count, "label": str(count), "seconds": seconds, "load_average_1min": load_average()})
    report = curve_report(
        "app_hosts_curve",
        "No-op deploy.yml time against app hosts",
        "app hosts",
        "host",
        [series_figures("deploy.yml, running release again", points)],
        args.quick,
        repeat=args.repeat,
        docker=tool_version(["docker", "version", "--format", "{{.Server.Version}}"]),
    )
    print_and_plot(report, args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
