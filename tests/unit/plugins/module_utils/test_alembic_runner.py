# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import sys

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    AlembicRunner,
    RunnerError,
    applied_in_order,
    compose_run_position,
    describe_exit,
    describe_failure,
    is_lock_timeout,
    last_error_line,
    last_started_revision,
    pgoptions,
    python_in_place_of_alembic,
    runner_problem,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_retry import (
    backoff_seconds,
    duration_ms,
    lock_timeout_schedule,
    option_problems,
)

LOCK_TIMEOUT_STDERR = """INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
INFO  [alembic.runtime.migration] Running upgrade 0001_initial -> 0002_customer_phone, add phone
Traceback (most recent call last):
  File "/app/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line 1967, in _exec_single_context
psycopg.errors.LockNotAvailable: canceling statement due to lock timeout

The above exception was the direct cause of the following exception:

sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling statement due to lock timeout
[SQL: ALTER TABLE customers ADD COLUMN phone TEXT]
(Background on this error at: https://sqlalche.me/e/20/e3q8)
"""


def test_failure_names_the_revision_and_the_database_error():
    message = describe_failure(["upgrade", "head"], LOCK_TIMEOUT_STDERR)
    assert message == (
        "alembic upgrade head failed in revision 0002_customer_phone: sqlalchemy.exc.OperationalError: "
        "(psycopg.errors.LockNotAvailable) canceling statement due to lock timeout"
    )
    assert is_lock_timeout(LOCK_TIMEOUT_STDERR)


@pytest.mark.parametrize(
    "stderr, expected",
    [
        (
            "FAILED: No config file 'alembic.ini' found, or file has no '[alembic]' section",
            "alembic current failed, the alembic configuration or scripts are broken: FAILED: No config file",
        ),
        (
            "FAILED: Can't locate revision identified by 'zzz'",
            "alembic current failed, the alembic configuration or scripts are broken: FAILED: Can't locate",
        ),
        ("", "alembic current failed: no error output"),
    ],
)
def test_configuration_failures(stderr, expected):
    assert describe_failure(["current"], stderr).startswith(expected)
    assert not is_lock_timeout(stderr)


def test_steps_in_order_for_both_directions():
    stderr = (
        "INFO  [alembic.runtime.migration] Running upgrade  -> 0001, initial\n"
        "INFO  [alembic.runtime.migration] Running upgrade 0001 -> 0002, phone\n"
        "INFO  [alembic.runtime.migration] Running downgrade 0002 -> 0001, phone\n"
    )
    assert applied_in_order(stderr) == [
        ("upgrade", "", "0001"),
        ("upgrade", "0001", "0002"),
        ("downgrade", "0002", "0001"),
    ]
    assert last_started_revision(stderr) == "0002"


def test_pgoptions_skips_unset_values_and_escapes_spaces():
    assert pgoptions({"lock_timeout": "2000ms", "statement_timeout": None, "search_path": "a, b"}) == (
        "-c lock_timeout=2000ms -c search_path=a,\\ b"
    )


@pytest.mark.parametrize(
    "text, ms", [("500ms", 500), ("2s", 2000), ("1min", 60000), ("250", 250), ("0", 0), ("1.5s", 1500)]
)
def test_duration_ms(text, ms):
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["2 seconds", "-1s", "s"])
def test_duration_ms_rejects(text):
    with pytest.raises(ValueError, match="PostgreSQL duration"):
        duration_ms(text)


