# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository's staging and production inventories, deployed to this machine (over SSH: test_faults_ssh.py).

Each test copies an inventory of the repository, keeps its group_vars (the environment name, the password lookup,
the strategy, production's promotion gate...) and adds one file that points the stack at this machine: a directory,
free ports, the locally built image instead of the registry's, and an evidence store shared by the test's inventories.
"""

from __future__ import annotations

import pytest
from deploy_stack import LOCAL_HOSTS, RepositoryInventory

pytest_plugins = ("compose_stack", "deploy_stack")


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
