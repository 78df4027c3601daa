# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two app hosts and one external database: the plan, the backup and the migration once, the roll in batches.

The two hosts are two compose projects on this machine (inventory hosts app1 and app2, local connection) without a
postgres service of their own: the database is a PostgreSQL container outside both stacks, published on the docker
bridge's gateway address, which the stacks' containers and the modules on the host both reach, as they would reach a
managed database. The tests run in file order on one fleet.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import psycopg
import pytest
from compose_stack import docker, free_port
from deploy_stack import DeployTarget

pytest_plugins = ("compose_stack", "deploy_stack")

HOSTS = ("app1", "app2")
HOSTS_YML = """---
all:
  children:
    app:
      hosts:
{hosts}
"""
HOST_ENTRY = """        {name}:
          ansible_connection: local
          stack_project: {project}
          stack_dir: {stack_dir}
          stack_app_port: {app_port}
          deploy_backup_dir: {stack_dir}/backups
"""
EXTERNAL_DATABASE_VARS = """stack_postgres_enabled: false
stack_db_host: {address}
stack_db_port: {port}
stack_pg_bin_dir: {bin_dir}
"""
DATABASE_ENV = "POSTGRES_USER=orchestrator\nPOSTGRES_DB=orchestrator\nPOSTGRES_PASSWORD=%s\n"
ROLL_PLAY = "Roll the release over the app hosts in batches"


def postgres_bin_dir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda path: int(path.parent.parent.name))
    if not found:
        pytest.skip("no PostgreSQL client tools under /usr/lib/postgresql")
    return str(found[-1].parent)


