# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end fixtures: an ephemeral PostgreSQL cluster, the example app in a virtualenv, real ansible-playbook runs."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO / "examples" / "orchestrator"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
BUILD = REPO / ".build"


# The modules that take longest, longest first (scripts/e2e_times.py on a whole run): pytest-xdist hands whole modules
# to its workers in collection order, and a long module started last would run alone at the end of the suite
SLOWEST_MODULES = (
    "test_deploy.py",
    "test_faults.py",
    "test_faults_database.py",
    "test_promotion.py",
    "test_test_migrations.py",
    "test_own_stack.py",
    "test_app_hosts.py",
    "test_own_stack_variants.py",
    "test_secrets_audit.py",
    "test_bad_input.py",
    "test_status_backup_restore.py",
)


def pytest_collection_modifyitems(items):
    """The slowest modules first; a stable sort, so the tests of a module keep their order."""
    rank = {name: position for position, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session, exitstatus):
    """Under CI (CI=true) a skipped test means the machine lacks what the suite needs (docker, sshd, the
    PostgreSQL tools), and that is a failure, not a green run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") != "true" or hasattr(session.config, "workerinput") or reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line("CI=true: %d test(s) skipped, which fails the run:" % len(skipped), red=True)
        for report in skipped:
            reporter.write_line("  %s: %s" % (report.nodeid, report.longrepr[-1] if report.longrepr else "?"))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def load_pg_cluster():
    path = REPO / "tests" / "integration" / "targets" / "setup_postgresql" / "files" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("pg_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pg():
    """A cluster of the e2e session's own, removed afterwards."""
    pg_cluster = load_pg_cluster()
    state_dir = tempfile.mkdtemp(prefix="safedeploy-e2e-pg-")
    os.rmdir(state_dir)
    info = pg_cluster.start(state_dir)
    yield info
    pg_cluster.stop(state_dir)


@pytest.fixture(scope="session")
def example_venv() -> Path:
    """The example app's pinned requirements in a virtualenv, rebuilt only when requirements.txt changes."""
    requirements = EXAMPLE_APP / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = BUILD / ("example-venv-%s" % digest)
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            check=True,
        )
        (venv / ".installed").touch()
    return venv


@pytest.fixture
def app_copy(tmp_path) -> Path:
    """A private copy of the example app, so a test may edit its scripts."""
    target = tmp_path / "orchestrator"
    shutil.copytree(EXAMPLE_APP, target, ignore=shutil.ignore_patterns("wheelhouse", "__pycache__"))
    return target


class Database:
    """One fresh database per test, with the environment the modules and alembic need to reach it."""

    def __init__(self, pg: dict, name: str):
        self.pg = pg
        self.name = name

    def connect(self, **kwargs):
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(
            host=self.pg["host"],
            port=self.pg["port"],
            user=self.pg["user"],
            password=self.pg["password"],
            dbname=self.name,
            **kwargs,
        )

    def scalar(self, query: str, params=None):
        with self.connect() as connection:
            row = connection.execute(query, params).fetchone()
            return row[0] if row else None

    @property
    def environment(self) -> dict:
        # the password reaches libpq through the environment only; DATABASE_URL carries none
        return {
            "PGHOST": self.pg["host"],
            "PGPORT": str(self.pg["port"]),
            "PGUSER": self.pg["user"],
            "PGPASSWORD": self.pg["password"],
            "DATABASE_URL": "postgresql://%s@%s:%s/%s" % (self.pg["user"], self.pg["host"], self.pg["port"], self.name),
        }

    def current_revisions(self) -> list[str]:
        with self.connect() as connection:
            if not connection.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]:
                return []
            return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version ORDER BY 1")]

    def advisory_locks(self) -> int:
        return self.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")


@pytest.fixture
def database(pg):
    name = "e2e_%s" % uuid.uuid4().hex[:10]
    admin = psycopg.connect(
        host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"], dbname="postgres", autocommit=True
    )
    admin.execute('CREATE DATABASE "%s"' % name)
    yield Database(pg, name)
    admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    admin.close()


