# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every benchmark shares: the cluster harness, the machine description, and a main() that always cleans up."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import psycopg

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS_PATH = os.path.join(REPO_ROOT, "tests", "integration", "targets", "setup_postgresql", "files", "pg_cluster.py")


@dataclass
class Cluster:
    """Where the benchmark's ephemeral cluster listens; each benchmark adds the clients it needs."""

    host: str
    port: int
    user: str
    password: str
    bin_dir: str

    @classmethod
    def from_harness(cls, info: dict):
        return cls(info["host"], int(info["port"]), info["user"], info["password"], info["bin_dir"])

    # the application_name of connections that name none
    application_name = "safedeploy bench"

    def connect(self, database: str, autocommit: bool = True, application_name: str | None = None):
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=autocommit,
            application_name=application_name or self.application_name,
        )


class BenchError(Exception):
    """A step of the benchmark failed; main() prints it as one sentence."""


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pg_cluster", HARNESS_PATH)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    return harness


def cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def meminfo_kib(key: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def exit_on_sigterm(_signum, _frame) -> None:
    # turns SIGTERM into SystemExit so that the cluster is stopped by the finally block
    raise SystemExit(143)


def run_with_cluster(name: str, args, run_benchmark: Callable, print_report: Callable) -> int:
    """Run one benchmark in a temporary directory whose cluster is stopped however the run ends."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    harness = load_harness()
    work_dir = tempfile.mkdtemp(prefix="safedeploy-bench-")
    # run as root, the harness starts the server as postgres, which must be able to enter this directory
    os.chmod(work_dir, 0o711)
    try:
        report = run_benchmark(harness, work_dir, args)
    except BenchError as exc:
        print("%s: %s" % (name, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % name, file=sys.stderr)
        return 130
    finally:
        # a second Ctrl-C must not interrupt the clean-up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("%s: stopping the cluster and removing %s" % (name, work_dir), file=sys.stderr, flush=True)
        harness.stop(os.path.join(work_dir, "pg"))
        shutil.rmtree(work_dir, ignore_errors=True)
    print_report(report)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
    return 0
