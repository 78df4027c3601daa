# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_plan import (
    likely_offline_commands,
    offline_target,
    relax_findings_on_new_tables,
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
    relax_findings_on_new_tables(revisions)
    assert revisions[0]["findings"][0]["severity"] == expected


def test_a_table_created_by_an_earlier_revision_counts_and_other_rules_stay():
    first = revision("CREATE TABLE customers (id int);")
    second = revision(
        "ALTER TABLE customers ADD COLUMN code int NOT NULL DEFAULT 1; ALTER TABLE customers DROP COLUMN code;",
        ("adding-field-with-default", "ALTER TABLE customers ADD COLUMN code int NOT NULL DEFAULT 1"),
        ("ban-drop-column", "ALTER TABLE customers DROP COLUMN code"),
    )
    relax_findings_on_new_tables([first, second])
    assert [finding["severity"] for finding in second["findings"]] == ["info", "error"]


def test_a_foreign_key_to_an_existing_table_is_not_relaxed():
    statement = "ALTER TABLE invoices ADD FOREIGN KEY (customer_id) REFERENCES customers (id)"
    sql = "CREATE TABLE invoices (id int, customer_id int); %s;" % statement
    revisions = [revision(sql, ("adding-foreign-key-constraint", statement))]
    relax_findings_on_new_tables(revisions)
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
