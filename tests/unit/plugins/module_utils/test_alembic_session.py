# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""alembic_migrate's history and upgrade in one alembic process (AlembicRunner.open_session)."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils import _alembic_runner
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    AlembicRunner,
    AlembicSession,
    RunnerError,
    passes_stdin_on,
    session_outcome,
    split_at_marker,
    with_one_shot_name,
)

TOKEN = b"safedeploy-session-0123"


@pytest.mark.parametrize(
    "output, split",
    [
        (b"", None),
        (b"history\n", None),
        # the marker line is not complete yet
        (b"history\n\nsafedeploy-session-0123 0", None),
        (b"Rev: 0001\n\nsafedeploy-session-0123 0\nnext", (b"Rev: 0001\n", "0", b"next")),
        # the driver's newline before the marker is not the command's: output without one stays so
        (b"no newline\nsafedeploy-session-0123 255\n", (b"no newline", "255", b"")),
        # what the runner printed before alembic was imported is dropped with the ready marker
        (b"Creating network\n\nsafedeploy-session-0123 ready\n", (b"Creating network\n", "ready", b"")),
        (
            b"\nsafedeploy-session-0123 ready\n\nsafedeploy-session-0123 1\n",
            (b"", "ready", b"\nsafedeploy-session-0123 1\n"),
        ),
        # another token, or the token without the driver's newline before it, is the command's own output
        (b"\nsafedeploy-session-9999 0\n", None),
        (b"safedeploy-session-0123 0\n", None),
    ],
)
def test_split_at_marker(output, split):
    assert split_at_marker(output, TOKEN) == split


@pytest.mark.parametrize(
    "ready, answered, rc, outcome",
    [
        (True, True, None, "answered"),
        # the runner's python has no alembic
        (False, False, 97, "not run"),
        # the runner itself failed before alembic was imported (no python3 in the image, compose refused)
        (False, False, 1, "not run"),
        (False, False, 127, "not run"),
        # the runner passes no stdin on: the driver read nothing and ran nothing
        (True, False, 98, "not run"),
        # killed under the command, directly or as a container
        (True, False, -9, "died"),
        (True, False, 137, "died"),
    ],
)
def test_session_outcome(ready, answered, rc, outcome):
    assert session_outcome(ready, answered, rc) == outcome


@pytest.mark.parametrize(
    "runner, passes",
    [
        (["/venv/bin/alembic", "-c", "a.ini"], True),
        (["/venv/bin/python", "-m", "alembic"], True),
        (["docker", "compose", "-p", "erp", "run", "--rm", "-T", "-e", "PGOPTIONS", "migration", "alembic"], True),
        (["docker-compose", "run", "--rm", "migration", "alembic"], True),
        (["docker", "compose", "exec", "-T", "app", "alembic"], True),
        (["ssh", "app1", "/srv/app/venv/bin/alembic"], True),
        (["sudo", "-u", "app", "/srv/app/venv/bin/alembic"], True),
        # plain docker, podman, kubectl keep stdin unless told
        (["docker", "run", "--rm", "erp:1.2", "alembic"], False),
        (["docker", "run", "--rm", "-i", "erp:1.2", "alembic"], True),
        (["docker", "exec", "-it", "erp_app_1", "alembic"], True),
        (["docker", "exec", "--interactive", "erp_app_1", "alembic"], True),
        (["podman", "exec", "--name", "x", "erp", "alembic", "-c", "a.ini"], False),
        (["kubectl", "exec", "deploy/erp", "--", "alembic"], False),
        (["kubectl", "exec", "--stdin", "deploy/erp", "--", "alembic"], True),
    ],
)
def test_passes_stdin_on(runner, passes):
    assert passes_stdin_on(runner) is passes


COMPOSE = ["docker", "compose", "-p", "erp", "run", "--rm", "-T", "migration", "alembic"]


@pytest.mark.parametrize(
    "runner, one_shot, command",
    [
        (["/venv/bin/alembic", "-c", "a.ini"], None, ["/venv/bin/alembic", "-c", "a.ini", "upgrade", "0002"]),
        (COMPOSE, "s1", [*COMPOSE[:5], "--name", "s1", *COMPOSE[5:], "upgrade", "0002"]),
    ],
)
def test_the_audit_trail_names_the_runner_and_the_sessions_container(runner, one_shot, command):
    session = AlembicSession(None, [], one_shot, None, token=TOKEN.decode(), runner=runner)
    assert session.command(["upgrade", "0002"]) == command


def test_with_one_shot_name():
    assert with_one_shot_name(["docker-compose", "run", "m", "alembic"], "n") == [
        "docker-compose", "run", "--name", "n", "m", "alembic",
    ]  # fmt: skip


FAKE_ALEMBIC_CONFIG = """
import os, sys

class CommandLine:
    def __init__(self, prog=None):
        pass

    def main(self, argv):
        command = argv[-1]
        if command == "pid":
            print("%s %d" % (" ".join(argv[:-1]), os.getpid()))
        elif command == "env":
            print(os.environ.get("PGOPTIONS", "unset"))
        elif command == "missing":
            print("FAILED: Can't locate revision identified by 'missing'")
            sys.exit(255)
        elif command == "broken":
            raise RuntimeError("env.py broke")
        elif command == "quiet":
            sys.stdout.write("no newline")
        elif command == "big":
            for number in range(3000):
                print("Rev: %04d \u00e9" % number + "x" * 200)
                print("INFO  [alembic] %04d" % number + "y" * 200, file=sys.stderr)
        elif command == "sleep":
            import time
            time.sleep(30)
        elif command == "die":
            print("INFO  [alembic.runtime.migration] Running upgrade 0001 -> 0002, phone", file=sys.stderr)
            sys.stderr.flush()
            os.kill(os.getpid(), 9)
"""


