# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/demo_down.sh (`make demo-down`) on a project of its own: what it removes, what it leaves, and why."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from compose_stack import docker, docker_works
from conftest import REPO

pytest_plugins = ("compose_stack",)
IMAGE = "python:3.11-slim-bookworm"


def demo_down(project: str, directory) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "scripts" / "demo_down.sh"), project, str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path, orchestrator_image):
    """A project as compose labels it (a container, a volume, its network) and a side container on that network."""
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    name = "sdm-down-%s" % uuid.uuid4().hex[:6]
    label = "com.docker.compose.project=%s" % name
    docker("network", "create", "--label", label, "%s_default" % name)
    docker("volume", "create", "--label", label, "%s_pgdata" % name)
    docker("run", "-d", "--label", label, "--network", "%s_default" % name, IMAGE, "sleep", "300")
    side = "%s-side" % name
    docker("run", "-d", "--name", side, "--network", "%s_default" % name, IMAGE, "sleep", "300")
    (tmp_path / "demo" / "stack").mkdir(parents=True)
    yield name, side, tmp_path / "demo"
    docker("rm", "--force", side, check=False)
    docker("network", "rm", "%s_default" % name, check=False)


def test_a_network_another_project_uses_is_left_and_named(project):
    name, side, directory = project
    first = demo_down(name, directory)
    assert first.returncode == 0, first.stderr
    assert "removed 1 container(s), volume(s) %s_pgdata, %s" % (name, directory) in first.stdout, first.stdout
    assert "left network %s_default, still used by %s" % (name, side) in first.stdout, first.stdout
    assert not directory.exists()
    assert docker("ps", "-aq", "--filter", "label=com.docker.compose.project=%s" % name).strip() == ""
    docker("rm", "--force", side)
    second = demo_down(name, directory)
    assert (second.returncode, second.stdout.strip()) == (0, "demo-down: removed network %s_default" % name)
    third = demo_down(name, directory)
    assert third.returncode == 0 and "nothing to remove" in third.stdout, third.stdout
