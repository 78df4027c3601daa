# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/rehearse.yml: a release's pending migration on a restored copy of the newest verified backup."""

from __future__ import annotations

import json
import re

import pytest

pytest_plugins = ("compose_stack", "deploy_stack")

# a relation line of the report: relation | lock mode planned from the SQL | rewritten or not | size (human_readable)
RELATION_LINE = re.compile(
    r"^  (?P<relation>[\w.]+) \| (?P<lock_mode>\w+Lock) \| (?P<rewrite>rewritten|not rewritten) \| "
    r"(?P<size>\d+\.\d\d (?:Bytes|[KMGTPEZY]B))$"
)


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.2.0", "1.3.0", "1.4.0-broken"):
        release_images(version)
    assert deploy_target.deploy("1.2.0").rc == 0
    with deploy_target.connect() as connection:
        connection.execute(
            "INSERT INTO customers (name, email, legacy_code) SELECT 'c' || i, 'c' || i || '@example.com', 'L' || i "
            "FROM generate_series(1, 500) AS i"
        )
    assert deploy_target.run("backup.yml").rc == 0
    return deploy_target


def newest_backup(target) -> dict:
    """The manifest of the newest backup: backup.yml's, taken after the 500 customers were added."""
    manifests = [json.loads(path.read_text()) for path in (target.stack_dir / "backups").glob("*.json")]
    return max(manifests, key=lambda manifest: manifest["created_at"])


def size_in_bytes(human: str) -> float:
    """Bytes in the report's human_readable figure, such as `88.00 KB`."""
    number, unit = human.split()
    return float(number) * 1024 ** ["Bytes", "KB", "MB", "GB", "TB"].index(unit)


def scratch_databases(target) -> list[str]:
    with target.connect() as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE '%rehearsal%'").fetchall()
    return [row[0] for row in rows]


def test_check_mode_names_the_backup_and_restores_nothing(target):
    playbook = target.run("rehearse.yml", check=True, app_version="1.3.0")
    assert playbook.rc == 0, playbook.failures()
    assert "would restore" in playbook.task("Report what a rehearsal would do")["msg"]
    assert scratch_databases(target) == []


def test_rehearsal_reports_duration_locks_and_sizes_and_drops_the_copy(target):
    playbook = target.run("rehearse.yml", app_version="1.3.0")
    assert playbook.rc == 0, playbook.failures()
    report = playbook.task("Report the rehearsal")["msg"]
    assert report[0].startswith("rehearsed 1.3.0 on a copy of %s (" % newest_backup(target)["name"]), report[0]
    assert "0003_jobs_queue_index -> 0004_drop_customer_legacy_code, 1 revision(s) in" in report[0]
    relations = [RELATION_LINE.match(line) for line in report[1:]]
    assert report[1:] and all(relations), report
    customers = [match.groupdict() for match in relations if match["relation"] == "customers"]
    # dropping a column takes an ACCESS EXCLUSIVE lock but rewrites nothing
    assert [(line["lock_mode"], line["rewrite"]) for line in customers] == [("AccessExclusiveLock", "not rewritten")]
    # the copy holds the backup's 500 rows: an empty customers table and its two indexes take 16 KB
    assert size_in_bytes(customers[0]["size"]) > 48 * 1024, customers
    assert scratch_databases(target) == []
    # the application's own database is untouched
    assert target.revision() == "0003_jobs_queue_index"
    assert target.scalar("SELECT count(*) FROM customers") == 500


def test_the_deploy_shows_the_rehearsal_next_to_its_plan(target):
    record = target.stack_dir / "rehearsals" / "1.3.0.json"
    assert record.stat().st_mode & 0o777 == 0o600
    playbook = target.deploy("1.3.0", check=True, diff=True)
    assert playbook.rc == 0, playbook.failures()
    shown = playbook.task("Show the rehearsal next to the plan")["msg"]
    assert "0003_jobs_queue_index -> 0004_drop_customer_legacy_code in" in shown and "the same plan" in shown, shown
    assert "customers AccessExclusiveLock" in shown, shown


def test_a_failing_rehearsal_fails_and_still_drops_the_copy(target):
    playbook = target.run("rehearse.yml", app_version="1.4.0-broken")
    assert playbook.rc != 0
    assert "0101_broken_invoices" in playbook.task("Migrate the copy with the deploy's settings")["msg"]
    assert scratch_databases(target) == []
    assert target.revision() == "0003_jobs_queue_index"
