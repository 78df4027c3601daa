# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Children of a SIGKILLed module end with it: the tools by the kernel, a compose one-shot's container by a watchdog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from ansible_collections.safedeploy.migrations.plugins.module_utils._child_process import CONTAINER_WATCHDOG

# stands in for the module: starts a long child the way the module starts pg_dump or alembic, prints its pid
MODULE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from ansible_collections.safedeploy.migrations.plugins.module_utils._child_process import die_with_parent_of
    preexec = die_with_parent_of(os.getpid()) if sys.argv[1] == "tied" else None
    child = subprocess.Popen(["sleep", "60"], preexec_fn=preexec)
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def child_after_killing_the_module(mode: str) -> int:
    module = subprocess.Popen([sys.executable, "-c", MODULE, mode], stdout=subprocess.PIPE, text=True, env=os.environ)
    child = int(module.stdout.readline())
    module.send_signal(signal.SIGKILL)
    module.wait()
    return child


def test_a_tool_started_tied_dies_with_the_sigkilled_module():
    child = child_after_killing_the_module("tied")
    assert wait_until(lambda: not alive(child)), "the tool outlived the module"


def test_without_the_tie_the_tool_outlives_the_module():
    # the reason for the tie: what the kernel does by default
    child = child_after_killing_the_module("loose")
    try:
        assert alive(child)
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_watchdog_removes_the_container_once_the_module_is_gone(tmp_path):
    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\necho "$@" >> %s\n' % calls)
    docker.chmod(0o755)
    module = subprocess.Popen(["sleep", "60"])
    watchdog = subprocess.Popen([sys.executable, "-c", CONTAINER_WATCHDOG, str(module.pid), str(docker), "one-shot"])
    try:
        time.sleep(0.7)
        assert not calls.exists(), "the container went while the module lived"
        module.kill()
        module.wait()
        assert watchdog.wait(timeout=5) == 0
        assert calls.read_text() == "rm --force one-shot\n"
    finally:
        module.kill()
        watchdog.kill()
