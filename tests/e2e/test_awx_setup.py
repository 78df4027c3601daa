# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/awx_setup.yml without an AWX server: syntax, lint, and every option checked against awx.awx itself.

AWX cannot run here (it needs Kubernetes and a registry), so the options of each awx.awx task are compared with
the installed awx.awx modules' documented options and choices (`ansible-doc -j`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import BUILD, REPO

BIN = Path(sys.executable).parent
PLAYBOOKS = REPO / "playbooks"
AWX_TASK_FILES = (
    PLAYBOOKS / "awx_setup.yml",
    PLAYBOOKS / "tasks" / "awx_job_template.yml",
    PLAYBOOKS / "tasks" / "awx_workflow.yml",
)
# set for every awx.awx module by the play's module_defaults, or removed with omit
MODULE_DEFAULTS = {"organization"}
OMIT = "{{ omit }}"


class UnsafeLoader(yaml.SafeLoader):
    """Reads Ansible's !unsafe tag as the plain string it marks."""


UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path: Path):
    return yaml.load(path.read_text(), Loader=UnsafeLoader)  # noqa: S506  (a SafeLoader with one tag added)


def awx_tasks() -> list[tuple[str, dict]]:
    tasks = []
    for path in AWX_TASK_FILES:
        document = load(path)
        entries = document[0]["tasks"] if "hosts" in document[0] else document
        for task in entries:
            tasks += [(key, value) for key, value in task.items() if key.startswith("awx.awx.")]
    return tasks


def module_options(module: str) -> dict:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(BUILD / "collections"), "PATH": str(BIN)}
    completed = subprocess.run(
        [str(BIN / "ansible-doc"), "-j", module], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(completed.stdout)[module]["doc"]["options"]


def ansible(*argv: str) -> subprocess.CompletedProcess:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(BUILD / "collections"), "PATH": str(BIN), "HOME": str(BUILD)}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, check=False, env=env, cwd=REPO
    )


def test_syntax_and_lint():
    syntax = ansible("ansible-playbook", "--syntax-check", str(PLAYBOOKS / "awx_setup.yml"))
    assert syntax.returncode == 0, syntax.stderr
    lint = ansible(
        "ansible-lint",
        "--offline",
        "--profile",
        "production",
        *map(str, AWX_TASK_FILES),
        str(PLAYBOOKS / "vars" / "awx_setup.yml"),
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(("module", "args"), awx_tasks(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_option_is_one_the_module_has(module, args):
    options = module_options(module)
    # omit removes an option, a module_defaults one included
    unknown = {name for name, value in args.items() if name not in options and value != OMIT}
    assert not unknown, "%s has no option %s" % (module, ", ".join(sorted(unknown)))
    for name, value in args.items():
        choices = options.get(name, {}).get("choices")
        if choices and isinstance(value, str) and "{{" not in value:
            assert value in choices, "%s: %s=%s is not one of %s" % (module, name, value, choices)
    for name in MODULE_DEFAULTS:
        assert name in options or args.get(name) == OMIT, "%s: module_defaults sets %s, which it lacks" % (module, name)


def test_the_password_reaches_jobs_only_as_the_environment_the_inventories_read():
    (credential_type,) = [args for module, args in awx_tasks() if module == "awx.awx.credential_type"]
    assert credential_type["inputs"]["fields"][0]["secret"] is True
    assert credential_type["injectors"] == {"env": {"STACK_DB_PASSWORD": "{{ db_password }}"}}
    for environment in ("staging", "production"):
        inventory_vars = (REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text()
        assert "lookup('ansible.builtin.env', 'STACK_DB_PASSWORD')" in inventory_vars
    settings = load(PLAYBOOKS / "vars" / "awx_setup.yml")
    for question in settings["awx_questions"].values():
        # a secret may only be asked as a password question
        assert "password" not in question["variable"] or question["type"] == "password", question


def test_job_templates_ask_the_job_type_and_show_the_diff():
    (job_template,) = [args for module, args in awx_tasks() if module == "awx.awx.job_template"]
    assert (job_template["job_type"], job_template["ask_job_type_on_launch"], job_template["diff_mode"]) == (
        "run",
        True,
        True,
    )
    settings = load(PLAYBOOKS / "vars" / "awx_setup.yml")
    playbooks = {template["playbook"] for template in settings["awx_job_templates"]}
    assert playbooks == {
        "playbooks/%s.yml" % name for name in ("deploy", "rollback", "status", "backup", "test_migrations")
    }
    assert all(
        set(template["questions"]) <= set(settings["awx_questions"]) for template in settings["awx_job_templates"]
    )


def test_the_workflow_runs_staging_then_an_approval_then_production():
    nodes = {args["identifier"]: args for module, args in awx_tasks() if module == "awx.awx.workflow_job_template_node"}
    assert nodes["staging-deploy"]["unified_job_template"] == "staging deploy"
    assert nodes["staging-deploy"]["success_nodes"] == ["approve-production"]
    assert "approval_node" in nodes["approve-production"]
    assert nodes["approve-production"]["success_nodes"] == ["production-deploy"]
    assert nodes["production-deploy"]["unified_job_template"] == "production deploy"
    # each node runs on its job template's own inventory, which neither the workflow nor a launch can change
    (workflow,) = [args for module, args in awx_tasks() if module == "awx.awx.workflow_job_template"]
    (job_template,) = [args for module, args in awx_tasks() if module == "awx.awx.job_template"]
    assert "inventory" not in workflow and not job_template.get("ask_inventory_on_launch", False)
