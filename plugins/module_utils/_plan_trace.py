# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""A traced plan: the statements the application's alembic really runs on a scratch copy, cut into revisions, with
the locks each took (pure functions, and the driver that records them inside the application's python)."""

from __future__ import annotations

import json
import re

from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import relation_key, stronger_lock

# SQLAlchemy listeners on every Engine, loaded into the application's python before its alembic runs: each connection
# goes to the scratch database, and while env.py's context.run_migrations() runs, every statement is recorded in
# `events` with the relation locks its session holds (pg_locks) and the tables whose relfilenode it changed (a
# rewrite); 97 when alembic or SQLAlchemy is not importable. The runner's TRACE_DRIVER adds the command loop.
TRACE_LISTENERS = r"""
import json, os, sys, tempfile, time
try:
    from alembic.config import CommandLine
    from alembic.runtime.environment import EnvironmentContext
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
except ImportError:
    sys.exit(97)
request = json.loads(sys.argv[1])
USER_RELATIONS = ("JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'")
LOCKS = ("SELECT c.oid::regclass::text, c.relkind::text, c.relfilenode::text, l.mode FROM pg_catalog.pg_locks l "
         "JOIN pg_catalog.pg_class c ON c.oid = l.relation " + USER_RELATIONS +
         " AND l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted")
FILES = ("SELECT c.oid::regclass::text, c.relfilenode::text FROM pg_catalog.pg_class c " + USER_RELATIONS +
         " AND c.relkind IN ('r', 'm')")
state = {"recording": False, "command": 0, "held": set(), "files": None, "started": 0.0}
events = []

def rows(connection, query):
    cursor = connection.connection.cursor()
    try:
        cursor.execute(query)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()

def plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return str(value)

@event.listens_for(Engine, "do_connect")
def to_scratch(dialect, record, cargs, cparams):
    cparams["database" if dialect.driver in ("asyncpg", "pg8000") else "dbname"] = request["database"]

@event.listens_for(Engine, "before_cursor_execute")
def before(connection, cursor, statement, parameters, context, executemany):
    if state["recording"] and state["files"] is None:
        state["files"] = dict(rows(connection, FILES))
    state["started"] = time.time()

@event.listens_for(Engine, "after_cursor_execute")
def after(connection, cursor, statement, parameters, context, executemany):
    if not state["recording"]:
        return
    dbapi = connection.connection.dbapi_connection
    outside = bool(getattr(dbapi, "autocommit", False))
    locks, held, rewrites = [], [], []
    for name, kind, relfilenode, mode in rows(connection, LOCKS):
        held.append([name, mode])
        if (name, mode) not in state["held"]:
            locks.append([name, mode])
            state["held"].add((name, mode))
        if kind in ("r", "m"):
            if state["files"].get(name, relfilenode) != relfilenode:
                rewrites.append(name)
            state["files"][name] = relfilenode
    if outside:
        state["held"] = set()
    events.append({"command": state["command"], "statement": statement, "parameters": plain(parameters),
                   "paramstyle": connection.dialect.paramstyle, "many": bool(executemany), "outside": outside,
                   "locks": locks, "held": held, "rewrites": sorted(set(rewrites)), "started": state["started"],
                   "ended": time.time()})

@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def ended(connection):
    state["held"] = set()

def recorded(run_migrations):
    def run(self, **kw):
        state["recording"] = True
        try:
            return run_migrations(self, **kw)
        finally:
            state["recording"] = False
    return run

EnvironmentContext.run_migrations = recorded(EnvironmentContext.run_migrations)
commands = request["commands"]
stop_on_failure = True

def before_command(number):
    state.update(command=number, held=set(), files=None)
"""

_PYFORMAT = re.compile(r"%\((\w+)\)s|%s|%%")
_NUMERIC_DOLLAR = re.compile(r"\$(\d+)")
_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def sql_literal(value) -> str:
    """A parameter as SQL text: what the server saw, close enough to parse and to read."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return "'%s'" % str(value).replace("'", "''")


def inline_parameters(statement: str, parameters, paramstyle: str) -> str:
    """The statement with its bound parameters written in, for the parser and for the operator."""
    if parameters is None or parameters == [] or parameters == {}:
        return statement
    if paramstyle in ("pyformat", "format"):
        positional = iter(parameters) if isinstance(parameters, list) else iter(())

        def replace(match):
            if match.group(0) == "%%":
                return "%"
            if match.group(1) is not None:
                return sql_literal(parameters[match.group(1)])
            return sql_literal(next(positional))

        return _PYFORMAT.sub(replace, statement)
    if paramstyle == "numeric_dollar":
        return _NUMERIC_DOLLAR.sub(lambda match: sql_literal(parameters[int(match.group(1)) - 1]), statement)
    if paramstyle == "named":
        return _NAMED.sub(lambda match: sql_literal(parameters[match.group(1)]), statement)
    if paramstyle == "qmark":
        positional = iter(parameters)
        return re.sub(r"\?", lambda _match: sql_literal(next(positional)), statement)
    return statement


def event_statements(event: dict) -> list[str]:
    """The statements one recorded execute ran: one per parameter set of an executemany."""
    text = event["statement"]
    if event["many"] and isinstance(event["parameters"], list):
        return [inline_parameters(text, each, event["paramstyle"]) for each in event["parameters"]]
    return [inline_parameters(text, event["parameters"], event["paramstyle"])]


def version_write(sql: str, version_table: str) -> tuple[str, str | None, str | None] | None:
    """(verb, revision written, revision replaced) when the statement writes alembic's version table, else None.

    alembic writes the revision ids as literals: INSERT ... VALUES ('b'), UPDATE ... SET version_num='b' WHERE
    version_num = 'a', DELETE ... WHERE version_num = 'a'."""
    table = r'(?:"?[\w$]+"?\.)?"?%s"?' % re.escape(version_table)
    match = re.match(r"\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+%s\b" % table, sql, re.IGNORECASE)
    if not match:
        return None
    verb = match.group(1).split()[0].upper()
    literals = [value.replace("''", "'") for value in _QUOTED.findall(sql[match.end() :])]
    if verb == "INSERT":
        return verb, literals[0] if literals else None, None
    if verb == "UPDATE":
        return verb, literals[0] if literals else None, literals[1] if len(literals) > 1 else None
    return verb, None, literals[0] if literals else None


def cut_into_revisions(events: list[dict], version_table: str, direction: str = "upgrade") -> tuple[list, list]:
    """([(revision, [statement, ...]), ...], the statements after the last revision that finished).

    A revision ends with the statement that writes it into the version table (upgrade) or takes it out (downgrade);
    each statement is {sql, outside, locks, rewrites}."""
    done: list = []
    current: list = []
    for event in events:
        for sql in event_statements(event):
            current.append(
                {
                    "sql": sql.strip(),
                    "outside": event["outside"],
                    "locks": event["locks"],
                    "held": event.get("held", []),
                    "rewrites": event["rewrites"],
                }
            )
            write = version_write(sql, version_table)
            if write is None:
                continue
            verb, written, replaced = write
            finished = written if direction == "upgrade" else replaced
            if finished and verb in (("INSERT", "UPDATE") if direction == "upgrade" else ("UPDATE", "DELETE")):
                done.append((finished, current))
                current = []
    return done, current


def drop_bookkeeping_reads(statements: list[dict], version_table: str) -> list[dict]:
    """alembic reads its version table before and between revisions, and an inspector reads the catalogs: such
    reads take no lock anyone waits for and are no part of the migration's SQL."""
    return [statement for statement in statements if not bookkeeping_read(statement["sql"], version_table)]


def bookkeeping_read(sql: str, version_table: str) -> bool:
    """A SELECT or SHOW that reads nothing but alembic's version table and the system catalogs."""
    if re.match(r"\s*SHOW\b", sql, re.I):
        return True
    if not re.match(r"\s*(SELECT|WITH)\b", sql, re.I) or re.search(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY)\b", sql, re.I):
        return False
    sources = re.findall(r"\b(?:FROM|JOIN)\s+((?:\"?[\w$]+\"?\.)?\"?[\w$]+\"?)", sql, re.I)
    return bool(sources) and all(system_or_version(source, version_table) for source in sources)


def system_or_version(name: str, version_table: str) -> bool:
    parts = [part.strip('"') for part in name.split(".")]
    return (
        parts[-1] == version_table
        or (parts[0] in ("pg_catalog", "information_schema") and len(parts) > 1)
        or (len(parts) == 1 and parts[0].startswith("pg_"))
    )


def traced_sql(statements: list[dict]) -> str:
    """The statements as one script, each transaction between BEGIN; and COMMIT; as alembic's offline SQL writes it."""
    lines: list[str] = []
    inside = False
    for statement in statements:
        if not statement["outside"] and not inside:
            lines.append("BEGIN;")
        elif statement["outside"] and inside:
            lines.append("COMMIT;")
        inside = not statement["outside"]
        lines.append(statement["sql"].rstrip().rstrip(";") + ";")
    if inside:
        lines.append("COMMIT;")
    return "\n\n".join(lines) + "\n"


def traced_locks(
    statements: list[dict], sampled: dict | None = None, named: set | None = None, version_table: str = ""
) -> tuple[dict, dict, set]:
    """({relation: strongest mode held}, {relation: strongest mode sampled}, {relations rewritten}) of a revision.

    Each statement in a transaction contributes the locks it took, read from pg_locks once it ended: exact. On the
    relations the revision's SQL names (`named`) also the locks an earlier revision of the same transaction
    (alembic's default) still holds, since those are held while this revision runs. A statement outside a
    transaction holds its locks only while it runs: what the sampler saw meanwhile (`sampled`: {statement text:
    [[relation, mode], ...]}) is all there is, and may have missed a short one."""
    held: dict = {}
    seen_running: dict = {}
    rewritten: set = set()
    ignored = {version_table, version_table + "_pkc"}
    for statement in statements:
        carried = [[name, mode] for name, mode in statement.get("held", []) if relation_key(name) in (named or set())]
        keep_strongest(held, list(statement["locks"]) + carried, ignored)
        keep_strongest(seen_running, (sampled or {}).get(normalized(statement["sql"]), []), ignored)
        rewritten.update(relation_key(name) for name in statement["rewrites"])
    return held, seen_running, rewritten


def keep_strongest(modes: dict, locks, ignored: set) -> None:
    for name, mode in locks:
        key = relation_key(name)
        if key not in ignored:
            modes[key] = stronger_lock(modes[key], mode) if key in modes else mode


def mark_data_migration_reads(statements: list[dict]) -> None:
    """A traced SELECT of a migration's own tables is a data migration reading the rows it will change: on the
    empty copy it found none, so its writes never showed (`reads_rows`, see plan_data_checks)."""
    for statement in statements:
        if statement["kind"] == "SELECT" and statement["relations"]:
            statement["reads_rows"] = True


def normalized(sql: str) -> str:
    return " ".join(sql.replace(";", " ").split())


def overlay_traced_locks(relations: list[dict], held: dict, sampled: dict, rewritten: set) -> list[dict]:
    """The parsed relations with what the trace saw, the parsed mode kept as `parsed_lock_mode`.

    A mode read from pg_locks after a statement is the truth (`lock_source: traced`); a mode only sampled while an
    autocommit statement ran can only add to the parsed one (`sampled`), since a sample may miss a short lock.
    Relations only the trace saw (indexes, foreign-key targets, partitions) are added."""
    result = []
    seen = set()
    for relation in relations:
        key = relation_key(relation["relation"])
        seen.add(key)
        entry = dict(relation, parsed_lock_mode=relation["lock_mode"], lock_source="parsed")
        if key in held:
            mode = stronger_lock(held[key], sampled[key]) if key in sampled else held[key]
            entry.update(lock_mode=mode, lock_source="traced", rewrites_table=key in rewritten)
        elif key in sampled:
            entry.update(lock_mode=stronger_lock(relation["lock_mode"], sampled[key]), lock_source="sampled")
        result.append(entry)
    for key in sorted((set(held) | set(sampled)) - seen):
        modes = [modes[key] for modes in (held, sampled) if key in modes]
        result.append(
            {
                "relation": key,
                "lock_mode": stronger_lock(*modes) if len(modes) == 2 else modes[0],
                "lock_source": "traced" if key in held else "sampled",
                "parsed_lock_mode": None,
                "rewrites_table": key in rewritten,
                "scans_table": False,
                "notes": ["not named in the SQL: locked by the statements that touch its table"],
            }
        )
    return result
