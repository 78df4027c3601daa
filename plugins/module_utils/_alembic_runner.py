# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Runs the application's own alembic (a local command or a compose one-shot) and reads what it prints."""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import subprocess

from ansible_collections.safedeploy.migrations.plugins.module_utils._child_process import (
    die_with_parent_of,
    stop_watchdog,
    watch_container,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import TRACE_LISTENERS

CONTROLLER_CHECK_SECONDS = 0.5
# a root revision's downgrade ends at nothing: "Running downgrade 0001 -> , initial"
_RUNNING_UPGRADE = re.compile(r"Running (upgrade|downgrade) (.*?) -> ([^,\s]*)(?:, (.*))?$")
# alembic calls a revision module's upgrade()/downgrade(); the innermost such frame is the revision's own
_REVISION_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (?:upgrade|downgrade)\s*$')
# a container CLI's flag that keeps stdin open: -i, a cluster such as -it, --interactive, kubectl's --stdin
_INTERACTIVE_FLAG = re.compile(r"-[a-zA-Z]*i[a-zA-Z]*|--interactive(=true)?|--stdin(=true)?")
CONTAINER_CLIS = ("docker", "podman", "nerdctl", "kubectl")
_LOCK_NOT_AVAILABLE = re.compile(r"LockNotAvailable|lock timeout|55P03")
_CONFIG_ERRORS = re.compile(
    r"No config file .* found|No 'script_location' key found|Path doesn't exist|Can't locate revision|"
    r"No such revision|ModuleNotFoundError|ImportError|SyntaxError"
)

# One alembic command through alembic's CLI in the driver's python: its exit status (a traceback printed for an
# exception that is no SystemExit); `CommandLine` is imported by the driver
RUN_ALEMBIC = """
def run_alembic(argv):
    try:
        CommandLine(prog="alembic").main(argv=argv)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        import traceback
        traceback.print_exc()
        return 1
"""
# Runs alembic commands in one python, each with its own exit status and output captured at the file descriptors
# (alembic's Config keeps the sys.stdout it was imported with): `answers` gets {rc, stdout, stderr} per command;
# `before_command(number)` runs first, and the loop stops after a failure when `stop_on_failure` is set
CAPTURED_COMMANDS = (
    RUN_ALEMBIC
    + """
answers = []
saved = os.dup(1), os.dup(2)
for number, args in enumerate(commands):
    before_command(number)
    captured = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(captured[0].fileno(), 1); os.dup2(captured[1].fileno(), 2)
    rc = run_alembic(args)
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(saved[0], 1); os.dup2(saved[1], 2)
    texts = []
    for handle in captured:
        handle.seek(0)
        texts.append(handle.read().decode("utf-8", "replace"))
    answers.append({"rc": rc % 256, "stdout": texts[0], "stderr": texts[1]})
    if rc and stop_on_failure:
        break
"""
)
# The offline commands of a plan in one python; 97 when alembic is not importable
BATCH_DRIVER = (
    """
import json, os, sys, tempfile
try:
    from alembic.config import CommandLine
except ImportError:
    sys.exit(97)
commands = json.loads(sys.argv[1])
stop_on_failure = False
def before_command(number):
    pass
"""
    + CAPTURED_COMMANDS
    + "json.dump(answers, sys.stdout)\n"
)
# The commands of a traced plan, with TRACE_LISTENERS recording what they execute
TRACE_DRIVER = TRACE_LISTENERS + CAPTURED_COMMANDS + 'json.dump({"answers": answers, "events": events}, sys.stdout)\n'
# One python that runs alembic commands as they come, one JSON line {args, env} each on stdin, `env` set for that
# command only. Output streams as alembic writes it, so a run killed midway leaves what it logged; a marker line
# `<token> <word>` on stdout and stderr ends each answer, `ready` once alembic is imported, then the exit status.
# 97: alembic is not importable; 98: stdin ended (or is not connected), nothing more was run.
SESSION_DRIVER = (
    """
import json, os, sys
try:
    from alembic.config import CommandLine
except ImportError:
    sys.exit(97)
"""
    + RUN_ALEMBIC
    + """
token, options = sys.argv[1], sys.argv[2:]
def mark(word):
    for stream in (sys.stdout, sys.stderr):
        stream.write("\\n%s %s\\n" % (token, word))
        stream.flush()
mark("ready")
while True:
    line = sys.stdin.readline()
    if not line:
        sys.exit(98)
    request = json.loads(line)
    saved = {name: os.environ.get(name) for name in request["env"]}
    os.environ.update(request["env"])
    rc = run_alembic(options + request["args"])
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    mark(rc % 256)
"""
)
SESSION_UNAVAILABLE = (97, 98)


class RunnerError(Exception):
    """alembic could not be started, or exited non-zero."""

    def __init__(self, message: str, argv: list[str], rc: int, stdout: str = "", stderr: str = ""):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        super().__init__(message)


def runner_argument_spec() -> dict:
    return dict(
        runner=dict(type="list", elements="str", required=True),
        # no_log for a secret someone puts here; show_public_values() unmasks the entries that name none
        runner_env=dict(type="dict", default={}, no_log=True),
        runner_secret_env=dict(type="dict", default={}, no_log=True),
        chdir=dict(type="path"),
    )


def runner_problem(runner: list[str]) -> str | None:
    """Why a runner cannot start alembic, or None."""
    if not runner:
        return (
            "runner is empty: it must name the command that starts alembic, for example "
            "[/opt/app/venv/bin/alembic, -c, /opt/app/alembic.ini]"
        )
    if not str(runner[0]).strip():
        return "runner starts with an empty word: its first word must be the command that starts alembic"
    return None


def pgoptions(settings: dict) -> str:
    """libpq PGOPTIONS that set server parameters on alembic's own connection: `-c name=value ...`."""
    return " ".join("-c %s=%s" % (name, str(value).replace(" ", "\\ ")) for name, value in settings.items() if value)


class AlembicRunner:
    """The runner argv plus a subcommand; every call is recorded for the module's audit trail."""

    def __init__(self, runner: list[str], runner_env: dict | None = None, chdir: str | None = None):
        self.runner = list(runner)
        self.runner_env = {key: str(value) for key, value in (runner_env or {}).items()}
        self.chdir = chdir
        self.commands: list[list[str]] = []
        self.prefetched: dict[tuple, tuple[int, str, str]] = {}
        self.started = 0
        # {file name: revision} once the history is read, to name a revision from a traceback alone
        self.revision_files: dict[str, str] = {}
        self.session: AlembicSession | None = None
        self.session_wanted = False

    @classmethod
    def from_params(cls, params: dict) -> AlembicRunner:
        """The runner of a module's runner options (runner_argument_spec); the secret environment wins."""
        runner_env = dict(params["runner_env"] or {}, **(params["runner_secret_env"] or {}))
        return cls(params["runner"], runner_env, params["chdir"])

    def run(self, args: list[str], extra_env: dict | None = None) -> str:
        if not extra_env and tuple(args) in self.prefetched:
            self.commands.append(self.runner + args)
            rc, stdout, stderr = self.prefetched.pop(tuple(args))
        else:
            answer = self.run_in_session(args, extra_env)
            rc, stdout, stderr = answer if answer else self.spawn(self.runner, args, extra_env)
        if rc != 0:
            # alembic prints its own errors ("FAILED: ...") to stdout, the tracebacks to stderr
            message = describe_failure(args, stderr + stdout, rc, self.revision_files)
            raise RunnerError(message, self.runner + args, rc, stdout, stderr)
        return stdout

    def open_session(self) -> None:
        """Run the next commands in one alembic process, started by the first of them: one interpreter and alembic
        import (one container start for a compose one-shot) for the history and the upgrade decided from it. A runner
        without a visible alembic word or that keeps its stdin, or a session that cannot start, changes nothing: run()
        then starts each command itself and reports its own error."""
        self.session_wanted = python_in_place_of_alembic(self.runner) is not None and passes_stdin_on(self.runner)

    def close_session(self) -> None:
        """End the session; the commands after it start their own process again."""
        self.session_wanted = False
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def run_in_session(self, args: list[str], extra_env: dict | None) -> tuple[int, str, str] | None:
        """(rc, stdout, stderr) of a command the session ran, or None when it did not run it."""
        if self.session is None and self.session_wanted:
            self.session = self.start_session()
        if self.session is None:
            return None
        answer = self.session.run(args, extra_env or {})
        if answer is None:
            # the runner cannot start alembic this way, or does not pass stdin on: one process per command
            self.close_session()
            return None
        self.commands.append(self.session.command(args))
        if self.session.process.returncode is not None:
            # it died under that command: the next one starts the ordinary way
            self.close_session()
        return answer

    def start_session(self) -> AlembicSession | None:
        python, alembic_options = python_in_place_of_alembic(self.runner)
        token = "safedeploy-session-%s" % secrets.token_hex(8)
        try:
            started = self.start(python, ["-c", SESSION_DRIVER, token, *alembic_options], interactive=True)
        except RunnerError:
            self.session_wanted = False
            return None
        return AlembicSession(*started, token=token, runner=self.runner)

    def prefetch(self, commands: list[list[str]]) -> None:
        """Run offline commands in one alembic process, one container start for a compose one-shot; run() then
        answers them from memory. A runner without a visible alembic word, or a batch that fails, changes nothing:
        run() starts each command itself and reports its own error."""
        swapped = python_in_place_of_alembic(self.runner)
        if swapped is None or not commands:
            return
        python, alembic_options = swapped
        batch = json.dumps([alembic_options + args for args in commands])
        rc, stdout, _stderr = self.spawn(python, ["-c", BATCH_DRIVER, batch], record=False)
        try:
            answers = json.loads(stdout) if rc == 0 else []
        except ValueError:
            answers = []
        for args, answer in zip(commands, answers):
            self.prefetched[tuple(args)] = (answer["rc"], answer["stdout"], answer["stderr"])

    def trace(self, database: str, commands: list[list[str]]) -> tuple[list[dict], list[dict]]:
        """(answers, events) of alembic commands run for real against `database` with every statement recorded
        (TRACE_DRIVER); the runner's alembic must be a console script or `python -m alembic`."""
        swapped = python_in_place_of_alembic(self.runner)
        if swapped is None:
            raise RunnerError(
                "a traced plan runs the runner's own python with alembic, and the runner names no alembic "
                "(a console script or python -m alembic)",
                self.runner,
                2,
            )
        python, alembic_options = swapped
        request = json.dumps({"database": database, "commands": [alembic_options + args for args in commands]})
        rc, stdout, stderr = self.spawn(python, ["-c", TRACE_DRIVER, request], record=False)
        if rc == 97:
            raise RunnerError("the runner's python cannot import alembic and SQLAlchemy", python, rc, stdout, stderr)
        try:
            report = json.loads(stdout)
        except ValueError:
            report = None
        if rc != 0 or not isinstance(report, dict):
            cause = last_error_line(stderr + stdout)
            raise RunnerError("the traced alembic run failed to start: %s" % cause, python, rc, stdout, stderr)
        for args, _answer in zip(commands, report["answers"]):
            self.commands.append(self.runner + args + ["(traced, on database %s)" % database])
        return report["answers"], report["events"]

    def spawn(self, runner: list[str], args: list[str], extra_env: dict | None = None, record: bool = True):
        """(rc, stdout, stderr) of runner + args; a process that cannot start or loses its controller raises."""
        process, argv, one_shot, watchdog = self.start(runner, args, extra_env, record)
        try:
            stdout, stderr = wait_while_controller_lives(process, argv)
        except RunnerError:
            if one_shot:
                stop_one_shot(argv[0], one_shot)
            raise
        finally:
            stop_watchdog(watchdog)
        return process.returncode, stdout, stderr

    def start(
        self,
        runner: list[str],
        args: list[str],
        extra_env: dict | None = None,
        record: bool = False,
        interactive: bool = False,
    ) -> tuple[subprocess.Popen, list[str], str | None, subprocess.Popen | None]:
        """(process, argv, one-shot container name or None, its watchdog) of runner + args; an interactive process
        gets a stdin pipe and binary pipes (AlembicSession)."""
        problem = runner_problem(runner)
        if problem:
            raise RunnerError(problem, list(runner), 2)
        self.started += 1
        argv, one_shot = self.argv(args, runner)
        if record:
            self.commands.append(argv)
        env = dict(os.environ, **self.runner_env, **(extra_env or {}))
        try:
            process = subprocess.Popen(
                argv,
                cwd=self.chdir,
                env=env,
                stdin=subprocess.PIPE if interactive else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=not interactive,
                # a SIGKILLed module must not leave alembic migrating without the advisory lock
                preexec_fn=die_with_parent_of(os.getpid()),
            )
        except FileNotFoundError as exc:
            # Popen reports a missing cwd as a missing program
            if self.chdir and not os.path.isdir(self.chdir):
                raise RunnerError(
                    "chdir %s does not exist: alembic cannot start there" % self.chdir, argv, 127
                ) from exc
            raise RunnerError("alembic runner %s was not found: %s" % (argv[0], exc.strerror), argv, 127) from exc
        except OSError as exc:
            raise RunnerError("alembic runner %s could not start: %s" % (argv[0], exc), argv, 126) from exc
        # the compose client dies with the module, its container does not: the watchdog removes it then
        watchdog = watch_container(docker_binary(argv[0]), one_shot) if one_shot else None
        return process, argv, one_shot, watchdog

    def argv(self, args: list[str], runner: list[str] | None = None) -> tuple[list[str], str | None]:
        """The runner plus args; a compose one-shot gets a name of ours, so that it can be stopped."""
        runner = self.runner if runner is None else runner
        if compose_run_position(runner) is None or "--name" in runner:
            return runner + args, None
        name = "safedeploy-alembic-%d-%d" % (os.getpid(), max(self.started, 1))
        return with_one_shot_name(runner, name) + args, name


class AlembicSession:
    """One alembic process (AlembicRunner.open_session) answering commands one at a time through SESSION_DRIVER."""

    def __init__(self, process, argv, one_shot, watchdog, token: str, runner: list[str]):
        self.process, self.argv, self.one_shot, self.watchdog = process, argv, one_shot, watchdog
        self.token = token.encode()
        self.runner = runner
        self.ready = False
        self.pending = {"stdout": b"", "stderr": b""}

    def command(self, args: list[str]) -> list[str]:
        """The audit trail's command: the runner as it ran, in the session's one-shot container if it is one."""
        return (with_one_shot_name(self.runner, self.one_shot) if self.one_shot else self.runner) + args

    def run(self, args: list[str], env: dict) -> tuple[int, str, str] | None:
        """(rc, stdout, stderr) of one command, or None when the session did not run it (session_outcome)."""
        request = json.dumps({"args": args, "env": {name: str(value) for name, value in env.items()}})
        try:
            self.process.stdin.write(request.encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            pass  # the driver is gone; what it wrote before is read below
        if not self.ready:
            self.ready = self.read_answer() is not None
        answer = self.read_answer() if self.ready else None
        if answer is None:
            stdout, stderr = wait_while_controller_lives(self.process, self.argv)
            self.pending["stdout"] += stdout
            self.pending["stderr"] += stderr
        outcome = session_outcome(self.ready, answer is not None, self.process.returncode)
        if outcome == "answered":
            return answer
        if outcome == "not run":
            return None
        # the process ended in the middle of the command: what it wrote until then is the command's output
        return self.process.returncode, text(self.pending["stdout"]), text(self.pending["stderr"])

    def read_answer(self) -> tuple[int, str, str] | None:
        """(status, stdout, stderr) up to the next marker line on both streams; None when the output ends first."""
        watch = ControllerWatch()
        with selectors.DefaultSelector() as selector:
            for name in ("stdout", "stderr"):
                if split_at_marker(self.pending[name], self.token) is None:
                    selector.register(getattr(self.process, name), selectors.EVENT_READ, name)
            while selector.get_map():
                for key, _events in selector.select(timeout=CONTROLLER_CHECK_SECONDS):
                    chunk = os.read(key.fd, 65536)
                    self.pending[key.data] += chunk
                    if not chunk or split_at_marker(self.pending[key.data], self.token) is not None:
                        selector.unregister(key.fileobj)
                if watch.controller_gone():
                    self.kill()
                    raise watch.error(self.argv, text(self.pending["stdout"]), text(self.pending["stderr"]))
        stdout, stderr = (split_at_marker(self.pending[name], self.token) for name in ("stdout", "stderr"))
        if stdout is None or stderr is None:
            return None
        self.pending = {"stdout": stdout[2], "stderr": stderr[2]}
        return (0 if stdout[1] == "ready" else int(stdout[1])), text(stdout[0]), text(stderr[0])

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.one_shot:
            stop_one_shot(self.argv[0], self.one_shot)
        stop_watchdog(self.watchdog)

    def close(self) -> None:
        """End of input ends the driver; a compose one-shot's client then removes the container."""
        if self.process.returncode is not None:
            stop_watchdog(self.watchdog)
            return
        try:
            wait_while_controller_lives(self.process, self.argv)
        except RunnerError:
            self.kill()
            raise
        stop_watchdog(self.watchdog)


def session_outcome(ready: bool, answered: bool, rc: int) -> str:
    """What became of a command sent to a session: `answered`; `not run` (the driver never got as far: alembic
    not importable, no stdin, the runner did not start), to run the ordinary way; or `died` while running it."""
    if answered:
        return "answered"
    if not ready or rc in SESSION_UNAVAILABLE:
        return "not run"
    return "died"


def split_at_marker(output: bytes, token: bytes) -> tuple[bytes, str, bytes] | None:
    """(what came before the first `\\n<token> <word>\\n` line, the word, what came after), or None before it."""
    start = output.find(b"\n" + token + b" ")
    end = output.find(b"\n", start + 1) if start >= 0 else -1
    if end < 0:
        return None
    return output[:start], output[start + len(token) + 2 : end].decode("ascii", "replace"), output[end + 1 :]


def text(output: bytes) -> str:
    return output.decode("utf-8", "replace")


def with_one_shot_name(runner: list[str], name: str) -> list[str]:
    """A `docker compose ... run` runner whose container is called `name`."""
    position = compose_run_position(runner)
    return runner[: position + 1] + ["--name", name] + runner[position + 1 :]


def python_in_place_of_alembic(runner: list[str]) -> tuple[list[str], list[str]] | None:
    """(the runner with the python of its alembic in alembic's place, alembic's own options such as -c), or None."""
    for index in range(len(runner) - 1, -1, -1):
        word = runner[index]
        if os.path.basename(word) != "alembic":
            continue
        if index and runner[index - 1] == "-m":
            return runner[: index - 1], runner[index + 1 :]
        # a console script sits next to the python it was installed for
        python = os.path.join(os.path.dirname(word), "python3") if os.path.dirname(word) else "python3"
        return runner[:index] + [python], runner[index + 1 :]
    return None


def passes_stdin_on(runner: list[str]) -> bool:
    """Whether the runner hands its stdin to alembic: `docker run` or `exec` (podman, nerdctl, kubectl alike) only
    with -i; compose, ssh, sudo, a shell and a local alembic do."""
    for index, word in enumerate(runner):
        name = os.path.basename(word)
        if name in ("compose", "docker-compose"):
            return True
        if name in CONTAINER_CLIS and {"run", "exec"} & set(runner[index + 1 :]):
            return "compose" in runner[index + 1 :] or any(map(_INTERACTIVE_FLAG.fullmatch, runner[index + 1 :]))
    return True


def compose_run_position(runner: list[str]) -> int | None:
    """Index of `run` in a `docker compose ... run` or `docker-compose ... run` runner."""
    for index, word in enumerate(runner):
        if word == "run" and any(
            part in ("compose", "docker-compose") or part.endswith("/docker-compose") for part in runner[:index]
        ):
            return index
    return None


def docker_binary(runner_command: str) -> str:
    """The docker CLI of a `docker compose` runner; `docker` for a `docker-compose` one."""
    return runner_command if os.path.basename(runner_command) == "docker" else "docker"


def stop_one_shot(docker: str, name: str) -> None:
    """Killing the compose client leaves its container running: stop the container itself."""
    subprocess.run([docker_binary(docker), "rm", "--force", name], capture_output=True, check=False)


class ControllerWatch:
    """Whether the ansible-playbook that started this module is gone.

    Ansible runs a task in a worker that leads its own session; when ansible-playbook is killed, that worker is
    reparented (or dies) and a migration must not go on with nobody to report to. Under `async` the wrapper that
    leads the session is a daemon from the start, so an async migration survives a lost controller.
    """

    def __init__(self):
        self.leader = os.getsid(0)
        self.leader_parent = parent_pid(self.leader)
        self.watching = self.leader not in (os.getpid(), 1) and self.leader_parent not in (None, 1)

    def controller_gone(self) -> bool:
        return self.watching and parent_pid(self.leader) != self.leader_parent

    def error(self, argv: list[str], stdout: str = "", stderr: str = "") -> RunnerError:
        return RunnerError(
            "alembic was stopped because the ansible-playbook that started it went away "
            "(its task process %s lost its parent %s)" % (self.leader, self.leader_parent),
            argv,
            -9,
            stdout,
            stderr,
        )


def wait_while_controller_lives(process: subprocess.Popen, argv: list[str]) -> tuple[str, str]:
    """Wait for alembic, but stop it when the ansible-playbook that started this module is gone (ControllerWatch)."""
    watch = ControllerWatch()
    while True:
        try:
            return process.communicate(timeout=CONTROLLER_CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            if watch.controller_gone():
                process.kill()
                stdout, stderr = process.communicate()
                raise watch.error(argv, stdout, stderr) from None


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


def describe_failure(args: list[str], stderr: str, rc: int | None = None, revision_files: dict | None = None) -> str:
    """One sentence: which alembic command failed, on which revision, with the database's or config's error."""
    command = "alembic %s" % " ".join(args) + describe_exit(rc)
    revision = last_started_revision(stderr, revision_files)
    cause = last_error_line(stderr)
    if revision:
        return "%s failed in revision %s: %s" % (command, revision, cause)
    if _CONFIG_ERRORS.search(stderr):
        return "%s failed, the alembic configuration or scripts are broken: %s" % (command, cause)
    return "%s failed: %s" % (command, cause)


def last_started_revision(stderr: str, revision_files: dict | None = None) -> str | None:
    """The revision alembic was running when it stopped: the last 'Running upgrade a -> b' it logged, or, from an
    env.py that configures no logging, the revision file in the traceback."""
    started = [match for match in map(_RUNNING_UPGRADE.search, stderr.splitlines()) if match]
    if not started:
        return revision_in_traceback(stderr, revision_files or {})
    direction, source, destination, _message = started[-1].groups()
    return destination if direction == "upgrade" else source


def revision_in_traceback(stderr: str, revision_files: dict) -> str | None:
    """The revision whose upgrade() or downgrade() raised: by its file name in the history, or else by alembic's
    default file name `<revision>_<slug>.py`."""
    frames = [match.group(1) for match in map(_REVISION_FRAME.match, stderr.splitlines()) if match]
    # alembic's own command.upgrade()/downgrade() frames come first
    files = [os.path.basename(path) for path in frames if not path.replace("\\", "/").endswith("alembic/command.py")]
    if not files:
        return None
    name = files[-1]
    return revision_files.get(name) or os.path.splitext(name)[0].split("_", 1)[0] or None


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
            # the last line of a Python traceback: a (dotted) exception class and its message
            or re.match(r"^(?:\w+\.)*[A-Z]\w*: \S", line)
            or "Error:" in line
        ):
            return line
    return lines[-1] if lines else "no error output"


def is_lock_timeout(stderr: str) -> bool:
    return bool(_LOCK_NOT_AVAILABLE.search(stderr))
