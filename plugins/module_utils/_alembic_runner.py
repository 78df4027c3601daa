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

    def run(self, args: list[str], extra_env: dict | None = None, timeout: float | None = None) -> str:
        argv = self.runner + args
        self.commands.append(argv)
        env = dict(os.environ, **self.runner_env, **(extra_env or {}))
        try:
            result = subprocess.run(
                argv,
                cwd=self.chdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=_die_with_parent,
                check=False,
            )
        except FileNotFoundError as exc:
            raise RunnerError("alembic runner %s was not found: %s" % (argv[0], exc.strerror), argv, 127) from exc
        except OSError as exc:
            raise RunnerError("alembic runner %s could not start: %s" % (argv[0], exc), argv, 126) from exc
        except subprocess.TimeoutExpired as exc:
            raise RunnerError("alembic %s did not finish within %s s" % (" ".join(args), timeout), argv, -9) from exc
        if result.returncode != 0:
            # alembic prints its own errors ("FAILED: ...") to stdout, the tracebacks to stderr
            raise RunnerError(
                describe_failure(args, result.stderr + result.stdout),
                argv,
                result.returncode,
                result.stdout,
                result.stderr,
            )
        return result.stdout


def describe_failure(args: list[str], stderr: str) -> str:
    """One sentence: which alembic command failed, on which revision, with the database's or config's error."""
    command = "alembic %s" % " ".join(args)
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
