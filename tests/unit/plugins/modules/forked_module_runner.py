# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one module many times, each run in a forked child, as `python -m <module> <args file>` would.

Usage: python forked_module_runner.py MODULE CASES_JSON RESULTS_JSON WORKERS TIMEOUT

Importing Ansible and the collection's module_utils takes most of a module's start-up, so this process imports them
once and forks a child per case; the child runs the module's source afresh as `__main__` with the case's argv, cwd,
environment and stdout/stderr files, then runs the atexit handlers a normal interpreter exit would run.
CASES_JSON is a list of {id, args, cwd, env, stdout, stderr}; RESULTS_JSON gets {id: {rc, seconds, timed_out}}.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback


def warm_imports(module_name: str) -> None:
    """Import the module's dependencies, then forget the module itself so that runpy executes it fresh."""
    # a module that does not import fails the same way, with its traceback, in every child
    with contextlib.suppress(BaseException):
        importlib.import_module(module_name)
    sys.modules.pop(module_name, None)
    # AnsibleModule loads the JSON profiles of its arguments and its result on first use; only a speed-up
    with contextlib.suppress(Exception):
        from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder

        get_module_decoder("legacy", Direction.CONTROLLER_TO_MODULE)
        get_module_encoder("legacy", Direction.MODULE_TO_CONTROLLER)


def exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    sys.stderr.write("%s\n" % exc.code)
    return 1


def run_module(module_name: str) -> int:
    try:
        runpy.run_module(module_name, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:  # noqa: B036 - the child reports whatever escaped the module, like an interpreter would
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: B036
        traceback.print_exc()
        code = code or 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def redirect(fd: int, path: str, flags: int) -> None:
    target = os.open(path, flags, 0o600)
    os.dup2(target, fd)
    os.close(target)


def child(module_name: str, case: dict) -> None:
    code = 1
    try:
        # its own process group, so that a timeout also ends the commands the module started
        os.setpgid(0, 0)
        redirect(0, os.devnull, os.O_RDONLY)
        redirect(1, case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        redirect(2, case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.chdir(case["cwd"])
        os.environ.clear()
        os.environ.update(case["env"])
        tempfile.tempdir = None
        sys.argv = [module_name, case["args"]]
        code = run_module(module_name)
    except BaseException:  # noqa: B036
        traceback.print_exc()
    finally:
        os._exit(code)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_cases(module_name: str, cases: list, workers: int, timeout: float) -> dict:
    pending = list(reversed(cases))
    running: dict[int, tuple[dict, float]] = {}
    results: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < workers:
            case = pending.pop()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child(module_name, case)
            running[pid] = (case, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            case, started = running.pop(pid)
            kill_group(pid)  # commands the module left running in the background
            results[case["id"]] = {
                "rc": os.waitstatus_to_exitcode(status),
                "seconds": round(time.monotonic() - started, 3),
                "timed_out": False,
            }
            continue
        now = time.monotonic()
        for pid, (case, started) in list(running.items()):
            if now - started > timeout:
                kill_group(pid)
                os.waitpid(pid, 0)
                del running[pid]
                results[case["id"]] = {"rc": None, "seconds": round(now - started, 3), "timed_out": True}
        time.sleep(0.002)
    return results


def main() -> None:
    module_name, cases_path, results_path, workers, timeout = sys.argv[1:6]
    with open(cases_path) as cases_file:
        cases = json.load(cases_file)
    warm_imports(module_name)
    results = run_cases(module_name, cases, int(workers), float(timeout))
    with open(results_path, "w") as results_file:
        json.dump(results, results_file)


if __name__ == "__main__":
    main()
