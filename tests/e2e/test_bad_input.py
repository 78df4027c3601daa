# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input to the playbooks: each run fails before any change, with a message naming the variable or the problem.

One release (1.1.0) is deployed once; every case then runs a playbook with one wrong input, mostly a deploy of the
valid update 1.2.0, so that a case which does not stop early would migrate, roll or write for real: a wrong type, an
unknown choice, a hook file that does not exist, a missing app_version, an inventory without app hosts or a promotion
environment nobody deployed to, a revision, deploy or backup that does not exist, a runner that does not exist, an
unreachable database. Each must end failed, name what is wrong, and leave the revision, the ledger, the running
containers, the app's answer and every file under the target's directory as they were.

Covered where they are tested already, not repeated here: a wrong database password
(test_deploy.py::test_a_wrong_password_is_named), a missing one (test_deploy.py::test_a_missing_password_is_named)
and an app image tag that does not exist (test_deploy.py::test_a_release_whose_image_does_not_exist_is_refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import pytest
from compose_stack import free_port

pytest_plugins = ("compose_stack", "deploy_stack")

DEPLOYED = "1.1.0"
UPDATE = {"app_version": "1.2.0"}
NO_APP_GROUP = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"


class BadInput(NamedTuple):
    playbook: str
    extra_vars: dict
    # a substring of the failed tasks' messages
    message: str
    # (target, tmp_path) -> the inventory to run with instead of the target's own
    inventory: Callable | None = None


def without_app_group(target, tmp_path: Path) -> Path:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(NO_APP_GROUP)
    return tmp_path / "inventory"


def mistyped_path(target, tmp_path: Path) -> Path:
    return target.root / "inventories" / "prodution"


EXTERNAL_DATABASE = {"stack_postgres_enabled": False, "stack_db_host": "127.0.0.1"}
NO_RUNNER = {"stack_alembic_command": ["alembic-nope"]}
STACK_SERVICES = {"database": "postgres", "migration": "migration", "app": ["app"], "workers": ["worker"]}

CASES = [
    # wrong types
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_serial="abc"), "deploy_serial must be a number"),
        id="deploy-serial-not-a-number",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_backup_keep_last="many"), "argument 'deploy_backup_keep_last'"),
        id="deploy-keep-last-not-a-number",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_health_timeout="soon"), "argument 'stack_health_timeout'"),
        id="stack-timeout-not-a-number",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_postgres_enabled="maybe"), "argument 'stack_postgres_enabled'"),
        id="stack-flag-not-a-boolean",
    ),
    pytest.param(
        BadInput("status.yml", {"status_ledger_limit": "lots"}, "argument 'status_ledger_limit'"),
        id="status-limit-not-a-number",
    ),
    pytest.param(
        BadInput("backup.yml", {"backup_keep_last": "all"}, "argument 'backup_keep_last'"),
        id="backup-keep-last-not-a-number",
    ),
    pytest.param(
        BadInput("backup.yml", {"backup_max_age": "forever"}, "max_age: 'forever' is not a duration"),
        id="backup-max-age-not-a-duration",
    ),
    pytest.param(
        BadInput("restore.yml", {"restore_confirm": "perhaps"}, "argument 'restore_confirm'"),
        id="restore-confirm-not-a-boolean",
    ),
    pytest.param(
        BadInput("rollback.yml", {"rollback_to_deploy_id": "latest"}, "argument 'rollback_to_deploy_id'"),
        id="rollback-id-not-a-number",
    ),
    pytest.param(
        BadInput(
            "test_migrations.yml", dict(UPDATE, migration_test_walk="sometimes"), "argument 'migration_test_walk'"
        ),
        id="migration-test-walk-not-a-boolean",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_async_after_seconds="ten"), "argument 'deploy_async_after_seconds'"),
        id="async-after-not-a-number",
    ),
    # a hook of a later phase would fail after the migration: every hook file is looked for first
    pytest.param(
        BadInput(
            "deploy.yml",
            dict(UPDATE, deploy_after_roll_tasks="/nonexistent/hooks/smoke_test.yml"),
            "/nonexistent/hooks/smoke_test.yml: no such task file on the controller",
        ),
        id="hook-file-missing",
    ),
    # the team's stack described wrong
    pytest.param(
        BadInput(
            "deploy.yml", dict(UPDATE, stack_services={"app": ["app"], "workers": ["worker"]}), "migration must name"
        ),
        id="stack-services-without-migration",
    ),
    pytest.param(
        BadInput(
            "deploy.yml", dict(UPDATE, stack_services={**STACK_SERVICES, "app": ["web"]}), "defines no service web"
        ),
        id="stack-services-name-a-missing-service",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_env={"BAD\nprivileged: true": "x"}), "is not a variable name"),
        id="stack-env-name-injects-yaml",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_env={"NESTED": {"a": 1}}), "the value of NESTED is a dict"),
        id="stack-env-value-not-a-scalar",
    ),
    pytest.param(
        BadInput(
            "deploy.yml",
            dict(UPDATE, stack_compose_extra_files=[{"src": "/etc/hostname", "dest": "../escape"}]),
            "must be a relative path inside the stack directory",
        ),  # fmt: skip
        id="extra-file-outside-the-stack",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_bind_address="0.0.0.0"), "stack_bind_address is no longer"),
        id="removed-stack-bind-address",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_proxy="none", deploy_strategy="online"), "needs a proxy in front"),
        id="online-without-a-proxy",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, stack_compose_file="/nonexistent/docker-compose.prod.yml"), "nonexistent"),
        id="compose-file-missing",
    ),
    # unknown choices
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_strategy="sometimes"), "deploy_strategy must be one of"),
        id="unknown-strategy",
    ),
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_on_failure="retry"), "deploy_on_failure must be one of"),
        id="unknown-on-failure",
    ),
    pytest.param(
        BadInput("rollback.yml", {"rollback_method": "sideways"}, "rollback_method must be one of"),
        id="unknown-rollback-method",
    ),
    # missing app_version
    pytest.param(BadInput("deploy.yml", {}, "'app_version' is undefined"), id="deploy-without-app-version"),
    pytest.param(BadInput("rehearse.yml", {}, "'app_version' is undefined"), id="rehearse-without-app-version"),
    pytest.param(
        BadInput("test_migrations.yml", {}, "'app_version' is undefined"), id="test-migrations-without-app-version"
    ),
    # unknown inventory or environment
    pytest.param(
        BadInput("deploy.yml", UPDATE, "no host in group app of inventory", mistyped_path),
        id="inventory-path-does-not-exist",
    ),
    pytest.param(
        BadInput("rollback.yml", {}, "no host in group app of inventory", without_app_group),
        id="inventory-without-app-hosts",
    ),
    pytest.param(
        BadInput(
            "deploy.yml",
            dict(UPDATE, deploy_requires_promotion_from="stagign"),
            "no evidence that 1.2.0 succeeded on stagign",
        ),
        id="promotion-from-unknown-environment",
    ),
    # a target that does not exist
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, deploy_revision="0999_nope"), "revision 0999_nope is not in the migration"),
        id="deploy-revision-does-not-exist",
    ),
    pytest.param(
        BadInput("rollback.yml", {"rollback_to_deploy_id": 999}, "ledger id 999 is not a successful deploy"),
        id="rollback-deploy-does-not-exist",
    ),
    pytest.param(
        BadInput(
            "restore.yml",
            {"restore_src": "/nonexistent/orchestrator.json", "restore_confirm": True},
            "File not found: /nonexistent/orchestrator.json",
        ),
        id="restore-backup-does-not-exist",
    ),
    # a runner that does not exist
    pytest.param(
        BadInput("deploy.yml", dict(UPDATE, **NO_RUNNER), '"alembic-nope": executable file not found'),
        id="deploy-runner-does-not-exist",
    ),
    pytest.param(
        BadInput("test_migrations.yml", dict(UPDATE, **NO_RUNNER), '"alembic-nope": executable file not found'),
        id="test-migrations-runner-does-not-exist",
    ),
    # an unreachable database
    pytest.param(
        BadInput(
            "deploy.yml",
            dict(UPDATE, stack_db_port=free_port, **EXTERNAL_DATABASE),
            "cannot connect to database orchestrator on 127.0.0.1:",
        ),
        id="deploy-database-port-closed",
    ),
    pytest.param(
        BadInput(
            "deploy.yml",
            dict(UPDATE, stack_postgres_enabled=False, stack_db_host="db.invalid"),
            "failed to resolve host 'db.invalid'",
        ),
        id="deploy-database-host-unknown",
    ),
    pytest.param(
        BadInput(
            "backup.yml",
            dict(stack_db_port=free_port, **EXTERNAL_DATABASE),
            "cannot connect to database orchestrator on 127.0.0.1:",
        ),
        id="backup-database-port-closed",
    ),
    pytest.param(
        BadInput(
            "rollback.yml",
            dict(stack_db_port=free_port, **EXTERNAL_DATABASE),
            "cannot connect to database orchestrator on 127.0.0.1:",
        ),
        id="rollback-database-port-closed",
    ),
]


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in (DEPLOYED, UPDATE["app_version"]):
        release_images(version)
    playbook = deploy_target.deploy(DEPLOYED)
    assert playbook.rc == 0, playbook.failures()
    return deploy_target


