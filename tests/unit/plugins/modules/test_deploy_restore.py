# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import option_problems
from ansible_collections.safedeploy.migrations.plugins.modules.deploy_restore import (
    ledger_params,
    lock_params,
    restore_params,
)

PARAMS = dict(
    login_host="db",
    login_port=5432,
    login_user="shop",
    login_password="secret",
    login_db="shop",
    environment="staging",
    owner="run-a",
    holder="alice",
    app_version="1.1.0",
    phase="rescue",
    deploy_id=7,
    lease=600,
    state_schema="safedeploy",
    restore=dict(src="/b/shop.dump", login_host=None, login_port=None, container="pg", bin_dir=None),
)


@pytest.mark.parametrize(
    "tools, host, port",
    [
        # the tools reach the server as the module does
        ({}, "db", 5432),
        # inside the postgres container: its socket, its port
        ({"login_host": "", "login_port": 5433}, "", 5433),
    ],
)
def test_the_restore_replaces_the_application_database_as_the_tools_see_it(tools, host, port):
    params = restore_params(dict(PARAMS, restore=dict(PARAMS["restore"], **tools)))
    assert (params["login_host"], params["login_port"], params["login_password"]) == (host, port, "secret")
    assert (params["src"], params["container"], params["login_db"]) == ("/b/shop.dump", "pg", "shop")
    # over the running database, one transaction: never a new database, never parallel jobs
    assert (params["clean"], params["create"], params["jobs"]) == (True, False, 1)
    # the caller's options stay as they were
    assert PARAMS["restore"]["login_host"] is None


def test_the_kept_rows_are_put_back_by_the_ledger():
    entries = [{"id": 7}]
    params = ledger_params(PARAMS, entries)
    assert (params["state"], params["entries"], params["state_schema"]) == ("restored", entries, "safedeploy")


def test_the_lock_is_taken_back_at_once_under_the_same_owner():
    params = lock_params(PARAMS)
    assert (params["state"], params["wait"], params["owner"], params["phase"]) == ("acquired", 0, "run-a", "rescue")


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({}, None),
        ({"owner": ""}, "owner must not be empty"),
        ({"deploy_id": -1}, "deploy_id must be a positive id, got -1"),
    ],
)
def test_the_lock_options_are_checked_as_the_lock_checks_them(changes, problem):
    assert option_problems(lock_params(dict(PARAMS, **changes))) == ([problem] if problem else [])
