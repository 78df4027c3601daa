# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the collection as users get it: the Galaxy tarball, installed offline, playbooks run by FQCN.

A test module loads them with `pytest_plugins = ("installed_collection",)`. `galaxy_tarball` builds the repository
with `ansible-galaxy collection build` once per session into .build/galaxy; `installed_collection` installs that
tarball with `--offline` into a temporary collections path and runs `ansible-playbook safedeploy.migrations.<name>`
from a temporary directory outside the repository, with ANSIBLE_COLLECTIONS_PATH naming that path and the `ansible`
package's bundled collections (community.docker, community.postgresql, ansible.posix, awx.awx) and nothing else: no
variable of the calling shell that points at the repository reaches the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import BUILD, REPO, Playbook

BIN = Path(sys.executable).parent
GALAXY_BUILD = BUILD / "galaxy"
# the `ansible` package installs its collections here, next to ansible-core
BUNDLED_COLLECTIONS = Path(sysconfig.get_paths()["purelib"])
# what a user's shell may hold and a run from the installed collection must not inherit from ours
INHERITED_PREFIXES = ("ANSIBLE_", "PYTHONPATH")


def galaxy_metadata() -> dict:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())


@contextlib.contextmanager
def galaxy_lock():
    """Held while the tarball is built and installed: pytest-xdist workers share .build/galaxy."""
    GALAXY_BUILD.mkdir(parents=True, exist_ok=True)
    with open(GALAXY_BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def outside_environment(collections_path: str, extra: dict | None = None) -> dict:
    """The caller's environment without its Ansible settings and PYTHONPATH, then only the given collections."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(INHERITED_PREFIXES)}
    env.update(
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")]),
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        # only ANSIBLE_COLLECTIONS_PATH: no collection found on sys.path by chance
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    env.update(extra or {})
    return env


def build_tarball(output: Path) -> Path:
    """`ansible-galaxy collection build` of the repository as a maintainer runs it for a release."""
    metadata = galaxy_metadata()
    for stale in output.glob("%s-%s-*.tar.gz" % (metadata["namespace"], metadata["name"])):
        stale.unlink()
    completed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(output), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if completed.returncode != 0:
        pytest.fail("ansible-galaxy collection build failed:\n%s%s" % (completed.stdout, completed.stderr))
    return output / ("%s-%s-%s.tar.gz" % (metadata["namespace"], metadata["name"], metadata["version"]))


class InstalledCollection:
    """The tarball installed into root/ansible_collections; playbooks run by FQCN with workdir as their cwd."""

    def __init__(self, tarball: Path, root: Path, workdir: Path):
        self.tarball = tarball
        self.root = root
        self.workdir = workdir
        self.bundled = BUNDLED_COLLECTIONS
        self.collections_path = os.pathsep.join([str(root), str(BUNDLED_COLLECTIONS)])
        self.path = root / "ansible_collections" / "safedeploy" / "migrations"

    def environment(self, extra: dict | None = None) -> dict:
        return outside_environment(self.collections_path, extra)

    def install(self) -> subprocess.CompletedProcess:
        """`ansible-galaxy collection install <tarball> -p root --offline`: no Galaxy server is asked."""
        return self.galaxy("collection", "install", str(self.tarball), "-p", str(self.root), "--offline")

    def galaxy(self, *argv: str) -> subprocess.CompletedProcess:
        """ansible-galaxy with the installed collection's environment, from workdir."""
        return subprocess.run(
            [str(BIN / "ansible-galaxy"), *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.workdir,
            env=self.environment(),
        )

    def command(self, playbook: str, *argv: str) -> list:
        return [str(BIN / "ansible-playbook"), "safedeploy.migrations.%s" % playbook, *argv]

    def run(
        self, playbook: str, *argv: str, env: dict | None = None, json_output: bool = True, timeout: int = 900
    ) -> Playbook:
        """`ansible-playbook safedeploy.migrations.<playbook> <argv>` from workdir; argv carries -i, -e, --check...

        json_output: the ansible.posix.json callback, read by Playbook (task(), failures()); without it, the
        default callback's text in stdout.
        """
        extra = dict(env or {})
        if json_output:
            extra.setdefault("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        completed = subprocess.run(
            self.command(playbook, *argv),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd=self.workdir,
            env=self.environment(extra),
        )
        return Playbook(completed)


@pytest.fixture(scope="session")
def galaxy_tarball() -> Path:
    """The collection's Galaxy tarball, built once per session into .build/galaxy."""
    with galaxy_lock():
        return build_tarball(GALAXY_BUILD)


@pytest.fixture(scope="session")
def installed_collection(galaxy_tarball, tmp_path_factory) -> InstalledCollection:
    """The tarball installed offline into a temporary collections path, used from a directory outside the repository."""
    installed = InstalledCollection(
        galaxy_tarball, tmp_path_factory.mktemp("collections"), tmp_path_factory.mktemp("outside")
    )
    with galaxy_lock():
        completed = installed.install()
    if completed.returncode != 0:
        pytest.fail("offline install of %s failed:\n%s%s" % (galaxy_tarball, completed.stdout, completed.stderr))
    return installed