def state_of(target) -> dict:
    """What a refused run must leave alone."""
    return {
        "revision": target.revision(),
        "ledger": target.ledger(),
        "containers": target.containers(),
        "health": target.health(),
        "files": target.files(),
    }


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_before_any_change(target, case: BadInput, tmp_path):
    # a port is drawn when the case runs, so that nothing listens there
    extra_vars = {name: value() if callable(value) else value for name, value in case.extra_vars.items()}
    inventory = case.inventory(target, tmp_path) if case.inventory else None
    stack_files = {path: path.read_bytes() for path in target.stack_dir.iterdir() if path.is_file()}
    before = state_of(target)
    playbook = target.run(case.playbook, inventory=inventory, **extra_vars)
    after = state_of(target)
    # the next case starts from the deployed release's files again
    for path, content in stack_files.items():
        if path.read_bytes() != content:
            path.write_bytes(content)
    failures = playbook.failures()
    assert playbook.rc != 0, failures
    assert case.message in failures, failures
    # counted, so that a failing assertion does not print the password itself
    assert (playbook.stdout + playbook.stderr).count(target.password) == 0
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    if "files" in changed:
        changed["files"] = {
            path: (before["files"].get(path), after["files"].get(path))
            for path in before["files"].keys() | after["files"].keys()
            if before["files"].get(path) != after["files"].get(path)
        }
    assert not changed, changed
