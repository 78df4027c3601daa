# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the storefront example (examples/storefront): its release images and the team's own compose file.

A test module loads them with `pytest_plugins = ("storefront_stack",)`. `storefront_images(version)` builds
storefront-example:<version> on first use and again only when the files the image is built from change (under
the same lock as the other example's images). A StorefrontProject is one project of the team's
docker-compose.prod.yml, run with plain `docker compose` in a directory of its own: a copy of the file and a
generated .env.production (random password and secrets, free WEB_PORT), no collection involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from compose_stack import (
    IMAGE_HASH_LABEL,
    build_labelled_image,
    docker_works,
    free_port,
    image_exists,
    image_label,
    images_lock,
    remove_project_containers,
)
from conftest import REPO

STOREFRONT = REPO / "examples" / "storefront"
STOREFRONT_IMAGE = "storefront-example"
COMPOSE_FILE_NAME = "docker-compose.prod.yml"
ENV_FILE_NAME = ".env.production"
# what the Dockerfile copies: the compose file, inventory and docs do not change the image
IMAGE_INPUTS = (
    "Dockerfile",
    "requirements.txt",
    "alembic.ini",
    "releases.yml",
    "prune_revisions.py",
    "storefront",
    "migrations",
)
STANDINS = {"postgres": "postgres:15-bookworm", "python": "python:3.11-slim-bookworm", "redis": "redis:7-bookworm"}
WHEELHOUSE = STOREFRONT / "wheelhouse"
# the requirements.txt the wheelhouse was downloaded for
WHEELHOUSE_STAMP = WHEELHOUSE / ".requirements-sha256"
DB_USER = DB_NAME = "storefront"


def storefront_releases() -> dict[str, dict]:
    """version -> its entry of releases.yml."""
    releases = yaml.safe_load((STOREFRONT / "releases.yml").read_text())["releases"]
    return {release["version"]: release for release in releases}


def storefront_sha256() -> str:
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        top = STOREFRONT / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(STOREFRONT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_standins() -> None:
    missing = [name for name, tag in STANDINS.items() if not image_exists(tag)]
    if missing:
        subprocess.run([str(REPO / "scripts" / "build_images.sh"), *missing], check=True)


def ensure_wheelhouse() -> None:
    wanted = hashlib.sha256((STOREFRONT / "requirements.txt").read_bytes()).hexdigest()
    if WHEELHOUSE_STAMP.is_file() and WHEELHOUSE_STAMP.read_text() == wanted:
        return
    script = STOREFRONT / "build_wheelhouse.sh"
    subprocess.run([str(script)], check=True, env=dict(os.environ, PYTHON=sys.executable))
    WHEELHOUSE_STAMP.write_text(wanted)


def storefront_image(version: str) -> str:
    """storefront-example:<version>, built again only when the image's files changed since."""
    image = "%s:%s" % (STOREFRONT_IMAGE, version)
    wanted = "%s-%s" % (storefront_sha256(), version)
    with images_lock():
        if image_label(image, IMAGE_HASH_LABEL) != wanted:
            ensure_standins()
            ensure_wheelhouse()
            build_labelled_image(image, STOREFRONT, wanted, app_version=version)
    return image


@pytest.fixture(scope="session")
def storefront_images():
    """Builds a release's image on first use: storefront_images("1.0.0") -> "storefront-example:1.0.0"."""
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    return storefront_image


class StorefrontProject:
    """One project of the team's docker-compose.prod.yml, driven the way the team drives it by hand."""

    def __init__(self, root: Path, app_version: str):
        self.root = root
        self.project = "sdm-sf-%s" % uuid.uuid4().hex[:8]
        self.password = secrets.token_urlsafe(16)
        self.web_port = free_port()
        self.env = {
            "APP_VERSION": app_version,
            "POSTGRES_USER": DB_USER,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": DB_NAME,
            "DATABASE_URL": "postgresql+psycopg://%s:%s@postgres:5432/%s" % (DB_USER, self.password, DB_NAME),
            "REDIS_URL": "redis://redis:6379/0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "API_TOKEN": secrets.token_urlsafe(32),
            "WEB_PORT": str(self.web_port),
        }
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(STOREFRONT / COMPOSE_FILE_NAME, root / COMPOSE_FILE_NAME)
        self.write_env(self.env)

    def write_env(self, env: dict) -> None:
        env_file = self.root / ENV_FILE_NAME
        env_file.touch(mode=0o600)
        env_file.write_text("".join("%s=%s\n" % item for item in env.items()))

    def compose(self, *args: str, check: bool = True, timeout: float = 180, env: dict | None = None):
        argv = ["docker", "compose", "-p", self.project, "--env-file", str(self.root / ENV_FILE_NAME)]
        argv += ["-f", str(self.root / COMPOSE_FILE_NAME), *args]
        completed = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=timeout, env=dict(os.environ, **(env or {}))
        )
        if check and completed.returncode != 0:
            raise AssertionError("%s failed (rc %d): %s" % (" ".join(args), completed.returncode, completed.stderr))
        return completed

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.web_port, path)

    def request(self, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        request = urllib.request.Request(self.url(path), data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except OSError as error:
            return 0, str(error)

    def wait_for(self, path: str, expected: tuple[int, object], timeout: float = 30) -> tuple[int, object]:
        deadline = time.monotonic() + timeout
        answer = self.request(path)
        while answer != expected and time.monotonic() < deadline:
            time.sleep(0.3)
            answer = self.request(path)
        return answer

    def states(self) -> dict[str, tuple[str, int]]:
        """service -> (state, exit code) of every container of the project, one-offs excluded."""
        output = self.compose("ps", "--all", "--format", "json").stdout.strip()
        # Compose 2.21+ prints one object per line, older ones a list
        rows = json.loads(output) if output.startswith("[") else [json.loads(line) for line in output.splitlines()]
        return {row["Service"]: (row["State"], row["ExitCode"]) for row in rows}

    def sql(self, query: str, database: str = DB_NAME) -> list[str]:
        """Rows of psql in the postgres container, over its socket (trusted there, so no password)."""
        argv = ["exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1"]
        return self.compose(*argv, "-c", query).stdout.splitlines()

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        # one-off containers of a `compose run` that was killed outlive `down`
        remove_project_containers(self.project)
