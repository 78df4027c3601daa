# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/deploy.yml run the way AWX runs it: ansible-runner with a private data directory per job.

Each job's directory is laid out as AWX lays it out: `project/` (the playbooks, as a project sync checks them out),
`inventory/` (a DeployTarget's), `env/extravars` (the survey's answers and AWX's own awx_* variables), `env/envvars`
(what the job's environment gets: the collections a project sync installs, and the database password as a
credential injects it) and, for a Check job, `env/cmdline` (`--check --diff`). One stack serves the module: a
deploy job of 1.0.0, then a Check job of 1.1.0. The assertions read what AWX reads: the runner's status and rc, the
job events and the stdout file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import ansible_runner
import pytest
from conftest import BUILD, REPO, files_holding
from deploy_stack import PASSWORD_VARIABLE, DeployTarget

pytest_plugins = ("compose_stack", "deploy_stack")

PLAYBOOK = "playbooks/deploy.yml"
RELEASE = "1.0.0"
NEXT_RELEASE = "1.1.0"
NEXT_REVISION = "0002_job_priority"
NEXT_SQL = "ALTER TABLE jobs ADD COLUMN priority SMALLINT"
# what AWX passes for a job template of job type "check" with "Show Changes" on
CHECK_CMDLINE = "--check --diff"
AWX_USER = "admin"


class AwxJob:
    """One job: its private data directory as AWX writes it, then what ansible-runner leaves in it."""

    def __init__(self, root: Path, ident: str, target: DeployTarget, answers: dict, cmdline: str = ""):
        self.ident = ident
        self.private_data_dir = root / ident
        self.private_data_dir.mkdir(mode=0o700)
        # a project sync checks the repository out; the playbooks are what a job template names
        shutil.copytree(REPO / "playbooks", self.private_data_dir / "project" / "playbooks")
        shutil.copytree(target.inventory, self.private_data_dir / "inventory")
        env = self.private_data_dir / "env"
        env.mkdir(mode=0o700)
        write_private(env / "extravars", json.dumps(dict(answers, **awx_variables(ident))))
        write_private(env / "envvars", json.dumps(credential_environment(target)))
        if cmdline:
            write_private(env / "cmdline", cmdline)
        self.runner = None

    def run(self) -> AwxJob:
        self.runner = ansible_runner.run(
            private_data_dir=str(self.private_data_dir),
            ident=self.ident,
            playbook=PLAYBOOK,
            quiet=True,
            timeout=600,
        )
        return self

    @property
    def artifact_dir(self) -> Path:
        return self.private_data_dir / "artifacts" / self.ident

    def events(self) -> list[dict]:
        files = (self.artifact_dir / "job_events").glob("*.json")
        return sorted((json.loads(path.read_text()) for path in files), key=lambda event: event["counter"])

    def stdout(self) -> str:
        return (self.artifact_dir / "stdout").read_text()

    def stats_event(self) -> dict:
        return next(event for event in self.events() if event["event"] == "playbook_on_stats")

    def task_result(self, name: str) -> dict:
        """The result of the task of that name (a role's task is "<role> : <name>")."""
        for event in self.events():
            data = event.get("event_data", {})
            if "res" in data and data.get("task", "").split(" : ")[-1] == name:
                return data["res"]
        raise KeyError("no result of %r in the events of job %s:\n%s" % (name, self.ident, self.stdout()[-3000:]))

    def failure(self) -> str:
        return "job %s: %s rc %s\n%s" % (self.ident, self.runner.status, self.runner.rc, self.stdout()[-3000:])


def write_private(path: Path, text: str) -> None:
    # created 0600, so the secret is never readable by others, not even between create and chmod
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def credential_environment(target: DeployTarget) -> dict:
    """env/envvars: what AWX gives the job's environment, the credential's injected password among it."""
    return {
        # where a project sync installs collections/requirements.yml
        "ANSIBLE_COLLECTIONS_PATH": str(BUILD / "collections"),
        # the execution environment's ansible-playbook and Python (with the modules' requirements)
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ["PATH"])),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        PASSWORD_VARIABLE: target.password,
    }


def survey(app_version: str, **answers) -> dict:
    return {"app_version": app_version, "deploy_strategy": "auto", **answers}


def awx_variables(ident: str) -> dict:
    """Some of the variables AWX adds to every job's extra vars."""
    return {"awx_job_id": int(ident), "awx_user_name": AWX_USER, "awx_job_launch_type": "manual"}


def snapshot(target: DeployTarget) -> tuple:
    return target.revision(), target.health(), target.ledger(), target.containers()


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in (RELEASE, NEXT_RELEASE):
        release_images(version)
    return deploy_target