def bridge_gateway() -> str:
    """The host's address on docker's default bridge: its gateway, which the engine lists only when it was set."""
    config = json.loads(docker("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


class AppHosts(DeployTarget):
    """app1 and app2 (or the hosts named), each a stack of its own, sharing a database that neither stack runs."""

    def __init__(self, root: Path, hosts: tuple = HOSTS, environment: str = "hosts"):
        super().__init__(root, environment=environment)
        self.database_address = bridge_gateway()
        self.database_container = "%s-db" % self.project
        self.stacks = {
            name: {"project": "%s-%s" % (self.project, name), "stack_dir": root / name, "app_port": free_port()}
            for name in hosts
        }
        entries = "".join(HOST_ENTRY.format(name=name, **stack) for name, stack in self.stacks.items())
        (self.inventory / "hosts.yml").write_text(HOSTS_YML.format(hosts=entries.rstrip("\n")))
        with (self.inventory / "group_vars" / "all.yml").open("a") as group_vars:
            group_vars.write(
                EXTERNAL_DATABASE_VARS.format(
                    address=self.database_address, port=self.postgres_port, bin_dir=postgres_bin_dir()
                )
            )

    def start_database(self) -> None:
        env_file = self.root / "database.env"
        env_file.touch(mode=0o600)
        env_file.write_text(DATABASE_ENV % self.password)
        publish = "%s:%d:5432" % (self.database_address, self.postgres_port)
        docker(
            "run",
            "-d",
            "--name",
            self.database_container,
            "--env-file",
            str(env_file),
            "-p",
            publish,
            "postgres:15-bookworm",
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.scalar("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def connect(self, **kwargs):
        return psycopg.connect(
            host=self.database_address,
            port=self.postgres_port,
            user="orchestrator",
            password=self.password,
            dbname="orchestrator",
            autocommit=True,
            connect_timeout=3,
            **kwargs,
        )

    def health_of(self, host: str) -> dict:
        self.app_port = self.stacks[host]["app_port"]
        return self.health()[1]

    def backups(self, host: str) -> list[Path]:
        return sorted((self.stacks[host]["stack_dir"] / "backups").glob("*.json"))

    def down(self) -> None:
        for stack in self.stacks.values():
            self.project = stack["project"]
            super().down()
        docker("rm", "--force", "--volumes", self.database_container, check=False)


def batches(playbook) -> list[list[str]]:
    """The hosts of each batch of the roll play, in the order they ran."""
    return [sorted(play["tasks"][0]["hosts"]) for play in playbook.report["plays"] if play["play"]["name"] == ROLL_PLAY]


def hosts_of(playbook, task_name: str) -> list[str]:
    for play in playbook.report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(task_name):
                return sorted(task["hosts"])
    raise KeyError(task_name)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, release_images):
    for version in ("1.0.0", "1.1.0", "1.4.0-unhealthy"):
        release_images(version)
    hosts = AppHosts(tmp_path_factory.mktemp("hosts"))
    try:
        hosts.start_database()
        yield hosts
    finally:
        hosts.down()


def test_first_deploy_migrates_once_and_starts_every_host(fleet):
    playbook = fleet.deploy("1.0.0")
    assert playbook.rc == 0, playbook.failures()
    assert hosts_of(playbook, "Compute the migration plan") == ["app1"]
    assert hosts_of(playbook, "Migrate the database with the scripts of 1.0.0") == ["app1"]
    assert batches(playbook) == [["app1"], ["app2"]]
    for host in HOSTS:
        assert fleet.health_of(host)["app_version"] == "1.0.0"
    assert [row["outcome"] for row in fleet.ledger()] == ["succeeded"]


def test_update_backs_up_once_and_rolls_the_hosts_in_batches(fleet):
    playbook = fleet.deploy("1.1.0", deploy_strategy="online")
    assert playbook.rc == 0, playbook.failures()
    assert batches(playbook) == [["app1"], ["app2"]]
    assert hosts_of(playbook, "Migrate the database with the scripts of 1.1.0") == ["app1"]
    assert hosts_of(playbook, "Open the ledger entry and back up before the migration") == ["app1"]
    assert len(fleet.backups("app1")) == 2 and fleet.backups("app2") == []
    for host in HOSTS:
        health = fleet.health_of(host)
        assert (health["app_version"], health["revision"]) == ("1.1.0", "0002_job_priority")
    assert fleet.revision() == "0002_job_priority"
    assert [row["outcome"] for row in fleet.ledger()] == ["succeeded", "succeeded"]


def test_a_rerun_ends_on_every_host_after_the_quick_look_unless_one_host_differs(fleet):
    playbook = fleet.deploy("1.1.0")
    assert playbook.rc == 0, playbook.failures()
    assert hosts_of(playbook, "Report nothing to do") == list(HOSTS)
    assert "unchanged since deploy" in playbook.task("Report nothing to do")["msg"]
    assert not playbook.ran("Compute the migration plan")
    # one host's file edited by hand: every host takes the long way, which plans once and puts the file back
    compose_file = fleet.stacks["app2"]["stack_dir"] / "compose.yml"
    rendered = compose_file.read_text()
    compose_file.write_text(rendered + "# edited by hand\n")
    playbook = fleet.deploy("1.1.0")
    assert playbook.rc == 0, playbook.failures()
    assert hosts_of(playbook, "Compute the migration plan") == ["app1"]
    assert compose_file.read_text() == rendered
    assert [row["outcome"] for row in fleet.ledger()] == ["succeeded", "succeeded"]


def test_status_and_backup_read_the_external_database(fleet):
    playbook = fleet.run("status.yml")
    assert playbook.rc == 0, playbook.failures()
    for host in HOSTS:
        report = json.loads((fleet.stacks[host]["stack_dir"] / "status.json").read_text())
        assert sorted(report["containers"]) == ["app", "safedeploy-proxy", "worker"]
        assert report["revisions"]["current"] == ["0002_job_priority"] and report["ledger"]["error"] is None
    playbook = fleet.run("backup.yml")
    assert playbook.rc == 0, playbook.failures()
    assert len(fleet.backups("app1")) == 3 and fleet.backups("app2") == []


def test_a_plan_failing_on_every_host_gives_the_deploy_lock_back(fleet):
    ledger = fleet.ledger()
    # each host fails to find the image on its own, before the plan
    playbook = fleet.deploy("9.9.9")
    assert playbook.rc != 0 and "9.9.9" in playbook.failures(), playbook.failures()
    assert fleet.scalar("SELECT count(*) FROM safedeploy.deploy_locks") == 0
    assert fleet.ledger() == ledger
    for host in HOSTS:
        assert fleet.health_of(host)["app_version"] == "1.1.0"


def test_a_failed_batch_stops_the_rollout_and_rescues_every_host(fleet):
    playbook = fleet.deploy("1.4.0-unhealthy", deploy_strategy="stop_the_world", stack_health_timeout=10)
    assert playbook.rc != 0
    # app1's batch failed at the health gate; app2's batch rolled nothing
    assert hosts_of(playbook, "Render the stack files for 1.4.0-unhealthy") == ["app1"]
    last = fleet.ledger()[-1]
    assert last["outcome"] == "failed"
    assert "app1: " in last["message"] and "did not become healthy" in last["message"], last["message"]
    # the plan drops a column, so the rescue restores the one backup instead of downgrading
    assert "restored " in last["rescue"] and "restarted 1.1.0" in last["rescue"], last["rescue"]
    assert fleet.revision() == "0002_job_priority"
    for host in HOSTS:
        assert fleet.health_of(host)["app_version"] == "1.1.0"


def test_rollback_downgrades_once_and_restarts_every_host(fleet):
    playbook = fleet.run("rollback.yml")
    assert playbook.rc == 0, playbook.failures()
    assert hosts_of(playbook, "Migrate the database with the scripts of 1.1.0") == ["app1"]
    assert fleet.revision() == "0001_initial"
    for host in HOSTS:
        assert fleet.health_of(host)["app_version"] == "1.0.0"
    rollbacks = [row for row in fleet.ledger() if row["kind"] == "rollback"]
    assert [(row["app_version_to"], row["outcome"]) for row in rollbacks] == [("1.0.0", "succeeded")]
