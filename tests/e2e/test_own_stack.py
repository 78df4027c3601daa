# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A team adopts the collection with its own compose file and an inventory, changing nothing in its app.

The storefront example (examples/storefront) is shaped like such a team's stack: its own docker-compose.prod.yml
(services web, worker-emails, worker-reports, migration, postgres and redis, two networks, web on container port
9000 publishing ${WEB_PORT}), secrets in .env.production, a /health without version fields and an env.py that
imports the app's settings. Every playbook runs from the installed Galaxy tarball by FQCN, from a directory outside
the repository, with the example's inventory plus one file pointing it at this machine. The tests run in file order
on one project; a second project takes the failed first deploy.
"""

from __future__ import annotations

import json

import pytest

# the fixtures' modules are plugins of this one; rewrite their asserts before the imports below load them
pytest.register_assert_rewrite("compose_stack", "installed_collection", "storefront_stack", "team_stack")
pytest_plugins = ("compose_stack", "installed_collection", "storefront_stack")

from compose_stack import docker
from conftest import files_holding
from deploy_hooks import POINTS, hook_files, hooks_run
from http_load import Load
from secrets_audit import ArgvSampler
from storefront_stack import COMPOSE_FILE_NAME, STOREFRONT
from team_stack import HEADS, TeamTarget, get, revision

VERBOSE = {"ANSIBLE_VERBOSITY": "3"}
RELEASES = ("1.0.0", "1.1.0", "1.2.0", "1.1.0-broken")
# the only file of the target a secret may be in
HOLDERS = ["stack/.env.production"]


def changed(playbook) -> int:
    return sum(host["changed"] for host in playbook.report["stats"].values())


class Runs:
    """The module's playbook runs, each watched for the team's secrets in argv; the outputs kept for the audit."""

    def __init__(self, team: TeamTarget):
        self.team = team
        self.outputs: list[str] = []

    def __call__(self, playbook: str, verbose: bool = False, **kwargs):
        env = dict(VERBOSE if verbose else {}, **kwargs.pop("env", {}))
        with ArgvSampler(tuple(self.team.tokens.values()), self.team.project) as sampler:
            result = self.team.run(playbook, env=env, **kwargs)
        self.outputs.append(result.stdout + result.stderr)
        assert sampler.rounds > 5, sampler.rounds
        assert sampler.leaks == set(), "a secret in argv during %s: %s" % (playbook, sorted(sampler.leaks))
        return result


@pytest.fixture(scope="module")
def team(tmp_path_factory, installed_collection, storefront_images):
    for version in RELEASES:
        storefront_images(version)
    target = TeamTarget(tmp_path_factory.mktemp("team"), installed_collection)
    try:
        yield target
    finally:
        target.down()


@pytest.fixture(scope="module")
def runs(team) -> Runs:
    return Runs(team)


def test_check_mode_of_a_first_deploy_creates_nothing(team, runs):
    playbook = runs("deploy", check=True, diff=True, verbose=True, app_version="1.0.0")
    assert playbook.rc == 0, playbook.failures()
    assert "for the first time" in playbook.task("Report what check mode can tell without a plan")["msg"]
    assert team.containers() == {} and not team.stack_dir.exists()


def test_first_deploy_of_the_team_file_unchanged(team, runs):
    playbook = runs("deploy", verbose=True, app_version="1.0.0")
    assert playbook.rc == 0, playbook.failures()
    assert (team.stack_dir / COMPOSE_FILE_NAME).read_bytes() == (STOREFRONT / COMPOSE_FILE_NAME).read_bytes()
    # the collection's proxy publishes web on loopback; web's own ${WEB_PORT} is taken over, postgres on loopback
    assert get(team.app_port, "/health") == (200, {"status": "ok"})
    ports = team.published_ports()
    assert ports["safedeploy-proxy"] == ["127.0.0.1:%d->80/tcp" % team.app_port], ports
    assert ports["postgres"] == ["127.0.0.1:%d->5432/tcp" % team.postgres_port], ports
    assert "web" not in ports and "redis" not in ports, ports
    running = team.containers()
    assert sorted(running) == ["postgres", "redis", "safedeploy-proxy", "web", "worker-emails", "worker-reports"]
    for service in ("web", "worker-emails", "worker-reports"):
        assert [(image, state) for _name, image, state, _at in running[service]] == [
            ("storefront-example:1.0.0", "running")
        ]
    assert revision(team) == [HEADS["1.0.0"]]
    assert team.ledger() == [("deploy", "1.0.0", "succeeded", "stop_the_world", None)]
    # the migration ran as the team's service defines it: env.py imported the settings from .env.production
    assert "SettingsError" not in json.dumps(playbook.report)


def test_a_rerun_changes_nothing(team, runs):
    before = team.containers()
    playbook = runs("deploy", app_version="1.0.0")
    assert playbook.rc == 0, playbook.failures()
    assert changed(playbook) == 0
    assert "unchanged since deploy" in playbook.task("Report nothing to do")["msg"]
    assert team.containers() == before and len(team.ledger()) == 1


def test_a_rerun_with_redis_stopped_by_hand_starts_it_again(team, runs):
    docker("stop", *[name for name, _image, state, _at in team.containers()["redis"] if state == "running"])
    playbook = runs("deploy", app_version="1.0.0")
    assert playbook.rc == 0, playbook.failures()
    # the last deploy recorded redis running beside the release: the quick look takes the long way, which starts it
    look = playbook.task("Note whether the stack runs as the last successful deploy left it")["ansible_facts"]
    assert look["deploy_unchanged_reason"] == "service redis is exited; it ran when the last deploy finished"
    assert "no migration pending" in playbook.task("Report nothing to do")["msg"]
    assert {state for _name, _image, state, _at in team.containers()["redis"]} == {"running"}
    assert len(team.ledger()) == 1


def test_check_mode_of_an_update_shows_the_sql_without_a_secret(team, runs):
    before = team.containers()
    playbook = runs("deploy", check=True, diff=True, verbose=True, app_version="1.1.0")
    assert playbook.rc == 0, playbook.failures()
    migrate = playbook.task("Migrate the database with the scripts of 1.1.0")
    assert "customer_email" in migrate["diff"]["prepared"]
    assert "strategy online" in playbook.task("Report the decision")["msg"]
    assert team.containers() == before and revision(team) == [HEADS["1.0.0"]]


def test_check_mode_of_an_update_whose_image_is_missing_says_update(team, runs):
    playbook = runs("deploy", check=True, app_version="7.7.7")
    assert playbook.rc == 0, playbook.failures()
    message = playbook.task("Report what check mode can tell without a plan")["msg"]
    assert "would be updated from 1.0.0 to 7.7.7" in message and "storefront-example:7.7.7" in message, message


def test_online_update_under_load_fails_no_request(team, runs):
    with Load(team.app_port) as load:
        playbook = runs("deploy", app_version="1.1.0", **hook_files(team.root / "hooks"))
    assert playbook.rc == 0, playbook.failures()
    assert hooks_run(team.root / "hooks") == ["%s 1.1.0 False" % point for point in POINTS]
    assert len(load.answers) > 100, (len(load.answers), load.rate)
    assert load.failed == [], load.failed[:10]
    assert team.ledger()[-1][:4] == ("deploy", "1.1.0", "succeeded", "online")
    assert revision(team) == [HEADS["1.1.0"]]
    images = {service: {image for _n, image, _s, _a in rows} for service, rows in team.containers().items()}
    assert images["web"] == images["worker-reports"] == {"storefront-example:1.1.0"}, images


def test_a_failing_smoke_test_after_the_roll_brings_the_previous_release_back(team, runs):
    playbook = runs("deploy", app_version="1.2.0", **hook_files(team.root / "hooks", failing="after_roll"))
    assert playbook.rc != 0
    failure = playbook.task("End the deploy failed")["msg"]
    assert "the smoke test of 1.2.0 found no orders page" in failure and "restarted 1.1.0" in failure, failure
    assert hooks_run(team.root / "hooks") == ["%s 1.2.0 False" % point for point in POINTS[:5]]
    assert revision(team) == [HEADS["1.1.0"]] and get(team.app_port, "/health")[0] == 200
    web = team.containers()["web"]
    assert {image for _name, image, state, _at in web if state == "running"} == {"storefront-example:1.1.0"}, web
    assert team.ledger()[-1][:3] == ("deploy", "1.2.0", "failed")


def test_a_rotated_secret_is_deployed(team, runs):
    token = team.secrets["STOREFRONT_API_TOKEN"]
    assert get(team.app_port, "/stats", token)[0] == 200
    rotated = team.rotate_api_token()
    playbook = runs("deploy", app_version="1.1.0")
    assert playbook.rc == 0, playbook.failures()
    assert get(team.app_port, "/stats", rotated)[0] == 200
    assert get(team.app_port, "/stats", token)[0] == 401
    assert team.ledger()[-1][:3] == ("deploy", "1.1.0", "succeeded")


def test_status_lists_the_services_beside_the_release(team, runs):
    playbook = runs("status", verbose=True)
    assert playbook.rc == 0, playbook.failures()
    report = json.loads((team.stack_dir / "status.json").read_text())
    assert report["containers"]["redis"]["state"] == "running"
    assert report["app"]["health"]["status_code"] == 200 and report["app"]["running_version"] == "1.1.0"
    assert report["problems"] == [], report["problems"]


def test_backup_restore_rehearsal_and_migration_test_work_on_the_team_stack(team, runs):
    backup = runs("backup", verbose=True)
    assert backup.rc == 0, backup.failures()
    restore = runs("restore", verbose=True, restore_confirm=True)
    assert restore.rc == 0, restore.failures()
    assert revision(team) == [HEADS["1.1.0"]] and get(team.app_port, "/health")[0] == 200
    # both aim the migration one-shot at a scratch database through the team's DATABASE_URL
    rehearsal = runs("rehearse", verbose=True, app_version="1.2.0")
    assert rehearsal.rc == 0, rehearsal.failures()
    test = runs("test_migrations", verbose=True, app_version="1.2.0", migration_test_walk=False)
    assert test.rc == 0, test.failures()
    databases = [row[0] for row in team.rows("SELECT datname FROM pg_database WHERE datname LIKE 'storefront_%'")]
    assert databases == [], databases


def test_rollback_to_the_previous_release(team, runs):
    # both deploys it undoes went online: 1.0.0 takes over behind the proxy before the downgrade, no request fails
    with Load(team.app_port) as load:
        playbook = runs("rollback", verbose=True)
    assert playbook.rc == 0, playbook.failures()
    assert "online: 1.0.0 takes over behind the proxy" in playbook.task("Report the rollback")["msg"]
    assert load.failed == [], load.failed[:10]
    assert len(load.answers) > 50, len(load.answers)
    assert revision(team) == [HEADS["1.0.0"]]
    assert get(team.app_port, "/health") == (200, {"status": "ok"})
    web = team.containers()["web"]
    assert [(image, state) for _name, image, state, _at in web] == [("storefront-example:1.0.0", "running")]
    assert team.ledger()[-1][:3] == ("rollback", "1.0.0", "succeeded")
    assert team.containers()["redis"][0][2] == "running"


def test_only_the_env_file_holds_a_secret_and_no_output_does(team, runs):
    assert len(runs.outputs) >= 10
    for name, token in team.tokens.items():
        for output in runs.outputs:
            assert token not in output, "%s in a playbook's output" % name
        assert files_holding(team.root, token) == HOLDERS, name
        assert token not in json.dumps(team.rows("SELECT * FROM safedeploy.deploys"), default=str)
    assert (team.stack_dir / ".env.production").stat().st_mode & 0o777 == 0o600
