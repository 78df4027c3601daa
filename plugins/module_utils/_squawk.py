# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Lints migration SQL with the squawk binary (squawk-cli) and ties each finding to the statement it is about."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig

SQUAWK_TIMEOUT_SECONDS = 300

# Rules that do not fit an Alembic offline script run through our modules; classify() drops them by default.
DEFAULT_IGNORED_RULES = [
    "require-lock-timeout",  # our modules set lock_timeout through PGOPTIONS, which squawk cannot see
    "require-statement-timeout",  # same: statement_timeout comes through PGOPTIONS
    "prefer-robust-stmts",  # revisions are transactional; IF NOT EXISTS would keep an INVALID index from a failed CIC
    "prefer-bigint-over-int",  # schema design, not migration safety; fires on every sa.Integer
    "prefer-bigint-over-smallint",  # schema design, not migration safety
    "prefer-identity",  # serial versus identity is style, not migration safety
    "prefer-text-field",  # fires on every sa.String(n); varchar limits are a design choice
    "prefer-timestamp-tz",  # fires on every sa.DateTime() without timezone=True; a design choice
]

# Rules whose findings block or break production; each line is one reason. Names as squawk 2.70 has them.
# fmt: off
DEFAULT_ERROR_RULES = [
    "syntax-error",  # squawk could not parse the SQL, and then it lints nothing else in it
    # writes (or reads too) wait for a whole index build, scan or table rewrite
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "require-concurrent-reindex",
    "require-concurrent-partition-detach", "adding-not-nullable-field", "adding-field-with-default",
    "adding-serial-primary-key-field", "adding-foreign-key-constraint", "constraint-missing-not-valid",
    "disallowed-unique-constraint", "changing-column-type",
    # fails outright: CONCURRENTLY in a transaction; NOT NULL without a default on a table with rows
    "ban-concurrent-index-creation-in-transaction", "adding-required-field",
    # the running (previous) app version breaks, or data is gone
    "renaming-column", "renaming-table", "ban-drop-column", "ban-drop-table", "ban-drop-schema", "ban-drop-database",
    "ban-truncate-cascade",
]
# fmt: on

_TRANSACTION_CONTROL = re.compile(r"(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT)\b", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")


class SquawkError(Exception):
    """squawk is missing, could not run, or printed something that is not its JSON report."""

    def __init__(self, message: str, argv: list[str] | None = None, rc: int | None = None, stderr: str = ""):
        self.argv, self.rc, self.stderr = argv or [], rc, stderr
        super().__init__(message)


def find_squawk(module, squawk_path: str | None = None) -> str:
    """squawk_path when set, else squawk on PATH, else beside the Python running us (pip puts it in the venv)."""
    if squawk_path:
        path = os.path.expanduser(squawk_path)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise SquawkError("squawk_path %s is not an executable file" % squawk_path)
    found = module.get_bin_path("squawk") if module is not None else shutil.which("squawk")
    if found:
        return found
    beside_python = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    for directory in dict.fromkeys(beside_python):
        candidate = os.path.join(directory, "squawk")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SquawkError(
        "squawk was not found: install the squawk-cli package on the managed host or set squawk_path "
        "(searched PATH and %s)" % ", ".join(dict.fromkeys(beside_python))
    )


def get_lint_cmd(squawk: str, pg_version=None, excluded_rules=None, assume_in_transaction: bool = False) -> list[str]:
    # an empty config file: a .squawk.toml above the working directory must not change what we report
    argv = [squawk, "--reporter", "json", "--config", os.devnull]
    argv.append("--assume-in-transaction" if assume_in_transaction else "--no-assume-in-transaction")
    if pg_version:
        argv.append("--pg-version=%s" % pg_version)
    if excluded_rules:
        argv.append("--exclude=%s" % ",".join(excluded_rules))
    return argv


def lint_sql(
    squawk: str,
    sql: str,
    pg_version: str | None = None,
    excluded_rules: list[str] | None = None,
    assume_in_transaction: bool = True,
    version_table: str = "alembic_version",
    commands: list | None = None,
) -> list[dict]:
    """squawk's findings on `sql`, each with the statement it points at; none on Alembic's version bookkeeping.

    Alembic's offline BEGIN;/COMMIT; lines are kept: they are where the transactions really are (an autocommit
    block is COMMIT; ... BEGIN;), so squawk can tell a CONCURRENTLY inside a transaction from one outside. For
    the same reason `assume_in_transaction` only applies to SQL without transaction statements of its own.
    """
    assume = assume_in_transaction and not has_transaction_control(sql)
    argv = get_lint_cmd(squawk, pg_version, excluded_rules, assume)
    if commands is not None:
        commands.append(argv)
    return findings_from_report(sql, run_squawk(argv, sql), version_table)


def findings_from_report(sql: str, report: list[dict], version_table: str = "alembic_version") -> list[dict]:
    """squawk's JSON report as our findings: 1-based line and column (in characters) and the statement's text."""
    statements = statement_spans(sql)
    texts = [sql[start:end].strip() for start, end in statements]
    line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(sql)]
    # Alembic's own version table: its CREATE TABLE (varchar) and the version UPDATE are not the revision's work
    bookkeeping = re.compile(
        r'(?:CREATE\s+TABLE|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:"?\w+"?\.)?"?%s"?(?![\w$])'
        % re.escape(version_table),
        re.IGNORECASE,
    )
    findings = []
    for violation in report:
        line = min(violation["line"], len(line_starts) - 1)
        offset = char_offset(sql, line_starts[line], violation["column"])
        index = statement_at(statements, offset)
        statement = texts[index] if index is not None else ""
        if bookkeeping.match(statement):
            continue
        findings.append(
            dict(
                rule=violation["rule_name"],
                level=violation.get("level"),
                message=violation.get("message"),
                help=violation.get("help"),
                line=line + 1,
                column=offset - line_starts[line] + 1,
                statement=statement,
                statement_index=index,
            )
        )
    return findings


