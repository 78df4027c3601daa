# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""alembic_migrate and alembic_info against a real database with the example app's own alembic."""

from __future__ import annotations

from conftest import EXAMPLE_APP, alembic_runner

HEAD = "0004_drop_customer_legacy_code"
RELEASES = ["0001_initial", "0002_job_priority", "0003_jobs_queue_index", HEAD]


def test_fresh_upgrade_then_idempotent_rerun(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    first = run_playbook("migrate.yml", runner=runner, db=database.name)
    migrate = first.task("Migrate")
    assert migrate["changed"] and not migrate.get("failed"), migrate
    assert [entry["revision"] for entry in migrate["applied"]] == RELEASES
    assert migrate["from_revision"] is None and migrate["to_revision"] == HEAD
    assert migrate["attempts"][0]["outcome"] == "applied"
    assert database.current_revisions() == [HEAD]
    recorded = database.scalar("SELECT count(*) FROM safedeploy.applied_revisions WHERE script_sha256 IS NOT NULL")
    assert recorded == len(RELEASES)

    second = run_playbook("migrate.yml", runner=runner, db=database.name)
    assert not second.task("Migrate")["changed"]
    assert second.task("Migrate")["applied"] == []
    info = second.task("Info")
    assert info["current"] == [HEAD] and info["up_to_date"] and info["pending"] == []
    assert info["modified_after_apply"] == [] and not info["db_ahead"] and not info["multiple_heads"]


def test_check_mode_and_diff_change_nothing(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0002_job_priority"})
    checked = run_playbook("migrate.yml", check=True, diff=True, runner=runner, db=database.name)
    migrate = checked.task("Migrate")
    assert migrate["changed"]
    assert [entry["revision"] for entry in migrate["applied"]] == RELEASES[2:]
    assert migrate["attempts"] == [] and migrate["lock_wait_seconds"] == 0
    assert migrate["diff"]["before"] == "revision: 0002_job_priority\n"
    assert migrate["diff"]["after"] == "revision: %s\n" % HEAD
    assert "CREATE INDEX CONCURRENTLY" in migrate["diff"]["prepared"]
    assert "DROP COLUMN legacy_code" in migrate["diff"]["prepared"]
    assert database.current_revisions() == ["0002_job_priority"]
    assert database.scalar("SELECT to_regclass('jobs_queue_idx') IS NULL")


def test_downgrade_is_guarded(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name)
    refused = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0002_job"})
    assert refused.task("Migrate")["failed"]
    assert refused.task("Migrate")["msg"] == (
        "revision 0002_job_priority is below the database's revision %s: set allow_downgrade to go down" % HEAD
    )
    assert database.current_revisions() == [HEAD]

    stepped = run_playbook(
        "migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "-1", "allow_downgrade": True}
    )
    assert stepped.task("Migrate")["direction"] == "downgrade"
    assert [entry["revision"] for entry in stepped.task("Migrate")["applied"]] == [HEAD]
    assert database.current_revisions() == ["0003_jobs_queue_index"]

    down = run_playbook(
        "migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0001", "allow_downgrade": True}
    )
    assert [entry["revision"] for entry in down.task("Migrate")["applied"]] == [
        "0003_jobs_queue_index",
        "0002_job_priority",
    ]
    assert database.current_revisions() == ["0001_initial"]
    recorded = database.scalar("SELECT array_agg(revision ORDER BY revision) FROM safedeploy.applied_revisions")
    assert recorded == ["0001_initial"]


def test_multiple_heads_refused_then_merged(example_venv, database, run_playbook):
    branched = run_playbook("migrate.yml", runner=alembic_runner(example_venv, EXAMPLE_APP, "branch"), db=database.name)
    migrate = branched.task("Migrate")
    assert migrate["failed"]
    assert migrate["msg"].startswith("the scripts have multiple heads (0103_customer_notes, 0104_job_tags)")
    assert branched.task("Info")["multiple_heads"]
    assert database.current_revisions() == []

    merged = run_playbook("migrate.yml", runner=alembic_runner(example_venv, EXAMPLE_APP, "merge"), db=database.name)
    assert merged.task("Migrate")["changed"]
    assert database.current_revisions() == ["0105_merge_notes_and_tags"]


def test_database_ahead_of_code(example_venv, database, run_playbook):
    run_playbook("migrate.yml", runner=alembic_runner(example_venv, EXAMPLE_APP, "irreversible"), db=database.name)
    assert database.current_revisions() == ["0106_lowercase_emails"]
    older_code = run_playbook("migrate.yml", runner=alembic_runner(example_venv, EXAMPLE_APP), db=database.name)
    assert older_code.task("Migrate")["failed"]
    assert older_code.task("Migrate")["msg"] == (
        "the database is at revision 0106_lowercase_emails, which the migration scripts do not know: "
        "the code is older than the database"
    )
    info = older_code.task("Info")
    assert info["db_ahead"] and info["unknown_revisions"] == ["0106_lowercase_emails"] and info["pending"] == []


def test_unknown_revision_and_broken_config(example_venv, database, run_playbook, tmp_path):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    unknown = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "9999"})
    assert unknown.task("Migrate")["msg"] == "revision 9999 is not in the migration scripts"

    missing_config = [str(example_venv / "bin" / "alembic"), "-c", str(tmp_path / "nowhere.ini")]
    broken = run_playbook("migrate.yml", runner=missing_config, db=database.name)
    assert broken.task("Migrate")["msg"].startswith(
        "alembic history --verbose failed, the alembic configuration or scripts are broken"
    )

    not_found = run_playbook("migrate.yml", runner=[str(tmp_path / "no-alembic")], db=database.name)
    assert not_found.task("Migrate")["msg"].startswith("alembic runner %s was not found" % (tmp_path / "no-alembic"))
    assert database.current_revisions() == []


