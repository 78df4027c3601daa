# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The storefront example works on its own: the team's compose file run with plain `docker compose`, no collection.

What the collection's tests then build on: the stack comes up healthy and working at 1.0.0, alembic needs the
app's whole environment (its env.py imports the settings), every release image ships the head releases.yml
names, and 1.1.0-broken fails from an empty database, taking 1.0.0's revision back (one transaction).
"""

from __future__ import annotations

import time

import pytest
from compose_stack import docker
from storefront_stack import StorefrontProject, storefront_releases

pytest_plugins = ("storefront_stack",)

RELEASES = storefront_releases()


@pytest.fixture(scope="module")
def project(tmp_path_factory, storefront_images):
    storefront_images("1.0.0")
    stack = StorefrontProject(tmp_path_factory.mktemp("storefront"), "1.0.0")
    try:
        stack.compose("up", "--detach", "--wait", timeout=120)
        yield stack
    finally:
        stack.down()


def test_the_team_stack_comes_up_healthy_and_working(project):
    assert project.wait_for("/health", (200, {"status": "ok"})) == (200, {"status": "ok"})
    states = project.states()
    assert states["migration"] == ("exited", 0)
    assert [states[service][0] for service in ("web", "worker-emails", "worker-reports")] == ["running"] * 3
    assert project.sql("SELECT version_num FROM alembic_version") == RELEASES["1.0.0"]["heads"]

    status, order = project.request("/orders", {"product_id": 2, "quantity": 3})
    assert (status, order["total_cents"], order["emailed"]) == (201, 7500, False)
    # both workers do their work within a few of their one-second rounds
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (emailed(project, order["id"]) and reported_orders(project) == "1"):
        time.sleep(0.3)
    assert (emailed(project, order["id"]), reported_orders(project)) == (True, "1")


def emailed(project: StorefrontProject, order_id: int) -> bool:
    return project.request("/orders/%d" % order_id)[1]["emailed"]


def reported_orders(project: StorefrontProject) -> str | None:
    status, report = project.request("/stats", token=project.env["API_TOKEN"])
    assert status == 200
    return report.get("orders")


def test_alembic_without_secret_key_fails_with_a_settings_error(project):
    env = dict(project.env)
    del env["SECRET_KEY"]
    project.write_env(env)
    try:
        result = project.compose("run", "--rm", "-T", "migration", "alembic", "current", check=False)
    finally:
        project.write_env(project.env)
    assert result.returncode != 0
    assert "SettingsError: storefront settings: SECRET_KEY is not set" in result.stderr
    assert project.password not in result.stdout + result.stderr


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_a_release_image_ships_the_head_releases_yml_names(storefront_images, version):
    # `alembic heads` reads the scripts only: no env.py, so no settings needed
    output = docker("run", "--rm", storefront_images(version), "alembic", "heads")
    assert sorted(line.split()[0] for line in output.splitlines()) == sorted(RELEASES[version]["heads"])


def test_the_broken_release_fails_from_an_empty_database_and_takes_the_first_release_back(project, storefront_images):
    storefront_images("1.1.0-broken")
    project.sql("CREATE DATABASE broken_first_deploy")
    broken_url = project.env["DATABASE_URL"].rsplit("/", 1)[0] + "/broken_first_deploy"
    # the shell's APP_VERSION wins over the env file's for the image tag; the URL reaches the container unseen in argv
    env = {"APP_VERSION": "1.1.0-broken", "DATABASE_URL": broken_url}
    argv = ("run", "--rm", "-T", "-e", "DATABASE_URL", "migration", "alembic", "upgrade", "head")
    result = project.compose(*argv, check=False, env=env)
    assert result.returncode != 0
    assert 'column "gift_message" does not exist' in result.stderr
    # alembic's default, one transaction for the range: 1.0.0's revision went back with the failing one
    assert project.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'products'", "broken_first_deploy") == ["0"]
    columns = (
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'gift_note'"
    )
    assert project.sql(columns, "broken_first_deploy") == []
    # the team's own database was left alone
    assert project.sql("SELECT version_num FROM alembic_version") == RELEASES["1.0.0"]["heads"]
