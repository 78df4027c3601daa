# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_plan import (
    describe_revision,
    downgrade_sql_by_revision,
    likely_offline_commands,
    offline_target,
    relax_on_tables_the_plan_creates,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import analyze_sql


def revision(sql: str, *findings: tuple[str, str]) -> dict:
    return {
        "statements": analyze_sql(sql),
        "findings": [{"rule": rule, "statement": statement, "severity": "error"} for rule, statement in findings],
    }


@pytest.mark.parametrize(
    ("earlier_sql", "statement", "expected"),
    [
        ("CREATE TABLE jobs (id int)", "CREATE INDEX ix ON jobs (id)", "info"),
        ("CREATE TABLE public.jobs (id int)", 'CREATE INDEX ix ON "jobs" (id)', "info"),
        ("CREATE TABLE other (id int)", "CREATE INDEX ix ON jobs (id)", "error"),
        ("", "CREATE INDEX ix ON jobs (id)", "error"),
    ],
)
def test_index_on_a_table_the_plan_created_is_info(earlier_sql, statement, expected):
    sql = ";\n".join(part for part in (earlier_sql, statement) if part) + ";"
    revisions = [revision(sql, ("require-concurrent-index-creation", statement))]
    relax_on_tables_the_plan_creates(revisions)
    assert revisions[0]["findings"][0]["severity"] == expected


def test_a_table_created_by_an_earlier_revision_counts_and_other_rules_stay():
    first = revision("CREATE TABLE customers (id int);")
    second = revision(
        "ALTER TABLE customers ADD COLUMN code int NOT NULL DEFAULT 1; ALTER TABLE customers DROP COLUMN code;",
        ("adding-field-with-default", "ALTER TABLE customers ADD COLUMN code int NOT NULL DEFAULT 1"),
        ("ban-drop-column", "ALTER TABLE customers DROP COLUMN code"),
    )
    relax_on_tables_the_plan_creates([first, second])
    assert [finding["severity"] for finding in second["findings"]] == ["info", "error"]


def test_a_foreign_key_to_an_existing_table_is_not_relaxed():
    statement = "ALTER TABLE invoices ADD FOREIGN KEY (customer_id) REFERENCES customers (id)"
    sql = "CREATE TABLE invoices (id int, customer_id int); %s;" % statement
    revisions = [revision(sql, ("adding-foreign-key-constraint", statement))]
    relax_on_tables_the_plan_creates(revisions)
    assert revisions[0]["findings"][0]["severity"] == "error"


def test_the_likely_commands_are_the_ones_the_plan_asks_for():
    assert likely_offline_commands(["0002"], "head") == [
        ["history", "--verbose"],
        ["upgrade", "0002:head", "--sql"],
        ["downgrade", "head:0002", "--sql"],
    ]
    assert likely_offline_commands([], "0003")[1:] == [
        ["upgrade", "0003", "--sql"],
        ["downgrade", "0003:base", "--sql"],
    ]


@pytest.mark.parametrize(
    ("requested", "target", "name"),
    [
        ("head", ["0004"], "head"),
        ("heads", ["0004a", "0004b"], "heads"),
        ("0003", ["0003"], "0003"),
        ("00", ["0003"], "0003"),
        ("other", ["a", "b"], "heads"),
    ],
)
def test_offline_target_keeps_symbolic_names(requested, target, name):
    assert offline_target(requested, target) == name


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE UNIQUE INDEX ux_jobs_code ON jobs (code)",
        "ALTER TABLE jobs ADD CONSTRAINT jobs_code_key UNIQUE (code)",
        "ALTER TABLE jobs ALTER COLUMN code TYPE bigint",
        "ALTER TABLE jobs RENAME COLUMN code TO ref",
        "ALTER TABLE jobs ADD COLUMN owner int NOT NULL",
    ],
)
def test_compatibility_reasons_on_a_table_the_plan_created_become_notes(statement):
    first = revision("CREATE TABLE jobs (id int, code int);")
    second = revision(statement + ";")
    old = revision(statement.replace("jobs", "invoices") + ";")
    relax_on_tables_the_plan_creates([first, dict(second, revision="0002"), old])
    assert analyze_sql(statement + ";")[0]["incompatible_reasons"], "the statement itself is incompatible"
    assert second["statements"][0]["incompatible_reasons"] == []
    assert any("on a table this plan creates" in note for note in second["statements"][0]["notes"])
    assert old["backward_compatible"] is False and old["incompatible_reasons"]


def test_compatibility_reasons_relaxed_in_the_revision_that_creates_the_table():
    entry = revision("CREATE TABLE jobs (id int); CREATE UNIQUE INDEX ux ON jobs (id);")
    relax_on_tables_the_plan_creates([entry])
    assert entry["backward_compatible"] is True and entry["incompatible_reasons"] == []


class FakeRunner:
    """Answers the offline downgrade runs with alembic's own output for a two-revision history from base."""

    revision_files = {"aaa_first.py": "aaa", "bbb_second.py": "bbb"}

    def __init__(self, text: str):
        self.text = text

    def run(self, args):
        return self.text


# `alembic downgrade bbb:base --sql` with alembic's default (no transaction_per_migration), as alembic 1.13 prints it
DOWNGRADE_TO_BASE = (
    "BEGIN;\n\n-- Running downgrade bbb -> aaa\n\nALTER TABLE t DROP COLUMN x;\n\n"
    "UPDATE alembic_version SET version_num='aaa' WHERE alembic_version.version_num = 'bbb';\n\n"
    "-- Running downgrade aaa -> \n\nDROP TABLE t;\n\n"
    "DELETE FROM alembic_version WHERE alembic_version.version_num = 'aaa';\n\nCOMMIT;\n"
)


def test_the_root_revisions_downgrade_is_its_own():
    found = downgrade_sql_by_revision(FakeRunner(DOWNGRADE_TO_BASE), [], "bbb", ["aaa", "bbb"])
    assert "DROP TABLE t" in found["aaa"] and "DROP TABLE t" not in found["bbb"]
    assert "DROP COLUMN x" in found["bbb"]
    entry = describe_revision("aaa", "first", "CREATE TABLE t (id int);", found["aaa"])
    assert (entry["rollback_method"], entry["rollback_reason"]) == ("downgrade", "its downgrade reverses it")
