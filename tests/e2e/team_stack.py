# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A team's own stack deployed by the collection as users install it: examples/storefront's compose file, unchanged,
and its example inventory, with one more group_vars file that points it at this machine.

A test module loads it with `pytest_plugins = ("compose_stack", "installed_collection", "storefront_stack",
"team_stack")`. A TeamTarget is a directory holding the team's docker-compose.prod.yml (a byte-for-byte copy) and
inventory/ (the example's, its group_vars/all.yml moved to group_vars/all/main.yml, plus this_machine.yml); every
playbook runs from the installed Galaxy tarball by FQCN, from a directory outside the repository. The secrets reach
the inventory's lookups through the environment only, each a token of its own so an audit can find any of them.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import yaml
from compose_stack import docker, free_port, remove_project_containers
from conftest import Playbook
from storefront_stack import COMPOSE_FILE_NAME, DB_NAME, DB_USER, STOREFRONT

THIS_MACHINE = {
    "ansible_become": False,
    "stack_health_timeout": 60,
}
# the head revision of each release of the example
HEADS = {"1.0.0": "967555f8ede8", "1.1.0": "3f2d44a88b62"}
LOCAL_HOSTS = {"all": {"children": {"app": {"hosts": {"localhost": {"ansible_connection": "local"}}}}}}


class TeamTarget:
    """The storefront team's environment on this machine, driven by the installed collection."""

    def __init__(
        self,
        root: Path,
        installed,
        name: str = "team",
        compose_text: str | None = None,
        machine_vars: dict | None = None,
    ):
        self.root = root
        self.installed = installed
        self.project = "sdm-%s-%s" % (name, uuid.uuid4().hex[:6])
        self.stack_dir = root / "stack"
        self.postgres_port = free_port()
        self.app_port = free_port()
        # a token of its own in each secret, so that an audit finds any of them however it was quoted or encoded
        self.tokens = {name: secrets.token_hex(8) for name in ("STACK_DB_PASSWORD", "STOREFRONT_SECRET_KEY")}
        self.secrets = {
            "STACK_DB_PASSWORD": 'pw-%s "q" it\'s $HOME' % self.tokens["STACK_DB_PASSWORD"],
            "STOREFRONT_SECRET_KEY": "sk-%s" % self.tokens["STOREFRONT_SECRET_KEY"],
        }
        self.rotate_api_token()
        # the team's file as the example has it, or a variant of it the test wrote
        if compose_text is None:
            shutil.copy(STOREFRONT / COMPOSE_FILE_NAME, root / COMPOSE_FILE_NAME)
        else:
            (root / COMPOSE_FILE_NAME).write_text(compose_text)
        self.inventory = root / "inventory"
        group_vars = self.inventory / "group_vars" / "all"
        group_vars.mkdir(parents=True)
        shutil.copy(STOREFRONT / "inventory" / "group_vars" / "all.yml", group_vars / "main.yml")
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(LOCAL_HOSTS))
        this_machine = dict(
            THIS_MACHINE,
            ansible_python_interpreter=sys.executable,
            deploy_environment=name,
            stack_project=self.project,
            stack_dir=str(self.stack_dir),
            stack_postgres_port=self.postgres_port,
            stack_app_port=self.app_port,
            deploy_backup_dir=str(self.stack_dir / "backups"),
            deploy_promotion_store=str(root / "promotion"),
            **(machine_vars or {}),
        )
        (group_vars / "this_machine.yml").write_text(yaml.safe_dump(this_machine))

    def rotate_api_token(self) -> str:
        self.tokens["STOREFRONT_API_TOKEN"] = secrets.token_hex(8)
        self.secrets["STOREFRONT_API_TOKEN"] = "tok-%s" % self.tokens["STOREFRONT_API_TOKEN"]
        return self.secrets["STOREFRONT_API_TOKEN"]

    @property
    def password(self) -> str:
        return self.secrets["STACK_DB_PASSWORD"]

    def run(self, playbook: str, check: bool = False, diff: bool = False, env: dict | None = None, **extra) -> Playbook:
        argv = ["-i", str(self.inventory), "-e", json.dumps(extra)]
        argv += (["--check"] if check else []) + (["--diff"] if diff else [])
        return self.installed.run(playbook, *argv, env=dict(self.secrets, **(env or {})))

    def deploy(self, app_version: str, **kwargs) -> Playbook:
        return self.run("deploy", app_version=app_version, **kwargs)

    def connect(self, **kwargs):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.postgres_port,
            user=DB_USER,
            password=self.password,
            dbname=DB_NAME,
            autocommit=True,
            **kwargs,
        )

    def rows(self, query: str) -> list[tuple]:
        with self.connect() as connection:
            return connection.execute(query).fetchall()

    def ledger(self) -> list[tuple]:
        return self.rows("SELECT kind, app_version_to, outcome, strategy, rescue FROM safedeploy.deploys ORDER BY id")

    def containers(self) -> dict[str, list[tuple]]:
        """service -> [(name, image, state, started at)] of the project's containers, one-offs left out."""
        found: dict[str, list[tuple]] = {}
        names = docker("ps", "-a", "--filter", "label=com.docker.compose.project=%s" % self.project, "-q").split()
        for inspect in json.loads(docker("inspect", *names)) if names else []:
            labels = inspect["Config"]["Labels"]
            if labels.get("com.docker.compose.oneoff") != "True":
                found.setdefault(labels["com.docker.compose.service"], []).append(
                    (inspect["Name"].lstrip("/"), inspect["Config"]["Image"], inspect["State"]["Status"],
                     inspect["State"]["StartedAt"])
                )  # fmt: skip
        return {service: sorted(rows) for service, rows in sorted(found.items())}

    def published_ports(self) -> dict[str, list[str]]:
        """service -> the host addresses its running containers publish; services that publish none left out."""
        found: dict[str, list[str]] = {}
        for line in docker(
            "ps", "--filter", "label=com.docker.compose.project=%s" % self.project,
            "--format", '{{.Label "com.docker.compose.service"}}\t{{.Ports}}',
        ).splitlines():  # fmt: skip
            service, _tab, ports = line.partition("\t")
            published = [port for port in ports.split(", ") if "->" in port]
            if published:
                found.setdefault(service, []).extend(published)
        return found

    def down(self) -> None:
        remove_project_containers(self.project)
        for kind in ("volume", "network"):
            names = docker(kind, "ls", "-q", "--filter", "label=com.docker.compose.project=%s" % self.project).split()
            if names:
                docker(kind, "rm", *names, check=False)


def get(port: int, path: str, token: str | None = None) -> tuple[int, object]:
    """(status, JSON answer) of a GET on loopback; (0, error) when nothing answered."""
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError as error:
        return 0, str(error)


def revision(team) -> list[str]:
    """The revisions alembic's version table of a TeamTarget's database holds."""
    return [row[0] for row in team.rows("SELECT version_num FROM alembic_version")]
