# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The existing rows a pending statement would fail on: which statements can, and the read-only queries that
count those rows (pure functions). `_data_check_run` runs them against the live database."""

from __future__ import annotations

import traceback

from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import (
    _SERIAL_TYPES,
    _object_name,
    created_relations,
    relation_key,
)

PGLAST_IMPORT_ERROR = None
try:
    from pglast.parser import parse_sql
    from pglast.stream import RawStream
    from pglast.visitors import maybe_double_quote_name
except ImportError:
    parse_sql = RawStream = maybe_double_quote_name = None
    PGLAST_IMPORT_ERROR = traceback.format_exc()

# the alias every check query gives the checked table, so that CHECK expressions and foreign keys read the same
ROW = "checked"
WRITING_KINDS = frozenset(("INSERT", "UPDATE", "DELETE", "MERGE"))
# what each kind of check counts, and what it finds, for the plan's message
FINDS = {
    "not_null": ("row", "with NULL in {columns}"),
    "not_null_column": ("row", "while the new NOT NULL column {columns} has no default"),
    "unique": ("duplicate group", "of {columns}"),
    "foreign_key": ("row", "whose {columns} has no match in {referenced}"),
    "check": ("row", "violating CHECK ({expression})"),
    "type_change": ("value", "of {columns} not convertible to {type}"),
    "unbuilt": ("row", "the statement requires"),
}


def render(node) -> str:
    return RawStream()(node)


def quoted(name: str) -> str:
    return maybe_double_quote_name(name)


def names(nodes) -> list[str]:
    return [quoted(node.sval) for node in nodes or ()]


def check(kind: str, table: str, columns: list[str], **fields) -> dict:
    return dict(
        {"kind": kind, "relation": table, "columns": columns, "predicate": None, "group_by": None, "only": False},
        **fields,
    )


def not_null(table: str, columns: list[str]) -> dict:
    predicate = " OR ".join("%s.%s IS NULL" % (ROW, column) for column in columns)
    return check("not_null", table, columns, predicate=predicate)


def duplicates(table: str, keys: list[str], columns: list[str], where: str | None, nulls_distinct: bool) -> dict:
    """Groups of rows a unique index over `keys` would reject; rows with a NULL key never clash unless
    NULLS NOT DISTINCT."""
    conditions = ["(%s)" % where] if where else []
    if nulls_distinct:
        conditions += ["(%s) IS NOT NULL" % key for key in keys]
    return check("unique", table, columns, predicate=" AND ".join(conditions) or None, group_by=keys)


def constraint_checks(table: str, constraint) -> list[dict]:
    """ADD CONSTRAINT (or a column's inline constraint, with its column as `keys`) on existing rows."""
    contype = constraint.contype.name
    if constraint.skip_validation or (constraint.indexname and contype != "CONSTR_PRIMARY"):
        return []  # NOT VALID, or USING an index already built
    columns = names(constraint.keys)
    nulls_distinct = not getattr(constraint, "nulls_not_distinct", False)
    if contype == "CONSTR_UNIQUE" and columns:
        return [duplicates(table, ["%s.%s" % (ROW, c) for c in columns], columns, None, nulls_distinct)]
    if contype == "CONSTR_PRIMARY" and columns and not constraint.indexname:
        keys = ["%s.%s" % (ROW, c) for c in columns]
        return [not_null(table, columns), duplicates(table, keys, columns, None, False)]
    if contype == "CONSTR_FOREIGN" and constraint.fk_attrs:
        local = names(constraint.fk_attrs)
        return [
            check(
                "foreign_key",
                table,
                local,
                referenced=_object_name(constraint.pktable),
                referenced_columns=names(constraint.pk_attrs) or None,
                full_match=constraint.fk_matchtype == "f",
            )
        ]
    if contype == "CONSTR_CHECK" and constraint.raw_expr is not None:
        expression = render(constraint.raw_expr)
        # a CHECK passes on NULL: only a false result is a violation
        return [check("check", table, [], predicate="(%s) IS FALSE" % expression, expression=expression)]
    return []


def add_column_checks(table: str, column_def) -> list[dict]:
    column = quoted(column_def.colname)
    constraints = column_def.constraints or ()
    kinds = {constraint.contype.name for constraint in constraints}
    has_default = bool(kinds & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"})
    serial = column_def.typeName is not None and column_def.typeName.names[-1].sval in _SERIAL_TYPES
    if kinds & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"} and not has_default and not serial:
        return [check("not_null_column", table, [column], predicate="true")]
    return []


def type_change_check(table: str, cmd) -> list[dict]:
    column_def = cmd.def_
    column = quoted(cmd.name)
    type_name = render(column_def.typeName)
    using = render(column_def.raw_default) if column_def.raw_default is not None else None
    return [check("type_change", table, [column], type=type_name, using=using)]


def alter_table_checks(stmt) -> list[dict]:
    if stmt.objtype.name != "OBJECT_TABLE":
        return []
    checks = alter_table_commands(stmt)
    for found in checks:
        # ALTER TABLE ONLY a partitioned or inherited parent checks the parent's own rows
        found["only"] = not stmt.relation.inh
    return checks


def alter_table_commands(stmt) -> list[dict]:
    table = _object_name(stmt.relation)
    checks = []
    for cmd in stmt.cmds or ():
        subtype = cmd.subtype.name
        if subtype == "AT_SetNotNull":
            checks.append(not_null(table, [quoted(cmd.name)]))
        elif subtype == "AT_AddConstraint":
            checks += constraint_checks(table, cmd.def_)
        elif subtype == "AT_AddColumn":
            checks += add_column_checks(table, cmd.def_)
        elif subtype == "AT_AlterColumnType":
            checks += type_change_check(table, cmd)
    return checks


def index_checks(stmt) -> list[dict]:
    if not stmt.unique:
        return []
    table = _object_name(stmt.relation)
    keys = [render(param.expr) if param.expr is not None else "%s.%s" % (ROW, quoted(param.name)) for param in
            stmt.indexParams]  # fmt: skip
    columns = [render(param.expr) if param.expr is not None else quoted(param.name) for param in stmt.indexParams]
    where = render(stmt.whereClause) if stmt.whereClause is not None else None
    return [duplicates(table, keys, columns, where, not stmt.nulls_not_distinct)]


_STATEMENT_CHECKS = {"AlterTableStmt": alter_table_checks, "IndexStmt": index_checks}


def statement_checks(sql: str) -> list[dict]:
    """The checks one statement needs: what it requires of rows that exist before it runs."""
    stmt = parse_sql(sql)[0].stmt
    handler = _STATEMENT_CHECKS.get(type(stmt).__name__)
    try:
        return handler(stmt) if handler else []
    except Exception as exc:  # noqa: BLE001 - a statement the builder cannot render must not stop the plan
        table = _object_name(stmt.relation) if getattr(stmt, "relation", None) is not None else "?"
        return [check("unbuilt", table, [], error="no check query could be built: %s" % exc)]


def plan_data_checks(revisions: list[dict]) -> list[dict]:
    """Every check of the plan's statements, in order, with its revision and statement. Tables the plan creates
    are empty and get none; a table an earlier statement of the plan writes to is marked `written_by`, since that
    data change may be what makes the rows pass. So is a table a traced data migration reads (`reads_rows`): on the
    empty copy it found nothing to change, on the live rows it may change them."""
    created: set[str] = set()
    written: dict[str, str] = {}
    checks = []
    for revision in revisions:
        for statement in revision["statements"]:
            if statement.get("bookkeeping"):
                continue
            for found in statement_checks(statement["statement"]):
                key = relation_key(found["relation"])
                if key in created:
                    continue
                found.update(
                    revision=revision["revision"], statement=statement["statement"], written_by=written.get(key)
                )
                checks.append(found)
            created.update(created_relations(statement))
            if statement.get("reads_rows"):
                written.update(
                    (relation_key(relation["relation"]), revision["revision"]) for relation in statement["relations"]
                )
            elif statement["kind"] in WRITING_KINDS:
                for relation in statement["relations"]:
                    if relation["lock_mode"] == "RowExclusiveLock":
                        written[relation_key(relation["relation"])] = revision["revision"]
    return checks


def describe_check(found: dict, count: int | None = None) -> str:
    """`3 rows with NULL in status`; without a count, `rows with NULL in status`."""
    noun, what = FINDS[found["kind"]]
    what = what.format(**dict(found, columns=", ".join(found["columns"])))
    if count is None:
        return "%ss %s" % (noun, what)
    return "%d %s%s %s" % (count, noun, "" if count == 1 else "s", what)


def foreign_key_predicate(found: dict, referenced_columns: list[str]) -> str:
    """MATCH SIMPLE skips a row with any NULL key column; MATCH FULL fails a row with some but not all NULL."""
    local = ["%s.%s" % (ROW, column) for column in found["columns"]]
    joined = " AND ".join("referenced.%s = %s" % (theirs, ours) for theirs, ours in zip(referenced_columns, local))
    missing = "NOT EXISTS (SELECT 1 FROM %s AS referenced WHERE %s)" % (found["referenced"], joined)
    all_set = " AND ".join("%s IS NOT NULL" % column for column in local)
    if not found.get("full_match"):
        return "%s AND %s" % (all_set, missing)
    some_null = " OR ".join("%s IS NULL" % column for column in local)
    return "((%s) AND %s) OR ((%s) AND NOT (%s))" % (all_set, missing, some_null, " AND ".join(
        "%s IS NULL" % column for column in local))  # fmt: skip


def type_change_predicate(found: dict, server_version_num: int) -> str | None:
    """Rows whose value does not convert, where PostgreSQL can say so per row (pg_input_is_valid, 16+, for a
    change without USING); None when only converting every value shows it."""
    if found["using"] is not None or server_version_num < 160000:
        return None
    column = "%s.%s" % (ROW, found["columns"][0])
    return "%s IS NOT NULL AND NOT pg_input_is_valid(%s::text, %s)" % (
        column, column, "'%s'" % found["type"].replace("'", "''"),
    )  # fmt: skip


def check_queries(found: dict, key_columns: list[str], referenced_columns: list[str] | None, server_version_num: int):
    """(count query, example query) of one check; the example shows the first violating row's key (the primary key,
    else its ctid), or a duplicated key. For a type change only converting shows a failure: (conversion query,
    None)."""
    table = "%s%s AS %s" % ("ONLY " if found.get("only") else "", found["relation"], ROW)
    if found["kind"] == "unique":
        keys = ", ".join(found["group_by"])
        where = " WHERE %s" % found["predicate"] if found["predicate"] else ""
        groups = "SELECT %s FROM %s%s GROUP BY %s HAVING count(*) > 1" % (keys, table, where, keys)
        return "SELECT count(*) FROM (%s) AS duplicates" % groups, groups + " LIMIT 1"
    if found["kind"] == "type_change":
        predicate = type_change_predicate(found, server_version_num)
        if predicate is None:
            column = "%s.%s" % (ROW, found["columns"][0])
            value = found["using"] or column
            return "SELECT count((%s)::%s) FROM %s" % (value, found["type"], table), None
    elif found["kind"] == "foreign_key":
        predicate = foreign_key_predicate(found, referenced_columns or [])
    else:
        predicate = found["predicate"]
    key = ", ".join("%s.%s" % (ROW, column) for column in key_columns) or "%s.ctid" % ROW
    return (
        "SELECT count(*) FROM %s WHERE %s" % (table, predicate),
        "SELECT %s FROM %s WHERE %s LIMIT 1" % (key, table, predicate),
    )
