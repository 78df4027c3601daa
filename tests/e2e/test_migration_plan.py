# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""migration_plan_info on the example app's releases, against a real database."""

from __future__ import annotations

from pathlib import Path

from conftest import EXAMPLE_APP, alembic_runner

PLAIN_INDEX_REVISION = '''"""Index customers by name, without CONCURRENTLY.

Revision ID: 0005_plain_index
Revises: 0004_drop_customer_legacy_code
"""

from alembic import op

revision = "0005_plain_index"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_customers_name", "customers", ["name"])


def downgrade() -> None:
    op.drop_index("ix_customers_name", table_name="customers")
'''


def plan(run_playbook, runner, database, **options) -> dict:
    return run_playbook("plan.yml", runner=runner, db=database.name, plan_options=options).task("Plan")


def by_revision(result: dict) -> dict:
    return {entry["revision"]: entry for entry in result["revisions"]}


def test_plan_of_every_release(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0001"})
    with database.connect() as connection:
        connection.execute(
            "INSERT INTO customers (name, email) SELECT 'c' || i, i || '@x' FROM generate_series(1, 500) i"
        )  # noqa: E501
        connection.execute("ANALYZE customers")
    result = plan(run_playbook, runner, database)
    assert not result.get("failed"), result
    assert not result["changed"]
    revisions = by_revision(result)
    assert list(revisions) == ["0002_job_priority", "0003_jobs_queue_index", "0004_drop_customer_legacy_code"]

    compatible = revisions["0002_job_priority"]
    assert compatible["backward_compatible"] and compatible["rollback_method"] == "downgrade"
    assert compatible["transactional"]

    concurrent = revisions["0003_jobs_queue_index"]
    assert not concurrent["transactional"]
    index_statement = [s for s in concurrent["statements"] if s["kind"] == "CREATE INDEX"][0]
    assert index_statement["outside_transaction"]
    assert index_statement["relations"][0]["relation"] == "jobs"
    assert index_statement["relations"][0]["lock_mode"] == "ShareUpdateExclusiveLock"

    destructive = revisions["0004_drop_customer_legacy_code"]
    assert not destructive["backward_compatible"] and destructive["rollback_method"] == "restore"
    assert any("legacy_code" in reason for reason in destructive["incompatible_reasons"])
    customers = [r for r in destructive["relations"] if r["relation"] == "customers"][0]
    assert customers["lock_mode"] == "AccessExclusiveLock" and customers["exists"]
    assert customers["rows_estimate"] == 500 and customers["total_bytes"] > 0
    assert [f["rule"] for f in destructive["findings"] if f["severity"] == "error"] == ["ban-drop-column"]

    summary = result["summary"]
    assert summary["pending"] == 3 and not summary["backward_compatible"] and summary["rollback_method"] == "restore"
    assert summary["plan_hash"] == result["plan_hash"] and len(result["plan_hash"]) == 64
    assert result["from_revision"] == "0001_initial" and result["to_revision"] == "0004_drop_customer_legacy_code"
    assert database.current_revisions() == ["0001_initial"]


def logged_wrapper(bin_dir: Path, name: str, target: Path, log: Path) -> Path:
    """A script called name that notes its start in log and runs target."""
    script = bin_dir / name
    script.write_text('#!/bin/sh\necho %s >> "%s"\nexec "%s" "$@"\n' % (name, log, target))
    script.chmod(0o755)
    return script


def test_the_plan_starts_alembic_once(example_venv, database, run_playbook, tmp_path):
    """history, upgrade --sql and downgrade --sql from one python: the plan a runner of three starts gives."""
    bin_dir, starts = tmp_path / "bin", tmp_path / "starts"
    bin_dir.mkdir()
    alembic = logged_wrapper(bin_dir, "alembic", example_venv / "bin" / "alembic", starts)
    logged_wrapper(bin_dir, "python3", example_venv / "bin" / "python3", starts)
    migrate = logged_wrapper(bin_dir, "migrate", example_venv / "bin" / "alembic", starts)
    options = alembic_runner(example_venv, EXAMPLE_APP)[1:]
    batched = plan(run_playbook, [str(alembic)] + options, database, revision="0003_jobs_queue_index")
    assert starts.read_text().split() == ["python3"]
    one_by_one = plan(run_playbook, [str(migrate)] + options, database, revision="0003_jobs_queue_index")
    assert starts.read_text().split() == ["python3", "migrate", "migrate", "migrate"]
    assert batched["plan_hash"] == one_by_one["plan_hash"] and batched["revisions"] == one_by_one["revisions"]
    assert batched["history"] == one_by_one["history"] and len(batched["history"]) == 4


def test_irreversible_revision_is_planned_as_restore(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP, "irreversible")
    revisions = by_revision(plan(run_playbook, runner, database))
    irreversible = revisions["0106_lowercase_emails"]
    assert irreversible["rollback_method"] == "restore" and irreversible["downgrade_sql"] is None
    assert revisions["0002_job_priority"]["rollback_method"] == "downgrade"


def test_plan_hash_is_stable_and_follows_the_sql(example_venv, database, run_playbook, app_copy):
    (app_copy / "migrations" / "versions" / "1.3.0" / "0005_plain_index.py").write_text(PLAIN_INDEX_REVISION)
    runner = alembic_runner(example_venv, app_copy)
    first, second = plan(run_playbook, runner, database), plan(run_playbook, runner, database)
    assert first["plan_hash"] == second["plan_hash"]
    plain = by_revision(first)["0005_plain_index"]
    assert "require-concurrent-index-creation" in [f["rule"] for f in plain["findings"]]
    assert [r["lock_mode"] for r in plain["relations"]] == ["ShareLock"]

    script = app_copy / "migrations" / "versions" / "1.3.0" / "0005_plain_index.py"
    script.write_text(script.read_text().replace('["name"]', '["name", "email"]'))
    assert plan(run_playbook, runner, database)["plan_hash"] != first["plan_hash"]


def test_nothing_pending_is_an_empty_plan(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name)
    result = plan(run_playbook, runner, database)
    assert result["revisions"] == [] and result["summary"]["pending"] == 0 and result["summary"]["backward_compatible"]


def test_bad_input(example_venv, database, run_playbook, app_copy, tmp_path):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    assert (
        plan(run_playbook, runner, database, revision="9999")["msg"] == "revision 9999 is not in the migration scripts"
    )

    no_squawk = plan(run_playbook, runner, database, squawk_path=str(tmp_path / "squawk"))
    assert no_squawk["failed"] and no_squawk["msg"] == "squawk_path %s is not an executable file" % (
        tmp_path / "squawk"
    )

    broken = app_copy / "migrations" / "versions" / "1.3.0" / "0005_plain_index.py"
    broken.write_text(
        PLAIN_INDEX_REVISION.replace(
            'op.create_index("ix_customers_name", "customers", ["name"])',
            'op.execute("CREAT INDEX oops ON customers (name)")',
        )
    )
    unparsable = plan(run_playbook, alembic_runner(example_venv, app_copy), database)
    assert unparsable["failed"] and "is not valid PostgreSQL" in unparsable["msg"] and "CREAT" in unparsable["msg"]
