# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils import _alembic_status
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import upgrade_path
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_status import AlembicStatus, history_entry

PARAMS = {"version_table": "alembic_version", "version_table_schema": None}


def test_a_handed_history_takes_a_single_parent_as_a_string(monkeypatch):
    # alembic's own down_revision may be one id as a string; a graph written by hand often is too
    monkeypatch.setattr(_alembic_status, "read_current_revisions", lambda *args: ["0001_initial"])
    history = [
        {"revision": "0001_initial", "down_revisions": None},
        {"revision": "0002_phone", "down_revisions": "0001_initial"},
        {"revision": "0003_merge", "down_revisions": ["0002_phone"], "depends_on": "0001_initial"},
    ]
    status = AlembicStatus.from_history(history, None, PARAMS)
    assert status.heads == ["0003_merge"]
    assert upgrade_path(status.revisions, status.current, status.heads) == ["0002_phone", "0003_merge"]
    assert status.revisions["0002_phone"]["down_revisions"] == ["0001_initial"]


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"revision": "b", "down_revisions": "a"}, {"down_revisions": ["a"], "depends_on": [], "branch_labels": []}),
        ({"revision": "b", "down_revisions": ("a", "c")}, {"down_revisions": ["a", "c"]}),
        ({"revision": "b", "down_revisions": None, "branch_labels": "release"}, {"branch_labels": ["release"]}),
        ({"revision": "b", "message": "m", "path": "/p.py"}, {"down_revisions": [], "message": "m", "path": "/p.py"}),
    ],
)
def test_history_entry(entry, expected):
    normalized = history_entry(entry)
    assert {key: normalized[key] for key in expected} == expected


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"x": 1}, "every entry of history needs its revision id, as alembic_info returns it"),
        ({"revision": 2}, "every entry of history needs its revision id, as alembic_info returns it"),
        (
            {"revision": "b", "down_revisions": 1},
            "history entry b: down_revisions must be a revision id or a list of them, got 1",
        ),
        (
            {"revision": "b", "depends_on": {"a": 1}},
            "history entry b: depends_on must be a revision id or a list of them",
        ),
        ({"revision": "b", "down_revisions": ["a", None]}, "history entry b: down_revisions must be a revision id"),
        ({"revision": "b", "down_revisions": ""}, "history entry b: down_revisions must be a revision id"),
    ],
)
def test_a_bad_history_entry_is_named(entry, message):
    with pytest.raises(ValueError) as exc:
        history_entry(entry)
    assert str(exc.value).startswith(message)
