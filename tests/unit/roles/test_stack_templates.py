# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stack role's compose files and proxy configuration against hostile values.

Every value of the stack's variables either reaches compose.yml, compose.safedeploy.yml and safedeploy-proxy.conf
as written (a JSON string whose `$` compose does not interpolate, a comment on one line), or the role's checks refuse
it by name: a newline in a value must never add a key (`privileged: true`), nor a `;` or `}` an nginx directive.
The templates are rendered as the template module does (trim_blocks), with Ansible's filters and the collection's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible.plugins.test.core import TestModule as CoreTests
from ansible.template import Templar, trust_as_template
from test_argument_specs import PlaybookLoader

from ansible_collections.safedeploy.migrations.plugins.filter import compose

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "stack"
RELEASE = "1.2.3"
# closes a double-quoted scalar, then adds the keys at a service's indentation
QUOTED_INJECTION = 'x"\n    privileged: true\n    pid: host\n    x-rest: "'
PLAIN_INJECTION = "x\n    privileged: true\n    pid: host\n"
TOP_LEVEL_INJECTION = "compose.yml\nname: injected\nx-injected: true\n#"
# compose's interpolation: $$ is a $, ${NAME}, ${NAME:?message} and $NAME are replaced
INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::\?[^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


class ComposeLoader(yaml.SafeLoader):
    """A safe loader that reads compose's merge tags (`!reset`, `!override`) as the value they tag."""


def tagged_value(loader, tag_suffix, node):
    del tag_suffix
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node) if node.value not in ("", "null") else None


ComposeLoader.add_multi_constructor("!", tagged_value)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update(CoreFilters().filters())
    env.filters.update({"safedeploy.migrations." + name: f for name, f in compose.FilterModule().filters().items()})
    env.tests.update(CoreTests().tests())
    return env


ENV = environment()


def stack_vars(**overrides) -> dict:
    """The role's defaults with overrides, and the facts describe.yml derives from them."""
    variables = {
        name: value
        for name, value in yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()).items()
        if "{{" not in str(value)
    }
    variables.update(stack_app_image="registry.example.com/app", stack_db_password="secret", stack_app_version=RELEASE)
    variables.update(overrides)
    named = compose.named_services(variables["stack_services"])
    variables.update(
        ansible_managed="Ansible managed",
        stack_database_service=named["database"][0]
        if named["database"] and variables["stack_postgres_enabled"]
        else "",
        stack_migration_service=named["migration"][0],
        stack_release_services=named["app"] + named["workers"],
        stack_proxied_service=named["app"][0],
        stack_compose_base=variables.get("stack_compose_base")
        or (Path(variables["stack_compose_file"]).name if variables["stack_compose_file"] else "compose.yml"),
        stack_proxied_networks=["default"],
    )
    return variables


def render(template: str, variables: dict) -> str:
    return ENV.get_template(template).render(variables)


def interpolate(value, env: dict):
    """What compose makes of a scalar of the files, with env as its env file."""
    if not isinstance(value, str):
        return value
    return INTERPOLATION.sub(lambda found: found.group(1) or env[found.group(2) or found.group(3)], value)


def compose_files(variables: dict) -> dict:
    """Both compose files parsed, each checked for keys a value could have added."""
    parsed = {}
    for template in ("compose.yml.j2", "compose.safedeploy.yml.j2"):
        document = yaml.load(render(template, variables), Loader=ComposeLoader)
        assert set(document) <= {"services", "volumes"}, template
        for name, service in document["services"].items():
            assert not {"privileged", "pid", "x-rest"} & set(service), (template, name)
        parsed[template] = document
    return parsed