def test_a_handed_graph_spares_the_history_run(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    first = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0002_job"})
    history = first.task("Info")["history"]

    bad = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"history": [{"x": 1}]})
    assert bad.task("Migrate")["msg"] == "every entry of history needs its revision id, as alembic_info returns it"
    assert database.current_revisions() == ["0002_job_priority"]

    handed = run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"history": history})
    migrate = handed.task("Migrate")
    assert migrate["changed"] and migrate["to_revision"] == HEAD, migrate
    assert [command[len(runner) :] for command in migrate["commands"]] == [["upgrade", HEAD]]
    assert database.current_revisions() == [HEAD]


def test_failing_revision_names_itself_and_keeps_the_last_commit(example_venv, database, run_playbook):
    broken = run_playbook("migrate.yml", runner=alembic_runner(example_venv, EXAMPLE_APP, "broken"), db=database.name)
    migrate = broken.task("Migrate")
    assert migrate["failed"]
    assert "failed in revision 0101_broken_invoices" in migrate["msg"]
    assert "UndefinedColumn" in migrate["msg"] or "does not exist" in migrate["msg"]
    assert migrate["msg"].endswith("the database is at revision %s" % HEAD)
    assert [entry["revision"] for entry in migrate["applied"]] == RELEASES
    assert database.current_revisions() == [HEAD]
    assert database.advisory_locks() == 0


def test_script_edited_after_apply_is_reported(example_venv, database, run_playbook, app_copy):
    runner = alembic_runner(example_venv, app_copy)
    run_playbook("migrate.yml", runner=runner, db=database.name)
    script = app_copy / "migrations" / "versions" / "1.1.0" / "0002_job_priority.py"
    script.write_text(script.read_text() + "\n# edited after it was applied\n")
    info = run_playbook("migrate.yml", runner=runner, db=database.name).task("Info")
    assert [entry["revision"] for entry in info["modified_after_apply"]] == ["0002_job_priority"]
    assert info["modified_after_apply"][0]["recorded_sha256"] != info["modified_after_apply"][0]["script_sha256"]
