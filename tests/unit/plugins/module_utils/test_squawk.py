# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
import shutil
import sys

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils import _squawk
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_offline import split_offline_sql
from ansible_collections.safedeploy.migrations.plugins.module_utils._squawk import (
    DEFAULT_ERROR_RULES,
    DEFAULT_IGNORED_RULES,
    SquawkError,
    classify,
    find_squawk,
    findings_from_report,
    get_lint_cmd,
    has_transaction_control,
    lint_sql,
    statement_spans,
)

VENV_SQUAWK = os.path.join(os.path.dirname(sys.executable), "squawk")
SQUAWK = shutil.which("squawk") or (VENV_SQUAWK if os.access(VENV_SQUAWK, os.X_OK) else None)
needs_squawk = pytest.mark.skipif(SQUAWK is None, reason="the squawk binary (squawk-cli) is not installed")

# `alembic upgrade 0001:0002 --sql` for a revision that builds an index and adds a required column
REVISION_SQL = """BEGIN;

-- Running upgrade 0001 -> 0002

CREATE INDEX ix_jobs_status ON jobs (status);

ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

COMMIT;
"""
# squawk 2.70.0 --reporter json --no-assume-in-transaction --pg-version=16.0 on REVISION_SQL (file and *_end cut)
REVISION_REPORT = [
    {
        "line": 4,
        "column": 0,
        "level": "Warning",
        "message": "During normal index creation, table updates are blocked, but reads are still allowed.",
        "help": "Use `concurrently` to avoid blocking writes.",
        "rule_name": "require-concurrent-index-creation",
    },
    {
        "line": 4,
        "column": 0,
        "level": "Warning",
        "message": "Missing `set lock_timeout` before potentially slow SHARE lock operations",
        "help": "Configure a `lock_timeout` before this statement. Statement requires: SHARE lock; blocking: writes, "
        "schema changes.",
        "rule_name": "require-lock-timeout",
    },
    {
        "line": 6,
        "column": 17,
        "level": "Warning",
        "message": "Adding a new column that is `NOT NULL` and has no default value to an existing table effectively "
        "makes it required.",
        "help": "Make the field nullable or add a non-VOLATILE DEFAULT",
        "rule_name": "adding-required-field",
    },
    {
        "line": 6,
        "column": 37,
        "level": "Warning",
        "message": "Using 32-bit integer fields can result in hitting the max `int` limit.",
        "help": "Use 64-bit integer values instead to prevent hitting this limit.",
        "rule_name": "prefer-bigint-over-int",
    },
]

# the first revision creates alembic_version; squawk's columns count UTF-8 bytes, so é and € shift them
BOOKKEEPING_SQL = """CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL
);
SELECT 'é€'; DROP TABLE "a;b";
"""
# squawk 2.70.0 --reporter json on BOOKKEEPING_SQL (file and *_end cut)
BOOKKEEPING_REPORT = [
    {
        "line": 0,
        "column": 0,
        "level": "Warning",
        "message": "Missing `IF NOT EXISTS`, the migration can't be rerun if it fails part way through.",
        "help": None,
        "rule_name": "prefer-robust-stmts",
    },
    {
        "line": 1,
        "column": 16,
        "level": "Warning",
        "message": "Changing the size of a `varchar` field requires an `ACCESS EXCLUSIVE` lock, that will prevent all "
        "reads and writes to the table.",
        "help": "Use a `TEXT` field with a `CHECK` constraint.",
        "rule_name": "prefer-text-field",
    },
    {
        "line": 3,
        "column": 16,
        "level": "Warning",
        "message": "Dropping a table may break existing clients.",
        "help": None,
        "rule_name": "ban-drop-table",
    },
]
SYNTAX_ERROR_REPORT = [
    {"line": 0, "column": 0, "level": "Error", "message": "expected command, found IDENT", "rule_name": "syntax-error"}
]


def test_report_maps_onto_statements_with_one_based_positions():
    findings = findings_from_report(REVISION_SQL, REVISION_REPORT)
    assert [(f["rule"], f["line"], f["column"], f["statement_index"]) for f in findings] == [
        ("require-concurrent-index-creation", 5, 1, 1),
        ("require-lock-timeout", 5, 1, 1),
        ("adding-required-field", 7, 18, 2),
        ("prefer-bigint-over-int", 7, 38, 2),
    ]
    assert findings[0]["statement"] == "CREATE INDEX ix_jobs_status ON jobs (status)"
    assert findings[2]["statement"] == "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL"
    assert findings[0]["level"] == "Warning"
    assert findings[0]["help"] == "Use `concurrently` to avoid blocking writes."


def test_byte_columns_become_character_columns_and_alembic_version_findings_are_dropped():
    findings = findings_from_report(BOOKKEEPING_SQL, BOOKKEEPING_REPORT)
    assert findings == [
        dict(
            rule="ban-drop-table",
            level="Warning",
            message="Dropping a table may break existing clients.",
            help=None,
            line=4,
            column=14,
            statement='DROP TABLE "a;b"',
            statement_index=2,
        )
    ]


