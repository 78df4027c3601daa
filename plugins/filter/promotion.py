# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The promotion gate's verdict: promotion_verdict (the logic is in module_utils/_promotion.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.module_utils import _promotion


def promotion_verdict(evidence, *args, **options) -> dict:
    try:
        return _promotion.promotion_verdict(evidence, *args, **options)
    except _promotion.PromotionError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"promotion_verdict": promotion_verdict}
