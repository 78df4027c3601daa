# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secrets audit: a release history at -vvv with a distinctive database password that must show nowhere else.

One compose project (module-scoped) whose password is a random token followed by a space, quotes, a backslash and
`$HOME`, which the .env file must keep literal: a first deploy of 1.2.0, an
on-demand backup, a rehearsal of 1.3.0, a check-mode deploy of 1.3.0 with --diff, the deploy of 1.3.0 (backup and
migration), a deploy of 1.4.0-broken (its migration fails, the rescue restarts 1.3.0), status.yml writing its JSON
to a directory of its own, and a rollback by restore. While each playbook runs, a thread reads every process's argv
from /proc (containers' processes too: docker runs them on this kernel) and records the ones holding the token, and
the pg_dump, pg_restore, psql and alembic processes of this stack it saw, which proves the sampling catches them.
The tests run in file order; the last ones read the ledger, Ansible's temporary and async directories, and every
file of the target (stack directory, backups, reports, rehearsals, the status JSON, inventory, promotion store).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# the fixtures' modules are plugins of this one; rewrite their asserts before the imports below load them
pytest.register_assert_rewrite("compose_stack", "deploy_stack")
pytest_plugins = ("compose_stack", "deploy_stack")

from conftest import files_holding
from deploy_stack import deploy_target_lifetime
from secrets_audit import ArgvSampler

# any occurrence of the token, however quoted or encoded around it, is the password leaking
SECRET_TOKEN = "s3cr3t-%s" % uuid.uuid4().hex
PASSWORD = '%s "quoted" it\'s \\ $HOME' % SECRET_TOKEN
RELEASE, NEXT_RELEASE, BROKEN_RELEASE = "1.2.0", "1.3.0", "1.4.0-broken"
VERBOSE = {"ANSIBLE_VERBOSITY": "3"}  # -vvv
# where a secret may be: the stack's .env file, which docker compose reads
HOLDERS = ["stack/.env"]


class Audit:
    """The module's playbook runs at -vvv under an ArgvSampler, by step name."""

    def __init__(self, target):
        self.target = target
        self.samplers: dict[str, ArgvSampler] = {}

    def run(self, step: str, playbook: str, env: dict | None = None, secret: str = SECRET_TOKEN, **kwargs):
        with ArgvSampler(secret, self.target.project) as sampler:
            result = self.target.run(playbook, env=dict(VERBOSE, **(env or {})), **kwargs)
        self.samplers[step] = sampler
        output = result.stdout + result.stderr
        # -vvv took effect (a message of verbosity 3), and the sampler read /proc for the whole run
        assert "inventory source with" in output, output[-3000:]
        assert sampler.rounds > 10, sampler.rounds
        assert secret not in output, "%s: the password in the -vvv output" % step
        assert sampler.leaks == set(), "%s: the password in argv: %s" % (step, sorted(sampler.leaks))
        return result

    def seen(self, step: str) -> set[tuple[str, str]]:
        return self.samplers[step].seen


@pytest.fixture(scope="module")
def target(tmp_path_factory, release_images):
    for version in (RELEASE, NEXT_RELEASE, BROKEN_RELEASE):
        release_images(version)
    yield from deploy_target_lifetime(tmp_path_factory.mktemp("secrets"), environment="audit", password=PASSWORD)


@pytest.fixture(scope="module")
def audit(target) -> Audit:
    return Audit(target)


@pytest.fixture(scope="module")
def status_json(target) -> Path:
    directory = target.root / "status"
    directory.mkdir(exist_ok=True)
    return directory / "status.json"


def test_the_sampler_catches_a_secret_in_argv(target):
    with ArgvSampler(SECRET_TOKEN, target.project) as sampler:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)", "--password=" + SECRET_TOKEN], check=True)
    assert any("--password=<secret>" in leak for leak in sampler.leaks), sampler.leaks


def test_first_deploy_keeps_the_password_to_the_env_file(target, audit):
    playbook = audit.run("first deploy", "deploy.yml", app_version=RELEASE)
    assert playbook.rc == 0, playbook.failures()
    assert "ESTABLISH LOCAL CONNECTION" in playbook.stdout  # what -vvv adds around each module run
    # the space, the quotes, the backslash and $HOME reached postgres literally: the app connects with the same
    # password as we do
    status, health = target.health()
    assert (status, health["app_version"]) == (200, RELEASE)
    assert ("alembic", "container") in audit.seen("first deploy"), audit.seen("first deploy")


def test_on_demand_backup(target, audit):
    # rows enough for pg_dump to run a second or so: a dump of the bare example database can end between two of the
    # sampler's reads of /proc, and the test must see pg_dump's argv to show that it holds no secret
    bulk = "CREATE TABLE audit_bulk AS SELECT g, md5(g::text) AS digest FROM generate_series(1, 200000) AS g"
    with target.connect() as connection:
        connection.execute(bulk)
    playbook = audit.run("backup", "backup.yml")
    with target.connect() as connection:
        connection.execute("DROP TABLE audit_bulk")
    assert playbook.rc == 0, playbook.failures()
    assert ("pg_dump", "docker CLI") in audit.seen("backup"), audit.seen("backup")


