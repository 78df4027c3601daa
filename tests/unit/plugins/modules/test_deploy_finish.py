# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import option_problems
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import OPTION_COLUMNS, column_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._module_part import ModulePart, StepFailed
from ansible_collections.safedeploy.migrations.plugins.modules.deploy_finish import ledger_params, lock_params

PARAMS = dict(
    login_db="shop",
    environment="staging",
    owner="run-a",
    deploy_id=7,
    outcome="failed",
    revision_reached="0002",
    backup_path=None,
    backup_sha256=None,
    rescue="downgraded 0003 -> 0002",
    msg="migration failed",
    details=None,
    state_schema="safedeploy",
)


def test_the_ledger_finishes_the_entry_with_the_outcome_and_writes_no_environment():
    params = ledger_params(PARAMS)
    assert (params["state"], params["deploy_id"], params["outcome"], params["login_db"]) == (
        "finished",
        7,
        "failed",
        "shop",
    )
    assert column_values(params, OPTION_COLUMNS) == {
        "revision_reached": "0002",
        "rescue": "downgraded 0003 -> 0002",
        "message": "migration failed",
    }


def test_the_lock_is_released_by_its_owner():
    params = lock_params(PARAMS)
    assert (params["state"], params["environment"], params["owner"]) == ("released", "staging", "run-a")


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({}, None),
        # failed before the entry was written: only the lock
        ({"deploy_id": None}, None),
        ({"deploy_id": 0}, "deploy_id must be a positive id, got 0"),
        ({"owner": ""}, "owner must not be empty"),
        ({"environment": ""}, "environment must not be empty"),
    ],
)
def test_options_are_checked_as_the_lock_checks_them(changes, problem):
    assert option_problems(lock_params(dict(PARAMS, **changes))) == ([problem] if problem else [])


class FakeModule:
    check_mode = False

    def fail_json(self, **result):
        raise AssertionError("the module must not fail: %s" % result)


def test_a_part_that_may_fail_raises_what_it_would_have_failed_with():
    part = ModulePart(FakeModule(), {}, {"changed": True, "deploy_id": 7}, raise_failure=True)
    with pytest.raises(StepFailed) as failure:
        part.fail_json(msg="releasing the deploy lock of staging failed: server closed the connection")
    assert failure.value.result == {"msg": "releasing the deploy lock of staging failed: server closed the connection"}