@pytest.fixture(scope="module")
def jobs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("awx-jobs")


@pytest.fixture(scope="module")
def deploy_job(target, jobs_root) -> AwxJob:
    # a first migration that only creates tables runs plainly; 0 keeps it an async job, whose polls AWX shows
    return AwxJob(jobs_root, "1", target, survey(RELEASE, deploy_async_after_seconds=0)).run()


@pytest.fixture(scope="module")
def check_job(target, jobs_root, deploy_job) -> tuple[AwxJob, tuple, tuple]:
    """The Check job of the next release, with the stack as it was before and after it."""
    before = snapshot(target)
    job = AwxJob(jobs_root, "2", target, survey(NEXT_RELEASE), cmdline=CHECK_CMDLINE).run()
    return job, before, snapshot(target)


def test_a_deploy_job_succeeds_and_the_app_serves_the_release(deploy_job, target):
    assert (deploy_job.runner.status, deploy_job.runner.rc) == ("successful", 0), deploy_job.failure()
    status, health = target.health()
    assert (status, health["app_version"], health["revision"]) == (200, RELEASE, "0001_initial")


def test_the_deploy_jobs_artifacts_carry_the_promotion_evidence(deploy_job, target):
    evidence = deploy_job.stats_event()["event_data"]["artifact_data"]["safedeploy_promotion"]
    entry = target.ledger()[-1]
    assert (evidence["app_version"], evidence["outcome"], evidence["environment"]) == (RELEASE, "succeeded", "e2e")
    assert (evidence["plan_hash"], evidence["ledger_id"]) == (entry["plan_hash"], entry["id"])
    # the ledger and the evidence name the AWX job and its user, from the awx_* extra vars
    assert evidence["deployed_by"] == entry["deployed_by"] == "awx job 1 by %s" % AWX_USER


def test_the_deploy_job_shows_the_migration_polled_while_it_runs(deploy_job):
    events = deploy_job.events()
    migrate = "Migrate the database with the scripts of %s" % RELEASE
    (done,) = [e for e in events if e["event"] == "runner_on_async_ok" and e["event_data"]["task"] == migrate]
    # a poll event names the task async_status; the async job id ties it to the migration
    job_id = done["event_data"]["jid"]
    polls = [e for e in events if e["event"] == "runner_on_async_poll" and e["event_data"]["jid"] == job_id]
    assert polls, deploy_job.failure()
    assert not any(poll["event_data"]["res"]["finished"] for poll in polls)
    assert max(poll["counter"] for poll in polls) < done["counter"]


def test_a_check_job_shows_the_pending_revision_and_its_sql_and_changes_nothing(check_job):
    job, before, after = check_job
    assert (job.runner.status, job.runner.rc) == ("successful", 0), job.failure()
    plan = job.task_result("Compute the migration plan")
    assert [revision["revision"] for revision in plan["revisions"]] == [NEXT_REVISION]
    assert NEXT_SQL in plan["revisions"][0]["sql"]
    migrate = job.task_result("Migrate the database with the scripts of %s" % NEXT_RELEASE)
    assert migrate["changed"] and NEXT_SQL in migrate["diff"]["prepared"]
    # the diff as its own event, and the job's output as the AWX job page shows it
    diffs = [event["event_data"]["diff"] for event in job.events() if event["event"] == "runner_on_file_diff"]
    assert any(NEXT_SQL in json.dumps(diff) for diff in diffs)
    assert NEXT_SQL in job.stdout()
    assert after == before
    revision, (status, health) = after[0], after[1]
    assert (revision, status, health["app_version"]) == ("0001_initial", 200, RELEASE)
    assert "safedeploy_promotion" not in job.stats_event()["event_data"]["artifact_data"]


def test_the_password_is_in_no_event_or_output_and_only_in_the_environment_files(deploy_job, check_job, target):
    for job in (deploy_job, check_job[0]):
        leaking = [event["uuid"] for event in job.events() if target.password in json.dumps(event)]
        assert leaking == [], "job %s: the password in events %s" % (job.ident, leaking)
        assert target.password not in job.stdout()
        assert PASSWORD_VARIABLE not in json.loads((job.private_data_dir / "env" / "extravars").read_text())
        # ansible-runner itself keeps the job's whole environment in artifacts/<ident>/command; nothing else has it
        holding = ["artifacts/%s/command" % job.ident, "env/envvars"]
        assert files_holding(job.private_data_dir, target.password) == holding
        for name in holding:
            assert (job.private_data_dir / name).stat().st_mode & 0o777 == 0o600, name
