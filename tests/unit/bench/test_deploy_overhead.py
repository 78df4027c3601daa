# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench_deploy_overhead's floor: which tasks count as module runs, read from a real playbook run's callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_deploy_overhead as bench  # noqa: E402


def row(action: str, outcome: str = "ok", seconds: float = 0.5) -> dict:
    return {"task": action, "action": action, "outcome": outcome, "seconds": seconds}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], {"count": 0, "seconds": 0}),
        ([row("safedeploy.migrations.deploy_lock")], {"count": 1, "seconds": 0.5}),
        # the controller answers these alone
        (
            [row("ansible.builtin.set_fact"), row("ansible.builtin.include_role"), row("ansible.builtin.assert")],
            {"count": 0, "seconds": 0},
        ),
        ([row("ansible.builtin.validate_argument_spec"), row("ansible.builtin.meta")], {"count": 0, "seconds": 0}),
        # a skipped module task ran nothing; a failed one did
        ([row("community.docker.docker_host_info", "skipped")], {"count": 0, "seconds": 0}),
        (
            [row("ansible.builtin.command", "failed", 0.25), row("ansible.builtin.slurp", "ok", 0.25)],
            {"count": 2, "seconds": 0.5},
        ),
    ],
)
def test_module_runs(rows, expected):
    assert bench.module_runs(rows) == expected


def test_floors_add_the_start_up_to_each_deploys_module_runs():
    figures = {
        "startup": [0.6, 0.5, 0.7],
        "noop": {"manual": [1.0, 1.2, 1.4], "deploy": [2.7, 3.6, 3.0]},
        "update": {"manual": 2.0, "full_procedure": 4.0, "deploy": 20.0, "deploy_stop_the_world": 12.0},
        "noop_module_runs": {"count": 3, "seconds": 1.2},
        "update_module_runs": {"count": 25, "seconds": 15.4},
        "update_stop_the_world_module_runs": {"count": 20, "seconds": 11.4},
    }
    rows = bench.floors(figures)
    assert [(row["case"], round(row["floor"], 2), row["over_floor"]) for row in rows] == [
        ("no-op deploy", 1.8, 1.67),
        ("update deploy", 16.0, 1.25),
        ("update deploy stop_the_world", 12.0, 1.0),
    ]
    assert rows[0]["ratios"] == [(1.5, "manual check", 1.5)]
    assert rows[1]["ratios"] == [(8.0, "hand-run update", 4), (4.0, "full procedure", 2)]
    assert [row["over_floor_target"] for row in rows] == [1.6, 1.25, 1.25]


def test_the_callback_records_what_a_real_playbook_ran(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        note: 1
    - ansible.builtin.debug:
        msg: hello
    - ansible.builtin.command: "true"
      changed_when: false
    - ansible.builtin.command: "false"
      when: false
    - ansible.builtin.stat:
        path: /
"""
    )
    actions = tmp_path / "actions.jsonl"
    env = dict(os.environ, BENCH_TASK_ACTIONS=str(actions), **bench.PROFILE)
    env["ANSIBLE_CALLBACKS_ENABLED"] = "task_actions"
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    subprocess.run(command, env=env, check=True, capture_output=True)
    rows = [json.loads(line) for line in actions.read_text().splitlines()]
    assert [(row["action"], row["outcome"]) for row in rows] == [
        ("ansible.builtin.set_fact", "ok"),
        ("ansible.builtin.debug", "ok"),
        ("ansible.builtin.command", "ok"),
        ("ansible.builtin.command", "skipped"),
        ("ansible.builtin.stat", "ok"),
    ]
    assert bench.module_runs(rows)["count"] == 2
