# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rollback's decision from the deploy ledger: rollback_plan (the logic is in module_utils/_rollback_plan.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.module_utils import _rollback_plan


def rollback_plan(ledger, *args, **options) -> dict:
    try:
        return _rollback_plan.rollback_plan(ledger, *args, **options)
    except _rollback_plan.RollbackPlanError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"rollback_plan": rollback_plan}