def test_a_custom_version_table_is_bookkeeping_too():
    sql = BOOKKEEPING_SQL.replace("alembic_version", "app_version")
    rules = [f["rule"] for f in findings_from_report(sql, BOOKKEEPING_REPORT)]
    assert rules == ["prefer-robust-stmts", "prefer-text-field", "ban-drop-table"]
    assert [f["rule"] for f in findings_from_report(sql, BOOKKEEPING_REPORT, "app_version")] == ["ban-drop-table"]


@pytest.mark.parametrize(
    "sql, statements",
    [
        ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("-- a; comment\nSELECT ';' /* b; /* nested; */ c; */ ;\n", ["SELECT ';' /* b; /* nested; */ c; */"]),
        (
            "SELECT 'it''s; fine'; SELECT E'\\'; still'; SELECT 'x\\'; SELECT 2",
            ["SELECT 'it''s; fine'", "SELECT E'\\'; still'", "SELECT 'x\\'", "SELECT 2"],
        ),
        ('ALTER TABLE "a;b" ADD c int;;', ['ALTER TABLE "a;b" ADD c int']),
        (
            "DO $f$ BEGIN PERFORM 1; END $f$; SELECT $1, a$b; SELECT $$;$$",
            ["DO $f$ BEGIN PERFORM 1; END $f$", "SELECT $1, a$b", "SELECT $$;$$"],
        ),
        ("\ufeffSELECT 1;\r\n  -- trailing comment", ["SELECT 1"]),
        ("", []),
    ],
)
def test_statement_spans_respect_quotes_and_comments(sql, statements):
    assert [sql[start:end].strip() for start, end in statement_spans(sql)] == statements


def test_transaction_control_is_seen_only_at_statement_level():
    assert has_transaction_control(REVISION_SQL)
    assert has_transaction_control("start transaction; select 1; end;")
    assert not has_transaction_control("DO $$ BEGIN PERFORM 1; COMMIT; END $$; SELECT 'BEGIN';")


def test_lint_cmd_never_reads_a_config_file_and_says_every_option():
    argv = get_lint_cmd("/bin/squawk", "16.4", ["ban-drop-column", "renaming-column"], True)
    assert argv == ["/bin/squawk", "--reporter", "json", "--config", os.devnull, "--assume-in-transaction"] + [
        "--pg-version=16.4",
        "--exclude=ban-drop-column,renaming-column",
    ]
    assert get_lint_cmd("squawk")[-1] == "--no-assume-in-transaction"


def test_classify_defaults_drop_noise_and_make_dangerous_rules_errors():
    findings = findings_from_report(REVISION_SQL, REVISION_REPORT)
    assert [(f["rule"], f["severity"]) for f in classify(findings, None, None)] == [
        ("require-concurrent-index-creation", "error"),
        ("adding-required-field", "error"),
    ]
    assert "severity" not in findings[0]


def test_classify_with_explicit_lists():
    findings = findings_from_report(REVISION_SQL, REVISION_REPORT)
    assert [(f["rule"], f["severity"]) for f in classify(findings, ["prefer-bigint-over-int"], [])] == [
        ("require-concurrent-index-creation", "warning"),
        ("require-lock-timeout", "warning"),
        ("adding-required-field", "warning"),
        ("prefer-bigint-over-int", "error"),
    ]
    everything = classify(findings, ["*"], ["require-lock-timeout", "adding-required-field"])
    assert [(f["rule"], f["severity"]) for f in everything] == [
        ("require-concurrent-index-creation", "error"),
        ("prefer-bigint-over-int", "error"),
    ]


def test_a_syntax_error_is_always_an_error():
    findings = findings_from_report("SELEC 1;", SYNTAX_ERROR_REPORT)
    assert findings[0]["statement"] == "SELEC 1"
    assert classify(findings, [], [])[0]["severity"] == "error"


def test_default_lists_do_not_overlap():
    assert not set(DEFAULT_ERROR_RULES) & set(DEFAULT_IGNORED_RULES)


def write_fake_squawk(tmp_path, script: str) -> str:
    path = tmp_path / "squawk"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    "script, message",
    [
        (
            "echo \"thread 'main' panicked at src/main.rs:1:1:\" >&2; echo 'boom' >&2; exit 101",
            "squawk failed (rc 101): thread 'main' panicked at src/main.rs:1:1: boom",
        ),
        ("echo 'not json'; exit 1", "squawk did not print its JSON report (rc 1): it printed 'not json\\n'"),
        ("exit 1", "squawk did not print its JSON report (rc 1): it printed nothing"),
        (
            "echo '[{\"line\": 0}]'; exit 1",
            "squawk did not print its JSON report (rc 1): it printed '[{\"line\": 0}]\\n'",
        ),
    ],
)
def test_crashes_and_unreadable_output_raise(tmp_path, script, message):
    squawk = write_fake_squawk(tmp_path, script)
    with pytest.raises(SquawkError) as caught:
        lint_sql(squawk, "SELECT 1;")
    assert str(caught.value) == message
    assert caught.value.argv[0] == squawk


