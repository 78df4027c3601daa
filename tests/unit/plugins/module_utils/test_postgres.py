# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    conninfo_without_password,
    describe_target,
    libpq_params,
    password_environment,
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


def test_conninfo_never_carries_the_password():
    conninfo = conninfo_without_password(params(connect_params={"password": "other"}), application_name="x y")
    assert "s3cret" not in conninfo and "other" not in conninfo
    assert "host=db.internal" in conninfo and "port=5433" in conninfo and "application_name='x y'" in conninfo


def test_password_goes_to_the_environment():
    assert password_environment(params()) == {"PGPASSWORD": "s3cret pass'word"}
    assert password_environment(params(login_password=None)) == {}


@pytest.mark.parametrize(
    "overrides, host",
    [({}, "db.internal"), ({"login_host": "", "login_unix_socket": "/run/pg"}, "/run/pg"), ({"login_host": ""}, None)],
)
def test_host_or_socket(overrides, host):
    assert libpq_params(params(**overrides)).get("host") == host


def test_connect_params_override_and_default_timeout():
    assert libpq_params(params())["connect_timeout"] == 10
    assert libpq_params(params(connect_params={"connect_timeout": 3}))["connect_timeout"] == 3


def test_describe_target_names_database_and_host_only():
    text = describe_target(params(), "shop")
    assert text == "database shop on db.internal:5433 as erpmax" and "s3cret" not in text
