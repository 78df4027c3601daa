# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Child processes that end with the module: a SIGKILLed module must leave no pg_dump, alembic or container at work."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1

# Runs beside a compose one-shot, in a session of its own: once the module's process is gone (or a zombie), it
# removes the container, which would otherwise go on migrating without the module's advisory lock.
CONTAINER_WATCHDOG = """
import subprocess, sys, time
module, docker, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def alive():
    try:
        with open("/proc/%d/stat" % module) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while alive():
    time.sleep(0.5)
subprocess.run([docker, "rm", "--force", name], capture_output=True, check=False)
"""


def die_with_parent_of(parent: int):
    """A Popen preexec_fn: the kernel SIGKILLs the child when the module's process ends, however it ends."""

    def prepare() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # the module died between fork and prctl: nothing would stop this child any more
        if os.getppid() != parent:
            os._exit(1)

    return prepare


def watch_container(docker: str, name: str) -> subprocess.Popen | None:
    """Start CONTAINER_WATCHDOG for container `name`; stop it with stop_watchdog once the container is done."""
    try:
        return subprocess.Popen(
            [sys.executable, "-c", CONTAINER_WATCHDOG, str(os.getpid()), docker, name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


def stop_watchdog(watchdog: subprocess.Popen | None) -> None:
    if watchdog is not None:
        watchdog.kill()
        watchdog.wait()
