# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/deploy.yml on this machine's docker engine: one environment taken through a release history.

The tests run in file order on one compose project (module-scoped), like a team shipping release after release:
first deploy, no-op re-run, check mode, an online update, a destructive update, a failing migration, an app
that never gets healthy, rollbacks back through that history.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from compose_stack import docker
from deploy_hooks import POINTS, hook_files, hooks_run
from http_load import Load

pytest_plugins = ("compose_stack", "deploy_stack")


def changed(playbook) -> int:
    return sum(host["changed"] for host in playbook.report["stats"].values())


def last_ledger_entry(target) -> dict:
    return target.ledger()[-1]


def written_report(target, entry: dict) -> tuple[dict, str]:
    """The JSON and Markdown reports of a ledger entry, after checking they are readable by their owner only."""
    base = target.stack_dir / "reports" / ("e2e-%d" % entry["id"])
    for path in (base.with_suffix(".json"), base.with_suffix(".md")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    return json.loads(base.with_suffix(".json").read_text()), base.with_suffix(".md").read_text()


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0-broken", "1.4.0-unhealthy"):
        release_images(version)
    return deploy_target


def test_check_mode_first_deploy_creates_nothing(target):
    playbook = target.deploy("1.1.0", check=True)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert "for the first time" in playbook.task("Report what check mode can tell without a plan")["msg"]
    assert not target.stack_dir.exists()
    assert target.containers() == {}


def test_first_deploy_from_nothing(target):
    playbook = target.deploy("1.1.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.1.0", "0002_job_priority")
    entry = last_ledger_entry(target)
    assert (entry["outcome"], entry["app_version_from"], entry["app_version_to"]) == ("succeeded", None, "1.1.0")
    assert (entry["revision_from"], entry["revision_reached"]) == (None, "0002_job_priority")
    assert entry["backup_path"] and entry["backup_sha256"]
    assert (target.stack_dir / ".env").stat().st_mode & 0o777 == 0o600
    assert target.password not in (target.stack_dir / "compose.yml").read_text()
    assert target.password not in playbook.stdout + playbook.stderr


def test_rerun_of_the_same_release_changes_nothing(target):
    before = target.containers()
    ledger_rows = len(target.ledger())
    backups = sorted((target.stack_dir / "backups").iterdir())
    playbook = target.deploy("1.1.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert changed(playbook) == 0
    assert "unchanged since deploy" in playbook.task("Report nothing to do")["msg"]
    # the quick look decided: no plan container, no deploy lock, no render
    assert not playbook.ran("Compute the migration plan") and not playbook.ran("Deploy lock acquired")
    assert not playbook.ran("Write the stack files for 1.1.0")
    assert target.containers() == before
    assert len(target.ledger()) == ledger_rows
    assert sorted((target.stack_dir / "backups").iterdir()) == backups


def test_a_stack_file_changed_by_hand_takes_the_long_way_and_is_put_back(target):
    compose_file = target.stack_dir / "compose.yml"
    rendered = compose_file.read_text()
    compose_file.write_text(rendered + "# edited by hand\n")
    playbook = target.deploy("1.1.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert playbook.ran("Compute the migration plan")
    assert "no migration pending" in playbook.task("Report nothing to do")["msg"]
    assert compose_file.read_text() == rendered
    assert len(target.ledger()) == 1


def test_check_mode_update_shows_the_plan_and_changes_nothing(target):
    before = target.containers()
    compose_file = (target.stack_dir / "compose.yml").read_text()
    playbook = target.deploy("1.2.0", check=True, diff=True, **hook_files(target.root / "hooks"))
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert hooks_run(target.root / "hooks") == ["%s 1.2.0 True" % point for point in POINTS]
    migrate = playbook.task("Migrate the database with the scripts of 1.2.0")
    assert migrate["changed"] and "CREATE INDEX CONCURRENTLY" in migrate["diff"]["prepared"]
    assert "strategy online" in playbook.task("Report the decision")["msg"]
    assert target.revision() == "0002_job_priority"
    assert target.containers() == before
    assert (target.stack_dir / "compose.yml").read_text() == compose_file
    assert last_ledger_entry(target)["app_version_to"] == "1.1.0"


def test_compatible_update_migrates_while_the_old_app_serves(target):
    answers: list[tuple[float, int, dict]] = []
    done = threading.Event()

    def poll():
        while not done.is_set():
            answers.append((time.monotonic(), *target.health()))
            time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        playbook = target.deploy("1.2.0", **hook_files(target.root / "hooks"))
    finally:
        done.set()
        poller.join()
    assert playbook.rc == 0, playbook.stdout[-3000:]
    # the team's tasks of every hook point, once each, in the order of the phases
    assert hooks_run(target.root / "hooks") == ["%s 1.2.0 False" % point for point in POINTS]
    # an index built concurrently on a small table is short: the migration ran plainly, not as an async job
    assert "ansible_job_id" not in playbook.task("Migrate the database with the scripts of 1.2.0")
    assert last_ledger_entry(target)["strategy"] == "online"
    # the 1.1.0 app answered on the new schema: it kept serving through the migration until the roll replaced it
    old_app_on_new_schema = [a for a in answers if a[1] == 200 and a[2]["app_version"] == "1.1.0"
                             and a[2]["revision"] == "0003_jobs_queue_index"]  # fmt: skip
    assert old_app_on_new_schema, answers[-5:]
    assert target.health()[1]["app_version"] == "1.2.0"


def test_incompatible_update_falls_back_to_stop_the_world(target):
    with target.connect() as connection:
        connection.execute("INSERT INTO customers (name, email) VALUES ('kept', 'kept@example.com')")
    # the JSON callback lists set_stats artifacts only when asked to, as AWX's does always
    playbook = target.deploy("1.3.0", env={"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert "strategy stop_the_world (asked: auto)" in playbook.task("Report the decision")["msg"]
    entry = last_ledger_entry(target)
    assert (entry["strategy"], entry["rollback_method"], entry["outcome"]) == ("stop_the_world", "restore", "succeeded")
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.3.0", "0004_drop_customer_legacy_code")
    report, markdown = written_report(target, entry)
    assert report == playbook.report["global_custom_stats"]["safedeploy_report"]
    # what changed, revisions, strategy, backup, durations, outcome (issue 7), and what a failure would add
    what_changed = {"environment", "hosts", "app_version_from", "app_version_to", "ledger_id", "deployed_by"}
    revisions = {"revision_from", "revision_to", "revisions_applied", "plan_hash"}
    outcome = {"outcome", "failure", "rescue", "finished_at"}
    assert what_changed | revisions | {"strategy", "backup", "durations"} | outcome <= set(report), sorted(report)
    assert report["strategy"] == "stop_the_world"
    assert (report["outcome"], report["app_version_from"], report["app_version_to"]) == ("succeeded", "1.2.0", "1.3.0")
    assert report["revisions_applied"] == ["0004_drop_customer_legacy_code"] and report["backup"]["sha256"]
    assert set(report["durations"]) == {"plan", "backup", "migration", "roll", "total"}
    assert markdown.startswith("# Deploy %d to e2e: succeeded" % entry["id"]), markdown
    assert "- strategy: stop_the_world" in markdown
    printed = playbook.task("Print the report")
    assert "- release: 1.2.0 -> 1.3.0 on localhost" in printed["msg"], printed


def test_failing_migration_is_rescued_and_the_play_fails(target):
    before = target.ledger()
    with target.containers_created() as created:
        playbook = target.deploy("1.4.0-broken", **hook_files(target.root / "hooks"))
    assert playbook.rc != 0
    # the deploy ended in the database phase's rescue: no hook point after the failed migration ran
    assert hooks_run(target.root / "hooks") == ["before_plan 1.4.0-broken False", "after_plan 1.4.0-broken False",
                                                "before_database 1.4.0-broken False"]  # fmt: skip
    # the roll never ran: of 1.4.0-broken only the one-shot migration container ever existed
    assert {service for service, image in created if image.endswith(":1.4.0-broken")} == {"migration"}, created
    assert target.revision() == "0004_drop_customer_legacy_code"
    status, health = target.health()
    assert (status, health["app_version"]) == (200, "1.3.0")
    entry = last_ledger_entry(target)
    assert len(target.ledger()) == len(before) + 1
    assert (entry["app_version_to"], entry["outcome"]) == ("1.4.0-broken", "failed")
    assert "0101_broken_invoices" in entry["message"] and "restarted 1.3.0" in entry["rescue"]
    report, markdown = written_report(target, entry)
    assert (report["outcome"], report["app_version_to"]) == ("failed", "1.4.0-broken")
    assert "0101_broken_invoices" in report["failure"] and "restarted 1.3.0" in report["rescue"]
    assert "- rescue: " in markdown and target.password not in markdown + json.dumps(report)


def test_app_that_never_gets_healthy_is_rolled_back(target):
    # the health gate gives up sooner than the inventory's 40 s: nothing here gets healthy late
    playbook = target.deploy("1.4.0-unhealthy", stack_health_timeout=15)
    assert playbook.rc != 0
    failure = playbook.task("End the deploy failed")["msg"]
    assert "did not become healthy" in failure
    assert target.revision() == "0004_drop_customer_legacy_code"
    assert target.scalar("SELECT count(*) FROM information_schema.columns WHERE column_name = 'phone'") == 0
    status, health = target.health()
    assert (status, health["app_version"]) == (200, "1.3.0")
    entry = last_ledger_entry(target)
    assert entry["outcome"] == "failed"
    assert "downgraded 0107_customer_phone -> 0004_drop_customer_legacy_code" in entry["rescue"]
    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'kept@example.com'") == 1


def test_rollback_by_downgrade_is_refused_when_the_plan_said_restore(target):
    rows = len(target.ledger())
    playbook = target.run("rollback.yml")
    assert playbook.rc != 0
    assert (
        "rollback_method=downgrade refused" in playbook.task("Refuse a downgrade that the plan said loses data")["msg"]
    )
    assert len(target.ledger()) == rows
    assert target.health()[1]["app_version"] == "1.3.0"


def test_rollback_by_restore_brings_back_the_data_of_the_backup(target):
    with target.connect() as connection:
        connection.execute("INSERT INTO customers (name, email) VALUES ('late', 'late@example.com')")
    rows_before = target.ledger()
    playbook = target.run("rollback.yml", rollback_method="restore")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.2.0", "0003_jobs_queue_index")
    # written before the 1.3.0 deploy's backup: there; written after it: gone with the restore
    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'kept@example.com'") == 1
    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'late@example.com'") == 0
    assert target.scalar("SELECT count(*) FROM information_schema.columns WHERE column_name = 'legacy_code'") == 1
    ledger = target.ledger()
    assert [row["id"] for row in ledger[: len(rows_before)]] == [row["id"] for row in rows_before]
    entry = ledger[-1]
    assert (entry["kind"], entry["outcome"], entry["app_version_to"]) == ("rollback", "succeeded", "1.2.0")
    assert entry["backup_path"] == next(row for row in rows_before if row["app_version_to"] == "1.3.0")["backup_path"]


def test_rollback_by_downgrade_goes_one_deploy_further_back(target):
    playbook = target.run("rollback.yml")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.1.0", "0002_job_priority")
    entry = target.ledger()[-1]
    assert (entry["kind"], entry["rollback_method"], entry["app_version_from"]) == ("rollback", "downgrade", "1.2.0")
    assert target.scalar("SELECT count(*) FROM customers WHERE email = 'kept@example.com'") == 1


def test_a_rollback_after_a_redeploy_goes_back_where_the_last_rollback_went(target):
    # 1.1.0 runs again, the state of the first deploy; 1.2.0 once more, then back: to 1.1.0, not to a release the
    # ledger holds from before the rollback
    first = target.ledger()[0]
    redeploy = target.deploy("1.2.0")
    assert redeploy.rc == 0, redeploy.failures()
    redeployed = target.ledger()[-1]
    assert (redeployed["kind"], redeployed["app_version_to"], redeployed["outcome"]) == ("deploy", "1.2.0", "succeeded")
    # 1.2.0 went online, so its rollback does: 1.1.0 takes over behind the proxy, then the downgrade runs
    with Load(target.app_port) as load:
        playbook = target.run("rollback.yml")
    assert playbook.rc == 0, playbook.failures()
    assert playbook.task("Report the rollback")["msg"].startswith(
        "rolling back 1.2.0 -> 1.1.0 (ledger id %d, revision 0002_job_priority), undoing ledger id(s) %d, by downgrade,"
        " online: 1.1.0 takes over behind the proxy before the downgrade" % (first["id"], redeployed["id"])
    )
    assert not playbook.ran("Stop app and worker")
    assert load.failed == [], load.failed[:10]
    served = [version for _at, version in load.answers]
    assert served[0] == "1.2.0" and served[-1] == "1.1.0" and len(served) > 50, (served[:3], served[-3:])
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, "1.1.0", "0002_job_priority")
    entry = target.ledger()[-1]
    assert (entry["kind"], entry["outcome"], entry["app_version_from"], entry["app_version_to"]) == (
        "rollback",
        "succeeded",
        "1.2.0",
        "1.1.0",
    )
    assert int(entry["details"]["rollback_to_deploy_id"]) == first["id"] and entry["strategy"] == "online"


def test_a_rollback_with_nothing_to_do_changes_nothing(target):
    first = target.ledger()[0]
    before = (target.containers(), target.ledger(), target.files())
    # the first deploy's release and revision run already
    playbook = target.run("rollback.yml", rollback_to_deploy_id=first["id"])
    assert playbook.rc == 0, playbook.failures()
    assert changed(playbook) == 0
    assert playbook.task("Report nothing to do")["msg"] == (
        "nothing to do: %s already runs 1.1.0 on revision 0002_job_priority (the state of ledger id %d)"
        % (target.project, first["id"])
    )
    for step in ("Take the deploy lock, or refuse while a deploy runs", "Record the rollback in the ledger"):
        assert not playbook.ran(step), step
    assert not playbook.ran("Stop app and worker") and not playbook.ran(
        "Start the target release, behind the health gate"
    )
    assert (target.containers(), target.ledger(), target.files()) == before
    # and nothing ran before the first deploy's state: the next rollback has nowhere to go
    refused = target.run("rollback.yml")
    assert refused.rc != 0
    assert refused.task("Refuse a rollback that has no target")["msg"] == (
        "no successful deploy of e2e to go back to (nothing before deploy %d (1.1.0 at 0002_job_priority), whose "
        "state runs now, left another release or revision)" % first["id"]
    )
    assert (target.containers(), target.ledger(), target.files()) == before


def test_a_rollback_to_the_release_the_ledger_says_runs_is_refused_while_the_app_is_down(target):
    first = target.ledger()[0]
    project = "label=com.docker.compose.project=%s" % target.project
    apps = docker("ps", "-q", "--filter", project, "--filter", "label=com.docker.compose.service=app").split()
    docker("stop", *apps)
    try:
        playbook = target.run("rollback.yml", rollback_to_deploy_id=first["id"])
        assert playbook.rc != 0
        assert playbook.task("Refuse when the app does not run the release the ledger says runs")["msg"].endswith(
            "but its app runs nothing; start 1.1.0 again with playbooks/deploy.yml -e app_version=1.1.0"
        )
        assert not playbook.ran("Record the rollback in the ledger")
    finally:
        docker("start", *apps)
    deadline = time.monotonic() + 60
    while target.health()[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert target.health()[1]["app_version"] == "1.1.0"


def unchanged_after(target, playbook_run):
    """Runs a failing deploy and checks that it touched nothing: same containers, ledger, revision and answer."""
    before = (target.containers(), len(target.ledger()), target.revision(), target.health())
    playbook = playbook_run()
    assert playbook.rc != 0
    assert (target.containers(), len(target.ledger()), target.revision(), target.health()) == before
    return playbook


def test_a_release_with_two_heads_is_refused_before_anything_changes(target, release_images):
    release_images("1.4.0-branch")
    playbook = unchanged_after(target, lambda: target.deploy("1.4.0-branch"))
    assert "heads" in playbook.task("Compute the migration plan")["msg"]


def test_a_release_whose_image_does_not_exist_is_refused(target):
    playbook = unchanged_after(target, lambda: target.deploy("9.9.9"))
    assert "orchestrator-example:9.9.9" in playbook.failures(), playbook.failures()


def test_a_missing_password_is_named(target):
    playbook = unchanged_after(target, lambda: target.deploy("1.3.0", env={"STACK_DB_PASSWORD": ""}))
    assert "stack_db_password must be set" in playbook.stdout


def test_a_wrong_password_is_named(target):
    playbook = unchanged_after(target, lambda: target.deploy("1.3.0", env={"STACK_DB_PASSWORD": "not-the-password"}))
    assert "password authentication failed" in playbook.stdout
