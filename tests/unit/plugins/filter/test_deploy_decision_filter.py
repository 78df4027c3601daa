# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The decisions' cases are in tests/unit/plugins/module_utils/test_deploy_decision.py; here only the filters' wiring.
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.deploy_decision import FilterModule

FILTERS = FilterModule().filters()
PLAN = {"from_revision": "0003", "to_revision": "0004", "summary": {"pending": 1, "backward_compatible": True}}
RUNNING = dict(
    app_version="1.3.0",
    previous_version="1.2.0",
    running_version="1.2.0",
    release_up=True,
    strategy="auto",
    proxy="safedeploy",
    proxied_service="app",
    on_failure="downgrade",
)


def test_the_quick_look_filter_gives_the_verdict_and_names_a_missing_input():
    look = FILTERS["deploy_quick_look"]
    inputs = dict(
        app_version="1.2.0",
        revision="head",
        containers=[],
        containers_by_service={},
        release_services=["app"],
        release_up=False,
        proxy="none",
        database_service="",
        database_enabled=False,
        host="web1",
    )
    assert look({"skipped": True}, **inputs) == {
        "unchanged": False,
        "reason": "the ledger has no deploy to compare with",
        "beside_stopped": [],
    }
    with pytest.raises(AnsibleFilterError, match="deploy_quick_look: .*'host'"):
        look({}, **{name: value for name, value in inputs.items() if name != "host"})


def test_the_decision_filter_decides_and_names_what_it_cannot_decide_from():
    decide = FILTERS["deploy_decision"]
    assert decide(dict(PLAN, summary=dict(PLAN["summary"], rollback_method="restore")), **RUNNING)["rescue_method"] == (
        "restore"
    )
    with pytest.raises(AnsibleFilterError, match="deploy_decision: the plan is not .* it lacks rollback_method"):
        decide(PLAN, **RUNNING)
