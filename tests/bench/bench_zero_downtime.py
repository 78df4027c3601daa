# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Failed requests and the longest gap under a constant load: the seed's hand-run update against deploy.yml online.

Two compose projects of the example app at 1.1.0, each deployed by playbooks/deploy.yml (so both run the same
stack, proxy included), then updated to 1.2.0 under the same load from four loopback clients:
  (a) the hand-run procedure of our users' strategy document: stop app and worker, point .env at the new
      release, `docker compose up migration` (alembic upgrade head), check its exit code, start app and worker;
  (b) `ansible-playbook playbooks/deploy.yml -e app_version=1.2.0 -e deploy_strategy=online`;
then back to 1.1.0 under the same load:
  (c) the document's rollback variant 1: stop app and worker, `alembic downgrade -1` through the migration service,
      point .env at 1.1.0, start app and worker;
  (d) `ansible-playbook playbooks/rollback.yml`, online since (b) was: 1.1.0 takes over behind the proxy, then the
      downgrade runs;
and (e) the update once more on (a)'s project, by `deploy.yml -e deploy_strategy=stop_the_world`: the gap a deploy
that stops the app has (the backup and the plan happen before the stop, the gate waits for the new release).
Prints requests answered, failed, the longest time without a successful answer, the duration and the request rate
offered (what the clients aim at) against the one achieved (requests sent per second), side by side, then whether
(b) and (d) met the target: zero failed requests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from compose_stack import BASE_IMAGES, docker, docker_works, image_exists  # noqa: E402
from deploy_stack import DeployTarget, release_image  # noqa: E402
from http_load import CLIENTS, REQUESTS_PER_SECOND_PER_CLIENT, Load  # noqa: E402

FROM_VERSION, TO_VERSION = "1.1.0", "1.2.0"
OFFERED_RATE = CLIENTS * REQUESTS_PER_SECOND_PER_CLIENT
ONLINE_CASE = "(b) deploy.yml online"
# the online deploy's rollback is online too: 1.1.0 takes over behind the proxy before the downgrade
ROLLBACK_CASE = "(d) rollback.yml of (b)"


def prepare_images() -> None:
    if not all(map(image_exists, BASE_IMAGES)):
        subprocess.run([str(REPO / "scripts" / "build_images.sh")], check=True)
    subprocess.run(
        [str(REPO / "examples" / "orchestrator" / "build_wheelhouse.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    for version in (FROM_VERSION, TO_VERSION):
        release_image(version)


def deployed(root: Path) -> DeployTarget:
    target = DeployTarget(root, environment="bench")
    playbook = target.deploy(FROM_VERSION)
    if playbook.rc != 0:
        raise SystemExit("the first deploy of %s failed: %s" % (FROM_VERSION, playbook.failures()))
    return target


def hand_run_update(target: DeployTarget) -> None:
    """The strategy document's update: stop, new code, migration service, exit code, start."""
    docker(*target.compose("stop", "app", "worker"))
    point_env_file_at(target, FROM_VERSION, TO_VERSION)
    # --exit-code-from: compose's exit code is the one-shot's, which the document says to check
    up_migration = target.compose("up", "--no-deps", "--exit-code-from", "migration", "migration")
    migration = subprocess.run(["docker", *up_migration], capture_output=True, check=False)
    if migration.returncode != 0:
        raise SystemExit("the migration service failed: %s" % migration.stderr.decode()[-2000:])
    start_and_wait(target, TO_VERSION)


def playbook_update(target: DeployTarget) -> None:
    playbook = target.deploy(TO_VERSION, deploy_strategy="online")
    if playbook.rc != 0:
        raise SystemExit("deploy.yml online failed: %s" % playbook.failures())


def hand_run_rollback(target: DeployTarget) -> None:
    """The strategy document's rollback variant 1: stop, `alembic downgrade -1` through the migration service, start."""
    docker(*target.compose("stop", "app", "worker"))
    docker(*target.compose("run", "--rm", "-T", "migration", "alembic", "downgrade", "-1"))
    point_env_file_at(target, TO_VERSION, FROM_VERSION)
    start_and_wait(target, FROM_VERSION)


def point_env_file_at(target: DeployTarget, running: str, wanted: str) -> None:
    """What the document does by hand: the release in .env edited."""
    env_file = target.stack_dir / ".env"
    release = 'APP_VERSION="%s"'
    env_file.write_text(env_file.read_text().replace(release % running, release % wanted))


def start_and_wait(target: DeployTarget, version: str) -> None:
    """Start app and worker, then wait until the app answers as `version` (the document's curl /health)."""
    docker(*target.compose("up", "-d", "--no-deps", "app", "worker"))
    deadline = time.monotonic() + 60
    while target.health()[1].get("app_version") != version:
        if time.monotonic() > deadline:
            raise SystemExit("the hand-run procedure never served %s" % version)
        time.sleep(0.2)


def playbook_rollback(target: DeployTarget) -> None:
    playbook = target.run("rollback.yml")
    if playbook.rc != 0:
        raise SystemExit("rollback.yml failed: %s" % playbook.failures())


def playbook_stop_the_world(target: DeployTarget) -> None:
    playbook = target.deploy(TO_VERSION, deploy_strategy="stop_the_world")
    if playbook.rc != 0:
        raise SystemExit("deploy.yml stop_the_world failed: %s" % playbook.failures())


def measure(name: str, target: DeployTarget, update) -> dict:
    with Load(target.app_port) as load:
        update(target)
        time.sleep(1)  # a last second of answers from the new release
    return {
        "case": name,
        "answered": len(load.answers),
        "failed": len(load.failed),
        "longest_gap_s": round(load.longest_gap, 2),
        "seconds": round(load.seconds, 1),
        "offered_rate": OFFERED_RATE,
        "rate": round(load.rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not docker_works():
        raise SystemExit("docker with Compose v2 does not answer; run `make docker-host` first")
    prepare_images()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-zero-downtime-") as scratch:
        targets = [deployed(Path(scratch) / "hand-run"), deployed(Path(scratch) / "online")]
        try:
            results.append(measure("(a) hand-run stop/migrate/start", targets[0], hand_run_update))
            results.append(measure(ONLINE_CASE, targets[1], playbook_update))
            results.append(measure("(c) hand-run rollback", targets[0], hand_run_rollback))
            results.append(measure(ROLLBACK_CASE, targets[1], playbook_rollback))
            # the same update by deploy.yml with the app stopped: the gap the hand-run procedure has, for comparison
            results.append(measure("(e) deploy.yml stop_the_world", targets[0], playbook_stop_the_world))
        finally:
            for target in targets:
                target.down()
    header = ("1.1.0 -> 1.2.0 and back under load", "answered", "failed", "longest gap s", "seconds", "offered req/s",
              "achieved req/s")  # fmt: skip
    print("%-34s %9s %7s %15s %9s %15s %16s" % header)
    for row in results:
        print("%-34s %9d %7d %15.2f %9.1f %15d %16.1f" % (row["case"], row["answered"], row["failed"],
                                                          row["longest_gap_s"], row["seconds"], row["offered_rate"],
                                                          row["rate"]))  # fmt: skip
    for case in (ONLINE_CASE, ROLLBACK_CASE):
        row = next(row for row in results if row["case"] == case)
        print("%s: target (no failed request) met: %s" % (case, "yes" if row["failed"] == 0 else "no"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
