# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' alembic_migrate tasks leave statement_timeout alone.

A statement_timeout on alembic's connection applies to a CREATE INDEX CONCURRENTLY too, which waits for every older
transaction of the database before it builds: a build cut short leaves an INVALID index. The deploy bounds its
waits with lock_timeout and the pre-flight instead.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from test_argument_specs import PlaybookLoader

REPO = Path(__file__).resolve().parents[3]
MODULE = "safedeploy.migrations.alembic_migrate"


def tasks(node):
    """Every task of a tasks file, blocks and their rescue and always sections included."""
    for task in node or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from tasks(task.get(section))


def migrate_tasks() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        for task in tasks(yaml.load(path.read_text(), Loader=PlaybookLoader)):
            if MODULE in task:
                found.append(("%s: %s" % (path.relative_to(REPO), task.get("name")), task[MODULE]))
    return found


def test_every_role_migration_leaves_statement_timeout_alone():
    found = migrate_tasks()
    assert len(found) >= 8, found
    assert [name for name, args in found if "statement_timeout" in args] == []
