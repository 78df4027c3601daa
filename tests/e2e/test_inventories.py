# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository's staging and production inventories, deployed to this machine, and a deploy over SSH.

Each test copies an inventory of the repository, keeps its group_vars (the environment name, the password lookup,
the strategy, production's promotion gate...) and adds one file that points the stack at this machine: a directory,
free ports, the locally built image instead of the registry's, and an evidence store shared by the test's inventories.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from compose_stack import free_port
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


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError("sshd did not listen on port %d" % port)


@pytest.fixture
def loopback_sshd(tmp_path):
    """An sshd of its own on a loopback port, key authentication only, for this test's key."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("openssh-server is not installed; run `make test-packages`")
    directory = tmp_path / "sshd"
    directory.mkdir(mode=0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                "Port %d" % port,
                "HostKey %s" % (directory / "host_key"),
                "AuthorizedKeysFile %s" % (directory / "authorized_keys"),
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "PidFile %s" % (directory / "sshd.pid"),
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        yield port, directory / "client_key"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def ssh_hosts(port: int, key: Path) -> str:
    return (
        "all:\n  children:\n    app:\n      hosts:\n        staging-app-1:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: %d\n          ansible_user: root\n"
        "          ansible_become: false\n          ansible_ssh_private_key_file: %s\n"
        "          ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n"
    ) % (port, key)


def test_deploy_over_ssh(repository_inventory, loopback_sshd):
    port, key = loopback_sshd
    staging = repository_inventory("staging", ssh_hosts(port, key))
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
