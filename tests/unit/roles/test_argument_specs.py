# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's meta/argument_specs.yml against its defaults and against the way the playbooks enter the role.

Ansible validates a role's variables against the entry point named like the role's tasks file, so each variable a
role defaults must have an option (with a type that its default satisfies), and an include of an entry point must
name it without `.yml`, or nothing is validated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(path for path in (REPO / "roles").iterdir() if path.is_dir())
# entry points that run the role's whole job (a playbook's): they validate the role's defaults too. The others are
# entered by other roles for one step: they validate what their callers pass, since Ansible validates only the
# options an entry point names
WHOLE_ENTRY_POINTS = {"main", "plan_and_migrate", "roll", "finish"}
ROLE_INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


class PlaybookLoader(yaml.SafeLoader):
    """A safe loader that reads Ansible's own tags (`!unsafe`, `!vault`) as plain scalars."""


def tagged_scalar(loader, tag_suffix, node):
    del tag_suffix
    return loader.construct_scalar(node)


PlaybookLoader.add_multi_constructor("!", tagged_scalar)


def argument_specs(role: Path) -> dict:
    return yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def entry_points(role: Path) -> list:
    return [pytest.param(role, name, id="%s-%s" % (role.name, name)) for name in argument_specs(role)]


def step_entry_points() -> list:
    return [
        pytest.param(role, name, id="%s-%s" % (role.name, name))
        for role in ROLES
        for name in argument_specs(role)
        if name not in WHOLE_ENTRY_POINTS
    ]


def includes_of_roles() -> list:
    """(file, role name, tasks_from) of every include_role/import_role in the playbooks and the roles' tasks."""
    found = []
    for path in sorted((REPO / "playbooks").rglob("*.yml")) + sorted((REPO / "roles").glob("*/tasks/*.yml")):
        for include in role_includes(yaml.load(path.read_text(), Loader=PlaybookLoader)):
            found.append((path.relative_to(REPO), include.get("name"), str(include.get("tasks_from", "main"))))
    return found


def role_includes(node):
    """Every include_role/import_role argument dict under a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ROLE_INCLUDES and isinstance(value, dict):
                yield value
            else:
                yield from role_includes(value)
    elif isinstance(node, list):
        for item in node:
            yield from role_includes(item)


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_every_role_has_an_argument_spec_for_main(role):
    assert "main" in argument_specs(role)


@pytest.mark.parametrize(("role", "entry_point"), [param for role in ROLES for param in entry_points(role)])
def test_the_options_cover_every_default(role, entry_point):
    if entry_point not in WHOLE_ENTRY_POINTS:
        pytest.skip("an entry point other roles include for one step validates its own options only")
    options = argument_specs(role)[entry_point].get("options", {})
    assert sorted(set(defaults(role)) - set(options)) == []


@pytest.mark.parametrize(("role", "entry_point"), step_entry_points())
def test_a_step_entry_point_names_only_what_its_role_reads(role, entry_point):
    options = argument_specs(role)[entry_point].get("options", {})
    tasks = "\n".join(path.read_text() for path in sorted((role / "tasks").glob("*.yml")))
    assert [name for name in options if name not in tasks] == []
    if (role.name, entry_point) in {("deploy", "lock_or_refuse"), ("deploy", "restore")}:
        # the deploy lock's callers name the environment, phase, release and holder every time
        assert options and all(option.get("required") for option in options.values())


def test_every_include_of_a_role_enters_it_at_an_entry_point():
    """No role reaches into another role's private task files: each tasks_from is an entry point of its spec."""
    entry_points_by_role = {"safedeploy.migrations." + role.name: set(argument_specs(role)) for role in ROLES}
    private = [
        "%s: %s %s" % (path, name, tasks_from)
        for path, name, tasks_from in includes_of_roles()
        if name in entry_points_by_role and tasks_from not in entry_points_by_role[name]
    ]
    assert private == []


@pytest.mark.parametrize(("role", "entry_point"), [param for role in ROLES for param in entry_points(role)])
def test_every_plain_default_satisfies_its_option(role, entry_point):
    options = argument_specs(role)[entry_point].get("options", {})
    # a templated default is only known when the play runs
    plain = {name: value for name, value in defaults(role).items() if "{{" not in str(value) and name in options}
    result = ArgumentSpecValidator({name: options[name] for name in plain}).validate(plain)
    assert result.error_messages == []
    documented = {name: options[name]["default"] for name in plain if "default" in options.get(name, {})}
    assert documented == {name: plain[name] for name in documented}


def test_includes_of_an_entry_point_name_it_without_the_extension():
    """`tasks_from: plan_and_migrate.yml` looks for an entry point called `plan_and_migrate.yml`: none is validated."""
    entry_points_by_role = {"safedeploy.migrations." + role.name: set(argument_specs(role)) for role in ROLES}
    unvalidated = [
        "%s: %s" % (path, tasks_from)
        for path, name, tasks_from in includes_of_roles()
        if tasks_from.rsplit(".", 1)[0] in entry_points_by_role.get(name, ()) and tasks_from.endswith((".yml", ".yaml"))
    ]
    assert unvalidated == []