def task(path: Path, name: str) -> dict:
    found = [entry for entry in tasks(yaml.load(path.read_text(), Loader=PlaybookLoader)) if entry.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def tasks(entries: list[dict]):
    """Every task of a task file, those inside blocks too."""
    for entry in entries:
        yield entry
        for section in ("block", "rescue", "always"):
            yield from tasks(entry.get(section, []))


def evaluate(template: str, variables: dict):
    """A `{{ expression }}` variable of a task, as Ansible templates it (native types)."""
    expression = template.strip()
    assert expression.startswith("{{") and expression.endswith("}}"), template
    return ENV.compile_expression(expression[2:-2])(**variables)


def refusals(variables: dict) -> list:
    """What the role says of the variables before it writes a file: its argument spec, the description check and the
    service names in describe.yml, and the env file's names (compose_env_file)."""
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    checked = {name: spec[name] for name in spec if name not in ("stack_db_password", "stack_app_version")}
    given = {name: value for name, value in variables.items() if name in checked}
    found = list(ArgumentSpecValidator(checked).validate(given).error_messages)
    check = task(ROLE / "tasks" / "describe.yml", "Refuse an inconsistent stack description")
    scope = dict(variables)
    for name, value in check["vars"].items():
        scope[name] = evaluate(value, scope) if "{{" in value else value
    if not evaluate("{{ %s }}" % check["ansible.builtin.assert"]["that"], scope):
        found.append(ENV.from_string(check["ansible.builtin.assert"]["fail_msg"]).render(scope))
    try:
        compose.named_services(variables["stack_services"])
    except AnsibleFilterError as error:
        found.append(str(error))
    try:
        compose.compose_env_file(dict(variables["stack_env"], **{variables["stack_version_variable"]: RELEASE}))
    except AnsibleFilterError as error:
        found.append(str(error))
    return found


def test_the_defaults_pass_the_checks():
    assert refusals(stack_vars()) == []
    assert refusals(stack_vars(stack_env_file=".env.production", stack_health_path="/health?ready=1")) == []


def test_the_default_files():
    files = compose_files(stack_vars())
    app = files["compose.yml.j2"]["services"]["app"]
    assert interpolate(app["image"], {"APP_VERSION": RELEASE}) == "registry.example.com/app:" + RELEASE
    assert app["env_file"] == [".env"]
    assert app["stop_grace_period"] == "20s"
    override = files["compose.safedeploy.yml.j2"]["services"]
    assert override["app"]["labels"] == {"io.safedeploy.release": "${APP_VERSION}"}
    assert override["safedeploy-proxy"]["ports"] == ["127.0.0.1:8000:80"]
    proxy = render("safedeploy-proxy.conf.j2", stack_vars())
    assert "        set $app_upstream http://app:8000;\n" in proxy


def built_in(service, key):
    return lambda files: files["compose.yml.j2"]["services"][service][key]


def override(service, key):
    return lambda files: files["compose.safedeploy.yml.j2"]["services"][service][key]


def health_url(files):
    test = files["compose.yml.j2"]["services"]["app"]["healthcheck"]["test"]
    # the URL as a Python literal (JSON) in the command; its $ are still doubled for compose
    return json.loads(
        re.fullmatch(r"import urllib\.request; urllib\.request\.urlopen\((.*), timeout=2\)", test[3], re.S)[1]
    )


@pytest.mark.parametrize(
    "overrides, read, expected",
    [
        # exploitable before: written inside double quotes unescaped
        ({"stack_app_image": QUOTED_INJECTION}, built_in("app", "image"), QUOTED_INJECTION + ":" + RELEASE),
        ({"stack_app_image": QUOTED_INJECTION}, built_in("migration", "image"), QUOTED_INJECTION + ":" + RELEASE),
        ({"stack_app_image": QUOTED_INJECTION}, override("app", "image"), QUOTED_INJECTION + ":" + RELEASE),
        ({"stack_app_image": QUOTED_INJECTION}, override("worker", "image"), QUOTED_INJECTION + ":" + RELEASE),
        (
            {"stack_app_image": 'reg.example.com/$HOME/a\\"b'},
            override("app", "image"),
            'reg.example.com/$HOME/a\\"b:1.2.3',
        ),
        # exploitable before with a compose file whose name holds a newline: the override's comments
        ({"stack_compose_base": TOP_LEVEL_INJECTION}, override("app", "labels"), {"io.safedeploy.release": RELEASE}),
        # the YAML scalars null, true and 1 are plain file names too
        ({"stack_env_file": "null"}, built_in("app", "env_file"), ["null"]),
        ({"stack_env_file": "1"}, built_in("worker", "env_file"), ["1"]),
        ({"stack_stop_timeout": 45}, built_in("worker", "stop_grace_period"), "45s"),
        ({"stack_postgres_image": PLAIN_INJECTION + "$HOME"}, built_in("postgres", "image"), PLAIN_INJECTION + "$HOME"),
        ({"stack_proxy_image": QUOTED_INJECTION}, override("safedeploy-proxy", "image"), QUOTED_INJECTION),
        (
            {"stack_app_command": ["sh", "-c", "echo $HOME ${X}" + PLAIN_INJECTION]},
            built_in("app", "command"),
            ["sh", "-c", "echo $HOME ${X}" + PLAIN_INJECTION],
        ),
        (
            {"stack_worker_command": ["python", "-c", QUOTED_INJECTION]},
            built_in("worker", "command"),
            ["python", "-c", QUOTED_INJECTION],
        ),
        (
            {"stack_alembic_command": ["alembic", "-x", 'a="$b"\n#']},
            built_in("migration", "command"),
            ["alembic", "-x", 'a="$b"\n#', "upgrade", "head"],
        ),
        (
            {"stack_postgres_bind_address": "10.0.0.1$HOME" + PLAIN_INJECTION},
            override("postgres", "ports"),
            ["[10.0.0.1$HOME" + PLAIN_INJECTION + "]:5432:5432"],
        ),
        (
            {"stack_app_bind_address": "::", "stack_app_port": 8080},
            override("safedeploy-proxy", "ports"),
            ["[::]:8080:80"],
        ),
        (
            {"stack_health_path": "/health?home=$HOME&q=\"'x'\""},
            health_url,
            "http://127.0.0.1:8000/health?home=$HOME&q=\"'x'\"",
        ),
    ],
)
def test_values_reach_compose_as_written(overrides, read, expected):
    variables = stack_vars(**overrides)
    assert refusals(variables) == []
    value = read(compose_files(variables))
    env = {"APP_VERSION": RELEASE}
    assert (
        [interpolate(item, env) for item in value]
        if isinstance(value, list)
        else {key: interpolate(item, env) for key, item in value.items()}
        if isinstance(value, dict)
        else interpolate(value, env)
    ) == expected


@pytest.mark.parametrize(
    "overrides, holds",
    [
        ({"stack_compose_file": "", "stack_app_image": ""}, False),
        ({"stack_compose_file": "", "stack_app_image": "registry.example.com/app"}, True),
        ({"stack_compose_file": "/srv/team/docker-compose.prod.yml", "stack_app_image": ""}, True),
    ],
)
def test_the_built_in_stack_needs_an_app_image_before_its_files_are_written(overrides, holds):
    check = task(ROLE / "tasks" / "render.yml", "Refuse the built-in compose file without an app image")
    assert evaluate("{{ %s }}" % check["ansible.builtin.assert"]["that"], stack_vars(**overrides)) is holds


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"stack_env_file": "x]\nprivileged: true"}, "stack_env_file"),
        ({"stack_env_file": ".env\n"}, "stack_env_file"),
        ({"stack_env_file": ".."}, "stack_env_file"),
        ({"stack_version_variable": "APP_VERSION}\n    privileged: true\n#"}, "stack_version_variable"),
        ({"stack_version_variable": "APP_VERSION\n"}, "stack_version_variable"),
        ({"stack_database_url_variable": "DATABASE_URL\n"}, "stack_database_url_variable"),
        ({"stack_proxy": "none\n"}, "stack_proxy"),
        ({"stack_stop_timeout": "20s\n    privileged: true"}, "stack_stop_timeout"),
        ({"stack_health_port": "8000;\n        return 200"}, "stack_health_port"),
        ({"stack_postgres_port": "5432:5432\n"}, "stack_postgres_port"),
        ({"stack_app_port": '8000"\n    privileged: true'}, "stack_app_port"),
        ({"stack_health_path": "@evil.example/"}, "stack_health_path"),
        ({"stack_health_path": "/health\n    privileged: true"}, "stack_health_path"),
        ({"stack_env": {"A\nprivileged: true": "x"}}, "A\\nprivileged: true"),
        ({"stack_env": {"SECRET_KEY\n": "x"}}, "SECRET_KEY\\n"),
    ],
)
def test_values_that_cannot_be_written_are_refused_by_name(overrides, named):
    found = refusals(stack_vars(**overrides))
    assert [problem for problem in found if named in problem] != [], found


