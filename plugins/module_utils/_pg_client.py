# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Runs libpq client tools (pg_dump, pg_restore, psql) on the host or inside the postgres container."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import tempfile

from ansible_collections.safedeploy.migrations.plugins.module_utils._child_process import die_with_parent_of
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    conninfo_without_secrets,
    error_text,
    psycopg,
    secret_params,
)

CONTAINER_SCRATCH_DIR = "/tmp"
_CHUNK = 1024 * 1024
# the section of the service file that hands the tools the secrets no environment variable carries
SERVICE_NAME = "safedeploy"
# libpq before 16 reads a service file line into 1024 bytes
SERVICE_LINE_MAX = 1000


class ClientToolError(Exception):
    """A client tool exited non-zero; carries what the module returns as its audit trail."""

    def __init__(self, operation: str, argv: list[str], rc: int, stderr: str):
        self.operation = operation
        self.argv = argv
        self.rc = rc
        self.stderr = stderr.strip()
        super().__init__("%s failed (rc=%s): %s" % (operation, rc, self.stderr or "no error output"))


def read_and_close(stderr_file) -> str:
    stderr_file.seek(0)
    text = stderr_file.read().decode(errors="replace")
    stderr_file.close()
    return text


def feed(process: subprocess.Popen, chunk: bytes) -> bool:
    """Write to a tool's stdin; False once it has stopped reading (its exit code tells why)."""
    try:
        process.stdin.write(chunk)
        return True
    except BrokenPipeError:
        return False


def close_input(process: subprocess.Popen) -> None:
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def service_file_problem(secrets: dict, container: str | None, service: str | None) -> str | None:
    """Why the secrets without an environment variable (all but the password) cannot reach the tools, or None."""
    names = ", ".join(sorted(secrets))
    if container:
        return (
            "connect_params %s cannot reach the client tools in container %s: libpq takes it only from a connection "
            "string, which the process list shows, or from a service file, which is on this host; leave container "
            "unset to run the tools here" % (names, container)
        )
    if service:
        return (
            "connect_params %s reaches the client tools through a service file of its own, so the libpq service %s "
            "(connect_params service or PGSERVICE) cannot be used with it; give its parameters in connect_params"
            % (names, service)
        )
    for name, value in sorted(secrets.items()):
        if "\n" in value or "\r" in value or value != value.rstrip() or len(name) + 1 + len(value) > SERVICE_LINE_MAX:
            return (
                "connect_params %s cannot be handed to the client tools: the libpq service file that carries it "
                "holds no line break, no trailing white space and at most %d characters" % (name, SERVICE_LINE_MAX)
            )
    return None


def service_file_text(secrets: dict) -> str:
    return "".join(["[%s]\n" % SERVICE_NAME] + ["%s=%s\n" % (name, value) for name, value in sorted(secrets.items())])


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def write_service_file(secrets: dict) -> str:
    """A service file readable by this user only, removed when the module exits."""
    descriptor, path = tempfile.mkstemp(prefix="safedeploy-", suffix=".pgservice")
    atexit.register(remove_quietly, path)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(service_file_text(secrets))
    return path


