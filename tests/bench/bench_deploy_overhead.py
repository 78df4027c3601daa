# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy.yml's own cost against the seed's hand-run steps on the same stack, and where a deploy spends its time.

One invocation, every case on this machine's docker engine with the example app:
  - no-op: deploy.yml of the release already running, against the seed's minimal manual check (`docker compose ps`,
    `alembic current` through the migration service, `curl /health`); --repeat runs each, alternating;
  - update with one trivial revision (1.1.0 -> 1.2.0, an index on an empty table): deploy.yml on one project
    against the seed's hand-run update (stop app and worker, run the migration service, start app and worker) on
    another, and against the seed's full documented procedure (its backup script's `pg_dump` through `docker exec`,
    then the same stop, migration service and start, then `curl /health`) on a third; and deploy.yml with
    deploy_strategy=stop_the_world on a fourth, the hand-run update's own strategy (the first deploy picks online: the
    plan is backward compatible and a proxy runs, so it replaces the app's replicas with no failed request);
the number of tasks each deploy ran, and the slowest tasks of the no-op and update deploys
(ansible.posix.profile_tasks), with the update's tasks summed by kind (STEP_KINDS): the migration and the stop/start
have counterparts in the hand-run update, the backup, plan, lock, ledger, files and report do not. Each deploy's
module runs (tasks that ran a module on the host; callback_plugins/task_actions.py) are summed apart from its
controller-side tasks, and Ansible's start-up is timed alone (playbooks/startup.yml on the same inventory): their sum
is the deploy's floor, what it would take if every task the controller answers alone cost nothing. Prints medians
and the ratios issue 19 sets targets for (no-op <= 1.5x the manual check, update <= 4x the hand-run update and
<= 2x the full procedure, <= 40 tasks for an update), and the floors' ratios; asserts nothing.
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
from deploy_stack import release_image  # noqa: E402

BENCH = Path(__file__).resolve().parent
PROFILE = {
    "ANSIBLE_STDOUT_CALLBACK": "default",
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,task_actions",
    "ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"),
    "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
}
# Actions the controller answers without running anything on the host; every other task that was not skipped ran a
# module there (an action plugin such as template's included)
CONTROLLER_ACTIONS = {
    "ansible.builtin." + name
    for name in (
        "assert",
        "debug",
        "fail",
        "meta",
        "set_fact",
        "set_stats",
        "include_tasks",
        "import_tasks",
        "include_role",
        "import_role",
        "include_vars",
        "validate_argument_spec",
        "add_host",
        "group_by",
    )
}
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>\d+\.\d+)s$")
TASK_LINE = re.compile(r"^TASK \[", re.M)
SLOWEST_SHOWN = 12
# What the update deploy's tasks do, by the words of their names; the first two have counterparts in the hand-run
# update, the others are what deploy.yml adds (task names are the roles' own, so they are stable)
STEP_KINDS = [
    ("the migration (the hand-run update runs it too)", ("Migrate the database",)),
    (
        "stop, start and health waits (the hand-run update has them too)",
        ("replicas", "Start ", "Stop ", "answers /health", "app container", "health"),
    ),
    ("verified backup", ("back up before", "backup directory")),
    ("plan and pre-flight", ("migration plan", "sessions in the way", "rehearsal")),
    ("deploy lock", ("Deploy lock",)),
    ("ledger", ("ledger", "last successful deploy")),
    ("stack files", ("Render the", "stack files")),
    ("reading the stack", ("List the stack's containers", "which the host has")),
    ("report and promotion evidence", ("report", "evidence", "promotion store")),
]
HAND_RUN_KINDS = 2
# The targets issue 19 was closed with: a deploy's whole time against its floor, what its controller-side tasks add
OVER_FLOOR_TARGETS = {"noop": 1.6, "update": 1.25, "update_stop_the_world": 1.25}
OTHER_KIND = "controller-side tasks (facts, checks, includes)"


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def manual_check(target) -> None:
    """The seed's check: the services, the revision through the migration service, the app's answer."""
    docker(*target.compose("ps"))
    docker(*target.compose("run", "--rm", "-T", "migration", "alembic", "current"))
    with urllib.request.urlopen(target.app_url + "/health", timeout=10) as answer:
        answer.read()


