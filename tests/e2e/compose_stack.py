# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for alembic_migrate through a compose one-shot: the example app's image and a compose stack.

A test module loads them with `pytest_plugins = ("compose_stack",)`. The stack is compose/migration-stack.yml
under a project name of its own: the stack's postgres, published on a loopback port for the module's own
connection, and the `migration` one-shot that runs the image's alembic.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import (
    EXAMPLE_APP,
    REPO,
    Database,
    Playbook,
    finish_playbook,
    playbook_command,
    playbook_environment,
)

COMPOSE_FILE = Path(__file__).resolve().parent / "compose" / "migration-stack.yml"
IMAGE = "orchestrator-example:e2e"
IMAGE_HASH_LABEL = "io.safedeploy.e2e.app-sha256"
BASE_IMAGES = ("postgres:15-bookworm", "python:3.11-slim-bookworm")
STACK_USER = "orchestrator"


def docker(*args: str, check: bool = True, env: dict | None = None, timeout: float = 600) -> str:
    completed = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, env=env, timeout=timeout)
    if check and completed.returncode != 0:
        raise RuntimeError("docker %s failed (rc %d): %s" % (" ".join(args), completed.returncode, completed.stderr))
    return completed.stdout


def remove_project_containers(project: str) -> None:
    """Every container of the compose project, one-offs of a killed `compose run` included, with their anonymous
    volumes (named ones stay for the caller)."""
    leftovers = docker("ps", "-aq", "--filter", "label=com.docker.compose.project=%s" % project, check=False).split()
    if leftovers:
        docker("rm", "--force", "--volumes", *leftovers, check=False)


def docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0 and (
        subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    )


def app_sha256() -> str:
    """sha256 over the files the image is built from (the wheelhouse follows requirements.txt)."""
    digest = hashlib.sha256()
    for path in sorted(EXAMPLE_APP.rglob("*")):
        relative = path.relative_to(EXAMPLE_APP)
        if not path.is_file() or relative.parts[0] == "wheelhouse" or "__pycache__" in relative.parts:
            continue
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0


def image_label(image: str, label: str) -> str | None:
    output = docker("image", "inspect", "-f", '{{index .Config.Labels "%s"}}' % label, image, check=False)
    return output.strip() or None


