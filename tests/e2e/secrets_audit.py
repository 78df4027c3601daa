# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a secret goes while playbooks run: every process's argv sampled from /proc, the stack's client tools seen.

Used by test_secrets_audit.py (the example app's release history) and test_own_stack.py (a team's own stack).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading

TOOLS = ("pg_dump", "pg_restore", "psql", "alembic")
CONTAINER_ID = re.compile(r"/docker[/-]([0-9a-f]{64})")


class ArgvSampler:
    """Every process's argv, read from /proc every interval while a playbook runs.

    `leaks` are the argv holding a secret (masked; secret is one string or several); `seen` the (tool, where) of
    this stack's client tools:
    "container" for a process inside one of the project's containers (by its cgroup), "docker CLI" for a host
    docker or docker-compose process naming the project and the tool.
    """

    def __init__(self, secret: str | tuple[str, ...], project: str, interval: float = 0.02):
        self.secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        self.project = project
        self.interval = interval
        self.leaks: set[str] = set()
        self.seen: set[tuple[str, str]] = set()
        self.rounds = 0
        self.container_projects: dict[str, str] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def __enter__(self) -> ArgvSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join()

    def loop(self) -> None:
        while not self.stopped.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    self.sample(pid)
            self.rounds += 1
            self.stopped.wait(self.interval)

    def sample(self, pid: str) -> None:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:  # the process ended in between
            return
        command_line = " ".join(argv)
        if any(secret in command_line for secret in self.secrets):
            for secret in self.secrets:
                command_line = command_line.replace(secret, "<secret>")
            self.leaks.add(command_line)
        tool = tool_of(argv)
        if tool:
            where = self.where(pid, argv)
            if where:
                self.seen.add((tool, where))

    def where(self, pid: str, argv: list[str]) -> str | None:
        if os.path.basename(argv[0]) in ("docker", "docker-compose"):
            return "docker CLI" if any(self.project in arg for arg in argv) else None
        try:
            with open("/proc/%s/cgroup" % pid) as handle:
                found = CONTAINER_ID.search(handle.read())
        except OSError:
            return None
        if found and self.project_of(found.group(1)) == self.project:
            return "container"
        return None

    def project_of(self, container_id: str) -> str:
        # the label only: an inspect of the whole container would hand this process the stack's environment
        if container_id not in self.container_projects:
            self.container_projects[container_id] = subprocess.run(
                ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.project"}}', container_id],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        return self.container_projects[container_id]


def tool_of(argv: list[str]) -> str | None:
    """The client tool a process is (pg_dump ...; alembic as `python .../alembic`, or as the python of alembic_migrate's
    driver, `python -c <a program importing alembic>`) or starts through docker."""
    names = [os.path.basename(arg) for arg in argv]
    if names[0] in TOOLS:
        return names[0]
    if names[0].startswith("python") and len(names) > 1 and names[1] == "alembic":
        return "alembic"
    if names[0].startswith("python") and len(argv) > 2 and argv[1] == "-c" and "from alembic" in argv[2]:
        return "alembic"
    if names[0] in ("docker", "docker-compose"):
        return next((name for name in names if name in TOOLS), None)
    return None
