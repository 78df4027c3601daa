# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's hook points as a team uses them: a task file per point, each noting itself in a log file."""

from __future__ import annotations

from pathlib import Path

PHASES = ("plan", "database", "roll", "record")
POINTS = tuple("%s_%s" % (when, phase) for phase in PHASES for when in ("before", "after"))
# what each file does: one line in the log, also in check mode, never reported as a change
HOOK = """---
- name: Note the hook {point}
  ansible.builtin.shell: echo "{point} {{{{ deploy_app_version }}}} {{{{ ansible_check_mode }}}}" >> {log}
  check_mode: false
  changed_when: false
"""
FAILING = """---
- name: Smoke test of {{ deploy_app_version }}
  ansible.builtin.fail:
    msg: the smoke test of {{ deploy_app_version }} found no orders page
"""


def hook_files(root: Path, failing: str | None = None) -> dict:
    """Extra vars naming a file for every hook point, and for `failing` one that fails; the log starts empty."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / "hooks.log"
    log.write_text("")
    extra = {}
    for point in POINTS:
        path = root / ("%s.yml" % point)
        path.write_text(FAILING if point == failing else HOOK.format(point=point, log=log))
        extra["deploy_%s_tasks" % point] = str(path)
    return extra


def hooks_run(root: Path) -> list[str]:
    """The hook points that ran, in order, each as `point app_version check_mode`."""
    return (root / "hooks.log").read_text().splitlines()
