# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    conninfo_without_secrets,
    describe_target,
    libpq_params,
    postgres_common_argument_spec,
    secret_params,
)


def params(**overrides):
    base = {
        "login_user": "erpmax",
        "login_password": "s3cret pass'word",
        "login_host": "db.internal",
        "login_unix_socket": "",
        "login_port": 5433,
        "login_db": "erp",
        "ssl_mode": "prefer",
        "ca_cert": None,
        "connect_params": {},
    }
    base.update(overrides)
    return base


SECRET_CONNECT_PARAMS = {
    "password": "other",
    "sslpassword": "key-passphrase",
    "oauth_client_secret": "oauth-secret",
    "scram_client_key": "scram-client",
    "scram_server_key": "scram-server",
}


def test_conninfo_never_carries_a_secret():
    overrides = dict(connect_params=dict(SECRET_CONNECT_PARAMS, sslcert="/etc/app.crt"))
    conninfo = conninfo_without_secrets(params(**overrides), application_name="x y")
    for secret in ["s3cret"] + list(SECRET_CONNECT_PARAMS.values()):
        assert secret not in conninfo
    assert "host=db.internal" in conninfo and "port=5433" in conninfo and "application_name='x y'" in conninfo
    assert "sslcert=/etc/app.crt" in conninfo


@pytest.mark.parametrize(
    "overrides, secrets",
    [
        ({}, {"password": "s3cret pass'word"}),
        ({"login_password": None}, {}),
        # login_password (or PGPASSWORD) wins over connect_params' password, as for the module's own connection
        ({"connect_params": {"password": "other"}}, {"password": "s3cret pass'word"}),
        ({"login_password": "", "connect_params": {"password": "other"}}, {"password": "other"}),
        (
            {"login_password": None, "connect_params": {"sslpassword": "pass phrase", "sslcert": "/c", "sslkey": "/k"}},
            {"sslpassword": "pass phrase"},
        ),
        ({"login_password": None, "connect_params": {"sslpassword": "", "scram_client_key": None}}, {}),
        ({"connect_params": {"scram_server_key": 42}}, {"password": "s3cret pass'word", "scram_server_key": "42"}),
    ],
)
def test_secret_params(overrides, secrets):
    assert secret_params(params(**overrides)) == secrets


def test_connect_params_is_no_log():
    # -vvv and the module's invocation log must never show a secret given in connect_params
    assert postgres_common_argument_spec()["connect_params"]["no_log"] is True


@pytest.mark.parametrize(
    "overrides, host",
    [({}, "db.internal"), ({"login_host": "", "login_unix_socket": "/run/pg"}, "/run/pg"), ({"login_host": ""}, None)],
)
def test_host_or_socket(overrides, host):
    assert libpq_params(params(**overrides)).get("host") == host


def test_connect_params_override_and_default_timeout():
    assert libpq_params(params())["connect_timeout"] == 10
    assert libpq_params(params(connect_params={"connect_timeout": 3}))["connect_timeout"] == 3


def test_libpq_params_hold_no_secret():
    keywords = libpq_params(params(connect_params=dict(SECRET_CONNECT_PARAMS, sslmode="require")))
    assert not set(keywords) & set(SECRET_CONNECT_PARAMS) and keywords["sslmode"] == "require"


def test_describe_target_names_database_and_host_only():
    text = describe_target(params(), "shop")
    assert text == "database shop on db.internal:5433 as erpmax" and "s3cret" not in text
