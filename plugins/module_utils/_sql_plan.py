# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Locks, rewrites and compatibility of the offline SQL of one Alembic revision, read with the pglast parser."""

from __future__ import annotations

import re
import traceback

PGLAST_IMPORT_ERROR = None
try:
    from pglast import ast, split
    from pglast.parser import ParseError, parse_sql, scan
    from pglast.visitors import maybe_double_quote_name
except ImportError:
    ast = split = ParseError = parse_sql = scan = maybe_double_quote_name = None
    PGLAST_IMPORT_ERROR = traceback.format_exc()

# Weakest to strongest, as in the conflict table of the PostgreSQL docs (explicit-locking.html).
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock") + (
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE = LOCK_MODES[:4]
SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE = LOCK_MODES[4:]

# ALTER TABLE subcommand -> (lock, rewrites_table, scans_table, destructive, incompatibility); AlterTableGetLockLevel.
_ALTER_TABLE_DEFAULT = (ACCESS_EXCLUSIVE, False, False, False, None)
_ALTER_TABLE = {
    "AT_DropColumn": (ACCESS_EXCLUSIVE, False, False, True, "drops column {column}"),
    "AT_AlterColumnType": (ACCESS_EXCLUSIVE, True, True, True, "changes the type of column {column}"),
    "AT_SetNotNull": (ACCESS_EXCLUSIVE, False, True, False, "sets NOT NULL on {column}"),
    "AT_EnableRowSecurity": (ACCESS_EXCLUSIVE, False, False, False, "enables row level security on {table}"),
    "AT_ForceRowSecurity": (ACCESS_EXCLUSIVE, False, False, False, "forces row level security on {table}"),
    "AT_ValidateConstraint": (SHARE_UPDATE_EXCLUSIVE, False, True, False, None),
}
_ALTER_TABLE.update(
    (subtype, (ACCESS_EXCLUSIVE, True, False, False, None))
    for subtype in ("AT_SetExpression", "AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod")
)
_ALTER_TABLE.update(
    (subtype, (SHARE_UPDATE_EXCLUSIVE, False, False, False, None))
    for subtype in ("AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_ClusterOn", "AT_DropCluster")
    + ("AT_DetachPartitionFinalize",)
)
_ALTER_TABLE.update(
    ("AT_%s%s" % (action, which), (SHARE_ROW_EXCLUSIVE, False, False, False, None))
    for action in ("Enable", "EnableAlways", "EnableReplica", "Disable")
    for which in ("Trig", "TrigAll", "TrigUser")
)