def has_transaction_control(sql: str) -> bool:
    """Whether the SQL opens or ends transactions itself, as Alembic's offline output does."""
    return any(_TRANSACTION_CONTROL.match(sql, start) for start, _end in statement_spans(sql))


def run_squawk(argv: list[str], sql: str) -> list[dict]:
    """squawk's JSON report; it exits 1 when it finds something, which is a result, not a failure."""
    try:
        process = subprocess.run(
            argv,
            input=sql.encode("utf-8", "surrogatepass"),
            capture_output=True,
            timeout=SQUAWK_TIMEOUT_SECONDS,
            check=False,
        )
    except OSError as exc:
        raise SquawkError("squawk %s could not be started: %s" % (argv[0], exc.strerror or exc), argv) from exc
    except subprocess.TimeoutExpired as exc:
        raise SquawkError("squawk did not finish in %d seconds" % SQUAWK_TIMEOUT_SECONDS, argv) from exc
    stderr = process.stderr.decode("utf-8", "replace")
    if process.returncode not in (0, 1):
        raise SquawkError(
            "squawk failed (rc %d): %s" % (process.returncode, error_line(stderr)), argv, process.returncode, stderr
        )
    stdout = process.stdout.decode("utf-8", "replace")
    try:
        report = json.loads(stdout)
        if not all(isinstance(item["rule_name"], str) and item["line"] >= 0 and item["column"] >= 0 for item in report):
            raise ValueError("unexpected finding")
    except (ValueError, TypeError, KeyError) as exc:
        printed = "it printed %r" % stdout[:200] if stdout.strip() else "it printed nothing"
        raise SquawkError(
            "squawk did not print its JSON report (rc %d): %s" % (process.returncode, error_line(stderr) or printed),
            argv,
            process.returncode,
            stderr,
        ) from exc
    return report


def error_line(stderr: str) -> str:
    """What squawk said went wrong, without clap's and Rust's hints."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("For more information", "note: run with"))]
    return " ".join(lines[:2])


def statement_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end) of each statement: from its first token to before its `;`; quotes and comments respected."""
    spans, start, i, length = [], None, 0, len(sql)
    while i < length:
        char = sql[i]
        if sql.startswith("--", i):
            match = _LINE_BREAK.search(sql, i)
            i = match.start() if match else length
        elif sql.startswith("/*", i):
            i = skip_block_comment(sql, i)
        elif char == ";":
            if start is not None:
                spans.append((start, i))
            start, i = None, i + 1
        elif char.isspace() or char == "\ufeff":
            i += 1
        else:
            start = i if start is None else start
            i = skip_token(sql, i)
    if start is not None:
        spans.append((start, length))
    return spans


def skip_block_comment(sql: str, i: int) -> int:
    depth, i = 1, i + 2
    while i < len(sql) and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def skip_token(sql: str, i: int) -> int:
    """Past a quoted string, quoted identifier or dollar-quoted body starting at i; else past one character."""
    char = sql[i]
    if char in "'\"":
        # E'...' strings escape with backslashes; 'it''s' needs nothing: the second quote starts a new string
        escapes = char == "'" and sql[i - 1 : i] in ("e", "E") and not (i >= 2 and is_word_char(sql[i - 2]))
        i += 1
        while i < len(sql) and sql[i] != char:
            i += 2 if escapes and sql[i] == "\\" else 1
        return i + 1
    if char == "$" and not (i >= 1 and is_word_char(sql[i - 1])):  # not $1 or a$b
        tag = _DOLLAR_TAG.match(sql, i)
        if tag:
            end = sql.find(tag.group(), tag.end())
            return len(sql) if end < 0 else end + len(tag.group())
    return i + 1


def is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def char_offset(sql: str, start: int, byte_column: int) -> int:
    """squawk counts columns in UTF-8 bytes from 0; the character offset in sql of that column of a line."""
    prefix = sql[start : start + byte_column].encode("utf-8", "surrogatepass")[:byte_column]
    return start + len(prefix.decode("utf-8", "ignore"))


def statement_at(spans: list[tuple[int, int]], offset: int) -> int | None:
    """The statement an offset falls in; between statements, the next one; past the end, the last one."""
    for index, (_start, end) in enumerate(spans):
        if offset <= end:
            return index
    return len(spans) - 1 if spans else None


def classify(
    findings: list[dict],
    error_rules: list[str] | None = None,
    ignore_rules: list[str] | None = None,
    warning_rules: list[str] | None = None,
) -> list[dict]:
    """Findings with `severity`; None takes the defaults above, `*` in error_rules makes every rule an error.

    A rule in ignore_rules is dropped even when error_rules names it, a rule in warning_rules stays a warning;
    squawk's own Error level (a syntax error) is always an error.
    """
    errors = set(DEFAULT_ERROR_RULES if error_rules is None else error_rules)
    warnings = set(warning_rules or [])
    ignored = set(DEFAULT_IGNORED_RULES if ignore_rules is None else ignore_rules)
    classified = []
    for finding in findings:
        if finding["rule"] in ignored:
            continue
        named_error = ("*" in errors or finding["rule"] in errors) and finding["rule"] not in warnings
        is_error = named_error or finding.get("level") == "Error"
        classified.append(dict(finding, severity="error" if is_error else "warning"))
    return classified
