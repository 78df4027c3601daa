# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the deploy playbooks: release images of the example app and a compose project per test module.

A test module loads them with `pytest_plugins = ("compose_stack", "deploy_stack")`. A DeployTarget is an inventory
of its own (this machine, local connection) whose stack has a project name, directory and ports of its own, so
several can live side by side; the database password reaches the playbooks through the environment only. A
RepositoryInventory is the same with a copy of one of the repository's inventories. Each writes its promotion
evidence to a store directory of its own unless told to share one.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from compose_stack import (
    IMAGE_HASH_LABEL,
    app_sha256,
    build_labelled_image,
    build_wheelhouse,
    docker,
    docker_works,
    free_port,
    image_label,
    images_lock,
    remove_project_containers,
)
from conftest import REPO, Playbook, playbook_environment

RELEASE_IMAGE = "orchestrator-example"
PASSWORD_VARIABLE = "STACK_DB_PASSWORD"
INVENTORY_VARS = """---
deploy_environment: {environment}
stack_project: {project}
stack_dir: {stack_dir}
stack_app_image: {image}
stack_postgres_port: {postgres_port}
stack_app_port: {app_port}
stack_health_release_field: app_version
stack_health_revision_field: revision
stack_health_timeout: 40
stack_db_password: "{{{{ lookup('ansible.builtin.env', '{password_variable}') }}}}"
deploy_backup_dir: {stack_dir}/backups
deploy_promotion_store: {promotion_store}
"""
# What RepositoryInventory adds to a copy of inventories/<name>: the stack on this machine, the evidence store
THIS_MACHINE = """---
stack_dir: {stack_dir}
stack_project: {project}
stack_app_image: {image}
stack_postgres_port: {postgres_port}
stack_app_port: {app_port}
stack_health_release_field: app_version
stack_health_revision_field: revision
stack_health_timeout: 40
deploy_backup_dir: {stack_dir}/backups
deploy_promotion_store: {promotion_store}
ansible_python_interpreter: {python}
"""
LOCAL_HOSTS = "all:\n  children:\n    app:\n      hosts:\n        localhost:\n          ansible_connection: local\n"


def release_image(version: str) -> str:
    """orchestrator-example:<version>, built again only when the app's files changed since."""
    image = "%s:%s" % (RELEASE_IMAGE, version)
    wanted = "%s-%s" % (app_sha256(), version)
    with images_lock():
        if image_label(image, IMAGE_HASH_LABEL) != wanted:
            build_release_image(image, version, wanted)
    return image


def build_release_image(image: str, version: str, wanted: str) -> None:
    if not any((REPO / "examples" / "orchestrator" / "wheelhouse").glob("*.whl")):
        build_wheelhouse()
    build_labelled_image(image, REPO / "examples" / "orchestrator", wanted, app_version=version)


@pytest.fixture(scope="session")
def release_images(orchestrator_image):
    """Builds a release's image on first use; orchestrator_image made the base images and the wheelhouse."""
    return release_image


