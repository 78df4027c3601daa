# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._module_part import ModulePart
from ansible_collections.safedeploy.migrations.plugins.modules.deploy_start import (
    backup_params,
    ledger_params,
    lock_params,
)

PARAMS = dict(
    login_host="db",
    login_port=5432,
    login_user="shop",
    login_password="secret",
    login_db="shop",
    environment="staging",
    owner="run-a",
    deployed_by="alice",
    app_version_from="1.1.0",
    app_version_to="1.2.0",
    state_schema="safedeploy",
    backup=dict(dest="/b", login_host=None, login_port=None, labels={"revision": "0002"}, container="pg"),
)


def test_the_ledger_entry_is_a_started_deploy_with_the_connection():
    params = ledger_params(PARAMS)
    assert (params["state"], params["kind"], params["environment"], params["login_db"]) == (
        "started",
        "deploy",
        "staging",
        "shop",
    )


@pytest.mark.parametrize(
    "phase, deploy_id",
    [
        ("backup", 7),
        ("migration", 7),
        # check mode writes no entry
        ("backup", None),
    ],
)
def test_the_heartbeat_names_the_phase_the_entry_and_the_release(phase, deploy_id):
    params = lock_params(PARAMS, phase, deploy_id)
    assert (params["state"], params["phase"], params["deploy_id"]) == ("held", phase, deploy_id)
    assert (params["owner"], params["holder"], params["app_version"]) == ("run-a", "alice", "1.2.0")


@pytest.mark.parametrize(
    "tools, deploy_id, host, port, label",
    [
        # the tools reach the server as the module does
        ({}, 7, "db", 5432, "7"),
        # inside the postgres container: its socket, its port
        ({"login_host": "", "login_port": 5433}, 7, "", 5433, "7"),
        # check mode: no entry yet
        ({}, None, "db", 5432, ""),
    ],
)
def test_the_backup_runs_with_the_tools_host_and_the_entry_id_among_its_labels(tools, deploy_id, host, port, label):
    params = backup_params(dict(PARAMS, backup=dict(PARAMS["backup"], **tools)), deploy_id)
    assert (params["login_host"], params["login_port"], params["login_password"]) == (host, port, "secret")
    assert params["labels"] == {"revision": "0002", "deploy_id": label}
    assert (params["dest"], params["container"], params["login_db"]) == ("/b", "pg", "shop")
    # the caller's labels stay as they were
    assert PARAMS["backup"]["labels"] == {"revision": "0002"}


class FakeModule:
    check_mode = True

    def __init__(self):
        self.failed = None

    def fail_json(self, **result):
        self.failed = result
        raise SystemExit(1)


@pytest.mark.parametrize(
    "done_changed, step_changed, changed",
    [
        # the ledger entry was written before the backup failed
        (True, False, True),
        # nothing written before, nothing by the step
        (False, False, False),
        (False, True, True),
    ],
)
def test_a_part_fails_with_what_the_steps_before_it_did(done_changed, step_changed, changed):
    module = FakeModule()
    part = ModulePart(module, {"dest": "/b"}, {"changed": done_changed, "deploy_id": 7, "backup": None})
    assert (part.params, part.check_mode) == ({"dest": "/b"}, True)
    with pytest.raises(SystemExit):
        part.fail_json(msg="disk full", backup_path="/b/x.dump", changed=step_changed)
    assert module.failed == {
        "changed": changed,
        "deploy_id": 7,
        "backup": None,
        "msg": "disk full",
        "backup_path": "/b/x.dump",
    }
