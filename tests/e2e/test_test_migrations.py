# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/test_migrations.yml on this machine's docker engine, next to a deployed 1.3.0 stack.

Every run tests a release's migrations on a scratch database of the stack's postgres; afterwards the scratch
database is gone and the application database is exactly as before.
"""

from __future__ import annotations

import pytest

pytest_plugins = ("compose_stack", "deploy_stack")

SCRATCH_PREFIX = "orchestrator_migration_test_"
MARKER = "safedeploy.migrations scratch database of run"


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.3.0", "1.4.0-irreversible"):
        release_images(version)
    playbook = deploy_target.deploy("1.3.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    with deploy_target.connect() as connection:
        connection.execute("INSERT INTO customers (name, email) VALUES ('Kept', 'Kept@Example.com')")
    return deploy_target


def scratch_databases(target) -> list[str]:
    with target.connect() as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (SCRATCH_PREFIX + "%",)
        ).fetchall()
    return [row[0] for row in rows]


def application_state(target) -> tuple:
    with target.connect() as connection:
        customers = connection.execute("SELECT id, name, email FROM customers ORDER BY id").fetchall()
        jobs = connection.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return target.revision(), customers, jobs


def failure(playbook) -> str:
    """The message that failed the play: the last failed task (the alembic runs before it had their errors ignored)."""
    found = [
        result.get("msg", "")
        for play in playbook.report.get("plays", [])
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    ]
    assert found, playbook.stdout[-3000:]
    return " ".join(found[-1]) if isinstance(found[-1], list) else str(found[-1])


def test_check_mode_says_what_would_run_and_runs_nothing(target):
    playbook = target.run("test_migrations.yml", check=True, app_version="1.3.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    message = playbook.task("Report what check mode leaves out")["msg"]
    assert "would create scratch database %s" % SCRATCH_PREFIX in message[0]
    assert "nothing runs in check mode" in message[1]
    assert scratch_databases(target) == []


def test_a_good_release_passes_and_leaves_the_application_database_alone(target):
    before = application_state(target)
    with target.connect() as connection:
        # left by a run that never reached its cleanup, a day ago: the next run drops it
        connection.execute("CREATE DATABASE %sdeadbeef" % SCRATCH_PREFIX)
        connection.execute(
            "COMMENT ON DATABASE %sdeadbeef IS '%s deadbeef, created %s'"
            % (SCRATCH_PREFIX, MARKER, "2000-01-01 00:00:00+00")
        )
    playbook = target.run(
        "test_migrations.yml", app_version="1.3.0", migration_test_expected_tables=["customers", "jobs"]
    )
    assert playbook.rc == 0, playbook.stdout[-5000:]
    assert "dropped stale scratch database %sdeadbeef" % SCRATCH_PREFIX in playbook.stdout
    report = playbook.task("Report the migration test")["msg"]
    assert report[0].startswith("release 1.3.0: the migrations pass on scratch database " + SCRATCH_PREFIX)
    assert report[1].startswith("fresh upgrade base -> 0004_drop_customer_legacy_code: 4 revision(s)")
    assert report[2] == "round trip head -> base -> head: the same schema"
    assert report[3:7] == [
        "%s: up, down, up; downgrade reversible" % revision
        for revision in (
            "0001_initial",
            "0002_job_priority",
            "0003_jobs_queue_index",
            "0004_drop_customer_legacy_code",
        )
    ]
    assert report[7] == (
        "app image connects: revision 0004_drop_customer_legacy_code, tables customers (0 rows), jobs (0 rows)"
    )
    assert scratch_databases(target) == []
    assert application_state(target) == before
    assert target.password not in playbook.stdout + playbook.stderr


def test_an_irreversible_revision_fails_the_test_by_name(target):
    before = application_state(target)
    playbook = target.run("test_migrations.yml", app_version="1.4.0-irreversible")
    assert playbook.rc != 0
    message = failure(playbook)
    assert message.startswith(
        "the round trip head -> base stopped at revision 0106_lowercase_emails: it is irreversible"
    )
    assert "migration_test_allow_irreversible: [0106_lowercase_emails]" in message
    assert scratch_databases(target) == []
    assert application_state(target) == before
    assert target.password not in playbook.stdout + playbook.stderr


def test_an_accepted_irreversible_revision_passes(target):
    before = application_state(target)
    playbook = target.run(
        "test_migrations.yml",
        app_version="1.4.0-irreversible",
        migration_test_allow_irreversible=["0106_lowercase_emails"],
    )
    assert playbook.rc == 0, playbook.stdout[-5000:]
    report = playbook.task("Report the migration test")["msg"]
    assert "round trip head -> 0106_lowercase_emails -> head: the same schema" in report
    assert "0004_drop_customer_legacy_code: up, down, up; downgrade reversible" in report
    assert "0106_lowercase_emails: up, down, up; downgrade irreversible (accepted)" in report
    assert scratch_databases(target) == []
    assert application_state(target) == before


def test_a_database_that_is_not_ours_is_never_touched(target):
    name = SCRATCH_PREFIX + "someone_elses"
    with target.connect() as connection:
        connection.execute("CREATE DATABASE %s" % name)
    try:
        playbook = target.run("test_migrations.yml", app_version="1.3.0", migration_test_database=name)
        assert playbook.rc != 0
        assert failure(playbook).startswith("could not create scratch database %s" % name)
        assert scratch_databases(target) == [name]
    finally:
        with target.connect() as connection:
            connection.execute("DROP DATABASE IF EXISTS %s" % name)


def test_a_downgrade_that_does_not_restore_the_schema_fails_with_a_diff(target):
    # 0004's downgrade adds legacy_code back as the last column: only a comparison of column order sees it
    playbook = target.run("test_migrations.yml", app_version="1.3.0", migration_test_compare_column_order=True)
    assert playbook.rc != 0
    message = failure(playbook)
    assert message.startswith(
        "revision 0004_drop_customer_legacy_code: its downgrade does not bring back the schema of its parent"
    )
    assert "-    legacy_code text," in message and "+    legacy_code text" in message
    assert scratch_databases(target) == []
