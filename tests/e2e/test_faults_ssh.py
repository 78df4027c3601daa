# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario 3: the SSH connection to the target host is cut during the migration.

The deploy runs over SSH to this machine (ssh_server.py). While the slow revision's pg_sleep runs, every SSH session
is killed and the server stops answering, as when the network drops. The migration runs as an async job detached
from the session, so it goes on and commits; the controller's polls fail and are retried within the step's budget
(stack_async_timeout). Once SSH answers again the same run reads the job's result and completes. A run that is
killed meanwhile leaves the next run to take over and reconcile, as test_faults.py shows for a local connection.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from deploy_stack import deploy_target_lifetime
from ssh_server import cut, restore, ssh_hosts
from test_faults import HEADS, assert_consistent, finish, lock_phase, slow_revision_running, write_canary

pytest_plugins = ("compose_stack", "deploy_stack", "ssh_server")


@pytest.fixture
def ssh_target(tmp_path_factory, release_images, loopback_sshd):
    """1.1.0 deployed over SSH with pipelining, after the host's Python was discovered over it, as a first contact
    with a new host does; the canary row written."""
    for version in ("1.1.0", "1.4.0-slow"):
        release_images(version)
    for target in deploy_target_lifetime(tmp_path_factory.mktemp("ssh-cut")):
        (target.inventory / "hosts.yml").write_text(ssh_hosts(loopback_sshd, pipelining=True))
        assert_python_discovered(target)
        first = target.deploy("1.1.0")
        assert first.rc == 0, first.failures()
        assert first.report["stats"]["staging-app-1"]["failures"] == 0
        write_canary(target)
        yield target


def assert_python_discovered(target) -> None:
    """Interpreter discovery over the SSH connection; candidates limited to the system Python because root's shell
    here puts pyenv shims first, which discovery would pick."""
    ansible = str(Path(sys.executable).parent / "ansible")
    discover = dict(ansible_python_interpreter="auto_silent", ansible_interpreter_python_fallback=["/usr/bin/python3"])
    setup = ["-m", "ansible.builtin.setup", "-a", "filter=ansible_python", "-e", json.dumps(discover)]
    discovery = subprocess.run(
        [ansible, "all", "-i", str(target.inventory), *setup],
        env=target.environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert discovery.returncode == 0, discovery.stdout[-2000:] + discovery.stderr[-2000:]
    assert '"discovered_interpreter_python": "/usr/bin/python3"' in discovery.stdout


def test_a_cut_during_the_migration_leaves_it_running_and_the_run_completes_once_ssh_answers(ssh_target, loopback_sshd):
    process = ssh_target.start("deploy.yml", app_version="1.4.0-slow")
    wait_for(
        lambda: lock_phase(ssh_target) == "migration" and slow_revision_running(ssh_target),
        240,
        "the deploy to run the slow revision",
    )
    sessions = cut(loopback_sshd)
    try:
        assert sessions, "no SSH session was open during the migration"
        # with no connection to its host, the migration goes on and commits
        wait_for(
            lambda: not slow_revision_running(ssh_target) and ssh_target.revision() == HEADS["1.4.0-slow"],
            120,
            "the migration to finish while SSH is cut",
        )
        assert process.poll() is None, "the run ended while SSH was cut"
    finally:
        restore(loopback_sshd)
    playbook = finish(process)
    assert playbook.rc == 0, playbook.failures()
    # the slow revision's SELECT pg_sleep() names no table: the decision made the migration an async job
    assert "ansible_job_id" in playbook.task("Migrate the database with the scripts of 1.4.0-slow")
    outcomes = [(entry["app_version_to"], entry["outcome"]) for entry in ssh_target.ledger()]
    assert outcomes == [("1.1.0", "succeeded"), ("1.4.0-slow", "succeeded")]
    assert_consistent(ssh_target, "1.4.0-slow")
