# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# The plan's cases are in tests/unit/plugins/module_utils/test_rollback_plan.py; here only the filter's wiring.
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.rollback import FilterModule


def test_the_filter_gives_the_plan_and_names_bad_arguments_as_a_filter_error():
    plan = FilterModule().filters()["rollback_plan"]
    assert plan([], environment="staging")["status"] == "no_target"
    with pytest.raises(AnsibleFilterError, match="rollback_plan: rollback_method must be one of"):
        plan([], rollback_method="sideways")
