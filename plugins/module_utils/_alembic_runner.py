# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Runs the application's own alembic (a local command or a compose one-shot) and reads what it prints."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess

_PR_SET_PDEATHSIG = 1
CONTROLLER_CHECK_SECONDS = 0.5
_RUNNING_UPGRADE = re.compile(r"Running (upgrade|downgrade) (.*?) -> ([^,\s]+)(?:, (.*))?$")
_LOCK_NOT_AVAILABLE = re.compile(r"LockNotAvailable|lock timeout|55P03")
_CONFIG_ERRORS = re.compile(
    r"No config file .* found|No 'script_location' key found|Path doesn't exist|Can't locate revision|"
    r"No such revision|ModuleNotFoundError|ImportError|SyntaxError"
)


class RunnerError(Exception):
    """alembic could not be started, or exited non-zero."""

    def __init__(self, message: str, argv: list[str], rc: int, stdout: str = "", stderr: str = ""):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        super().__init__(message)


def runner_argument_spec() -> dict:
    return dict(
        runner=dict(type="list", elements="str", required=True),
        runner_env=dict(type="dict", default={}),
        chdir=dict(type="path"),
    )


def pgoptions(settings: dict) -> str:
    """libpq PGOPTIONS that set server parameters on alembic's own connection: `-c name=value ...`."""
    return " ".join("-c %s=%s" % (name, str(value).replace(" ", "\\ ")) for name, value in settings.items() if value)


def _die_with_parent() -> None:
    # a SIGKILLed module must not leave alembic migrating without the advisory lock
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class AlembicRunner:
    """The runner argv plus a subcommand; every call is recorded for the module's audit trail."""

    def __init__(self, runner: list[str], runner_env: dict | None = None, chdir: str | None = None):
        self.runner = list(runner)
        self.runner_env = {key: str(value) for key, value in (runner_env or {}).items()}
        self.chdir = chdir
        self.commands: list[list[str]] = []

    def run(self, args: list[str], extra_env: dict | None = None) -> str:
        argv, one_shot = self.argv(args)
        self.commands.append(argv)
        env = dict(os.environ, **self.runner_env, **(extra_env or {}))
        try:
            process = subprocess.Popen(
                argv,
                cwd=self.chdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError as exc:
            raise RunnerError("alembic runner %s was not found: %s" % (argv[0], exc.strerror), argv, 127) from exc
        except OSError as exc:
            raise RunnerError("alembic runner %s could not start: %s" % (argv[0], exc), argv, 126) from exc
        try:
            stdout, stderr = wait_while_controller_lives(process, argv)
        except RunnerError:
            if one_shot:
                stop_one_shot(argv[0], one_shot)
            raise
        if process.returncode != 0:
            # alembic prints its own errors ("FAILED: ...") to stdout, the tracebacks to stderr
            raise RunnerError(
                describe_failure(args, stderr + stdout, process.returncode), argv, process.returncode, stdout, stderr
            )
        return stdout

    def argv(self, args: list[str]) -> tuple[list[str], str | None]:
        """The runner plus args; a compose one-shot gets a name of ours, so that it can be stopped."""
        argv = self.runner + args
        position = compose_run_position(self.runner)
        if position is None or "--name" in self.runner:
            return argv, None
        name = "safedeploy-alembic-%d-%d" % (os.getpid(), len(self.commands) + 1)
        return argv[: position + 1] + ["--name", name] + argv[position + 1 :], name


def compose_run_position(runner: list[str]) -> int | None:
    """Index of `run` in a `docker compose ... run` or `docker-compose ... run` runner."""
    for index, word in enumerate(runner):
        if word == "run" and any(
            part in ("compose", "docker-compose") or part.endswith("/docker-compose") for part in runner[:index]
        ):
            return index
    return None


def stop_one_shot(docker: str, name: str) -> None:
    """Killing the compose client leaves its container running: stop the container itself."""
    binary = docker if os.path.basename(docker) == "docker" else "docker"
    subprocess.run([binary, "rm", "--force", name], capture_output=True, check=False)


def wait_while_controller_lives(process: subprocess.Popen, argv: list[str]) -> tuple[str, str]:
    """Wait for alembic, but stop it when the ansible-playbook that started this module is gone.

    Ansible runs a task in a worker that leads its own session; when ansible-playbook is killed, that worker is
    reparented (or dies) and a migration must not go on with nobody to report to. Under `async` the wrapper that
    leads the session is a daemon from the start, so an async migration survives a lost controller.
    """
    leader = os.getsid(0)
    leader_parent = parent_pid(leader)
    watch = leader not in (os.getpid(), 1) and leader_parent not in (None, 1)
    while True:
        try:
            return process.communicate(timeout=CONTROLLER_CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            if watch and parent_pid(leader) != leader_parent:
                process.kill()
                stdout, stderr = process.communicate()
                raise RunnerError(
                    "alembic was stopped because the ansible-playbook that started it went away "
                    "(its task process %d lost its parent %d)" % (leader, leader_parent),
                    argv,
                    -9,
                    stdout,
                    stderr,
                ) from None


def parent_pid(pid: int) -> int | None:
    """The parent of a running process; None when it is gone or a zombie nobody reaps."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])


SIGNAL_NAMES = {9: "SIGKILL, as the out-of-memory killer and docker kill send", 15: "SIGTERM"}


def describe_exit(rc: int | None) -> str:
    """What an exit status says beyond failure: a signal, directly or as a container's 128 + n."""
    if rc is None or 0 <= rc <= 128 or rc > 128 + 64:
        return ""
    number = -rc if rc < 0 else rc - 128
    name = SIGNAL_NAMES.get(number, "signal %d" % number)
    return " (exit status %d: killed by %s)" % (rc, name)


def describe_failure(args: list[str], stderr: str, rc: int | None = None) -> str:
    """One sentence: which alembic command failed, on which revision, with the database's or config's error."""
    command = "alembic %s" % " ".join(args) + describe_exit(rc)
    revision = last_started_revision(stderr)
    cause = last_error_line(stderr)
    if revision:
        return "%s failed in revision %s: %s" % (command, revision, cause)
    if _CONFIG_ERRORS.search(stderr):
        return "%s failed, the alembic configuration or scripts are broken: %s" % (command, cause)
    return "%s failed: %s" % (command, cause)


def last_started_revision(stderr: str) -> str | None:
    """The revision alembic was running when it stopped: the last 'Running upgrade a -> b' it logged."""
    started = [match for match in map(_RUNNING_UPGRADE.search, stderr.splitlines()) if match]
    if not started:
        return None
    direction, source, destination, _message = started[-1].groups()
    return destination if direction == "upgrade" else source


def applied_in_order(stderr: str) -> list[tuple[str, str, str]]:
    """(direction, from, to) for every revision step alembic logged, in order."""
    steps = []
    for match in map(_RUNNING_UPGRADE.search, stderr.splitlines()):
        if match:
            steps.append((match.group(1), match.group(2), match.group(3)))
    return steps


def last_error_line(stderr: str) -> str:
    """The last meaningful line: the exception alembic or the database raised, without traceback noise."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("(Background on this error") or line.startswith("[SQL:") or line.startswith("[parameters:"):
            continue
        if (
            line.startswith("FAILED:")
            or re.match(r"^[\w.]+(Error|Exception|Warning|NotAvailable)\b", line)
            or "Error:" in line
        ):
            return line
    return lines[-1] if lines else "no error output"


def is_lock_timeout(stderr: str) -> bool:
    return bool(_LOCK_NOT_AVAILABLE.search(stderr))