class DeployTarget:
    """One environment of the example app on this machine, deployed by the real playbooks."""

    def __init__(self, root: Path, environment: str = "e2e", password: str | None = None):
        self.project = "sdm-%s-%s" % (environment, uuid.uuid4().hex[:6])
        self.environment_name = environment
        self.root = root
        self.stack_dir = root / "stack"
        self.postgres_port = free_port()
        self.app_port = free_port()
        self.password = password or secrets.token_urlsafe(16)
        self.inventory = root / "inventory"
        self.promotion_store = root / "promotion"
        (self.inventory / "group_vars").mkdir(parents=True)
        (self.inventory / "hosts.yml").write_text(LOCAL_HOSTS)
        (self.inventory / "group_vars" / "all.yml").write_text(
            INVENTORY_VARS.format(
                environment=environment,
                project=self.project,
                stack_dir=self.stack_dir,
                image=RELEASE_IMAGE,
                postgres_port=self.postgres_port,
                app_port=self.app_port,
                password_variable=PASSWORD_VARIABLE,
                promotion_store=self.promotion_store,
            )
        )

    @property
    def environment(self) -> dict:
        # no PG* variables: the playbooks must find the database from the inventory alone
        env = {name: value for name, value in playbook_environment(None).items() if not name.startswith("PG")}
        env[PASSWORD_VARIABLE] = self.password
        return env

    def command(self, playbook: str, check: bool = False, diff: bool = False, inventory: Path | None = None, **extra):
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory or self.inventory)]
        argv += [str(REPO / "playbooks" / playbook), "-e", json.dumps(extra)]
        return argv + (["--check"] if check else []) + (["--diff"] if diff else [])

    def run(self, playbook: str, check: bool = False, diff: bool = False, env: dict | None = None, **extra) -> Playbook:
        completed = subprocess.run(
            self.command(playbook, check, diff, **extra),
            env=dict(self.environment, **(env or {})),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        return Playbook(completed)

    def start(self, playbook: str, **extra) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(playbook, **extra),
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def deploy(self, app_version: str, **kwargs) -> Playbook:
        return self.run("deploy.yml", app_version=app_version, **kwargs)

    @property
    def app_url(self) -> str:
        return "http://127.0.0.1:%d" % self.app_port

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.app_url + "/health", timeout=3) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:  # the proxy's own error page while no replica answers
                return error.code, {"error": body.decode(errors="replace")}
        except OSError as error:
            return 0, {"error": str(error)}

    def connect(self, **kwargs):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.postgres_port,
            user="orchestrator",
            password=self.password,
            dbname="orchestrator",
            autocommit=True,
            **kwargs,
        )

    def scalar(self, query: str, params=None):
        with self.connect() as connection:
            row = connection.execute(query, params).fetchone()
            return row[0] if row else None

    def revision(self) -> str | None:
        return self.scalar("SELECT string_agg(version_num, ',') FROM alembic_version")

    def ledger(self) -> list[dict]:
        with self.connect(row_factory=psycopg.rows.dict_row) as connection:
            return connection.execute("SELECT * FROM safedeploy.deploys ORDER BY id").fetchall()

    def files(self) -> dict:
        """Every path under root (stack directory, backups, reports, promotion store, inventory) -> (mtime in ns,
        size) of a file, None for a directory: two listings differ when a run wrote, added or removed anything."""
        return {
            str(path.relative_to(self.root)): None if path.is_dir() else (path.stat().st_mtime_ns, path.stat().st_size)
            for path in self.root.rglob("*")
        }

    def containers(self) -> dict:
        """service -> (container id, started at) of the long-running services."""
        found = {}
        for line in docker(
            "ps", "--filter", "label=com.docker.compose.project=%s" % self.project, "--format", "{{.Names}}"
        ).split():
            inspect = json.loads(docker("inspect", line))[0]
            labels = inspect["Config"]["Labels"]
            if labels.get("com.docker.compose.oneoff") != "True":
                found[labels["com.docker.compose.service"]] = (inspect["Id"], inspect["State"]["StartedAt"])
        return found

    @contextlib.contextmanager
    def containers_created(self) -> Iterator[list]:
        """(service, image) of every container of the project the engine creates inside the block, removed ones
        included. Followed live: the engine keeps only its last 256 events, and healthchecks fill that quickly."""
        follower = subprocess.Popen(
            [
                "docker", "events", "--filter", "type=container", "--filter", "event=create",
                "--filter", "label=com.docker.compose.project=%s" % self.project,
                "--format", '{{index .Actor.Attributes "com.docker.compose.service"}} {{.Actor.Attributes.image}}',
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        created: list = []
        try:
            yield created
        finally:
            follower.terminate()
            lines = follower.communicate(timeout=30)[0].splitlines()
            created.extend(tuple(line.split(" ", 1)) for line in lines if line.strip())

    def compose(self, *args: str) -> list[str]:
        """`docker compose` arguments for the stack's files as the playbooks write them (built-in compose file)."""
        stack = str(self.stack_dir)
        return [
            "compose", "--project-directory", stack, "-p", self.project, "--env-file", stack + "/.env",
            "-f", stack + "/compose.yml", "-f", stack + "/compose.safedeploy.yml", *args,
        ]  # fmt: skip

    def down(self) -> None:
        remove_project_containers(self.project)
        docker("volume", "rm", "%s_pgdata" % self.project, check=False)
        docker("network", "rm", "%s_default" % self.project, check=False)


class RepositoryInventory(DeployTarget):
    """A DeployTarget whose inventory is a copy of inventories/<name> pointed at this machine.

    The copy keeps the repository's group_vars (environment name, password lookup, strategy, promotion gate...) and
    gets one more file, group_vars/all/this_machine.yml: a directory, free ports, the locally built image instead of
    the registry's, and the promotion evidence store.
    """

    def __init__(self, root: Path, name: str, hosts_yml: str = LOCAL_HOSTS, promotion_store: Path | None = None):
        super().__init__(root, environment=name)
        shutil.rmtree(self.inventory)
        shutil.copytree(REPO / "inventories" / name, self.inventory)
        (self.inventory / "hosts.yml").write_text(hosts_yml)
        self.use_promotion_store(promotion_store or root / "promotion")

    def use_promotion_store(self, promotion_store: Path) -> None:
        self.promotion_store = promotion_store
        (self.inventory / "group_vars" / "all" / "this_machine.yml").write_text(
            THIS_MACHINE.format(
                stack_dir=self.stack_dir,
                project=self.project,
                image=RELEASE_IMAGE,
                postgres_port=self.postgres_port,
                app_port=self.app_port,
                promotion_store=promotion_store,
                python=sys.executable,
            )
        )


def deploy_target_lifetime(root: Path, **kwargs) -> Iterator[DeployTarget]:
    """A fixture's DeployTarget (kwargs: environment, password), its compose project removed afterwards."""
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    target = DeployTarget(root, **kwargs)
    try:
        yield target
    finally:
        target.down()


@pytest.fixture(scope="module")
def deploy_target(tmp_path_factory, release_images):
    yield from deploy_target_lifetime(tmp_path_factory.mktemp("deploy"))