class Playbook:
    """A real ansible-playbook run with the JSON callback; tasks are found by name in the result."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.rc = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.report = json.loads(completed.stdout[completed.stdout.index("{") :]) if "{" in completed.stdout else {}

    def failures(self) -> str:
        """The failed tasks and their messages, for assertion messages that say why a run failed."""
        lines = [
            "%s: %s" % (task["task"]["name"], result.get("msg"))
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            for result in task["hosts"].values()
            if result.get("failed") and not result.get("ignore_errors")
        ]
        return "\n".join(lines) or self.stdout[-3000:] + self.stderr[-3000:]

    def results(self, name: str) -> list[dict]:
        """The first host's result of every task called name, in run order; tasks of a role are "<role> : <task>"."""
        return [
            next(iter(task["hosts"].values()))
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            if (task["task"]["name"] == name or task["task"]["name"].endswith(" : " + name)) and task["hosts"]
        ]

    def task(self, name: str) -> dict:
        """The first result of the task that ran; a skipped one only when none ran (two files may share a name)."""
        found = self.results(name)
        if not found:
            raise KeyError(
                "task %r not in the playbook output:\n%s\n%s" % (name, self.stdout[-3000:], self.stderr[-3000:])
            )
        return next((result for result in found if not result.get("skipped")), found[0])

    def ran(self, name: str) -> bool:
        """Whether a task of that name ran; a name no task of the collection or the tests carries is an error, so
        that `not ran(...)` cannot pass because a task was renamed."""
        assert any(pattern.fullmatch(name) for pattern in task_name_patterns()), "no task is named %r" % name
        return any(not result.get("skipped") for result in self.results(name))


TASK_NAME_LINE = re.compile(r"^\s*(?:- )?name: (?P<name>.+?)\s*$", re.M)
TEMPLATE_PART = re.compile(r"\{\{.*?\}\}")


@functools.cache
def task_name_patterns() -> list:
    """Every task name of the roles, the playbooks and the tests' own task files, a {{ template }} matching any text."""
    files = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("playbooks/*.yml"), *REPO.glob("tests/e2e/**/*.yml")]
    names = {match["name"].strip("'\"") for path in files for match in TASK_NAME_LINE.finditer(path.read_text())}
    return [
        re.compile(".+".join(re.escape(part) for part in TEMPLATE_PART.split(name)), re.S) for name in sorted(names)
    ]


def playbook_command(playbook: str, extra_vars: dict, check: bool = False, diff: bool = False) -> list[str]:
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(PLAYBOOKS / playbook),
        "-e",
        json.dumps(extra_vars),
    ]
    return argv + (["--check"] if check else []) + (["--diff"] if diff else [])


def playbook_environment(database: Database | None, extra: dict | None = None) -> dict:
    env = dict(os.environ, **(database.environment if database else {}), **(extra or {}))
    env.update(
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_COLLECTIONS_PATH=str(BUILD / "collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return env


@pytest.fixture
def run_playbook(database):
    def run(playbook: str, check: bool = False, diff: bool = False, env: dict | None = None, **extra_vars) -> Playbook:
        completed = subprocess.run(
            playbook_command(playbook, extra_vars, check, diff),
            env=playbook_environment(database, env),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        return Playbook(completed)

    return run


def alembic_runner(venv: Path, app: Path, section: str | None = None) -> list[str]:
    runner = [str(venv / "bin" / "alembic"), "-c", str(app / "alembic.ini")]
    return runner + (["-n", section] if section else [])


def finish_playbook(process: subprocess.Popen) -> Playbook:
    """Collect a playbook started in the background."""
    stdout, stderr = process.communicate(timeout=300)
    return Playbook(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def files_holding(root: Path, secret: str) -> list[str]:
    """The files under root whose bytes contain secret, relative to root."""
    found = []
    # Other workers' ansible runs create and remove their temporary files while this walks.
    for directory, _subdirs, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            try:
                if secret.encode() in path.read_bytes():
                    found.append(str(path.relative_to(root)))
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
    return sorted(found)


def hold_access_share(database: Database, table: str):
    """A session in an open transaction that has read the table: an ALTER must wait for it."""
    blocker = database.connect(autocommit=False, application_name="e2e-long-report")
    blocker.execute("SELECT count(*) FROM %s" % table)
    return blocker


def sleeping_backend(database: Database):
    """The backend running the slow revision's pg_sleep, if any."""
    return database.scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%%pg_sleep%%' "
        "AND pid <> pg_backend_pid()"
    )
