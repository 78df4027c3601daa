# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import _list_no_log_values, remove_values

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import runner_argument_spec
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import (
    public_connect_params,
    public_runner_env,
    show_public_values,
    unreadable_suboptions,
    visible_values,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import postgres_common_argument_spec

SPEC = dict(postgres_common_argument_spec(), **runner_argument_spec())


def params(**overrides) -> dict:
    base = {name: option.get("default") for name, option in SPEC.items()}
    base.update(login_password="login-s3cret", runner=["alembic"])
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "connect_params, public",
    [
        ({}, {}),
        ({"connect_timeout": 5, "sslkey": "/k"}, {"connect_timeout": 5, "sslkey": "/k"}),
        (
            {"password": "p", "sslpassword": "s", "oauth_client_secret": "o", "scram_client_key": "c", "sslmode": "x"},
            {"sslmode": "x"},
        ),
        ({"scram_server_key": "k"}, {}),
    ],
)
def test_public_connect_params(connect_params, public):
    assert public_connect_params(connect_params) == public


@pytest.mark.parametrize(
    "name, value, public",
    [
        ("APP_VERSION", "1.4.0", True),
        ("PYTHONPATH", "/app", True),
        ("DATABASE_URL", "postgresql://app@db/erp", False),
        ("DB", "postgresql://app:pw@db/erp", False),
        ("DB", "host=db password=pw", False),
        ("DB_PASSWORD", "x", False),
        ("PGPASS", "x", False),
        ("API_TOKEN", "x", False),
        ("SECRET_KEY_BASE", "x", False),
        ("AWS_ACCESS_KEY_ID", "x", False),
        ("SENTRY_DSN", "x", False),
        ("COUNT", 3, True),
    ],
)
def test_public_runner_env(name, value, public):
    assert (name in public_runner_env({name: value})) is public


def test_visible_values_keep_every_secret_masked():
    values = params(
        connect_params={"connect_timeout": 5, "sslpassword": "key-s3cret", "application_name": "login-s3cret"},
        runner_env={"APP_VERSION": "1", "DATABASE_URL": "postgresql://app:url-s3cret@db/erp"},
        runner_secret_env={"EXTRA": "5"},
    )
    # 5 is also a value of runner_secret_env, and the application_name the login password: both stay masked
    assert visible_values(SPEC, values) == {"1"}


def test_without_unmasking_a_short_setting_garbles_the_result():
    values = params(connect_params={"connect_timeout": 5, "sslpassword": "key-s3cret"}, runner_env={"V": "1"})
    result = {"backup_path": "/backups/erp-2025-01-15.dump", "pending": ["0001_initial"], "rc": 5}
    masked = _list_no_log_values(SPEC, values)
    assert remove_values(result, masked)["backup_path"] != result["backup_path"]

    class Module:
        argument_spec, params, no_log_values = SPEC, values, set(masked)

    show_public_values(Module)
    shown = remove_values(dict(result, invocation={"module_args": values}), Module.no_log_values)
    assert {key: shown[key] for key in result} == result
    arguments = shown["invocation"]["module_args"]
    assert arguments["connect_params"] == {"connect_timeout": 5, "sslpassword": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
    assert arguments["runner_env"] == {"V": "1"} and "login-s3cret" not in str(shown)


@pytest.mark.parametrize("option", ["connect_params", "runner_env", "runner_secret_env", "login_password"])
def test_secret_bearing_options_are_no_log(option):
    assert SPEC[option]["no_log"] is True


SPEC_WITH_SUBOPTIONS = {
    "login_password": {"type": "str", "no_log": True},
    "policies": {"type": "dict", "options": {"locks": {"type": "str"}, "dumps": {"type": "str"}}},
}


@pytest.mark.parametrize(
    "policies, refused",
    [
        (None, False),
        ({"locks": "wait"}, False),
        ('{"locks": "wait"}', False),  # JSON, as Ansible itself reads it
        ("locks=wait", False),  # key=value, likewise
        ("notadict", True),
        (["locks", "wait"], True),
        (7, True),
    ],
)
def test_unreadable_suboptions(policies, refused):
    params = {"login_password": "s3cret", "policies": policies}
    assert unreadable_suboptions(SPEC_WITH_SUBOPTIONS, params) == (["policies"] if refused else [])


def test_without_its_sub_options_ansible_masks_every_secret_and_refuses_the_value():
    params = {"login_password": "s3cret", "policies": "notadict"}
    spec = dict(SPEC_WITH_SUBOPTIONS, policies={"type": "dict"})
    assert _list_no_log_values(spec, params) == {"s3cret"}
    result = ArgumentSpecValidator(spec).validate(params)
    assert "policies" in result.errors.msg and "unable to convert to dict" in result.errors.msg


def test_ansible_alone_loses_every_no_log_value_on_such_a_value():
    # why the refusal comes first: Ansible's list of values to hide is lost with the sub-option's error
    with pytest.raises(TypeError):
        _list_no_log_values(SPEC_WITH_SUBOPTIONS, {"login_password": "s3cret", "policies": "notadict"})