@pytest.mark.parametrize(
    "app",
    [
        "web;\n    }\n    location /admin { return 200",
        "web\n",
        "web}",
        "web $host",
    ],
)
def test_the_proxy_takes_no_directive_from_a_service_name(app):
    services = {"database": "postgres", "migration": "migration", "app": [app], "workers": []}
    with pytest.raises(AnsibleFilterError, match="stack_services.app"):
        compose.named_services(services)


def test_every_stack_variable_of_the_templates_is_covered():
    """A variable added to a template needs a case above, or a check that makes it a name."""
    used = set()
    for template in (ROLE / "templates").glob("*.j2"):
        for expression in re.findall(r"\{[{%].*?[%}]\}", template.read_text(), re.S):
            used |= set(re.findall(r"\bstack_[a-z_]+", expression))
    covered = set()
    for name in ("test_values_reach_compose_as_written", "test_values_that_cannot_be_written_are_refused_by_name"):
        for mark in globals()[name].pytestmark:
            covered |= {key for param in mark.args[1] for key in param[0]}
    # derived from stack_services and stack_compose_file, checked by stack_services_checked; booleans and a choice
    derived = {
        "stack_database_service",
        "stack_migration_service",
        "stack_release_services",
        "stack_proxied_service",
        "stack_proxied_networks",
        "stack_postgres_enabled",
        "stack_postgres_publish",
    }
    assert sorted(used - covered - derived) == []