def test_rehearsal_of_the_next_release(target, audit):
    playbook = audit.run("rehearsal", "rehearse.yml", app_version=NEXT_RELEASE)
    assert playbook.rc == 0, playbook.failures()
    assert ("alembic", "container") in audit.seen("rehearsal"), audit.seen("rehearsal")


def test_check_mode_deploy_with_diff(target, audit):
    playbook = audit.run("check deploy", "deploy.yml", check=True, diff=True, app_version=NEXT_RELEASE)
    assert playbook.rc == 0, playbook.failures()
    migrate = playbook.task("Migrate the database with the scripts of %s" % NEXT_RELEASE)
    assert "DROP COLUMN legacy_code" in migrate["diff"]["prepared"]
    assert target.revision() == "0003_jobs_queue_index"


def test_update_backs_up_and_migrates(target, audit):
    playbook = audit.run("update", "deploy.yml", app_version=NEXT_RELEASE)
    assert playbook.rc == 0, playbook.failures()
    assert target.revision() == "0004_drop_customer_legacy_code"
    seen = audit.seen("update")
    assert {("pg_dump", "docker CLI"), ("alembic", "container")} <= seen, seen


def test_a_failing_migration_and_its_rescue(target, audit):
    playbook = audit.run("failing deploy", "deploy.yml", app_version=BROKEN_RELEASE)
    assert playbook.rc != 0
    assert target.revision() == "0004_drop_customer_legacy_code"
    assert "0101_broken_invoices" in target.ledger()[-1]["message"]


def test_status_with_its_json_report(target, audit, status_json):
    playbook = audit.run("status", "status.yml", status_report_path=str(status_json))
    assert playbook.rc == 0, playbook.failures()
    assert json.loads(status_json.read_text())["revisions"]["current"] == ["0004_drop_customer_legacy_code"]


def test_rollback_by_restore(target, audit):
    playbook = audit.run("rollback", "rollback.yml", rollback_method="restore")
    assert playbook.rc == 0, playbook.failures()
    assert target.health()[1]["app_version"] == RELEASE
    assert ("pg_restore", "docker CLI") in audit.seen("rollback"), audit.seen("rollback")


def test_the_sampler_saw_the_tools_run_inside_the_containers(audit):
    print("\nclient tools seen while the playbooks ran:")
    for step, sampler in audit.samplers.items():
        print("%s: %s" % (step, ", ".join("%s (%s)" % pair for pair in sorted(sampler.seen))))
    seen = set().union(*(sampler.seen for sampler in audit.samplers.values()))
    in_containers = {(tool, "container") for tool in ("pg_dump", "pg_restore", "alembic")}
    # psql only through its docker exec: a psql of one query may begin and end between two samples
    assert in_containers | {("psql", "docker CLI")} <= seen, seen


def test_the_ledger_holds_no_password(target):
    rows = target.ledger()
    outcomes = [(row["kind"], row["app_version_to"], row["outcome"]) for row in rows]
    assert outcomes == [
        ("deploy", RELEASE, "succeeded"),
        ("deploy", NEXT_RELEASE, "succeeded"),
        ("deploy", BROKEN_RELEASE, "failed"),
        ("rollback", RELEASE, "succeeded"),
    ]
    assert SECRET_TOKEN not in json.dumps(rows, default=str)


def test_only_the_env_file_holds_the_password_and_it_is_0600(target, status_json):
    backups = sorted((target.stack_dir / "backups").iterdir())
    reports = sorted((target.stack_dir / "reports").iterdir())
    written = [
        *[path for path in backups if path.suffix == ".json"],  # the manifests
        *reports,
        target.stack_dir / "rehearsals" / ("%s.json" % NEXT_RELEASE),
        status_json,
    ]
    # the manifests of three backups, the JSON and Markdown reports of three deploys, the rehearsal, the status
    assert len(written) >= 11, written
    for path in written:
        assert SECRET_TOKEN not in path.read_text(), path
    for path in backups + reports + written[-2:]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    holding = files_holding(target.root, SECRET_TOKEN)
    print("files holding the password:", holding)
    assert holding == HOLDERS
    for name in holding:
        assert (target.root / name).stat().st_mode & 0o777 == 0o600, name


def test_ansible_left_no_password_in_its_temporary_and_async_directories():
    for directory in (Path.home() / ".ansible" / "tmp", Path.home() / ".ansible_async"):
        if directory.exists():
            assert files_holding(directory, SECRET_TOKEN) == [], directory
