# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Galaxy tarball installed offline and its playbooks run by FQCN from a directory outside the repository.

What a user does: `ansible-galaxy collection install <tarball> --offline`, then `ansible-playbook
safedeploy.migrations.<name> -i <their inventory>` from their own directory. The imports, vars files and task files
of the playbooks must resolve from the installed collection, and no file of the repository may be needed.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import yaml
from conftest import REPO

pytest_plugins = ("installed_collection",)

PLAYBOOKS = sorted(path.stem for path in (REPO / "playbooks").glob("*.yml"))
NOT_DEPLOYED_HOSTS = """all:
  children:
    app:
      hosts:
        localhost:
          ansible_connection: local
"""


def closed_port() -> int:
    """A loopback port nothing listens on: the port of a socket bound and closed again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_only_copy_of_the_collection_is_the_installed_one(installed_collection):
    assert REPO not in installed_collection.workdir.parents and REPO not in installed_collection.root.parents
    listing = installed_collection.galaxy("collection", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    holders = sorted(path for path, found in json.loads(listing.stdout).items() if "safedeploy.migrations" in found)
    assert holders == [str(installed_collection.root / "ansible_collections")]
    # the ansible package's bundled collections satisfied the dependencies: --offline needed no --no-deps
    dependencies = yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]
    bundled = installed_collection.bundled / "ansible_collections"
    assert [name for name in dependencies if not (bundled / name.replace(".", "/")).is_dir()] == []


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_passes_its_syntax_check_by_fqcn(installed_collection, playbook):
    assert {"deploy", "rollback", "status", "backup", "restore", "rehearse", "test_migrations", "awx_setup"} <= set(
        PLAYBOOKS
    )
    result = installed_collection.run(playbook, "--syntax-check", json_output=False)
    assert result.rc == 0, result.stdout + result.stderr
    # the playbook and what it imports (plays/inventory_check.yml, tasks/awx_workflow.yml) came from the install
    assert "playbook: %s/playbooks/%s.yml" % (installed_collection.path, playbook) in result.stdout


def test_status_of_a_stack_that_is_not_deployed_ends_well(installed_collection, tmp_path):
    project = "sdm-absent-%s" % uuid.uuid4().hex[:6]
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(NOT_DEPLOYED_HOSTS)
    (inventory / "group_vars" / "all.yml").write_text(
        yaml.safe_dump({"stack_project": project, "stack_dir": str(tmp_path / "stack"), "stack_db_password": "unused"})
    )

    result = installed_collection.run("status", "-i", str(inventory))

    assert result.rc == 0, result.failures()
    report = result.task("Report a host without the stack")
    stack_dir = tmp_path / "stack"
    assert report["msg"] == "%s is not deployed on this host: there is no %s/compose.yml" % (project, stack_dir)
    assert not result.ran("Write the JSON report")
    assert not stack_dir.exists()


def test_awx_setup_finds_its_vars_and_task_files(installed_collection):
    """Started at the task that includes tasks/awx_job_template.yml, for each entry of vars/awx_setup.yml's lists.

    No AWX server answers here, so the first awx.awx task of the included file fails connecting to it: reaching it
    proves both relative paths resolved inside the installed collection.
    """
    controller = "http://127.0.0.1:%d" % closed_port()
    result = installed_collection.run(
        "awx_setup",
        "--start-at-task",
        "Create the job templates",
        env={"CONTROLLER_HOST": controller, "CONTROLLER_OAUTH_TOKEN": "not-a-token"},
    )

    assert result.rc != 0
    included = result.task("Create the job templates")
    assert [item["include"] for item in included["results"]] == ["tasks/awx_job_template.yml"] * 10
    failed = result.task("Create the job template staging deploy")
    assert failed["failed"] and controller in failed["msg"], result.failures()
