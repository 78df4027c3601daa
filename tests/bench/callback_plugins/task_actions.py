# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmarks' record of a playbook run: each task's action, outcome and seconds, as JSON lines.

Enabled by bench_deploy_overhead.py (ANSIBLE_CALLBACKS_ENABLED=task_actions) with BENCH_TASK_ACTIONS naming the
file; it tells the tasks that ran a module on the host from those the controller answered alone.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_actions
type: aggregate
short_description: each task's action, outcome and seconds as JSON lines (benchmarks only)
description:
  - Appends one JSON line per task result to the file named by the BENCH_TASK_ACTIONS environment variable.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_actions"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._started = {}
        self._path = os.environ.get("BENCH_TASK_ACTIONS")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self._started[task._uuid] = time.monotonic()

    def _record(self, result, outcome):
        if not self._path:
            return
        task = result._task
        row = {
            "task": task.get_name(),
            "action": task.resolved_action or task.action,
            "outcome": outcome,
            "seconds": round(time.monotonic() - self._started.get(task._uuid, time.monotonic()), 3),
        }
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
