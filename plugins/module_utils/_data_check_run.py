# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The plan's data checks run against the live database: each in a READ ONLY transaction of its own, bounded by
statement_timeout, so a check can neither change a row nor hold up the application for long."""

from __future__ import annotations

from ansible_collections.safedeploy.migrations.plugins.module_utils._data_checks import (
    check_queries,
    describe_check,
    quoted,
)

try:
    import psycopg
    from psycopg import errors
except ImportError:  # reported by the module that imports this
    psycopg = errors = None

PRIMARY_KEY_QUERY = """SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass(%s) AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"""


def run_data_checks(connection, checks: list[dict], timeout_ms: int) -> list[dict]:
    """One finding per check: {revision, statement, kind, relation, columns, violations, example, severity, message}.
    `severity` is `error` for rows that would fail, `warning` where an earlier data change of the plan may fix them or
    the check could not finish, `ok` otherwise."""
    version = connection.info.server_version
    primary_keys: dict = {}
    return [run_data_check(connection, found, timeout_ms, version, primary_keys) for found in checks]


def run_data_check(connection, found: dict, timeout_ms: int, server_version_num: int, primary_keys: dict) -> dict:
    finding = {key: found[key] for key in ("revision", "statement", "kind", "relation", "columns", "written_by")}
    finding.update(violations=None, example=None, error=found.get("error"))
    if finding["error"]:
        finding["severity"] = "warning"
        finding["message"] = message(found, finding)
        return finding
    try:
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", ("%dms" % timeout_ms,))
            keys = primary_key(cursor, found["relation"], primary_keys)
            referenced = found.get("referenced_columns")
            if found["kind"] == "foreign_key" and not referenced:
                referenced = primary_key(cursor, found["referenced"], primary_keys)
            count_sql, example_sql = check_queries(found, keys, referenced, server_version_num)
            counted = cursor.execute(count_sql).fetchone()[0]
            if example_sql is not None:
                finding["violations"] = counted
                row = cursor.execute(example_sql).fetchone() if counted else None
                if row is not None:
                    columns = found["columns"] if found["kind"] == "unique" else [c.name for c in cursor.description]
                    finding["example"] = {name: str(value) for name, value in zip(columns, row)}
            else:
                finding["violations"] = 0  # every value converted
    except errors.QueryCanceled:
        finding["error"] = "did not finish within statement_timeout %d ms" % timeout_ms
    except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
        finding["error"] = "cannot be checked before the plan runs: %s" % first_line(exc)
    except errors.DataError as exc:
        # a value that does not convert: the conversion itself said so
        finding["error"] = first_line(exc)
        if found["kind"] == "type_change":
            finding["violations"] = None
            finding["severity"] = "error"
    except psycopg.Error as exc:
        finding["error"] = "the check query failed: %s" % first_line(exc)
    finding.setdefault("severity", severity(finding))
    finding["message"] = message(found, finding)
    return finding


def primary_key(cursor, relation: str, known: dict) -> list[str]:
    """The relation's primary key columns, quoted; read once per relation and kept in `known`."""
    if relation not in known:
        known[relation] = [quoted(row[0]) for row in cursor.execute(PRIMARY_KEY_QUERY, (relation,)).fetchall()]
    return known[relation]


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def severity(finding: dict) -> str:
    if finding["violations"]:
        return "warning" if finding["written_by"] else "error"
    return "warning" if finding["error"] else "ok"


def message(found: dict, finding: dict) -> str:
    """e.g. `0005 (orders): 3 rows with NULL in status, e.g. id=17`."""
    head = "%s (%s): " % (found["revision"], found["relation"])
    if finding["violations"]:
        text = head + describe_check(found, finding["violations"])
        if finding["example"]:
            text += ", e.g. " + ", ".join("%s=%s" % item for item in finding["example"].items())
    elif finding["error"]:
        text = head + "%s: %s" % (describe_check(found), finding["error"])
    else:
        return head + "no %s" % describe_check(found)
    if finding["written_by"]:
        text += "; revision %s writes to %s earlier in the plan and may fix them" % (
            finding["written_by"], found["relation"],
        )  # fmt: skip
    return text
