# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy role's decisions: deploy_quick_look and deploy_decision (logic in _deploy_decision.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.module_utils import _deploy_decision


def deploy_quick_look(ledger, **inputs) -> dict:
    try:
        return _deploy_decision.quick_look(ledger, **inputs)
    except (_deploy_decision.DeployDecisionError, TypeError) as error:
        raise AnsibleFilterError("deploy_quick_look: %s" % error) from None


def deploy_decision(plan, **inputs) -> dict:
    try:
        return _deploy_decision.deploy_decision(plan, **inputs)
    except (_deploy_decision.DeployDecisionError, TypeError) as error:
        raise AnsibleFilterError("deploy_decision: %s" % error) from None


class FilterModule:
    def filters(self):
        return {"deploy_quick_look": deploy_quick_look, "deploy_decision": deploy_decision}