@pytest.fixture
def alembic_bin(tmp_path, monkeypatch):
    """A bin directory whose alembic is a shell script and whose python3 can import a stand-in alembic.config."""
    monkeypatch.delenv("PGOPTIONS", raising=False)
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


def session_runner(alembic_bin, prefix=()) -> AlembicRunner:
    runner = AlembicRunner(
        [*prefix, str(alembic_bin / "alembic"), "-c", "a.ini"],
        runner_env={"PYTHONPATH": str(alembic_bin.parent / "site")},
    )
    runner.open_session()
    return runner


def test_commands_of_a_session_run_in_one_process_with_their_own_environment(alembic_bin):
    runner = session_runner(alembic_bin)
    first = runner.run(["pid"])
    assert first.startswith("-c a.ini ")
    assert runner.run(["env"], extra_env={"PGOPTIONS": "-c lock_timeout=2000ms"}) == "-c lock_timeout=2000ms\n"
    # the environment of one command is not the next one's
    assert runner.run(["env"]) == "unset\n"
    with pytest.raises(RunnerError, match="FAILED: Can't locate revision identified by 'missing'") as missing:
        runner.run(["upgrade", "missing"])
    assert missing.value.rc == 255
    with pytest.raises(RunnerError, match="RuntimeError: env.py broke") as broken:
        runner.run(["downgrade", "broken"])
    assert broken.value.rc == 1
    assert runner.run(["quiet"]) == "no newline"
    assert runner.run(["pid"]) == first
    assert runner.started == 1
    assert [command[3:] for command in runner.commands] == [
        ["pid"], ["env"], ["env"], ["upgrade", "missing"], ["downgrade", "broken"], ["quiet"], ["pid"],
    ]  # fmt: skip
    runner.close_session()
    assert runner.session is None
    # after the session, each command is a process of its own again
    assert runner.run(["pid"]) == "direct -c a.ini pid\n"


def test_output_larger_than_a_pipe_on_both_streams_comes_through_whole(alembic_bin):
    runner = session_runner(alembic_bin)
    history = runner.run(["big"])
    assert history.splitlines() == ["Rev: %04d \u00e9" % number + "x" * 200 for number in range(3000)]
    assert runner.run(["env"]) == "unset\n"


def test_a_session_killed_under_a_command_reports_what_it_logged(alembic_bin):
    runner = session_runner(alembic_bin)
    runner.run(["pid"])
    with pytest.raises(RunnerError, match="killed by SIGKILL.* failed in revision 0002") as died:
        runner.run(["upgrade", "die"])
    assert died.value.rc == -9
    assert runner.session is None
    assert runner.run(["pid"]) == "direct -c a.ini pid\n"


def test_a_session_whose_controller_went_away_is_stopped(alembic_bin, monkeypatch):
    runner = session_runner(alembic_bin)
    runner.run(["pid"])
    process = runner.session.process
    monkeypatch.setattr(_alembic_runner.ControllerWatch, "controller_gone", lambda self: True)
    with pytest.raises(RunnerError, match="ansible-playbook that started it went away"):
        runner.run(["upgrade", "sleep"])
    assert process.returncode == -9
    runner.close_session()


def test_the_controller_message_holds_when_the_session_leader_is_out_of_sight(monkeypatch):
    # under a CI runner the session leader may live in another PID namespace: /proc has no parent for it
    monkeypatch.setattr(_alembic_runner, "parent_pid", lambda pid: None)
    watch = _alembic_runner.ControllerWatch()
    assert not watch.controller_gone()
    assert "lost its parent None" in str(watch.error(["alembic"]))


def test_what_the_runner_prints_before_alembic_starts_is_no_commands_output(alembic_bin):
    noisy = ["sh", "-c", 'echo Creating; echo Pulling >&2; exec "$0" "$@"']
    runner = session_runner(alembic_bin, noisy)
    assert runner.run(["env"]) == "unset\n"
    assert runner.started == 1


@pytest.mark.parametrize(
    "prefix, site",
    [
        # the runner's python has no alembic: 97
        ((), False),
        # the runner does not pass stdin on: 98, nothing run
        (("sh", "-c", 'exec "$0" "$@" </dev/null'), True),
    ],
)
def test_a_session_that_cannot_run_leaves_every_command_to_the_runner(alembic_bin, prefix, site):
    runner = AlembicRunner(
        [*prefix, str(alembic_bin / "alembic")],
        runner_env={"PYTHONPATH": str(alembic_bin.parent / "site")} if site else {},
    )
    runner.open_session()
    assert runner.run(["history", "--verbose"]) == "direct history --verbose\n"
    assert runner.run(["upgrade", "head"]) == "direct upgrade head\n"
    assert [command[len(prefix) + 1 :] for command in runner.commands] == [
        ["history", "--verbose"],
        ["upgrade", "head"],
    ]
    assert runner.session is None and not runner.session_wanted


@pytest.mark.parametrize("runner", [["/opt/app/bin/migrate"], ["docker", "run", "--rm", "erp:1.2", "alembic"]])
def test_a_runner_without_an_alembic_word_or_that_keeps_its_stdin_opens_no_session(runner):
    runner = AlembicRunner(runner)
    runner.open_session()
    assert not runner.session_wanted
