# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kills a running pg_backup the way the OOM killer does, and waits for processes to end.

`kill DATABASE DEST`: waits for the partial file of DATABASE's backup in DEST, finds the module (the process that has
it open) and the pg_dump it started, sends SIGKILL to the module and prints {module_pid, pg_dump_pid, partial} once
the module is gone. `wait-gone PID`: exits 0 once the process has ended, or fails after the timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

TIMEOUT = 20.0


def processes() -> list[int]:
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit()]


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name, which is in parentheses and may hold spaces."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def is_gone(pid: int) -> bool:
    fields = stat_fields(pid)
    return not fields or fields[0] == "Z"


def holder_of(path: str) -> int | None:
    for pid in processes():
        try:
            descriptors = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path:
                    return pid
            except OSError:
                continue
    return None


def pg_dump_child_of(parent: int) -> int | None:
    for pid in processes():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                program = os.path.basename(handle.read().split(b"\0")[0])
        except OSError:
            continue
        fields = stat_fields(pid)
        if program == b"pg_dump" and fields and int(fields[1]) == parent:
            return pid
    return None


def partial_in(dest: str, database: str) -> str | None:
    pattern = r"\.%s_\d{8}T\d{12}Z\.dump\.partial" % re.escape(database)
    names = [name for name in os.listdir(dest) if re.fullmatch(pattern, name)]
    return os.path.join(dest, names[0]) if len(names) == 1 else None


def wait_for(found, what: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    sys.exit("timed out waiting for %s" % what)


def kill(database: str, dest: str) -> None:
    partial = wait_for(lambda: partial_in(dest, database), "the partial file in %s" % dest)
    module = wait_for(lambda: holder_of(partial), "the module writing %s" % partial)
    pg_dump = wait_for(lambda: pg_dump_child_of(module), "the pg_dump of process %d" % module)
    os.kill(module, signal.SIGKILL)
    wait_for(lambda: is_gone(module), "the killed module to end")
    print(json.dumps({"module_pid": module, "pg_dump_pid": pg_dump, "partial": partial}))


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        kill(sys.argv[2], sys.argv[3])
    else:
        wait_for(lambda: is_gone(int(sys.argv[2])), "process %s to end" % sys.argv[2])
