# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy.yml's own cost against the seed's hand-run steps on the same stack, and where a deploy spends its time.

One invocation, every case on this machine's docker engine with the example app:
  - no-op: deploy.yml of the release already running, against the seed's minimal manual check (`docker compose ps`,
    `alembic current` through the migration service, `curl /health`); --repeat runs each, alternating;
  - update with one trivial revision (1.1.0 -> 1.2.0, an index on an empty table): deploy.yml on one project
    against the seed's hand-run update (stop app and worker, run the migration service, start app and worker) on
    another;
and the slowest tasks of the no-op and update deploys (ansible.posix.profile_tasks). Prints medians and the ratios
the issue sets targets for (no-op <= 2x, update <= 1.5x); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_zero_downtime import FROM_VERSION, REPO, TO_VERSION, deployed, hand_run_update, prepare_images

sys.path.insert(0, str(REPO / "tests" / "e2e"))

from compose_stack import docker, docker_works  # noqa: E402

PROFILE = {
    "ANSIBLE_STDOUT_CALLBACK": "default",
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "12",
}
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>\d+\.\d+)s$")


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def manual_check(target) -> None:
    """The seed's check: the services, the revision through the migration service, the app's answer."""
    compose = ["compose", "--project-directory", str(target.stack_dir), "-p", target.project]
    docker(*compose, "ps")
    docker(*compose, "run", "--rm", "-T", "migration", "alembic", "current")
    with urllib.request.urlopen(target.app_url + "/health", timeout=10) as answer:
        answer.read()


def profiled_deploy(target, version: str) -> tuple[float, list]:
    """deploy.yml with the timing callback: its wall time and its slowest tasks."""
    start = time.monotonic()
    done = subprocess.run(
        target.command("deploy.yml", app_version=version),
        env=dict(target.environment, **PROFILE),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit("deploy.yml of %s failed:\n%s" % (version, done.stdout[-3000:]))
    slowest = [match.groups() for match in map(PROFILE_LINE.match, done.stdout.splitlines()) if match]
    return seconds, [(task.strip(), float(taken)) for task, taken in slowest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each no-op case (median reported)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not docker_works():
        raise SystemExit("docker with Compose v2 does not answer; run `make docker-host` first")
    prepare_images()
    figures: dict = {"noop": {"manual": [], "deploy": []}}
    with tempfile.TemporaryDirectory(prefix="bench-deploy-overhead-") as scratch:
        targets = [deployed(Path(scratch) / "playbook"), deployed(Path(scratch) / "hand-run")]
        try:
            playbook_target, hand_target = targets
            manual_check(playbook_target)  # warm-up: the image's first start, the page cache
            for _run in range(args.repeat):
                figures["noop"]["manual"].append(timed(lambda: manual_check(playbook_target)))
                seconds, figures["noop_profile"] = profiled_deploy(playbook_target, FROM_VERSION)
                figures["noop"]["deploy"].append(seconds)
            figures["update"] = {"manual": timed(lambda: hand_run_update(hand_target))}
            figures["update"]["deploy"], figures["update_profile"] = profiled_deploy(playbook_target, TO_VERSION)
        finally:
            for target in targets:
                target.down()
    report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


def report(figures: dict) -> None:
    noop_manual, noop_deploy = (statistics.median(figures["noop"][case]) for case in ("manual", "deploy"))
    update = figures["update"]
    print("%-58s %9s" % ("case", "seconds"))
    print("%-58s %9.1f" % ("no-op: compose ps + alembic current + curl /health", noop_manual))
    print("%-58s %9.1f" % ("no-op: deploy.yml of the running release", noop_deploy))
    releases = "%s -> %s" % (FROM_VERSION, TO_VERSION)
    print("%-58s %9.1f" % ("update %s: hand-run stop/migrate/start" % releases, update["manual"]))
    print("%-58s %9.1f" % ("update %s: deploy.yml" % releases, update["deploy"]))
    print("ratio no-op deploy / manual check: %.2f (target <= 2)" % (noop_deploy / noop_manual))
    print("ratio update deploy / hand-run update: %.2f (target <= 1.5)" % (update["deploy"] / update["manual"]))
    for case in ("noop", "update"):
        print("slowest tasks of the %s deploy:" % case)
        for task, seconds in figures[case + "_profile"]:
            print("  %6.2f s  %s" % (seconds, task))


if __name__ == "__main__":
    main()