def test_schedule_doubles_up_to_the_maximum():
    assert lock_timeout_schedule(1000, 4, 4000) == [1000, 2000, 4000, 4000, 4000]
    assert lock_timeout_schedule(1000, 0, 4000) == [1000]
    assert lock_timeout_schedule(3000, 2, 1000) == [3000, 3000, 3000]
    assert [backoff_seconds(attempt) for attempt in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_runner_not_found_is_a_clear_error(tmp_path):
    runner = AlembicRunner([str(tmp_path / "missing-alembic")])
    with pytest.raises(RunnerError, match="alembic runner .*missing-alembic was not found"):
        runner.run(["current"])
    assert runner.commands == [[str(tmp_path / "missing-alembic"), "current"]]


def test_a_missing_chdir_is_named_not_taken_for_a_missing_runner(tmp_path):
    runner = AlembicRunner([sys.executable, "-m", "alembic"], chdir=str(tmp_path / "gone"))
    with pytest.raises(RunnerError, match="^chdir .*gone does not exist: alembic cannot start there$"):
        runner.run(["history", "--verbose"])


@pytest.mark.parametrize("runner", [[], [""], ["  ", "alembic"]])
def test_a_runner_without_a_command_says_so(runner):
    with pytest.raises(RunnerError, match="^runner (is empty: it must name the command|starts with an empty word)"):
        AlembicRunner(runner).run(["history", "--verbose"])


@pytest.mark.parametrize(
    "runner, problem",
    [
        (["alembic"], None),
        ([], "runner is empty: it must name the command that starts alembic"),
        ([""], "runner starts with an empty word"),
    ],
)
def test_runner_problem(runner, problem):
    found = runner_problem(runner)
    assert found is None if problem is None else found.startswith(problem)


MIGRATE_OPTIONS = dict(
    lock_timeout="2s",
    max_lock_timeout=None,
    statement_timeout="0",
    client_connection_check_interval="2s",
    retries=3,
    retry_budget=600.0,
    lock_wait_timeout=300.0,
    advisory_lock_key=None,
)


@pytest.mark.parametrize(
    "overrides, problems",
    [
        ({}, []),
        ({"retries": 0, "retry_budget": 0, "lock_wait_timeout": 0, "max_lock_timeout": "2s"}, []),
        ({"advisory_lock_key": -(2**63)}, []),
        ({"retry_budget": -1}, ["retry_budget must be 0 or more seconds, got -1"]),
        ({"retries": -1}, ["retries must be 0 or more attempts, got -1"]),
        ({"lock_wait_timeout": -0.5}, ["lock_wait_timeout must be 0 or more seconds, got -0.5"]),
        ({"lock_timeout": "0"}, ["lock_timeout must be more than 0"]),
        ({"lock_timeout": "0ms", "max_lock_timeout": "0"}, ["lock_timeout must be more than 0"]),
        ({"max_lock_timeout": "1s"}, ["max_lock_timeout (1s) must not be below lock_timeout (2s)"]),
        ({"max_lock_timeout": "0"}, ["max_lock_timeout (0) must not be below lock_timeout (2s)"]),
        ({"lock_timeout": "-1s"}, ["lock_timeout"]),
        ({"statement_timeout": "soon"}, ["statement_timeout"]),
        ({"advisory_lock_key": 2**63}, ["advisory_lock_key must be a signed 64-bit integer, got 9223372036854775808"]),
        (
            {"retries": -1, "retry_budget": -2},
            ["retries must be 0 or more attempts, got -1", "retry_budget must be 0 or more seconds, got -2"],
        ),
    ],
)
def test_option_problems_name_the_option(overrides, problems):
    found = option_problems(dict(MIGRATE_OPTIONS, **overrides))
    assert [problem.split(":")[0] for problem in found] == problems


def test_runner_passes_extra_environment(tmp_path):
    runner = AlembicRunner(["sh", "-c", 'echo "$PGOPTIONS|$APP"', "alembic"], runner_env={"APP": 1})
    assert runner.run([], extra_env={"PGOPTIONS": "-c lock_timeout=1s"}) == "-c lock_timeout=1s|1\n"


def test_runner_of_module_params_takes_the_secret_environment_too():
    params = {
        "runner": ["sh", "-c", 'echo "$APP_VERSION|$DATABASE_URL"', "alembic"],
        "runner_env": {"APP_VERSION": "1.2.0", "DATABASE_URL": "postgresql://public@db/app"},
        "runner_secret_env": {"DATABASE_URL": "postgresql://u:secret@db/scratch"},
        "chdir": None,
    }
    runner = AlembicRunner.from_params(params)
    assert runner.run([]) == "1.2.0|postgresql://u:secret@db/scratch\n"
    assert "secret" not in repr(runner.commands)


@pytest.mark.parametrize(
    "runner, position",
    [
        (["docker", "compose", "-p", "erp", "-f", "c.yml", "run", "--rm", "-T", "migration", "alembic"], 6),
        (["/usr/local/bin/docker-compose", "run", "--rm", "migration", "alembic"], 1),
        (["/opt/app/venv/bin/alembic", "-c", "alembic.ini"], None),
        (["docker", "run", "--rm", "app", "alembic"], None),
    ],
)
def test_compose_run_position(runner, position):
    assert compose_run_position(runner) == position


def test_compose_one_shot_gets_a_name_of_ours():
    runner = AlembicRunner(["docker", "compose", "-f", "c.yml", "run", "--rm", "-T", "migration", "alembic"])
    argv, name = runner.argv(["upgrade", "head"])
    assert name.startswith("safedeploy-alembic-")
    assert argv == [
        "docker",
        "compose",
        "-f",
        "c.yml",
        "run",
        "--name",
        name,
        "--rm",
        "-T",
        "migration",
        "alembic",
        "upgrade",
        "head",
    ]
    assert AlembicRunner(["alembic"]).argv(["current"]) == (["alembic", "current"], None)
    named = AlembicRunner(["docker", "compose", "run", "--name", "mine", "migration", "alembic"])
    assert named.argv(["current"])[1] is None


@pytest.mark.parametrize(
    "rc, said",
    [
        (1, ""),
        (None, ""),
        (137, " (exit status 137: killed by SIGKILL, as the out-of-memory killer and docker kill send)"),
        (-9, " (exit status -9: killed by SIGKILL, as the out-of-memory killer and docker kill send)"),
        (143, " (exit status 143: killed by SIGTERM)"),
        (134, " (exit status 134: killed by signal 6)"),
        (255, ""),
    ],
)
def test_an_exit_status_names_the_signal_that_killed_alembic(rc, said):
    assert describe_exit(rc) == said


def test_the_failure_of_a_killed_one_shot_says_so():
    message = describe_failure(["upgrade", "head"], "INFO  [alembic.runtime.migration] Running upgrade a -> b, x", 137)
    assert message.startswith("alembic upgrade head (exit status 137: killed by SIGKILL")
    assert "failed in revision b" in message


@pytest.mark.parametrize(
    "runner, swapped",
    [
        (
            ["docker", "compose", "run", "--rm", "-T", "migration", "alembic"],
            (["docker", "compose", "run", "--rm", "-T", "migration", "python3"], []),
        ),
        (
            ["/opt/app/venv/bin/alembic", "-c", "alembic.ini", "-n", "tenant"],
            (["/opt/app/venv/bin/python3"], ["-c", "alembic.ini", "-n", "tenant"]),
        ),
        (
            ["docker", "compose", "run", "migration", "/usr/bin/python3.11", "-m", "alembic", "-c", "a.ini"],
            (["docker", "compose", "run", "migration", "/usr/bin/python3.11"], ["-c", "a.ini"]),
        ),
        (["docker", "compose", "run", "migration", "migrate.sh"], None),
    ],
)
def test_python_in_place_of_alembic(runner, swapped):
    assert python_in_place_of_alembic(runner) == swapped


FAKE_ALEMBIC_CONFIG = """
import sys

class CommandLine:
    def __init__(self, prog=None):
        pass

    def main(self, argv):
        if argv[-1] == "missing":
            print("FAILED: Can't locate revision identified by 'missing'")
            sys.exit(-1)
        if argv[-1] == "broken":
            raise RuntimeError("env.py broke")
        print("batch " + " ".join(argv))
        print("log " + argv[-1], file=sys.stderr)
"""


@pytest.fixture
def alembic_bin(tmp_path):
    """A bin directory whose alembic is a shell script and whose python3 can import a stand-in alembic.config."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "alembic").write_text('#!/bin/sh\necho "direct $*"\n')
    (bin_dir / "alembic").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    package = tmp_path / "site" / "alembic"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(FAKE_ALEMBIC_CONFIG)
    return bin_dir


def test_prefetched_commands_come_from_one_python_with_their_own_status(alembic_bin):
    runner = AlembicRunner(
        [str(alembic_bin / "alembic"), "-c", "a.ini"], runner_env={"PYTHONPATH": str(alembic_bin.parent / "site")}
    )
    runner.prefetch([["history", "--verbose"], ["upgrade", "missing"], ["downgrade", "broken"]])
    assert runner.run(["history", "--verbose"]) == "batch -c a.ini history --verbose\n"
    with pytest.raises(RunnerError, match="FAILED: Can't locate revision identified by 'missing'") as missing:
        runner.run(["upgrade", "missing"])
    assert missing.value.rc == 255
    with pytest.raises(RunnerError, match="RuntimeError: env.py broke") as broken:
        runner.run(["downgrade", "broken"])
    assert broken.value.rc == 1
    # each answer is used once; the audit trail names the commands, not the batch
    assert runner.run(["history", "--verbose"]) == "direct -c a.ini history --verbose\n"
    assert [command[-1] for command in runner.commands] == ["--verbose", "missing", "broken", "--verbose"]


def test_a_python_without_alembic_leaves_every_command_to_the_runner(alembic_bin):
    runner = AlembicRunner([str(alembic_bin / "alembic")])
    runner.prefetch([["history", "--verbose"]])
    assert runner.prefetched == {}
    assert runner.run(["history", "--verbose"]) == "direct history --verbose\n"


def test_a_failing_downgrade_of_the_root_revision_is_blamed_on_the_root():
    stderr = (
        "INFO  [alembic.runtime.migration] Running downgrade 0002 -> 0001, phone\n"
        "INFO  [alembic.runtime.migration] Running downgrade 0001 -> , initial\n"
        "NotImplementedError: initial schema cannot go back\n"
    )
    assert applied_in_order(stderr)[-1] == ("downgrade", "0001", "")
    assert last_started_revision(stderr) == "0001"
    assert describe_failure(["downgrade", "base"], stderr).startswith("alembic downgrade base failed in revision 0001:")


# what alembic prints when env.py configures no logging: no "Running upgrade" line, only the traceback
SILENT_TRACEBACK = """Traceback (most recent call last):
  File "/usr/local/bin/alembic", line 8, in <module>
    sys.exit(main())
  File "/usr/local/lib/python3.12/site-packages/alembic/command.py", line 403, in upgrade
    script.run_env()
  File "/app/alembic/env.py", line 70, in run_migrations_online
    context.run_migrations()
  File "/app/alembic/versions/2024_03_01_backfill_codes.py", line 21, in upgrade
    backfill(op.get_bind())
  File "/app/alembic/versions/2024_03_01_backfill_codes.py", line 12, in backfill
    raise ValueError("orders without a customer")
ValueError: orders without a customer
"""


@pytest.mark.parametrize(
    ("revision_files", "expected"),
    [
        ({"2024_03_01_backfill_codes.py": "9f1c2ab3"}, "9f1c2ab3"),
        # without the history: alembic's default file name starts with the revision
        ({}, "2024"),
    ],
)
def test_without_log_lines_the_revision_comes_from_the_traceback(revision_files, expected):
    assert last_started_revision(SILENT_TRACEBACK, revision_files) == expected
    message = describe_failure(["upgrade", "head"], SILENT_TRACEBACK, 1, revision_files)
    assert message == "alembic upgrade head failed in revision %s: ValueError: orders without a customer" % expected


def test_a_traceback_outside_any_revision_names_none():
    stderr = '  File "/usr/lib/python3/site-packages/alembic/command.py", line 403, in upgrade\nKeyError: x\n'
    assert last_started_revision(stderr) is None


def test_an_exception_class_without_error_in_its_name_is_the_cause():
    # offline mode cannot inspect: the SQL printed after the traceback is no cause
    stderr = (
        '  File "/app/migrations/versions/0004_backfill.py", line 24, in upgrade\n'
        "sqlalchemy.exc.NoInspectionAvailable: No inspection system is available for object of type MockConnection\n"
        "-- Running upgrade 0003 -> 0004\n"
    )
    assert last_error_line(stderr).startswith("sqlalchemy.exc.NoInspectionAvailable: No inspection system")