class PgClient:
    """One place that knows whether the tools run here or in a container, and how they get the secrets."""

    def __init__(
        self, module, container: str | None = None, bin_dir: str | None = None, application_name: str | None = None
    ):
        self.module = module
        self.container = container
        self.bin_dir = bin_dir
        self.application_name = application_name
        self.commands: list[list[str]] = []
        self.queries: list[str] = []
        self.secrets_environment: dict | None = None
        # pg_backup and pg_restore reach connect_params only through here
        show_public_values(module)

    def conninfo(self, dbname: str) -> str:
        return conninfo_without_secrets(self.module.params, dbname, self.application_name)

    def environment(self) -> dict:
        """The secrets for the tools: PGPASSWORD, and a service file for those libpq reads from no variable."""
        if self.secrets_environment is None:
            secrets = secret_params(self.module.params)
            environment = {"PGPASSWORD": secrets.pop("password")} if "password" in secrets else {}
            if secrets:
                service = (self.module.params.get("connect_params") or {}).get("service") or os.environ.get("PGSERVICE")
                problem = service_file_problem(secrets, self.container, service)
                if problem:
                    self.module.fail_json(msg=problem)
                environment.update(PGSERVICEFILE=write_service_file(secrets), PGSERVICE=SERVICE_NAME)
            self.secrets_environment = environment
        return self.secrets_environment

    def tool_argv(self, tool: str, args: list[str], interactive: bool = False) -> list[str]:
        if self.container:
            # `-e PGPASSWORD` without a value copies it from the docker CLI's environment, never from argv
            prefix = [self.docker_binary(), "exec"] + (["-i"] if interactive else [])
            if "PGPASSWORD" in self.environment():
                prefix += ["-e", "PGPASSWORD"]
            return prefix + [self.container, tool] + args
        return [self.host_binary(tool)] + args

    def host_binary(self, tool: str) -> str:
        if self.bin_dir:
            return os.path.join(self.bin_dir, tool)
        found = self.module.get_bin_path(tool)
        if not found:
            self.module.fail_json(
                msg="%s was not found on the managed host: install the PostgreSQL client, set "
                "bin_dir, or set container to run it inside the postgres container" % tool
            )
        return found

    def docker_binary(self) -> str:
        found = self.module.get_bin_path("docker")
        if not found:
            self.module.fail_json(msg="container is set but the docker CLI was not found on the managed host")
        return found

    def run(
        self, operation: str, tool: str, args: list[str], stdin_path: str | None = None, stdout_path: str | None = None
    ) -> str:
        """Run a tool to completion and return its output (empty when it went to stdout_path)."""
        return self.finish(operation, self.start(operation, tool, args, stdin=stdin_path, stdout=stdout_path))

    def start(self, operation: str, tool: str, args: list[str], stdin=None, stdout=None) -> subprocess.Popen:
        """Start a tool with the secrets in its environment.

        stdin and stdout are a file path, PIPE, or None (no input; output captured). stderr goes to a temporary
        file, so a tool that writes a lot of it can never stall a pipeline.
        """
        argv = self.tool_argv(tool, args, interactive=stdin is not None)
        self.commands.append(argv)
        env = dict(os.environ, **self.environment())
        with contextlib.ExitStack() as files:
            # the child keeps its own descriptors, so ours close as soon as it has started
            stdin_file = files.enter_context(open(stdin, "rb")) if isinstance(stdin, str) else stdin
            stdout_file = files.enter_context(open(stdout, "wb")) if isinstance(stdout, str) else stdout
            stderr_file = tempfile.TemporaryFile()  # noqa: SIM115  (closed by finish())
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL if stdin_file is None else stdin_file,
                    stdout=subprocess.PIPE if stdout_file is None else stdout_file,
                    stderr=stderr_file,
                    env=env,
                    # a SIGKILLed module must not leave a pg_dump behind, holding its locks
                    preexec_fn=die_with_parent_of(os.getpid()),
                )
            except OSError as exc:
                stderr_file.close()
                raise ClientToolError(operation, argv, 127, str(exc)) from exc
        process.stderr_file = stderr_file
        return process

    def finish(self, operation: str, process: subprocess.Popen) -> str:
        stdout = process.stdout.read() if process.stdout else b""
        process.wait()
        stderr = read_and_close(process.stderr_file)
        if process.returncode != 0:
            raise ClientToolError(operation, process.args, process.returncode, stderr)
        return stdout.decode(errors="replace")

    def pipe(self, source: tuple, sink: tuple, prefix: bytes, stdin_path: str | None = None) -> None:
        """Run `sink` on `prefix` followed by the output of `source`; both are (operation, tool, args).

        When both fail, the source's error is raised if it ended on its own (the sink only saw its output cut
        short), the sink's when the sink stopped reading first (the source, still writing, is then stopped).
        """
        producer = self.start(source[0], source[1], source[2], stdin=stdin_path, stdout=subprocess.PIPE)
        try:
            consumer = self.start(sink[0], sink[1], sink[2], stdin=subprocess.PIPE, stdout=os.devnull)
        except ClientToolError:
            stop(producer)
            raise
        source_drained = False
        try:
            reading = feed(consumer, prefix)
            while reading:
                chunk = producer.stdout.read(_CHUNK)
                source_drained = not chunk
                reading = not source_drained and feed(consumer, chunk)
        except BaseException:
            # an interrupt: the sink must not go on with half its input, nor the source outlive it
            for process in (consumer, producer):
                stop(process)
            raise
        close_input(consumer)
        if not source_drained:
            # the sink stopped reading: the source would block on the full pipe for ever
            stop(producer)
        sink_error = None
        try:
            self.finish(sink[0], consumer)
        except ClientToolError as exc:
            sink_error = exc
        try:
            self.finish(source[0], producer)
        except ClientToolError:
            if source_drained or not sink_error:
                raise
        if sink_error:
            raise sink_error

    def check_container_running(self) -> None:
        argv = [self.docker_binary(), "inspect", "--format", "{{.State.Running}}", self.container]
        self.commands.append(argv)
        rc, out, err = self.module.run_command(argv, expand_user_and_vars=False)
        if rc != 0:
            self.module.fail_json(msg="container %s was not found: %s" % (self.container, err.strip()), cmd=argv, rc=rc)
        if out.strip() != "true":
            self.module.fail_json(msg="container %s is not running" % self.container, cmd=argv, rc=rc)

    def docker(self, operation: str, args: list[str]) -> str:
        argv = [self.docker_binary()] + args
        self.commands.append(argv)
        rc, out, err = self.module.run_command(argv, expand_user_and_vars=False)
        if rc != 0:
            raise ClientToolError(operation, argv, rc, err)
        return out

    def scratch_path(self, name: str) -> str:
        return "%s/%s" % (CONTAINER_SCRATCH_DIR, name)

    def rows(self, dbname: str, query) -> list[tuple]:
        """Run one psycopg.sql statement: through psycopg from here, through psql inside the container."""
        if not self.container:
            with connect(self.module, dbname, application_name=self.application_name) as connection:
                self.queries.append(query.as_string(connection))
                try:
                    cursor = connection.execute(query)
                    rows = cursor.fetchall() if cursor.description else []
                except psycopg.Error as exc:
                    raise ClientToolError("query on database %s" % dbname, [], 1, error_text(exc)) from exc
                return [tuple(str(value) for value in row) for row in rows]
        text = query.as_string(None)
        self.queries.append(text)
        argv = self.tool_argv(
            "psql", ["-XAtq", "-v", "ON_ERROR_STOP=1", "-F", "\t", "--dbname", self.conninfo(dbname)], interactive=True
        )
        self.commands.append(argv)
        rc, out, err = self.module.run_command(
            argv, data=text, environ_update=self.environment(), binary_data=True, expand_user_and_vars=False
        )
        if rc != 0:
            raise ClientToolError("psql in container %s" % self.container, argv, rc, err)
        return [tuple(line.split("\t")) for line in out.splitlines() if line]
