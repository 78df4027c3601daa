# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight role's one refusal: every reason the plan cannot run, named at once, in the order of the summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_stack_templates import ansible_value, task

TASKS = Path(__file__).resolve().parents[3] / "roles" / "preflight" / "tasks" / "main.yml"
REFUSAL = "Refuse a plan with lint errors, rows that would make it fail, or sessions in the way"
CLEARED = {"cleared": True, "remaining": []}
BLOCKED = {"cleared": False, "failed": True, "msg": "pid 42 (report) holds AccessShareLock on customers"}


def scope(lint_errors=0, data_errors=0, blockers=None, fail_on_lint=True, fail_on_data=True, check_mode=False):
    summary = dict(lint_errors=lint_errors, data_errors=data_errors, data_findings=["customers.email: 3 NULL rows"])
    return dict(
        preflight_plan={"summary": summary},
        preflight_blockers=CLEARED if blockers is None else blockers,
        preflight_fail_on_lint_errors=fail_on_lint,
        preflight_fail_on_data_findings=fail_on_data,
        ansible_check_mode=check_mode,
    )


@pytest.mark.parametrize(
    "variables, expected",
    [
        (scope(), []),
        (scope(lint_errors=2), ["the plan has 2 lint error(s)"]),
        (scope(lint_errors=2, fail_on_lint=False), []),
        (scope(data_errors=1), ["existing rows would make the migration fail: customers.email: 3 NULL rows"]),
        (scope(data_errors=1, fail_on_data=False), []),
        (scope(blockers=BLOCKED), ["pid 42 (report)"]),
        # check mode waits for nobody: blockers found without a failure are only shown
        (scope(blockers={"cleared": False, "remaining": [{"pid": 42}]}, check_mode=True), []),
        (scope(blockers={"failed": True, "msg": "connection refused"}), ["connection refused"]),
        (scope(lint_errors=1, data_errors=1, blockers=BLOCKED), ["lint error(s)", "existing rows", "pid 42"]),
    ],
)
def test_the_refusal_names_every_reason_at_once(variables, expected):
    refusal = task(TASKS, REFUSAL)
    variables.update(refusal["vars"])
    assert ansible_value("{{ %s }}" % refusal["when"], variables) is bool(expected)
    message = ansible_value(refusal["ansible.builtin.fail"]["msg"], variables)
    positions = [message.find(part) for part in expected]
    assert -1 not in positions and positions == sorted(positions), message
