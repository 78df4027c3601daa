# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight role: plan, blockers and the human summary, in check mode, against a real database."""

from __future__ import annotations

from conftest import EXAMPLE_APP, alembic_runner, hold_access_share

REFUSAL = "Refuse a plan with lint errors, rows that would make it fail, or sessions in the way"


def summary_lines(result) -> list[str]:
    return result.task("Show the plan")["msg"]


def test_clear_way_prints_the_plan_and_changes_nothing(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0002"})
    result = run_playbook("preflight.yml", check=True, runner=runner, db=database.name, fail_on_lint=False)
    assert result.rc == 0, result.stdout[-3000:]
    lines = summary_lines(result)
    assert lines[0].startswith(
        "plan 0002_job_priority -> 0004_drop_customer_legacy_code: 2 revision(s), SQL offline, hash "
    )
    assert "0004_drop_customer_legacy_code | " in lines[1] and "| restore" in lines[1]
    assert "customers: AccessExclusiveLock" in lines[2]
    assert lines[4].rstrip() == "data: 0 error(s), 0 warning(s)"
    assert "incompatible" in lines[5] and lines[6] == "rollback method: restore" and lines[7] == "blockers: none"
    assert database.current_revisions() == ["0002_job_priority"]


def test_lint_errors_stop_the_play_by_default(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    result = run_playbook("preflight.yml", check=True, runner=runner, db=database.name)
    assert result.rc != 0
    refused = result.task(REFUSAL)
    assert refused["failed"] and refused["msg"].startswith("the plan has ")
    assert "ban-drop-column error" in summary_lines(result)[3]


def test_blocker_on_a_planned_table_stops_the_play_and_is_named(example_venv, database, run_playbook):
    runner = alembic_runner(example_venv, EXAMPLE_APP)
    run_playbook("migrate.yml", runner=runner, db=database.name, migrate_options={"revision": "0003"})
    blocker = hold_access_share(database, "customers")
    try:
        result = run_playbook(
            "preflight.yml",
            check=True,
            runner=runner,
            db=database.name,
            policies={"lock_holders": "fail"},
            fail_on_lint=False,
        )
    finally:
        blocker_pid = blocker.info.backend_pid
        blocker.close()
    assert result.rc != 0
    assert str(blocker_pid) in summary_lines(result)[7]
    refused = result.task(REFUSAL)
    assert refused["failed"] and str(blocker_pid) in refused["msg"]
    assert database.current_revisions() == ["0003_jobs_queue_index"]