def test_missing_binary_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(_squawk.sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(SquawkError) as caught:
        find_squawk(None, None)
    assert str(caught.value).startswith(
        "squawk was not found: install the squawk-cli package on the managed host or set squawk_path"
    )
    with pytest.raises(SquawkError, match="squawk_path /nonexistent/squawk is not an executable file"):
        find_squawk(None, "/nonexistent/squawk")
    with pytest.raises(SquawkError, match="could not be started"):
        lint_sql(str(tmp_path / "squawk"), "SELECT 1;")


def test_find_squawk_looks_beside_the_python_and_asks_the_module_first(tmp_path, monkeypatch):
    squawk = write_fake_squawk(tmp_path, "exit 0")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert find_squawk(None, None) == squawk
    assert find_squawk(None, squawk) == squawk

    class Module:
        def get_bin_path(self, name):
            return "/from/the/module/" + name

    assert find_squawk(Module(), None) == "/from/the/module/squawk"


@needs_squawk
def test_real_squawk_flags_an_index_without_concurrently():
    findings = lint_sql(SQUAWK, "CREATE INDEX ix_jobs_status ON jobs (status);", pg_version="16.0")
    flagged = [f for f in findings if f["rule"] == "require-concurrent-index-creation"]
    assert flagged and flagged[0]["statement"] == "CREATE INDEX ix_jobs_status ON jobs (status)"
    assert classify(flagged, None, None)[0]["severity"] == "error"


@needs_squawk
def test_real_squawk_flags_a_required_column_in_an_alembic_revision():
    findings = classify(lint_sql(SQUAWK, REVISION_SQL, pg_version="16.0"), None, None)
    assert [(f["rule"], f["line"], f["column"], f["statement_index"]) for f in findings] == [
        ("require-concurrent-index-creation", 5, 1, 1),
        ("adding-required-field", 7, 18, 2),
    ]


@needs_squawk
def test_real_squawk_finds_nothing_in_a_clean_statement():
    assert lint_sql(SQUAWK, "SELECT 1;") == []
    # squawk only asks for timeouts here, which our modules set through PGOPTIONS
    findings = lint_sql(SQUAWK, "ALTER TABLE jobs ADD COLUMN note TEXT;", pg_version="16.0")
    assert {f["rule"] for f in findings} <= set(DEFAULT_IGNORED_RULES)
    assert classify(findings, None, None) == []


@needs_squawk
def test_real_squawk_on_an_autocommit_block_reports_no_transaction_noise():
    # what alembic prints for op.get_context().autocommit_block() around CREATE INDEX CONCURRENTLY
    sql = (
        "BEGIN;\n\n-- Running upgrade 0002 -> 0003\n\nCOMMIT;\n\n"
        "CREATE INDEX CONCURRENTLY ix_jobs_queue ON jobs (priority, id);\n\n"
        "BEGIN;\n\nUPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';\n\n"
        "COMMIT;\n"
    )
    assert classify(lint_sql(SQUAWK, sql), None, None) == []
    inside = "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS ix ON jobs (id);\nCOMMIT;\n"
    assert [f["rule"] for f in classify(lint_sql(SQUAWK, inside), None, None)] == [
        "ban-concurrent-index-creation-in-transaction"
    ]


@needs_squawk
def test_real_squawk_reports_its_own_usage_errors():
    with pytest.raises(SquawkError, match=r"squawk failed \(rc 2\): error: invalid value 'no-such-rule'"):
        lint_sql(SQUAWK, "SELECT 1;", excluded_rules=["no-such-rule"])


@pytest.mark.parametrize("error_rules", [None, ["*"]])
def test_warning_rules_stay_warnings_even_when_errors_are_named(error_rules):
    findings = findings_from_report(REVISION_SQL, REVISION_REPORT)
    classified = classify(findings, error_rules, [], ["require-concurrent-index-creation"])
    severities = {f["rule"]: f["severity"] for f in classified}
    assert severities["require-concurrent-index-creation"] == "warning"
    assert severities["adding-required-field"] == "error"


@needs_squawk
def test_steps_of_a_range_in_one_transaction_lint_without_transaction_noise():
    # alembic's default (no transaction_per_migration): one BEGIN before the first step, one COMMIT after the last
    text = (
        "BEGIN;\n\n-- Running upgrade 0001 -> 0002\n\nALTER TABLE jobs ADD COLUMN priority SMALLINT;\n\n"
        "-- Running upgrade 0002 -> 0003\n\nALTER TABLE jobs ADD COLUMN owner TEXT;\n\nCOMMIT;\n"
    )
    noise = {"ban-uncommitted-transaction", "transaction-nesting"}
    steps = split_offline_sql(text)
    as_cut = {finding["rule"] for step in steps for finding in lint_sql(SQUAWK, step["sql"], pg_version="15.0")}
    closed = {finding["rule"] for step in steps for finding in lint_sql(SQUAWK, step["lint_sql"], pg_version="15.0")}
    assert as_cut & noise, "the steps as alembic cut them look unbalanced to squawk"
    assert not closed & noise
