# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._restore_manager import changed_by_failed_restore


@pytest.mark.parametrize(
    "created, dropped, single_transaction, changed",
    [
        # create: true, the restore failed and the new database was dropped again
        (True, True, True, False),
        (True, True, False, False),
        # the new database could not be dropped: it is left behind
        (True, False, True, True),
        # into an existing database: one transaction (jobs 1, or clean) rolled back
        (False, False, True, False),
        # parallel jobs into an existing empty database: what they restored stays
        (False, False, False, True),
    ],
)
def test_changed_by_failed_restore(created, dropped, single_transaction, changed):
    assert changed_by_failed_restore(created, dropped, single_transaction) is changed
