# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curve: migration_plan_info time against the number of pending revisions of a generated alembic project,
against plain `alembic upgrade head --sql` of the same range (the baseline), offline with and without lint, and
traced on a scratch copy (`trace: always`), with the copy's share of the traced plan.

A benchmark, not a test: it asserts nothing about time. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench_common import BenchError, Cluster, run_with_cluster
from bench_curve_common import (
    check_collection,
    curve_arguments,
    curve_report,
    load_average,
    median_seconds,
    module_runner,
    print_and_plot,
    ratio_comparisons,
    series_figures,
    tool_version,
)
from bench_lock_stall import example_venv

NAME = "bench_plan_curve"
FULL_COUNTS = (10, 100, 500)
QUICK_COUNTS = (5, 20, 50)

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
"""
# DATABASE_URL carries no password: libpq reads PGPASSWORD
ENV_PY = """import os

from alembic import context
from sqlalchemy import create_engine, pool

URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://")


def run_migrations_offline():
    context.configure(url=URL, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""
REVISION_PY = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down_revision_literal}
branch_labels = None
depends_on = None


def upgrade():
    {upgrade}


def downgrade():
    {downgrade}
'''


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


def revision_id(number: int) -> str:
    return "r%04d" % number


def write_project(root: str, count: int) -> str:
    """An alembic project of `count` trivial revisions: odd ones create a table, even ones add a column to it."""
    versions = os.path.join(root, "migrations", "versions")
    os.makedirs(versions)
    with open(os.path.join(root, "alembic.ini"), "w") as handle:
        handle.write(ALEMBIC_INI)
    with open(os.path.join(root, "migrations", "env.py"), "w") as handle:
        handle.write(ENV_PY)
    for number in range(1, count + 1):
        if number % 2:
            table = "t%04d" % number
            message = "create table %s" % table
            upgrade = 'op.create_table("%s", sa.Column("id", sa.Integer, primary_key=True))' % table
            downgrade = 'op.drop_table("%s")' % table
        else:
            table = "t%04d" % (number - 1)
            message = "add column c%04d to %s" % (number, table)
            upgrade = 'op.add_column("%s", sa.Column("c%04d", sa.Text))' % (table, number)
            downgrade = 'op.drop_column("%s", "c%04d")' % (table, number)
        down_revision = revision_id(number - 1) if number > 1 else None
        text = REVISION_PY.format(
            message=message,
            revision=revision_id(number),
            down_revision=down_revision,
            down_revision_literal='"%s"' % down_revision if down_revision else "None",
            upgrade=upgrade,
            downgrade=downgrade,
        )
        with open(os.path.join(versions, "%s.py" % revision_id(number)), "w") as handle:
            handle.write(text)
    return os.path.join(root, "alembic.ini")


BASELINE = "alembic upgrade --sql"
# what the plan reads from alembic, run by hand: the graph, the upgrade and the downgrade of the range
BASELINE_ALL = "alembic history + upgrade + downgrade"
LINT_OFF = "plan offline, lint off"
LINT_ON = "plan offline, lint on"
TRACED = "plan traced, lint on"
# the series each case is compared with
COMPARED = (
    (LINT_OFF, BASELINE), (LINT_ON, BASELINE), (LINT_OFF, BASELINE_ALL), (LINT_ON, BASELINE_ALL), (TRACED, LINT_ON),
)  # fmt: skip


def measure_count(server: Cluster, venv: str, work_dir: str, count: int, repeat: int) -> dict:
    """{series: (median seconds, the last run's response)} for one generated project of `count` revisions."""
    database = "bench_plan_%d" % count
    with server.connect("postgres") as admin:
        admin.execute('CREATE DATABASE "%s"' % database)
    alembic_ini = write_project(os.path.join(work_dir, "project-%d" % count), count)
    database_url = "postgresql+psycopg://%s@%s:%d/%s" % (server.user, server.host, server.port, database)
    alembic = os.path.join(venv, "bin", "alembic")
    module_args = {
        "runner": [alembic, "-c", alembic_ini],
        "runner_env": {"DATABASE_URL": database_url},
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "db": database,
        "pg_tools": {"bin_dir": server.bin_dir},
    }  # fmt: skip
    # login_password falls back to PGPASSWORD, so the password stays out of the args file
    env = dict(os.environ, PGPASSWORD=server.password, DATABASE_URL=database_url)

    def alembic_runs(*commands):
        for command in commands:
            subprocess.run([alembic, "-c", alembic_ini, *command], env=env, capture_output=True, check=True)

    cases = {
        BASELINE: lambda: alembic_runs(["upgrade", "head", "--sql"]),
        BASELINE_ALL: lambda: alembic_runs(
            ["history", "--verbose"], ["upgrade", "head", "--sql"], ["downgrade", "head:base", "--sql"]
        ),
        LINT_OFF: plan_runner(module_args, dict(lint=False, trace="never"), work_dir, count, env),
        LINT_ON: plan_runner(module_args, dict(trace="never"), work_dir, count, env),
        TRACED: plan_runner(module_args, dict(trace="always"), work_dir, count, env),
    }
    measured = {}
    for name, run_once in cases.items():
        response = run_once()
        if name not in (BASELINE, BASELINE_ALL) and response["summary"]["pending"] != count:
            raise BenchError("the plan of %d revisions listed %s pending" % (count, response["summary"]["pending"]))
        seconds, timings = median_seconds(run_once, repeat)
        progress("%d pending revisions, %s: %s s" % (count, name, ", ".join("%.2f" % value for value in timings)))
        measured[name] = (seconds, response)
    return measured


def plan_runner(module_args: dict, options: dict, work_dir: str, count: int, env: dict):
    args_path = os.path.join(work_dir, "plan-%d-%s.json" % (count, "-".join(map(str, options.values()))))
    return module_runner("migration_plan_info", dict(module_args, **options), args_path, env)


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    check_collection()
    venv = example_venv()
    progress("starting an ephemeral PostgreSQL cluster")
    server = Cluster.from_harness(harness.start(os.path.join(work_dir, "pg")))
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    points: dict = {}
    copy_shares = []
    for count in counts:
        measured = measure_count(server, venv, work_dir, count, args.repeat)
        for name, (seconds, _response) in measured.items():
            point = {"work": count, "label": str(count), "seconds": seconds, "load_average_1min": load_average()}
            points.setdefault(name, []).append(point)
        trace = measured[TRACED][1]["trace"]
        share = trace["copy_seconds"] / measured[TRACED][0]
        copy_shares.append({"label": str(count), "copy_seconds": trace["copy_seconds"], "share": round(share, 2)})
        progress("%d pending revisions: the scratch copy took %.2f s, %.0f%% of the traced plan" % (
            count, trace["copy_seconds"], 100 * share))  # fmt: skip
    comparisons = ratio_comparisons(points, COMPARED)
    return curve_report(
        "plan_curve",
        "migration_plan_info time against pending revisions",
        "pending revisions",
        "revision",
        [series_figures(name, series_points) for name, series_points in points.items()],
        args.quick,
        comparisons=comparisons,
        trace_copy=copy_shares,
        repeat=args.repeat,
        alembic=tool_version([os.path.join(venv, "bin", "alembic"), "--version"]),
    )


def main() -> int:
    args = curve_arguments(__doc__, repeat=3)
    return run_with_cluster(NAME, args, run_benchmark, lambda report: print_report(report, args))


def print_report(report: dict, args: argparse.Namespace) -> None:
    print_and_plot(report, args)
    shares = ", ".join(
        "%s %.2f s (%d%%)" % (row["label"], row["copy_seconds"], 100 * row["share"]) for row in report["trace_copy"]
    )
    print("the scratch copy's share of the traced plan: %s" % shares)


if __name__ == "__main__":
    sys.exit(main())
