# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository's staging and production inventories, deployed to this machine, and a deploy over SSH.

Each test copies an inventory of the repository, keeps its group_vars (the environment name, the password lookup,
the strategy, production's promotion gate...) and adds one file that points the stack at this machine: a directory,
free ports, the locally built image instead of the registry's, and an evidence store shared by the test's inventories.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_stack import LOCAL_HOSTS, RepositoryInventory
from ssh_server import ssh_hosts

pytest_plugins = ("compose_stack", "deploy_stack", "ssh_server")


@pytest.fixture
def repository_inventory(tmp_path, release_images):
    release_images("1.2.0")
    made = []

    def make(name: str, hosts_yml: str = LOCAL_HOSTS) -> RepositoryInventory:
        # one evidence store for the test: production's promotion gate reads what staging wrote
        made.append(RepositoryInventory(tmp_path / name, name, hosts_yml, promotion_store=tmp_path / "promotion"))
        return made[-1]

    yield make
    for target in made:
        target.down()


def test_staging_then_production_differ_only_by_inventory(repository_inventory):
    staging, production = repository_inventory("staging"), repository_inventory("production")
    assert staging.deploy("1.2.0").rc == 0
    assert staging.health()[1]["app_version"] == "1.2.0"
    playbook = production.run("deploy.yml", app_version="1.2.0", env={"ANSIBLE_VERBOSITY": "3"})
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert production.password not in playbook.stdout + playbook.stderr
    for target, environment in ((staging, "staging"), (production, "production")):
        status, health = target.health()
        assert (status, health["app_version"], health["revision"]) == (200, "1.2.0", "0003_jobs_queue_index")
        assert [(row["environment"], row["outcome"]) for row in target.ledger()] == [(environment, "succeeded")]
    # production's promotion gate let 1.2.0 through on the evidence staging left in the store
    assert production.ledger()[0]["details"]["promotion"]["status"] == "promoted"
    assert staging.project != production.project and staging.containers().keys() == production.containers().keys()


def test_deploy_over_ssh(repository_inventory, loopback_sshd):
    staging = repository_inventory("staging", ssh_hosts(loopback_sshd))
    # interpreter discovery over the SSH connection, as a first contact with a new host does it; candidates limited
    # to the system Python because root's shell here puts pyenv shims first, which discovery would pick
    ansible = str(Path(sys.executable).parent / "ansible")
    discover = dict(ansible_python_interpreter="auto_silent", ansible_interpreter_python_fallback=["/usr/bin/python3"])
    setup = ["-m", "ansible.builtin.setup", "-a", "filter=ansible_python", "-e", json.dumps(discover)]
    discovery = subprocess.run(
        [ansible, "all", "-i", str(staging.inventory), *setup],
        env=staging.environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert discovery.returncode == 0, discovery.stdout[-2000:] + discovery.stderr[-2000:]
    assert '"discovered_interpreter_python": "/usr/bin/python3"' in discovery.stdout
    playbook = staging.deploy("1.2.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert playbook.report["stats"]["staging-app-1"]["failures"] == 0
    status, health = staging.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.2.0", "0003_jobs_queue_index")
