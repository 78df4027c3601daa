# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_offline import (
    normalize_sql,
    offline_range,
    plan_hash,
    split_offline_sql,
)

# what `alembic upgrade 0001_initial:0003_jobs_queue_index --sql` prints, with transaction_per_migration
OFFLINE = """BEGIN;

-- Running upgrade 0001_initial -> 0002_job_priority

ALTER TABLE jobs ADD COLUMN priority SMALLINT;

UPDATE alembic_version SET version_num='0002_job_priority' WHERE alembic_version.version_num = '0001_initial';

COMMIT;

BEGIN;

-- Running upgrade 0002_job_priority -> 0003_jobs_queue_index

COMMIT;

CREATE INDEX CONCURRENTLY ix_jobs_queue ON jobs (priority DESC, id) WHERE status = 'queued';

BEGIN;

UPDATE alembic_version SET version_num='0003_jobs_queue_index' WHERE alembic_version.version_num = '0002_job_priority';

COMMIT;
"""

FROM_BASE = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL
);

-- Running upgrade  -> 0001_initial

CREATE TABLE customers (id bigint);

INSERT INTO alembic_version (version_num) VALUES ('0001_initial') RETURNING alembic_version.version_num;

COMMIT;
"""


def test_split_gives_each_revision_its_own_transaction():
    steps = split_offline_sql(OFFLINE)
    assert [(s["from_revision"], s["to_revision"]) for s in steps] == [
        ("0001_initial", "0002_job_priority"),
        ("0002_job_priority", "0003_jobs_queue_index"),
    ]
    assert steps[0]["sql"].startswith("BEGIN;\n\n-- Running upgrade 0001_initial -> 0002_job_priority")
    assert steps[0]["sql"].rstrip().endswith("COMMIT;")
    assert "ADD COLUMN priority" in steps[0]["sql"] and "CONCURRENTLY" not in steps[0]["sql"]
    assert steps[1]["sql"].startswith("BEGIN;") and "COMMIT;\n\nCREATE INDEX CONCURRENTLY" in steps[1]["sql"]


def test_split_from_base_leaves_the_version_table_out():
    steps = split_offline_sql(FROM_BASE)
    assert len(steps) == 1 and steps[0]["from_revision"] is None and steps[0]["to_revision"] == "0001_initial"
    assert "CREATE TABLE alembic_version" not in steps[0]["sql"]
    assert steps[0]["sql"].startswith("-- Running upgrade  -> 0001_initial")


def test_split_of_downgrades():
    text = "BEGIN;\n\n-- Running downgrade 0002 -> 0001\n\nALTER TABLE jobs DROP COLUMN priority;\n\nCOMMIT;\n"
    assert split_offline_sql(text)[0]["direction"] == "downgrade"


def test_plan_hash_is_stable_and_sensitive():
    steps = [(s["to_revision"], s["sql"]) for s in split_offline_sql(OFFLINE)]
    assert plan_hash(steps) == plan_hash([(r, sql.replace("\n\n", "\n   \n")) for r, sql in steps])
    assert plan_hash(steps) != plan_hash([(r, sql.replace("SMALLINT", "INTEGER")) for r, sql in steps])
    assert plan_hash(steps) != plan_hash(list(reversed(steps)))
    assert len(plan_hash([])) == 64


def test_normalize_and_range():
    assert normalize_sql("  a;  \n\n\n b;\n") == "a;\n b;\n"
    assert offline_range([], "head") == "head"
    assert offline_range(["0001"], "0003") == "0001:0003"


# `alembic upgrade 0001:0003 --sql` with alembic's default: no transaction_per_migration, one transaction for the range
ONE_TRANSACTION = """BEGIN;

-- Running upgrade 0001 -> 0002

ALTER TABLE jobs ADD COLUMN priority SMALLINT;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

ALTER TABLE jobs ADD COLUMN owner TEXT;

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

COMMIT;
"""


def test_a_range_in_one_transaction_gives_each_step_a_closed_transaction_to_lint():
    first, second = split_offline_sql(ONE_TRANSACTION)
    assert first["sql"].startswith("BEGIN;") and "COMMIT;" not in first["sql"]
    assert second["sql"].rstrip().endswith("COMMIT;") and "BEGIN;" not in second["sql"]
    assert first["lint_sql"] == first["sql"] + "\nCOMMIT;\n"
    assert second["lint_sql"] == "BEGIN;\n\n" + second["sql"]


def test_steps_that_close_their_own_transactions_lint_as_they_are():
    for step in split_offline_sql(OFFLINE):
        assert step["lint_sql"] == step["sql"]
    (from_base,) = split_offline_sql(FROM_BASE)
    assert from_base["lint_sql"] == "BEGIN;\n\n" + from_base["sql"]


def test_the_downgrade_of_a_root_revision_ends_at_nothing():
    # alembic writes the arrow and a blank where the parent would be
    text = (
        "BEGIN;\n\n-- Running downgrade 0002 -> 0001\n\nALTER TABLE jobs DROP COLUMN priority;\n\n"
        "-- Running downgrade 0001 -> \n\nDROP TABLE jobs;\n\nDELETE FROM alembic_version;\n\nCOMMIT;\n"
    )
    child, root = split_offline_sql(text)
    assert (root["from_revision"], root["to_revision"]) == ("0001", None)
    assert "DROP TABLE jobs" in root["sql"] and "DROP TABLE jobs" not in child["sql"]
