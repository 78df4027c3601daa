# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""An sshd of a test's own on a loopback port, to deploy over SSH to this machine, and the means to cut it.

A test module loads it with `pytest_plugins = ("ssh_server",)`. `cut` stands for a lost network: every open SSH
session dies and new connections hang without an answer until `restore`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from compose_stack import free_port


class SshServer(NamedTuple):
    port: int
    key: Path
    pid: int


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError("sshd did not listen on port %d" % port)


def ssh_hosts(server: SshServer, host: str = "staging-app-1", pipelining: bool = False) -> str:
    """An inventory whose one app host is this machine, reached over the server (with pipelining, as the
    repository's staging and production inventories connect)."""
    return (
        "all:\n  children:\n    app:\n      hosts:\n        %s:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: %d\n          ansible_user: root\n"
        "          ansible_become: false\n          ansible_ssh_private_key_file: %s\n"
        "          ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n"
        "          ansible_pipelining: %s\n"
    ) % (host, server.port, server.key, "true" if pipelining else "false")


def children(pid: int) -> list[int]:
    """The processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # the command name is in parentheses and may hold spaces: the fields after it are split
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cut(server: SshServer) -> list[int]:
    """Kills every session of the server and freezes its listener; returns the sessions killed."""
    os.kill(server.pid, signal.SIGSTOP)
    sessions = children(server.pid)
    for session in sessions:
        os.kill(session, signal.SIGKILL)
    return sessions


def restore(server: SshServer) -> None:
    os.kill(server.pid, signal.SIGCONT)


@pytest.fixture
def loopback_sshd(tmp_path):
    """An sshd of its own on a loopback port, key authentication only, for this test's key."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("openssh-server is not installed; run `make test-packages`")
    directory = tmp_path / "sshd"
    directory.mkdir(mode=0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                "Port %d" % port,
                "HostKey %s" % (directory / "host_key"),
                "AuthorizedKeysFile %s" % (directory / "authorized_keys"),
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "PidFile %s" % (directory / "sshd.pid"),
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        yield SshServer(port, directory / "client_key", daemon.pid)
    finally:
        # a test that failed while its server was cut leaves it frozen
        os.kill(daemon.pid, signal.SIGCONT)
        daemon.terminate()
        daemon.wait(timeout=10)
