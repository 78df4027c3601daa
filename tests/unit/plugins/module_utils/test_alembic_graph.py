# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    RevisionError,
    downgrade_path,
    heads,
    parse_history,
    resolve_target,
    unknown_revisions,
    upgrade_path,
)

# `alembic history --verbose` of a branch (0003a, 0003b off 0002) merged by 0004, as alembic 1.x prints it
HISTORY = """Rev: 0004 (head) (mergepoint)
Merges: 0003a, 0003b
Path: /app/migrations/versions/0004_merge.py

    merge

    Revision ID: 0004
    Revises: 0003a, 0003b
    Create Date: 2026-11-23 22:30:41.647017

Rev: 0003a
Parent: 0002
Path: /app/migrations/versions/0003a_branch_a.py

    branch a

    Revision ID: 0003a

Rev: 0003b
Parent: 0002
Path: /app/migrations/versions/0003b_branch_b.py

    branch b

Rev: 0002 (branchpoint)
Parent: 0001
Branches into: 0003a, 0003b
Path: /app/migrations/versions/0002_add_phone.py

    add phone

Rev: 0001
Parent: <base>
Path: /app/migrations/versions/0001_initial_schema.py

    initial schema
"""

REVISIONS = parse_history(HISTORY)
BRANCHED = {key: value for key, value in REVISIONS.items() if key != "0004"}


def test_parse_history_reads_every_field():
    assert list(REVISIONS) == ["0004", "0003a", "0003b", "0002", "0001"]
    assert REVISIONS["0004"]["down_revisions"] == ["0003a", "0003b"]
    assert REVISIONS["0001"]["down_revisions"] == []
    assert REVISIONS["0002"]["message"] == "add phone"
    assert REVISIONS["0003a"]["path"] == "/app/migrations/versions/0003a_branch_a.py"


def test_parse_history_ignores_noise_before_the_first_entry():
    assert list(parse_history("some warning printed by env.py\n" + HISTORY)) == list(REVISIONS)


@pytest.mark.parametrize("revisions, expected", [(REVISIONS, ["0004"]), (BRANCHED, ["0003a", "0003b"]), ({}, [])])
def test_heads(revisions, expected):
    assert heads(revisions) == expected


@pytest.mark.parametrize(
    "current, target, expected",
    [
        ([], "head", ["0001", "0002", "0003a", "0003b", "0004"]),
        (["0002"], "head", ["0003a", "0003b", "0004"]),
        (["0003a"], "head", ["0003b", "0004"]),
        (["0004"], "head", []),
        (["0001"], "0002", ["0002"]),
        (["0001"], "00", None),
        (["0004"], "0002", []),
    ],
)
def test_upgrade_path(current, target, expected):
    if expected is None:
        with pytest.raises(RevisionError, match="ambiguous"):
            resolve_target(REVISIONS, target)
        return
    assert upgrade_path(REVISIONS, current, resolve_target(REVISIONS, target)) == expected


@pytest.mark.parametrize(
    "current, target, expected",
    [
        (["0004"], "0002", ["0004", "0003b", "0003a"]),
        (["0002"], "base", ["0002", "0001"]),
        (["0002"], "0002", []),
        (["0001"], "head", []),
    ],
)
def test_downgrade_path(current, target, expected):
    assert downgrade_path(REVISIONS, current, resolve_target(REVISIONS, target)) == expected


def test_head_with_two_heads_names_them():
    with pytest.raises(RevisionError, match=r"multiple heads \(0003a, 0003b\)"):
        resolve_target(BRANCHED, "head")
    assert resolve_target(BRANCHED, "heads") == ["0003a", "0003b"]


@pytest.mark.parametrize("target", ["0009", "nope"])
def test_unknown_target(target):
    with pytest.raises(RevisionError, match="revision %s is not in the migration scripts" % target):
        resolve_target(REVISIONS, target)


def test_unique_prefix_resolves():
    assert resolve_target(REVISIONS, "0003a") == ["0003a"]
    assert resolve_target(REVISIONS, "0004") == ["0004"]


def test_database_ahead_of_code():
    assert unknown_revisions(BRANCHED, ["0004"]) == ["0004"]
    assert unknown_revisions(REVISIONS, ["0004"]) == []
