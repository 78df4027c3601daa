# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/status.yml, backup.yml and restore.yml on this machine's docker engine, against one deployed stack.

The tests run in file order on one compose project (module-scoped) deployed at 1.2.0: the status report, an
on-demand backup with retention, then restores of it (refused, damaged, check mode, confirmed).
"""

from __future__ import annotations

import json
import shutil

import pytest

# the fixtures' modules are plugins of this one; rewrite their asserts before the import below loads them
pytest.register_assert_rewrite("compose_stack", "deploy_stack")
pytest_plugins = ("compose_stack", "deploy_stack")

from compose_stack import docker

REVISION = "0003_jobs_queue_index"
HISTORY = ["0003_jobs_queue_index", "0002_job_priority", "0001_initial"]


def changed(playbook) -> int:
    return sum(host["changed"] for host in playbook.report["stats"].values())


def output(playbook) -> str:
    return playbook.stdout + playbook.stderr


def manifests(target) -> list:
    return sorted((target.stack_dir / "backups").glob("*.json"))


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    release_images("1.2.0")
    playbook = deploy_target.deploy("1.2.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    return deploy_target


@pytest.fixture
def backup(target) -> dict:
    """The newest backup on disk, as pg_backup returned it: the backup test's, or the deploy's when run alone."""
    newest = max(manifests(target), key=lambda path: json.loads(path.read_text())["created_at"])
    return dict(manifest=json.loads(newest.read_text()), manifest_path=str(newest), backup_path=str(newest)[:-5])


def test_status_reports_revisions_ledger_containers_and_health(target):
    playbook = target.run("status.yml")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    report_file = target.stack_dir / "status.json"
    assert report_file.stat().st_mode & 0o777 == 0o600
    report = json.loads(report_file.read_text())
    assert report["revisions"]["current"] == [REVISION] and report["revisions"]["heads"] == [REVISION]
    assert (report["revisions"]["pending"], report["revisions"]["up_to_date"]) == ([], True)
    assert [entry["revision"] for entry in report["revisions"]["history"]] == HISTORY
    (deploy,) = report["ledger"]["deploys"]
    assert (deploy["kind"], deploy["app_version_to"], deploy["outcome"]) == ("deploy", "1.2.0", "succeeded")
    assert report["ledger"]["last_succeeded"]["id"] == deploy["id"]
    assert report["ledger"]["deploy_locks"] == []
    containers = report["containers"]
    assert {service: containers[service]["state"] for service in containers} == dict.fromkeys(
        ("app", "postgres", "safedeploy-proxy", "worker"), "running"
    )
    assert (containers["app"]["health"], containers["app"]["image"]) == ("healthy", "orchestrator-example:1.2.0")
    health = report["app"]["health"]
    assert (health["status_code"], health["answer"]["app_version"]) == (200, "1.2.0")
    assert health["answer"]["revision"] == REVISION
    assert report["locks"]["summary"]["blocked_sessions"] == 0 and report["locks"]["error"] is None
    assert report["migration_container"] is None and report["problems"] == []
    summary = playbook.task("Show the status")["msg"]
    # the app asked at its container's own address, its JSON answer shown
    assert summary[0].startswith("%s: app 1.2.0, http://" % target.project), summary[0]
    assert ':8000/health 200 {"status": "ok"' in summary[0], summary[0]
    assert "no migration container" in " ".join(summary)
    assert "deploy lock: free, no deploy running" in summary
    assert target.password not in output(playbook) + report_file.read_text()


def test_status_rerun_and_check_mode_change_nothing(target):
    report = (target.stack_dir / "status.json").read_text()
    for check in (False, True):
        playbook = target.run("status.yml", check=check)
        assert playbook.rc == 0, playbook.stdout[-3000:]
        assert changed(playbook) == 0, playbook.stdout[-3000:]
    assert (target.stack_dir / "status.json").read_text() == report


def test_status_draws_the_revisions_and_deploys_once(target, tmp_path):
    picture = tmp_path / "revisions.svg"
    playbook = target.run("status.yml", status_graph_path=str(picture))
    assert playbook.rc == 0, playbook.failures()
    svg = picture.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    # the current revision and the deploy that reached it, both as text of the picture
    assert REVISION in svg and "#1 deploy 1.2.0" in svg, svg[:2000]
    assert 'fill="palegreen"' in svg
    rerun = target.run("status.yml", status_graph_path=str(picture))
    assert rerun.rc == 0 and changed(rerun) == 0, rerun.stdout[-3000:]


def test_status_shows_the_log_of_a_migration_container(target):
    docker(*target.compose("up", "migration"))
    try:
        playbook = target.run("status.yml")
        assert playbook.rc == 0, playbook.stdout[-3000:]
        migration = json.loads((target.stack_dir / "status.json").read_text())["migration_container"]
        assert (migration["name"], migration["state"], migration["exit_code"], migration["one_off"]) == (
            "%s-migration-1" % target.project,
            "exited",
            0,
            False,
        )
        assert any("alembic.runtime.migration" in line for line in migration["log"]), migration
        assert not any(line[:4].isdigit() for line in migration["log"]), "docker's timestamps are cut off"
    finally:
        docker("rm", "--force", "%s-migration-1" % target.project, check=False)


def test_backup_writes_a_verified_labelled_backup_and_prunes(target):
    (deploy_backup,) = manifests(target)
    playbook = target.run("backup.yml", backup_keep_last=1)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    written = playbook.task("Write a verified backup of orchestrator")
    assert written["changed"] and len(written["sha256"]) == 64
    assert written["manifest"]["labels"] == {"environment": "e2e", "app_version": "1.2.0", "revision": REVISION}
    assert written["pruned"] == [str(deploy_backup)[: -len(".json")]]
    assert manifests(target) == [target.stack_dir / "backups" / (written["manifest"]["name"] + ".json")]
    assert (target.stack_dir / "backups" / written["manifest"]["name"]).stat().st_mode & 0o777 == 0o600
    assert target.password not in output(playbook)


def test_restore_refuses_without_confirmation_and_check_mode_changes_nothing(target, backup):
    with target.connect() as connection:
        connection.execute("INSERT INTO customers (name, email) VALUES ('late', 'late@example.com')")
        # a ledger row newer than the backup, as a later deploy would write it
        connection.execute(
            "INSERT INTO safedeploy.deploys (kind, environment, app_version_to, outcome, finished_at, message) "
            "VALUES ('deploy', 'e2e', '1.2.0', 'failed', now(), 'written after the backup')"
        )
    ledger, containers = target.ledger(), target.containers()

    refused = target.run("restore.yml")
    assert refused.rc != 0
    message = refused.task("Refuse to overwrite the database without restore_confirm")["msg"]
    assert "restore_confirm=true" in message and backup["manifest"]["name"] in message

    checked = target.run("restore.yml", check=True)
    assert checked.rc == 0, checked.stdout[-3000:]
    assert "would stop app and worker" in checked.task("Report what check mode would restore")["msg"]

    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'late@example.com'") == 1
    assert (target.ledger(), target.containers()) == (ledger, containers)


def test_restore_refuses_a_damaged_backup_before_stopping_anything(target, backup):
    damaged = target.stack_dir / "damaged"
    damaged.mkdir()
    archive = damaged / backup["manifest"]["name"]
    shutil.copy(backup["backup_path"], archive)
    shutil.copy(backup["manifest_path"], damaged / (archive.name + ".json"))
    content = bytearray(archive.read_bytes())
    content[len(content) // 2] ^= 0xFF
    archive.write_bytes(bytes(content))
    ledger, containers = target.ledger(), target.containers()
    try:
        playbook = target.run("restore.yml", restore_src=str(archive) + ".json", restore_confirm=True)
    finally:
        shutil.rmtree(damaged)
    assert playbook.rc != 0
    assert "does not match the sha256" in playbook.task("Verify the backup against its manifest")["msg"]
    assert (target.ledger(), target.containers()) == (ledger, containers)
    assert target.health()[0] == 200


def test_restore_with_confirmation_brings_the_backup_back_and_keeps_the_ledger(target, backup):
    ledger = target.ledger()
    playbook = target.run("restore.yml", restore_confirm=True)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'late@example.com'") == 0
    after = target.ledger()
    assert after[: len(ledger)] == ledger and after[-2]["message"] == "written after the backup"
    entry = after[-1]
    assert (entry["kind"], entry["outcome"], entry["backup_path"]) == ("restore", "succeeded", backup["backup_path"])
    assert (entry["app_version_from"], entry["app_version_to"]) == ("1.2.0", "1.2.0")
    assert (entry["revision_from"], entry["revision_reached"]) == (REVISION, REVISION)
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.2.0", REVISION)
    assert target.password not in output(playbook)

    # the restore is the newest row the status report shows
    status_playbook = target.run("status.yml")
    assert status_playbook.rc == 0, status_playbook.stdout[-3000:]
    report = json.loads((target.stack_dir / "status.json").read_text())
    assert report["ledger"]["deploys"][0]["id"] == entry["id"] and report["problems"] == []