def ansible_value(template: str, variables: dict):
    """A task's template as Ansible makes it: its undefined, filters and native types, its vars templated lazily."""
    trusted = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}
    return Templar(loader=DataLoader(), variables=trusted).template(trust_as_template(template))


def container(service: str, image_id: str = "sha256:" + "a" * 64, state: str = "running", release: str = RELEASE):
    return dict(
        service=service,
        name="stack-%s-1" % service,
        state=state,
        status=state,
        image="app:" + RELEASE,
        image_id=image_id,
        release=release,
    )


@pytest.mark.parametrize(
    "unhealthy, containers, expected",
    [
        ([], [container("app"), container("worker")], []),
        (["stack-app-1: no answer"], [container("app"), container("worker")], ["did not become healthy"]),
        (
            [],
            [container("app"), container("worker", image_id="sha256:" + "b" * 64)],
            [RELEASE + " is not what runs: stack-worker-1 runs app:1.2.3 (bbbbbbbbbbbb"],
        ),
        ([], [container("app"), container("worker", release="1.1.0")], ["release label 1.1.0"]),
        ([], [container("app")], [RELEASE + " is not what runs: worker is not running (no container)"]),
        (
            ["stack-app-1: 500 boom"],
            [container("app"), container("worker", state="exited")],
            ["did not become healthy", "stack-app-1: 500 boom", "worker is not running (exited)"],
        ),
    ],
)
def test_the_health_gate_names_every_reason_the_release_is_refused(unhealthy, containers, expected):
    gate = task(
        ROLE / "tasks" / "services.yml",
        "Fail when the app never got healthy or the release does not run on its own image",
    )
    scope = stack_vars(
        stack_unhealthy=unhealthy,
        stack_service_containers=containers,
        stack_containers={entry["service"]: entry for entry in containers},
        stack_release_image_ids={"app": "sha256:" + "a" * 64, "worker": "sha256:" + "a" * 64},
        stack_shape={"images": {"app": "app:" + RELEASE, "worker": "app:" + RELEASE}},
        stack_app_services=["app"],
    )
    scope.update(gate["vars"])
    assert ansible_value("{{ %s }}" % gate["when"], scope) is bool(expected)
    message = ansible_value(gate["ansible.builtin.fail"]["msg"], scope)
    assert all(part in message for part in expected), message
