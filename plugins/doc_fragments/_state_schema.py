# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private fragment of the collection; it may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    # The option of every module that reads or writes the ledger or the deploy locks.
    DOCUMENTATION = r"""
options:
  state_schema:
    description:
      - Schema of the collection's own tables in the application database - the ledger C(deploys) and the deploy
        locks C(deploy_locks).
    type: str
    default: safedeploy
"""
