# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# The verdict's cases are in tests/unit/plugins/module_utils/test_promotion.py; here only the filter's wiring.
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.promotion import FilterModule


def test_the_filter_gives_the_verdict_and_names_bad_arguments_as_a_filter_error():
    verdict = FilterModule().filters()["promotion_verdict"]
    assert verdict(None)["status"] == "not_required"
    with pytest.raises(AnsibleFilterError, match="promotion_verdict: app_version is required"):
        verdict(None, required_from="staging")