def full_procedure(target) -> None:
    """The seed's documented update in full: its backup script, the hand-run update, then its `curl /health`."""
    backup = target.root / "seed-backup.sql"
    with backup.open("wb") as out:
        # the postgres service's own environment names its user and database
        dump = target.compose("exec", "-T", "postgres", "sh", "-c", 'pg_dump -U "$POSTGRES_USER" "$POSTGRES_DB"')
        subprocess.run(["docker", *dump], stdout=out, check=True)
    hand_run_update(target)
    with urllib.request.urlopen(target.app_url + "/health", timeout=10) as answer:
        answer.read()


def profiled_deploy(target, version: str, **extra) -> tuple[float, list, int, dict]:
    """deploy.yml with the timing callbacks: its wall time, slowest tasks, how many tasks it ran, its module runs."""
    with tempfile.NamedTemporaryFile(prefix="task-actions-", suffix=".jsonl") as actions:
        start = time.monotonic()
        done = subprocess.run(
            target.command("deploy.yml", app_version=version, **extra),
            env=dict(target.environment, BENCH_TASK_ACTIONS=actions.name, **PROFILE),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - start
        rows = [json.loads(line) for line in Path(actions.name).read_text().splitlines()]
    if done.returncode != 0:
        raise SystemExit("deploy.yml of %s failed:\n%s" % (version, done.stdout[-3000:]))
    slowest = [match.groups() for match in map(PROFILE_LINE.match, done.stdout.splitlines()) if match]
    # every task the default callback announced, a skipped one included: each costs the controller a round
    ran = len(TASK_LINE.findall(done.stdout))
    return seconds, [(task.strip(), float(taken)) for task, taken in slowest], ran, module_runs(rows)


def module_runs(rows: list) -> dict:
    """How many tasks ran a module on the host, and their seconds, from task_actions' rows."""
    runs = [row for row in rows if row["outcome"] != "skipped" and row["action"] not in CONTROLLER_ACTIONS]
    return {"count": len(runs), "seconds": round(sum(row["seconds"] for row in runs), 2)}


def ansible_startup(target) -> float:
    """One controller-side task on the deploy's inventory: Ansible's cost before a playbook's first task."""
    argv = target.command("deploy.yml")
    argv[argv.index(str(REPO / "playbooks" / "deploy.yml"))] = str(BENCH / "playbooks" / "startup.yml")
    return timed(lambda: subprocess.run(argv, env=target.environment, capture_output=True, check=True))


def step_kinds(profile: list) -> dict:
    """Seconds per kind of step (STEP_KINDS, then the rest), from a whole profile."""
    seconds = dict.fromkeys([kind for kind, _words in STEP_KINDS] + [OTHER_KIND], 0.0)
    for task, taken in profile:
        name = task.split(" : ")[-1]
        kind = next((kind for kind, words in STEP_KINDS if any(word in name for word in words)), OTHER_KIND)
        seconds[kind] += taken
    return seconds


def floors(figures: dict) -> list:
    """Each deploy's floor (Ansible's start-up and its module runs, nothing else) against the targets' baselines."""
    startup = statistics.median(figures["startup"])
    noop = [("manual check", statistics.median(figures["noop"]["manual"]), 1.5)]
    update = [
        ("hand-run update", figures["update"]["manual"], 4),
        ("full procedure", figures["update"]["full_procedure"], 2),
    ]
    rows = []
    for case, key, took, baselines in (
        ("no-op deploy", "noop", statistics.median(figures["noop"]["deploy"]), noop),
        ("update deploy", "update", figures["update"]["deploy"], update),
        ("update deploy stop_the_world", "update_stop_the_world", figures["update"]["deploy_stop_the_world"], update),
    ):
        runs = figures[key + "_module_runs"]
        floor = startup + runs["seconds"]
        rows.append(
            {
                "case": case,
                "module_runs": runs["count"],
                "module_seconds": runs["seconds"],
                "floor": floor,
                "ratios": [(round(floor / seconds, 2), name, target) for name, seconds, target in baselines],
                "over_floor": round(took / floor, 2),
                "over_floor_target": OVER_FLOOR_TARGETS[key],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each no-op case (median reported)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not docker_works():
        raise SystemExit("docker with Compose v2 does not answer; run `make docker-host` first")
    prepare_images()
    figures: dict = {"noop": {"manual": [], "deploy": []}, "startup": []}
    with tempfile.TemporaryDirectory(prefix="bench-deploy-overhead-") as scratch:
        names = ("playbook", "stop-the-world", "hand-run", "full-procedure")
        targets = [deployed(Path(scratch) / name) for name in names]
        try:
            playbook_target, stop_target, hand_target, full_target = targets
            manual_check(playbook_target)  # warm-up: the image's first start, the page cache
            for _run in range(args.repeat):
                figures["noop"]["manual"].append(timed(lambda: manual_check(playbook_target)))
                seconds, noop_profile, figures["noop_tasks"], figures["noop_module_runs"] = profiled_deploy(
                    playbook_target, FROM_VERSION
                )
                figures["noop"]["deploy"].append(seconds)
                figures["noop_profile"] = noop_profile[:SLOWEST_SHOWN]
                figures["startup"].append(ansible_startup(playbook_target))
            # the first start of the new release's image reads its layers from disk: not the hand-run update's cost
            docker("run", "--rm", "--entrypoint", "alembic", release_image(TO_VERSION), "--help")
            figures["update"] = {"manual": timed(lambda: hand_run_update(hand_target))}
            figures["update"]["full_procedure"] = timed(lambda: full_procedure(full_target))
            figures["update"]["deploy"], update_profile, figures["update_tasks"], figures["update_module_runs"] = (
                profiled_deploy(playbook_target, TO_VERSION)
            )
            (
                figures["update"]["deploy_stop_the_world"],
                _profile,
                figures["update_stop_the_world_tasks"],
                figures["update_stop_the_world_module_runs"],
            ) = profiled_deploy(stop_target, TO_VERSION, deploy_strategy="stop_the_world")
            figures["startup_median"] = statistics.median(figures["startup"])
            figures["floors"] = floors(figures)
            figures["update_steps"] = step_kinds(update_profile)
            figures["update_added"] = sum(list(figures["update_steps"].values())[HAND_RUN_KINDS:])
            figures["update_profile"] = update_profile[:SLOWEST_SHOWN]
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
    print("%-58s %9.1f" % ("update %s: the seed's full procedure" % releases, update["full_procedure"]))
    print("%-58s %9.1f" % ("update %s: deploy.yml" % releases, update["deploy"]))
    print("%-58s %9.1f" % ("update %s: deploy.yml stop_the_world" % releases, update["deploy_stop_the_world"]))
    print("ratio no-op deploy / manual check: %.2f (target <= 1.5)" % (noop_deploy / noop_manual))
    print("ratio update deploy / hand-run update: %.2f (target <= 4)" % (update["deploy"] / update["manual"]))
    print(
        "ratio update deploy / the seed's full procedure: %.2f (target <= 2)"
        % (update["deploy"] / update["full_procedure"])
    )
    print(
        "ratio update deploy stop_the_world / hand-run update (the same strategy): %.2f"
        % (update["deploy_stop_the_world"] / update["manual"])
    )
    tasks = (figures["noop_tasks"], figures["update_tasks"], figures["update_stop_the_world_tasks"])
    print("tasks run: no-op deploy %d, update deploy %d, stop_the_world %d (target <= 40)" % tasks)
    for case in ("noop", "update"):
        print("slowest tasks of the %s deploy:" % case)
        for task, seconds in figures[case + "_profile"]:
            print("  %6.2f s  %s" % (seconds, task))
    steps = figures["update_steps"]
    print("the update deploy's tasks by kind:")
    for kind, seconds in steps.items():
        print("  %6.2f s  %s" % (seconds, kind))
    print(
        "the steps the hand-run update has no counterpart for: %.1f s, %.1fx the whole hand-run update"
        % (figures["update_added"], figures["update_added"] / update["manual"])
    )
    print("Ansible's start-up (one controller-side task on the same inventory): %.2f s" % figures["startup_median"])
    for row in figures["floors"]:
        ratios = ", ".join("%.2fx the %s (target <= %s)" % ratio for ratio in row["ratios"])
        print(
            "%s: %d module runs take %.1f s; with the start-up, a floor of %.1f s: %s; the deploy took %.2fx its floor"
            " (target <= %s)"
            % (
                row["case"],
                row["module_runs"],
                row["module_seconds"],
                row["floor"],
                ratios,
                row["over_floor"],
                row["over_floor_target"],
            )
        )


if __name__ == "__main__":
    main()
