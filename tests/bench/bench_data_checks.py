# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""migration_plan_info's data checks on a large table: the plan of one revision (SET NOT NULL and a unique index on
a table of --size-mb MiB, with NULLs and duplicates in it) with data checks against the same plan without them
(the baseline), and the statement_timeout the checks ran under.

A benchmark, not a test: it asserts nothing about time. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench_common import BenchError, Cluster, run_with_cluster
from bench_curve_common import check_collection, median_seconds, module_runner
from bench_lock_stall import example_venv
from bench_plan_curve import ALEMBIC_INI, ENV_PY

NAME = "bench_data_checks"
# about 115 bytes a row with its index entries: rows per MiB of the table with its primary key
ROWS_PER_MIB = 9000
REVISION_PY = '''"""the rules the rows break

Revision ID: r0002
Revises: r0001
"""

from alembic import op

revision = "r0002"
down_revision = "r0001"


def upgrade():
    op.execute("ALTER TABLE accounts ALTER COLUMN email SET NOT NULL")
    op.execute("CREATE UNIQUE INDEX ux_accounts_email ON accounts (email)")


def downgrade():
    op.execute("DROP INDEX ux_accounts_email")
    op.execute("ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL")
'''
BASE_PY = '''"""accounts

Revision ID: r0001
Revises:
"""

from alembic import op

revision = "r0001"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, email text, note text)")


def downgrade():
    op.execute("DROP TABLE accounts")
'''
# one NULL email in 10,000 rows and one duplicate in 20,000
FILL = """INSERT INTO accounts
SELECT n, CASE WHEN n %% 10000 = 0 THEN NULL WHEN n %% 20000 = 1 THEN 'user' || (n + 1) || '@example.com'
              ELSE 'user' || n || '@example.com' END, md5(n::text)
FROM generate_series(1, %(rows)s) AS n"""


def progress(message: str) -> None:
    print("%s: %s" % (NAME, message), file=sys.stderr, flush=True)


def write_project(root: str) -> str:
    versions = os.path.join(root, "migrations", "versions")
    os.makedirs(versions)
    for name, text in (
        ("alembic.ini", ALEMBIC_INI),
        ("migrations/env.py", ENV_PY),
        ("migrations/versions/r0001.py", BASE_PY),
        ("migrations/versions/r0002.py", REVISION_PY),
    ):
        with open(os.path.join(root, name), "w") as handle:
            handle.write(text)
    return os.path.join(root, "alembic.ini")


def run_benchmark(harness, work_dir: str, args: argparse.Namespace) -> dict:
    check_collection()
    venv = example_venv()
    progress("starting an ephemeral PostgreSQL cluster")
    server = Cluster.from_harness(harness.start(os.path.join(work_dir, "pg")))
    with server.connect("postgres") as admin:
        admin.execute("CREATE DATABASE bench_data")
    alembic_ini = write_project(os.path.join(work_dir, "project"))
    database_url = "postgresql+psycopg://%s@%s:%d/bench_data" % (server.user, server.host, server.port)
    env = dict(os.environ, PGPASSWORD=server.password, DATABASE_URL=database_url)
    module_args = {
        "runner": [os.path.join(venv, "bin", "alembic"), "-c", alembic_ini],
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "db": "bench_data",
    }  # fmt: skip
    module_runner("alembic_migrate", dict(module_args, revision="r0001"), os.path.join(work_dir, "m.json"), env)()
    module_args.update(lint=False, trace="never", data_check_timeout=args.timeout)
    rows = args.size_mb * ROWS_PER_MIB
    progress("filling accounts with %d rows" % rows)
    with server.connect("bench_data") as connection:
        connection.execute(FILL % {"rows": rows})
        connection.execute("VACUUM ANALYZE accounts")
        size = connection.execute("SELECT pg_total_relation_size('accounts')").fetchone()[0]
    progress("accounts: %.0f MiB" % (size / 1024 / 1024))
    cases = {
        "plan without data checks": dict(module_args, data_checks=False),
        "plan with data checks": module_args,
    }
    figures = {}
    for name, case_args in cases.items():
        run_once = module_runner(
            "migration_plan_info", case_args, os.path.join(work_dir, "%s.json" % len(figures)), env
        )
        response = run_once()
        seconds, timings = median_seconds(run_once, args.repeat)
        progress("%s: %s s" % (name, ", ".join("%.2f" % value for value in timings)))
        figures[name] = {"seconds": round(seconds, 3), "runs": [round(value, 3) for value in timings]}
        if case_args.get("data_checks", True):
            findings = response["revisions"][0]["data_findings"]
            figures[name]["findings"] = [(found["kind"], found["severity"], found["violations"]) for found in findings]
            if not findings:
                raise BenchError("the data checks found nothing on accounts")
    baseline, candidate = (figures[name]["seconds"] for name in cases)
    return {
        "benchmark": "data_checks",
        "table_mib": round(size / 1024 / 1024),
        "rows": rows,
        "statement_timeout": args.timeout,
        "repeat": args.repeat,
        "cases": figures,
        "checks_seconds": round(candidate - baseline, 3),
        "ratio": round(candidate / baseline, 2),
    }


def print_report(report: dict) -> None:
    print("migration_plan_info data checks on accounts, %d MiB, %d rows" % (report["table_mib"], report["rows"]))
    for name, figures in report["cases"].items():
        print("  %-26s %8.2f s  %s" % (name, figures["seconds"], figures.get("findings", "")))
    print(
        "the checks took %.2f s under statement_timeout %s each; with / without: %.2f"
        % (report["checks_seconds"], report["statement_timeout"], report["ratio"])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the table (MiB, default 1024)")
    parser.add_argument("--timeout", default="60s", help="the data checks' statement_timeout (default 60s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case, median reported")
    parser.add_argument("--json", help="write the figures as JSON")
    args = parser.parse_args()
    return run_with_cluster(NAME, args, run_benchmark, print_report)


if __name__ == "__main__":
    sys.exit(main())