_CONSTRAINT_WORDS = {
    "CONSTR_CHECK": "CHECK",
    "CONSTR_UNIQUE": "UNIQUE",
    "CONSTR_PRIMARY": "PRIMARY KEY",
    "CONSTR_EXCLUSION": "EXCLUDE",
    "CONSTR_FOREIGN": "FOREIGN KEY",
}
# SET/RESET of these storage parameters takes ShareUpdateExclusiveLock (reloptions.c); others take AccessExclusive.
_LIGHT_RELOPTIONS = frozenset(
    ("fillfactor", "toast_tuple_target", "parallel_workers", "log_autovacuum_min_duration")
    + ("vacuum_index_cleanup", "vacuum_truncate", "fastupdate", "gin_pending_list_limit")
    + ("deduplicate_items", "pages_per_range", "autosummarize")
)
_SERIAL_TYPES = frozenset(("smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"))
# A volatile default is evaluated per row, so ADD COLUMN rewrites the table; stable/immutable ones are evaluated once.
_VOLATILE_FUNCTIONS = frozenset(
    ("random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "nextval", "setseed")
    + ("uuidv7", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "txid_current")
    + ("pg_current_xact_id",)
)
_NON_VOLATILE_FUNCTIONS = frozenset(
    ("now", "transaction_timestamp", "statement_timestamp", "current_setting", "timezone", "date_trunc")
    + ("lower", "upper", "concat", "to_jsonb", "jsonb_build_object", "jsonb_build_array")
    + ("json_build_object", "make_interval")
)
_RELATION_OBJECTS = frozenset(
    ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE")
)
_TABLE_SUBOBJECTS = frozenset(("OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY"))  # named (..., table, name)
_HARMLESS_DROPS = frozenset(("OBJECT_INDEX", "OBJECT_STATISTIC_EXT")) | _TABLE_SUBOBJECTS
_HARMLESS_RENAMES = frozenset(("OBJECT_INDEX", "OBJECT_TABCONSTRAINT", "OBJECT_DOMCONSTRAINT")) | _TABLE_SUBOBJECTS
_NON_TRANSACTIONAL = frozenset(
    ("CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt")
)
_OBJECT_WORDS = {"MATVIEW": "MATERIALIZED VIEW", "TABCONSTRAINT": "CONSTRAINT", "STATISTIC_EXT": "STATISTICS"}
_KINDS = {
    "CreateStmt": "CREATE TABLE",
    "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "CreateEnumStmt": "CREATE TYPE",
    "CompositeTypeStmt": "CREATE TYPE",
    "AlterEnumStmt": "ALTER TYPE",
    "CreateTrigStmt": "CREATE TRIGGER",
    "RuleStmt": "CREATE RULE",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "VariableSetStmt": "SET",
    "LockStmt": "LOCK TABLE",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
}


class SqlPlanError(Exception):
    """The SQL of a revision cannot be parsed as PostgreSQL."""


def stronger_lock(first: str, second: str) -> str:
    return first if LOCK_MODES.index(first) >= LOCK_MODES.index(second) else second


def _merge_relation(relations: dict, relation: dict) -> str:
    """Add one {relation, lock_mode, rewrites_table, scans_table, notes} to `relations`, keeping the strongest."""
    entry = relations.setdefault(relation["relation"], dict(relation, notes=[]))
    entry["lock_mode"] = stronger_lock(entry["lock_mode"], relation["lock_mode"])
    entry["rewrites_table"] = entry["rewrites_table"] or relation["rewrites_table"]
    entry["scans_table"] = entry["scans_table"] or relation["scans_table"]
    entry["notes"].extend(note for note in relation["notes"] if note not in entry["notes"])
    return entry["relation"]


class _Findings:
    """What one statement does, filled in by the handler for its parse node."""

    def __init__(self):
        self.relations = {}
        self.relnames = set()
        self.transactional = True
        self.destructive = False
        self.reasons = []
        self.notes = []
        self.concurrent_index = None

    def lock(self, relation, mode: str, rewrites=False, scans=False, note=None) -> str:
        """Record `mode` on a RangeVar, a sequence of String parts or an already formatted name; returns the name."""
        if isinstance(relation, str):
            name = relation
        else:
            parts = _name_parts(relation)
            name = ".".join(maybe_double_quote_name(part) for part in parts)
            self.relnames.add(parts[-1])
        notes = [note] if note else []
        return _merge_relation(
            self.relations,
            {"relation": name, "lock_mode": mode, "rewrites_table": rewrites, "scans_table": scans, "notes": notes},
        )


def _name_parts(node) -> list:
    if isinstance(node, ast.RangeVar):
        return [part for part in (node.catalogname, node.schemaname, node.relname) if part]
    if isinstance(node, ast.String):
        return [node.sval]
    if isinstance(node, ast.TypeName):
        return [name.sval for name in node.names]
    if isinstance(node, ast.ObjectWithArgs):
        return [name.sval for name in node.objname]
    return [item.sval for item in node]


def relation_key(name: str) -> str:
    """A relation name as the plan compares them: unquoted, lower case, without the public schema."""
    name = name.lower().replace('"', "")
    return name[len("public.") :] if name.startswith("public.") else name


def created_relations(statement: dict) -> list[str]:
    """The relation_key of each relation an analysed statement creates."""
    return [
        relation_key(relation["relation"])
        for relation in statement["relations"]
        if any(note.startswith("created") for note in relation.get("notes", []))
    ]


def _object_name(node) -> str:
    return ".".join(maybe_double_quote_name(part) for part in _name_parts(node))


def _object_word(object_type) -> str:
    word = object_type.name[len("OBJECT_") :]
    return _OBJECT_WORDS.get(word, word.replace("_", " "))


def _walk(node):
    """Every parse node under `node`, depth first."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for attribute in type(node).__slots__:
            yield from _walk(getattr(node, attribute, None))


def _options(defelems) -> dict:
    """`(FULL, CONCURRENTLY false)` style options as {name: enabled}."""
    options = {}
    for option in defelems or ():
        value = getattr(option.arg, "sval", getattr(option.arg, "ival", getattr(option.arg, "boolval", True)))
        options[option.defname] = str(value).lower() not in ("false", "off", "0")
    return options


def _lock_referenced_tables(node, found: _Findings) -> None:
    """Adding a foreign key puts triggers on the referenced table too."""
    for child in _walk(node):
        if isinstance(child, ast.Constraint) and child.contype.name == "CONSTR_FOREIGN":
            found.lock(child.pktable, SHARE_ROW_EXCLUSIVE)


def _lock_read_relations(node, found: _Findings, mode: str = ACCESS_SHARE) -> None:
    nodes = list(_walk(node))
    ctes = {child.ctename for child in nodes if isinstance(child, ast.CommonTableExpr)}
    for child in nodes:
        if isinstance(child, ast.RangeVar) and not (child.schemaname is None and child.relname in ctes):
            found.lock(child, mode)


def _maybe_volatile(expression, found: _Findings) -> bool:
    for node in _walk(expression):
        if isinstance(node, ast.FuncCall):
            function = node.funcname[-1].sval.lower()
            if function in _VOLATILE_FUNCTIONS:
                return True
            if function not in _NON_VOLATILE_FUNCTIONS:
                found.notes.append(
                    "assumes %s() is volatile, so the new column's default rewrites the table" % function
                )
                return True
    return False


def _at_add_column(cmd, table: str, found: _Findings) -> None:
    column_def = cmd.def_
    column = "%s.%s" % (table, maybe_double_quote_name(column_def.colname))
    constraints = column_def.constraints or ()
    kinds = {constraint.contype.name for constraint in constraints}
    type_name = column_def.typeName.names[-1].sval if column_def.typeName else ""
    generated = bool(kinds & {"CONSTR_IDENTITY", "CONSTR_GENERATED"}) or type_name in _SERIAL_TYPES
    default = next((c.raw_expr for c in constraints if c.contype.name == "CONSTR_DEFAULT"), None)
    rewrites = generated or (default is not None and _maybe_volatile(default, found))
    found.lock(table, ACCESS_EXCLUSIVE, rewrites=rewrites, scans=bool(kinds & set(_CONSTRAINT_WORDS)))
    _lock_referenced_tables(column_def, found)
    if kinds & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"} and default is None and not generated:
        found.reasons.append("adds NOT NULL column %s without a default" % column)


def _at_add_constraint(cmd, table: str, found: _Findings) -> None:
    constraint = cmd.def_
    contype = constraint.contype.name
    foreign = contype == "CONSTR_FOREIGN"
    # USING INDEX reuses a built index; only PRIMARY KEY then still checks the columns for NULLs
    scans = not constraint.skip_validation and not (constraint.indexname and contype != "CONSTR_PRIMARY")
    found.lock(table, SHARE_ROW_EXCLUSIVE if foreign else ACCESS_EXCLUSIVE, scans=scans)
    if foreign:
        found.lock(constraint.pktable, SHARE_ROW_EXCLUSIVE)
    if contype in _CONSTRAINT_WORDS:
        named = " " + maybe_double_quote_name(constraint.conname) if constraint.conname else ""
        found.reasons.append("adds %s constraint%s on %s" % (_CONSTRAINT_WORDS[contype], named, table))


def _at_column_default(cmd, table: str, found: _Findings) -> None:
    found.lock(table, ACCESS_EXCLUSIVE)
    if cmd.def_ is None:
        found.reasons.append("drops the default of column %s.%s" % (table, maybe_double_quote_name(cmd.name)))


def _at_rel_options(cmd, table: str, found: _Findings) -> None:
    names = {option.defname for option in cmd.def_ or ()}
    light = all(name in _LIGHT_RELOPTIONS or name.startswith("autovacuum_") for name in names)
    found.lock(table, SHARE_UPDATE_EXCLUSIVE if light else ACCESS_EXCLUSIVE)


def _at_attach_partition(cmd, table: str, found: _Findings) -> None:
    found.lock(table, SHARE_UPDATE_EXCLUSIVE)
    found.lock(cmd.def_.name, ACCESS_EXCLUSIVE, scans=True)


def _at_detach_partition(cmd, table: str, found: _Findings) -> None:
    mode = SHARE_UPDATE_EXCLUSIVE if cmd.def_.concurrent else ACCESS_EXCLUSIVE
    found.lock(table, mode)
    partition = found.lock(cmd.def_.name, mode)
    found.transactional = found.transactional and not cmd.def_.concurrent
    found.reasons.append("detaches partition %s from %s" % (partition, table))


_ALTER_TABLE_SPECIAL = {
    "AT_AddColumn": _at_add_column,
    "AT_AddConstraint": _at_add_constraint,
    "AT_ColumnDefault": _at_column_default,
    "AT_SetRelOptions": _at_rel_options,
    "AT_ResetRelOptions": _at_rel_options,
    "AT_AttachPartition": _at_attach_partition,
    "AT_DetachPartition": _at_detach_partition,
}


def _alter_table(stmt, found: _Findings) -> None:
    table = found.lock(stmt.relation, SHARE_UPDATE_EXCLUSIVE)  # the weakest ALTER TABLE lock; subcommands raise it
    for cmd in stmt.cmds or ():
        subtype = cmd.subtype.name
        if subtype in _ALTER_TABLE_SPECIAL:
            _ALTER_TABLE_SPECIAL[subtype](cmd, table, found)
            continue
        mode, rewrites, scans, destructive, reason = _ALTER_TABLE.get(subtype, _ALTER_TABLE_DEFAULT)
        found.lock(table, mode, rewrites, scans)
        found.destructive = found.destructive or destructive
        if reason:
            column = "%s.%s" % (table, maybe_double_quote_name(cmd.name)) if cmd.name else table
            found.reasons.append(reason.format(table=table, column=column))


def _create_table(stmt, found: _Findings) -> None:
    found.lock(stmt.relation, ACCESS_EXCLUSIVE, note="created by this statement")
    _lock_referenced_tables(stmt.tableElts, found)
    for parent in stmt.inhRelations or ():
        found.lock(parent, ACCESS_EXCLUSIVE if stmt.partbound else SHARE_UPDATE_EXCLUSIVE)


def _create_index(stmt, found: _Findings) -> None:
    table = found.lock(stmt.relation, SHARE_UPDATE_EXCLUSIVE if stmt.concurrent else SHARE, scans=True)
    found.transactional = not stmt.concurrent
    if stmt.concurrent and stmt.idxname:
        # an interrupted concurrent build leaves this index invalid; it lives in its table's schema
        parts = [stmt.relation.schemaname, stmt.idxname] if stmt.relation.schemaname else [stmt.idxname]
        found.concurrent_index = ".".join(parts)
    if stmt.unique:
        named = " " + maybe_double_quote_name(stmt.idxname) if stmt.idxname else ""
        found.reasons.append("adds unique index%s on %s" % (named, table))


def _drop(stmt, found: _Findings) -> None:
    object_type = stmt.removeType.name
    for obj in stmt.objects:
        if object_type == "OBJECT_INDEX":
            mode = SHARE_UPDATE_EXCLUSIVE if stmt.concurrent else ACCESS_EXCLUSIVE
            found.lock(obj, mode, note="an index: the same lock is taken on its table, which the SQL does not name")
        elif object_type in _RELATION_OBJECTS:
            found.lock(obj, ACCESS_EXCLUSIVE)
        elif object_type in _TABLE_SUBOBJECTS:
            found.lock(obj[:-1], ACCESS_EXCLUSIVE)
        if object_type not in _HARMLESS_DROPS:
            found.destructive = True
            found.reasons.append("drops %s %s" % (_object_word(stmt.removeType).lower(), _object_name(obj)))
    found.transactional = not stmt.concurrent
    if stmt.behavior.name == "DROP_CASCADE":
        found.notes.append("CASCADE also drops every object that depends on the dropped ones")


def _rename(stmt, found: _Findings) -> None:
    rename_type = stmt.renameType.name
    if stmt.relation is not None:
        mode = SHARE_UPDATE_EXCLUSIVE if rename_type == "OBJECT_INDEX" else ACCESS_EXCLUSIVE
        target = found.lock(stmt.relation, mode)
    else:
        target = _object_name(stmt.object) if stmt.object else maybe_double_quote_name(stmt.subname)
    if rename_type in _HARMLESS_RENAMES:
        return
    if rename_type in ("OBJECT_COLUMN", "OBJECT_ATTRIBUTE"):
        renamed = "column %s.%s" % (target, maybe_double_quote_name(stmt.subname))
    else:
        renamed = "%s %s" % (_object_word(stmt.renameType).lower(), target)
    found.destructive = True
    found.reasons.append("renames %s to %s" % (renamed, maybe_double_quote_name(stmt.newname)))


def _set_schema(stmt, found: _Findings) -> None:
    target = found.lock(stmt.relation, ACCESS_EXCLUSIVE) if stmt.relation else _object_name(stmt.object)
    found.destructive = True
    word = _object_word(stmt.objectType).lower()
    found.reasons.append("moves %s %s to schema %s" % (word, target, maybe_double_quote_name(stmt.newschema)))


def _dml(stmt, found: _Findings) -> None:
    found.lock(stmt.relation, ROW_EXCLUSIVE)
    _lock_read_relations(stmt, found)
    if isinstance(stmt, ast.DeleteStmt) and stmt.whereClause is None:
        found.destructive = True


def _select(stmt, found: _Findings) -> None:
    _lock_read_relations(stmt, found, ROW_SHARE if stmt.lockingClause else ACCESS_SHARE)


def _truncate(stmt, found: _Findings) -> None:
    for relation in stmt.relations:
        found.lock(relation, ACCESS_EXCLUSIVE)
    found.destructive = True


def _vacuum(stmt, found: _Findings) -> None:
    full = stmt.is_vacuumcmd and _options(stmt.options).get("full", False)
    for relation in stmt.rels or ():
        found.lock(relation.relation, ACCESS_EXCLUSIVE if full else SHARE_UPDATE_EXCLUSIVE, rewrites=full)
    found.transactional = not stmt.is_vacuumcmd


def _cluster(stmt, found: _Findings) -> None:
    if stmt.relation is not None:
        found.lock(stmt.relation, ACCESS_EXCLUSIVE, rewrites=True)
    found.transactional = stmt.relation is not None  # CLUSTER of every table cannot run in a transaction


def _reindex(stmt, found: _Findings) -> None:
    concurrent = _options(stmt.params).get("concurrently", False)
    if stmt.relation is not None:
        found.lock(stmt.relation, SHARE_UPDATE_EXCLUSIVE if concurrent else ACCESS_EXCLUSIVE)
    found.transactional = not concurrent and stmt.relation is not None


def _create_from_query(stmt, found: _Findings) -> None:
    """CREATE VIEW, CREATE TABLE AS, CREATE MATERIALIZED VIEW: a new (or replaced) relation that reads others."""
    created = stmt.view if isinstance(stmt, ast.ViewStmt) else stmt.into.rel
    found.lock(created, ACCESS_EXCLUSIVE, note="created or replaced by this statement")
    _lock_read_relations(stmt.query, found)


def _refresh_matview(stmt, found: _Findings) -> None:
    found.lock(stmt.relation, EXCLUSIVE if stmt.concurrent else ACCESS_EXCLUSIVE, rewrites=not stmt.concurrent)


def _lock_table(stmt, found: _Findings) -> None:
    for relation in stmt.relations:
        found.lock(relation, LOCK_MODES[stmt.mode - 1])


def _comment(stmt, found: _Findings) -> None:
    if stmt.objtype.name in _RELATION_OBJECTS or stmt.objtype.name == "OBJECT_COLUMN":
        parts = stmt.object if stmt.objtype.name != "OBJECT_COLUMN" else stmt.object[:-1]
        found.lock(parts, SHARE_UPDATE_EXCLUSIVE)


def _grant(stmt, found: _Findings) -> None:
    if not stmt.is_grant:
        word = _object_word(stmt.objtype).lower()
        found.reasons.extend("revokes privileges on %s %s" % (word, _object_name(obj)) for obj in stmt.objects or ())


def _alter_enum(stmt, found: _Findings) -> None:
    if stmt.oldVal:
        type_name = _object_name(stmt.typeName)
        found.reasons.append("renames value '%s' of type %s to '%s'" % (stmt.oldVal, type_name, stmt.newVal))


def _dropdb(stmt, found: _Findings) -> None:
    found.transactional = False
    found.destructive = True
    found.reasons.append("drops database %s" % maybe_double_quote_name(stmt.dbname))


_HANDLERS = {
    "AlterTableStmt": _alter_table,
    "CreateStmt": _create_table,
    "IndexStmt": _create_index,
    "DropStmt": _drop,
    "RenameStmt": _rename,
    "AlterObjectSchemaStmt": _set_schema,
    "InsertStmt": _dml,
    "UpdateStmt": _dml,
    "DeleteStmt": _dml,
    "MergeStmt": _dml,
    "SelectStmt": _select,
    "TruncateStmt": _truncate,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "ReindexStmt": _reindex,
    "ViewStmt": _create_from_query,
    "CreateTableAsStmt": _create_from_query,
    "RefreshMatViewStmt": _refresh_matview,
    "LockStmt": _lock_table,
    "CreateTrigStmt": lambda stmt, found: found.lock(stmt.relation, SHARE_ROW_EXCLUSIVE),
    "RuleStmt": lambda stmt, found: found.lock(stmt.relation, ACCESS_EXCLUSIVE),
    "CreatePolicyStmt": lambda stmt, found: found.lock(stmt.table, ACCESS_EXCLUSIVE),
    "CommentStmt": _comment,
    "GrantStmt": _grant,
    "AlterEnumStmt": _alter_enum,
    "DropdbStmt": _dropdb,
    "DoStmt": lambda stmt, found: found.notes.append("a DO block: the statements inside it are not analysed"),
}


def _renamed_object_word(stmt) -> str:
    """RENAME COLUMN/CONSTRAINT is ALTER of the relation they belong to (TABLE when the grammar leaves it unset)."""
    if stmt.renameType.name not in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"):
        return _object_word(stmt.renameType)
    return "TABLE" if stmt.relationType.name == "OBJECT_ACCESS_METHOD" else _object_word(stmt.relationType)


_DYNAMIC_KINDS = {
    "DropStmt": lambda stmt: "DROP " + _object_word(stmt.removeType),
    "AlterTableStmt": lambda stmt: "ALTER " + _object_word(stmt.objtype),
    "AlterObjectSchemaStmt": lambda stmt: "ALTER " + _object_word(stmt.objectType),
    "AlterOwnerStmt": lambda stmt: "ALTER " + _object_word(stmt.objectType),
    "RenameStmt": lambda stmt: "ALTER " + _renamed_object_word(stmt),
    "VacuumStmt": lambda stmt: "VACUUM" if stmt.is_vacuumcmd else "ANALYZE",
    "GrantStmt": lambda stmt: "GRANT" if stmt.is_grant else "REVOKE",
    "CreateTableAsStmt": lambda stmt: (
        "CREATE " + ("MATERIALIZED VIEW" if stmt.objtype.name == "OBJECT_MATVIEW" else "TABLE AS")
    ),
    "CreateFunctionStmt": lambda stmt: "CREATE PROCEDURE" if stmt.is_procedure else "CREATE FUNCTION",
}


def statement_kind(stmt) -> str:
    """The command tag, e.g. 'ALTER TABLE'; unlisted nodes are named after their class (CreateExtensionStmt)."""
    node = type(stmt).__name__
    if node in _DYNAMIC_KINDS:
        return _DYNAMIC_KINDS[node](stmt)
    return (
        _KINDS.get(node)
        or re.sub(r"(?<!^)(?=[A-Z])", " ", node[: -len("Stmt")] if node.endswith("Stmt") else node).upper()
    )


def _parse_error(sql: str, error) -> SqlPlanError:
    """Name the statement the parser stopped in: count the `;` tokens before the error position."""
    location = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], int) else len(sql.rstrip())
    location = min(max(location, 0), len(sql))
    tokens = [token for token in scan(sql[:location]) if not token.name.endswith("_COMMENT")]
    ends = [token.end for token in tokens if token.name == "ASCII_59"]
    start = next((token.start for token in tokens if not ends or token.start > ends[-1]), location)
    text = (sql[start:].strip() or "end of input").splitlines()[0][:80]
    return SqlPlanError(
        "statement %d (line %d) is not valid PostgreSQL: %s: %s"
        % (len(ends) + 1, sql.count("\n", 0, location) + 1, error.args[0], text)
    )


def _parsed_statements(sql: str) -> list:
    try:
        spans = split(sql, with_parser=True, only_slices=True)
    except ParseError as error:
        raise _parse_error(sql, error) from None
    return [(sql[span], parse_sql(sql[span])[0].stmt) for span in spans]


def _analyze_statement(text: str, stmt, outside: bool, version_table: str) -> dict:
    found = _Findings()
    node = type(stmt).__name__
    if node in _HANDLERS:
        _HANDLERS[node](stmt, found)
    found.transactional = found.transactional and node not in _NON_TRANSACTIONAL
    bookkeeping = found.relnames == {version_table}
    if not found.transactional and not outside:
        found.notes.append("cannot run inside a transaction block: put it in an autocommit_block")
    return {
        "statement": text.strip(),
        "kind": statement_kind(stmt),
        "bookkeeping": bookkeeping,
        "relations": [] if bookkeeping else list(found.relations.values()),
        "transactional": found.transactional,
        "outside_transaction": outside,
        "destructive": found.destructive and not bookkeeping,
        "incompatible_reasons": [] if bookkeeping else found.reasons,
        "notes": [] if bookkeeping else found.notes,
        "concurrent_index": found.concurrent_index,
    }


def analyze_sql(sql: str, version_table: str = "alembic_version") -> list[dict]:
    """One dict per statement of `alembic upgrade a:b --sql` output; BEGIN/COMMIT only track autocommit blocks."""
    if parse_sql is None:
        raise ImportError("pglast is required to analyse migration SQL")
    statements = []
    outside = False  # alembic's COMMIT; ... BEGIN; around an autocommit_block
    for text, stmt in _parsed_statements(sql):
        if isinstance(stmt, ast.TransactionStmt):
            kind = stmt.kind.name
            if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
                outside = False
            elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
                outside = True
            continue
        statements.append(_analyze_statement(text, stmt, outside, version_table))
    return statements


def summarize(statements: list[dict]) -> dict:
    """The revision as a whole: each relation with its strongest lock, and the verdicts."""
    relations = {}
    for statement in statements:
        for relation in statement["relations"]:
            _merge_relation(relations, relation)
    reasons = [reason for statement in statements for reason in statement["incompatible_reasons"]]
    return {
        "relations": list(relations.values()),
        "transactional": all(s["transactional"] and not s["outside_transaction"] for s in statements),
        "destructive": any(statement["destructive"] for statement in statements),
        "backward_compatible": not reasons,
        "incompatible_reasons": reasons,
    }