@contextlib.contextmanager
def images_lock():
    """Held while images are built: pytest-xdist workers must not build the same image or wheelhouse at once."""
    with open(os.path.join(tempfile.gettempdir(), "safedeploy-e2e-images.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def orchestrator_image() -> str:
    """The example app's image, built once and again only when the app's files change."""
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    with images_lock():
        return build_orchestrator_image()


def build_wheelhouse() -> None:
    """The wheels the image installs; every image build needs them, also a fresh clone's whose app image is cached."""
    subprocess.run([str(EXAMPLE_APP / "build_wheelhouse.sh")], check=True, env=dict(os.environ, PYTHON=sys.executable))


def build_orchestrator_image() -> str:
    wanted = app_sha256()
    if image_label(IMAGE, IMAGE_HASH_LABEL) == wanted:
        return IMAGE
    if not all(map(image_exists, BASE_IMAGES)):
        subprocess.run([str(REPO / "scripts" / "build_images.sh"), "postgres", "python"], check=True)
    # on every build, not only when the wheelhouse is missing: it must follow requirements.txt (cheap when it does)
    build_wheelhouse()
    build_labelled_image(IMAGE, EXAMPLE_APP, wanted)
    return IMAGE


def build_labelled_image(image: str, context: Path, wanted: str, app_version: str | None = None) -> None:
    """docker build of context as image, labelled with the hash of its files; the image it replaces is removed."""
    superseded = docker("image", "inspect", "-f", "{{.Id}}", image, check=False).strip()
    build_args = ["--build-arg", "APP_VERSION=%s" % app_version] if app_version else []
    # bookworm's engine has no buildx plugin; the classic builder caches the wheel install layer just as well
    docker(
        "build", "--quiet", *build_args, "--label", "%s=%s" % (IMAGE_HASH_LABEL, wanted), "-t", image, str(context),
        env=dict(os.environ, DOCKER_BUILDKIT="0"),
    )  # fmt: skip
    if superseded and superseded != docker("image", "inspect", "-f", "{{.Id}}", image, check=False).strip():
        # the image of the previous files, unless a container still uses it
        docker("image", "rm", superseded, check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComposeStack:
    """One compose project of migration-stack.yml; every `docker compose` call gets the same variables."""

    def __init__(self, image: str):
        self.project = "sdm-e2e-%s" % uuid.uuid4().hex[:8]
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.image = image

    @property
    def environment(self) -> dict:
        """What compose interpolates; a `compose run` that saw other values would recreate postgres under us."""
        return {
            "PGUSER": STACK_USER,
            "PGPASSWORD": self.password,
            "POSTGRES_PORT": str(self.port),
            "ORCHESTRATOR_IMAGE": self.image,
        }

    @property
    def server(self) -> dict:
        """The published postgres in the shape conftest's Database takes."""
        return {"host": "127.0.0.1", "port": self.port, "user": STACK_USER, "password": self.password}

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return docker(
            "compose",
            "-p",
            self.project,
            "-f",
            str(COMPOSE_FILE),
            *args,
            check=check,
            env=dict(os.environ, **self.environment),
            timeout=timeout,
        )

    def runner(self, *alembic_args: str, pass_env: tuple[str, ...] = ()) -> list[str]:
        """The alembic_migrate runner: a one-shot of the migration service that receives PGOPTIONS."""
        passed = [arg for name in ("PGOPTIONS", *pass_env) for arg in ("-e", name)]
        argv = ["docker", "compose", "-p", self.project, "-f", str(COMPOSE_FILE), "run", "--rm", "-T"]
        return [*argv, *passed, "migration", "alembic", *alembic_args]

    def one_off_containers(self, all_states: bool = False) -> list[str]:
        filters = ["--filter", "label=com.docker.compose.project=%s" % self.project]
        filters += ["--filter", "label=com.docker.compose.oneoff=True"]
        return docker("ps", "-q", *(["-a"] if all_states else []), *filters).split()

    def up(self) -> None:
        self.compose("up", "--detach", "--wait", "postgres")

    def remove_one_offs(self) -> None:
        # a one-shot whose compose client was killed keeps running; `down` alone may leave it behind
        leftovers = self.one_off_containers(all_states=True)
        if leftovers:
            docker("rm", "--force", "--volumes", *leftovers, check=False)

    def down(self) -> None:
        self.remove_one_offs()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture(scope="session")
def compose_stack(orchestrator_image):
    stack = ComposeStack(orchestrator_image)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def stack_database(compose_stack):
    """A fresh database in the stack's own postgres, reached by the host on the published port."""
    name = "e2e_%s" % uuid.uuid4().hex[:10]
    server = compose_stack.server
    with psycopg.connect(dbname="orchestrator", autocommit=True, **server) as admin:
        admin.execute('CREATE DATABASE "%s"' % name)
    yield Database(server, name)
    with psycopg.connect(dbname="orchestrator", autocommit=True, **server) as admin:
        admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def stack_playbook_environment(stack: ComposeStack, database: Database, extra: dict | None = None) -> dict:
    """PG* for the module's own connection, the compose variables for its runner, MIGRATION_DB for the one-shot."""
    variables = {name: value for name, value in stack.environment.items() if not name.startswith("PG")}
    variables["MIGRATION_DB"] = database.name
    variables.update(extra or {})
    return playbook_environment(database, variables)


def start_stack_playbook(stack: ComposeStack, database: Database, env: dict | None = None, **extra_vars):
    return subprocess.Popen(
        playbook_command("migrate.yml", dict(extra_vars, db=database.name)),
        env=stack_playbook_environment(stack, database, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.fixture
def run_stack_playbook(compose_stack, stack_database):
    def run(env: dict | None = None, **extra_vars) -> Playbook:
        return finish_playbook(start_stack_playbook(compose_stack, stack_database, env, **extra_vars))

    return run
