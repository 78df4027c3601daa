# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The SQL of pg_lock_info, the pure functions that shape its rows, and the reader that runs them."""

from __future__ import annotations

import contextlib
import threading

from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    error_text,
    psycopg,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._query_redaction import redact_query

APPLICATION_NAME = "safedeploy.pg_lock_info"
QUERY_ELLIPSIS = "..."

# pg_locks.waitstart exists since PostgreSQL 14; older servers only know when the waiting statement began.
WAITSTART_VERSION_NUM = 140000

SESSION_FIELDS = (
    "pid",
    "database",
    "user",
    "application_name",
    "client_addr",
    "backend_type",
    "state",
    "wait_event_type",
    "wait_event",
    "xact_age_seconds",
    "state_age_seconds",
    "query",
)

SERVER_QUERY = (
    "SELECT current_database() AS database, current_setting('server_version') AS server_version, "
    "current_setting('server_version_num')::int AS server_version_num"
)


def session_columns(alias: str, prefix: str = "") -> str:
    """The select list of one pg_stat_activity row; prefix tells apart two sessions in one row."""
    columns = (
        ("pid", f"{alias}.pid"),
        ("database", f"{alias}.datname"),
        ("user", f"{alias}.usename"),
        ("application_name", f"{alias}.application_name"),
        ("client_addr", f"host({alias}.client_addr)"),
        ("backend_type", f"{alias}.backend_type"),
        ("state", f"{alias}.state"),
        ("wait_event_type", f"{alias}.wait_event_type"),
        ("wait_event", f"{alias}.wait_event"),
        ("xact_age_seconds", f"EXTRACT(EPOCH FROM now() - {alias}.xact_start)::float8"),
        ("state_age_seconds", f"EXTRACT(EPOCH FROM now() - {alias}.state_change)::float8"),
        ("query", f"{alias}.query"),
    )
    return ", ".join(f'{expression} AS "{prefix}{name}"' for name, expression in columns)


def wait_start_expression(server_version_num: int, lock_alias: str, activity_alias: str) -> str:
    if server_version_num >= WAITSTART_VERSION_NUM:
        return f"COALESCE({lock_alias}.waitstart, {activity_alias}.state_change)"
    return f"{activity_alias}.state_change"


def relation_expression(lock_alias: str) -> str:
    """Relation name, only when the OID belongs to this database (or is a shared catalog)."""
    return (
        f"CASE WHEN {lock_alias}.relation IS NOT NULL AND {lock_alias}.database IN (0, "
        "(SELECT oid FROM pg_database WHERE datname = current_database())) "
        f"THEN {lock_alias}.relation::regclass::text END"
    )


def blocking_query(server_version_num: int) -> str:
    """Pairs of (waiting backend, backend it waits for); pg_blocking_pids() only for backends waiting on a lock."""
    wait_start = wait_start_expression(server_version_num, "waiting", "blocked")
    return (
        "SELECT blocked.pid AS blocked_pid, blocker.pid AS blocking_pid, waiting.locktype, waiting.mode, "
        f"{relation_expression('waiting')} AS relation, "
        f"EXTRACT(EPOCH FROM now() - {wait_start})::float8 AS wait_seconds, "
        f"{session_columns('blocked', 'blocked.')}, {session_columns('blocking', 'blocking.')} "
        "FROM pg_stat_activity AS blocked "
        "CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS blocker(pid) "
        "LEFT JOIN pg_stat_activity AS blocking ON blocking.pid = blocker.pid "
        "LEFT JOIN LATERAL (SELECT * FROM pg_locks AS l WHERE l.pid = blocked.pid AND NOT l.granted LIMIT 1) "
        "AS waiting ON true "
        "WHERE blocked.wait_event_type = 'Lock' AND blocked.pid <> pg_backend_pid() "
        "ORDER BY wait_seconds DESC NULLS LAST, blocked.pid, blocker.pid"
    )


LONG_TRANSACTIONS_QUERY = (
    f"SELECT {session_columns('a')} FROM pg_stat_activity AS a "
    "WHERE a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid() "
    "AND now() - a.xact_start >= make_interval(secs => %(min_xact_age)s) "
    "ORDER BY a.xact_start, a.pid"
)

IDLE_IN_TRANSACTION_QUERY = (
    f"SELECT {session_columns('a')} FROM pg_stat_activity AS a "
    "WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)') AND a.pid <> pg_backend_pid() "
    "ORDER BY a.state_change, a.pid"
)

DUMPS_RUNNING_QUERY = (
    f"SELECT {session_columns('a')} FROM pg_stat_activity AS a "
    "WHERE a.application_name IN ('pg_dump', 'pg_dumpall') "
    "AND a.pid <> pg_backend_pid() "
    "ORDER BY a.backend_start, a.pid"
)

ADVISORY_LOCKS_QUERY = (
    "SELECT l.classid::bigint AS classid, l.objid::bigint AS objid, l.objsubid, l.mode, l.granted, "
    f"{session_columns('a')} "
    "FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.pid IS DISTINCT FROM pg_backend_pid() "
    "ORDER BY l.classid, l.objid, l.objsubid, l.granted DESC, l.pid"
)

# Also true while CREATE INDEX CONCURRENTLY is still building; afterwards only for an interrupted build.
INVALID_INDEXES_QUERY = (
    "SELECT n.nspname AS schema, ci.relname AS index, ct.relname AS table, "
    "pg_relation_size(ci.oid) AS size_bytes, pg_get_indexdef(ci.oid) AS definition "
    "FROM pg_index AS i JOIN pg_class AS ci ON ci.oid = i.indexrelid JOIN pg_class AS ct ON ct.oid = i.indrelid "
    "JOIN pg_namespace AS n ON n.oid = ci.relnamespace "
    "WHERE NOT i.indisvalid "
    "ORDER BY n.nspname, ci.relname"
)

BACKEND_PID_QUERY = "SELECT pg_backend_pid() AS pid"

RESOLVE_NAME_QUERY = "SELECT to_regclass(%(name)s)::text AS relation"
RESOLVE_RELATIONS_QUERY = (
    "SELECT name, to_regclass(name)::text AS relation "
    "FROM unnest(%(relations)s::text[]) WITH ORDINALITY AS requested(name, position) "
    "ORDER BY position"
)


def relation_locks_query(server_version_num: int) -> str:
    """Relation-level locks in this database, on the named relations when %(relations)s is not NULL."""
    wait_start = wait_start_expression(server_version_num, "l", "a")
    return (
        "SELECT l.relation::regclass::text AS relation, l.mode, l.granted, "
        f"CASE WHEN NOT l.granted THEN EXTRACT(EPOCH FROM now() - {wait_start})::float8 END AS wait_seconds, "
        f"{session_columns('a')} "
        "FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.pid IS DISTINCT FROM pg_backend_pid() "
        "AND (%(relations)s::text[] IS NULL "
        "OR l.relation = ANY (SELECT to_regclass(name)::oid FROM unnest(%(relations)s::text[]) AS name)) "
        "ORDER BY relation, l.granted DESC, wait_seconds DESC NULLS LAST, l.pid"
    )


def seconds(value) -> float | None:
    """Durations rounded to the millisecond; clock skew between statements never makes them negative."""
    if value is None:
        return None
    return max(0.0, round(float(value), 3))


def shorten_query(text: str | None, query_length: int) -> str | None:
    """One line of at most query_length characters; 0 hides the text."""
    if text is None or query_length <= 0:
        return None
    flat = " ".join(text.split())
    if len(flat) <= query_length:
        return flat
    if query_length <= len(QUERY_ELLIPSIS):
        return flat[:query_length]
    return flat[: query_length - len(QUERY_ELLIPSIS)] + QUERY_ELLIPSIS


def session_query(text: str | None, query_length: int) -> str | None:
    """Another session's query as the module returns it: secrets redacted, then shortened; 0 hides it."""
    return shorten_query(redact_query(text), query_length) if query_length > 0 else None


def session_entry(row: dict, query_length: int, prefix: str = "") -> dict:
    """The session keys of a row; all None when no backend matched (gone, or a prepared transaction)."""
    entry = {name: row.get(prefix + name) for name in SESSION_FIELDS}
    entry["xact_age_seconds"] = seconds(entry["xact_age_seconds"])
    entry["state_age_seconds"] = seconds(entry["state_age_seconds"])
    entry["query"] = session_query(entry["query"], query_length)
    return entry


def blocking_entry(row: dict, query_length: int) -> dict:
    return {
        "blocked_pid": row["blocked_pid"],
        "blocking_pid": row["blocking_pid"],
        "locktype": row.get("locktype"),
        "mode": row.get("mode"),
        "relation": row.get("relation"),
        "wait_seconds": seconds(row.get("wait_seconds")),
        "blocked": session_entry(row, query_length, "blocked."),
        "blocking": session_entry(row, query_length, "blocking."),
    }


def advisory_key(classid: int, objid: int, objsubid: int) -> dict:
    """The keys given to pg_advisory_lock(): one bigint (objsubid 1) or two integers (objsubid 2)."""
    if objsubid == 2:
        return {"key": None, "key_pair": [_signed(classid, 32), _signed(objid, 32)]}
    return {"key": _signed((classid << 32) | objid, 64), "key_pair": None}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def advisory_lock_entry(row: dict, query_length: int) -> dict:
    entry = advisory_key(row["classid"], row["objid"], row["objsubid"])
    entry.update({"mode": row["mode"], "granted": row["granted"]})
    entry.update(session_entry(row, query_length))
    return entry


def relation_lock_entry(row: dict, query_length: int) -> dict:
    entry = {
        "relation": row["relation"],
        "mode": row["mode"],
        "granted": row["granted"],
        "wait_seconds": seconds(row.get("wait_seconds")),
    }
    entry.update(session_entry(row, query_length))
    return entry


def bad_names_message(target: str, name_errors: list) -> str:
    """The relation names the server refused, each with its reason."""
    names = "; ".join("%r (%s)" % (name, error) for name, error in name_errors)
    return "reading the relations from %s failed: not a relation name: %s" % (target, names)


def missing_relations(resolved_rows: list) -> list:
    """Requested names that do not resolve to a relation of the database."""
    return [row["name"] for row in resolved_rows if row["relation"] is None]


def invalid_index_entry(row: dict) -> dict:
    return {
        "schema": row["schema"],
        "index": row["index"],
        "table": row["table"],
        "size_bytes": row["size_bytes"],
        "definition": row["definition"],
    }


def pooler_finding(backend_pids: list, probe_backend_pid: int | None, probe_error: str | None = None) -> dict:
    """Transaction pooling when one client connection saw two backends, or a second client got one of its backends.

    Neither can happen when a client keeps its backend for the whole session (direct or session pooling).
    """
    seen = _unique(backend_pids)
    shared = probe_backend_pid is not None and probe_backend_pid in seen
    facts = []
    if len(seen) > 1:
        facts.append("backend pid changed between transactions on one connection: %s" % _pid_list(seen))
    if shared:
        facts.append("a second connection got backend pid %s of this connection" % probe_backend_pid)
    if not facts:
        fact = "backend pid %s stayed the same in %d transactions" % (_pid_list(seen), len(backend_pids))
        if probe_backend_pid is not None:
            fact += " while a second connection held backend pid %s in an open transaction" % probe_backend_pid
        facts.append(fact)
    if probe_error:
        facts.append("the second connection failed: %s" % probe_error)
    return {
        "transaction_pooling": len(seen) > 1 or shared,
        "backend_pids": list(backend_pids),
        "probe_backend_pid": probe_backend_pid,
        "detail": "; ".join(facts),
    }


def transaction_pooling_message(target: str, pooler: dict) -> str:
    seen = _unique(pooler["backend_pids"])
    if len(seen) > 1:
        evidence = "backend pid changed between transactions: %s" % _pid_list(seen)
    else:
        evidence = "a second connection got backend pid %s of this connection" % pooler["probe_backend_pid"]
    return (
        "the connection to %s goes through a transaction-pooling proxy (%s): advisory locks and session settings "
        "are unsafe there; connect to PostgreSQL directly or through a session-pooling pool" % (target, evidence)
    )


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


def _pid_list(pids: list) -> str:
    return ", ".join(str(pid) for pid in pids)


def root_blocking_pids(blocking: list) -> list:
    """Backends that block others while waiting for nobody: the heads of the chains."""
    blocked = {entry["blocked_pid"] for entry in blocking}
    return sorted({entry["blocking_pid"] for entry in blocking if entry["blocking_pid"] not in blocked})


def summarize(result: dict) -> dict:
    blocking = result["blocking"]
    waits = [entry["wait_seconds"] for entry in blocking if entry["wait_seconds"] is not None]
    return {
        "blocked_sessions": len({entry["blocked_pid"] for entry in blocking}),
        "blocking_sessions": len({entry["blocking_pid"] for entry in blocking}),
        "max_wait_seconds": max(waits) if waits else 0.0,
        "long_transactions": len(result["long_transactions"]),
        "idle_in_transaction": len(result["idle_in_transaction"]),
        "dumps_running": len(result["dumps_running"]),
        "advisory_locks": len(result["advisory_locks"]),
        "locks_granted": len([entry for entry in result["locks"] if entry["granted"]]),
        "locks_waiting": len([entry for entry in result["locks"] if not entry["granted"]]),
        "invalid_indexes": len(result["invalid_indexes"]),
    }


# Through a pool of one server connection the second read waits for the probe's transaction; this ends it.
PROBE_HOLD_SECONDS = 2.0
PROBE_QUERY_PREFIX = "/* second connection, in a transaction */ "


def rollback_quietly(connection) -> None:
    with contextlib.suppress(psycopg.Error):
        connection.rollback()


class LockInfoReader:
    """Runs the read-only queries on one autocommit connection and keeps them as the audit trail."""

    def __init__(self, module, connection, application_name: str = APPLICATION_NAME) -> None:
        self.module = module
        self.application_name = application_name
        self.cursor = psycopg.ClientCursor(connection, row_factory=psycopg.rows.dict_row)
        self.queries: list[str] = []
        self.database: str | None = None

    def execute(self, sql: str, params: dict | None = None) -> list:
        self.queries.append(self.cursor.mogrify(sql, params))
        self.cursor.execute(sql, params)
        return self.cursor.fetchall()

    def rows(self, what: str, sql: str, params: dict | None = None) -> list:
        try:
            return self.execute(sql, params)
        except psycopg.Error as exc:
            self.fail(f"reading {what} from {self.target()} failed: {error_text(exc)}")

    def target(self) -> str:
        return describe_target(self.module.params, self.database)

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, queries=self.queries)

    def resolve_relations(self, relations: list) -> list:
        """to_regclass() of each name; a name the server cannot read fails the module, named (one query each)."""
        try:
            return self.execute(RESOLVE_RELATIONS_QUERY, {"relations": relations})
        except psycopg.Error as exc:
            name_errors = []
            for name in relations:
                try:
                    self.execute(RESOLVE_NAME_QUERY, {"name": name})
                except psycopg.Error as name_exc:
                    name_errors.append((name, error_text(name_exc)))
            if not name_errors:
                self.fail(f"reading the relations from {self.target()} failed: {error_text(exc)}")
            self.fail(bad_names_message(self.target(), name_errors))

    def read(self, relations: list | None, min_xact_age: float, query_length: int) -> dict:
        """Everything but the pooler check; relations None means all relation locks, [] none."""
        server = self.rows("the server version", SERVER_QUERY)[0]
        self.database = server["database"]
        version_num = server["server_version_num"]
        result = {
            "database": server["database"],
            "server_version": server["server_version"],
            "blocking": [
                blocking_entry(row, query_length) for row in self.rows("blocked sessions", blocking_query(version_num))
            ],
            "long_transactions": [
                session_entry(row, query_length)
                for row in self.rows("long transactions", LONG_TRANSACTIONS_QUERY, {"min_xact_age": min_xact_age})
            ],
            "idle_in_transaction": [
                session_entry(row, query_length)
                for row in self.rows("idle-in-transaction sessions", IDLE_IN_TRANSACTION_QUERY)
            ],
            "dumps_running": [
                session_entry(row, query_length) for row in self.rows("running pg_dump sessions", DUMPS_RUNNING_QUERY)
            ],
            "advisory_locks": [
                advisory_lock_entry(row, query_length) for row in self.rows("advisory locks", ADVISORY_LOCKS_QUERY)
            ],
            "missing_relations": [],
        }
        if relations:
            resolved = self.resolve_relations(relations)
            result["missing_relations"] = missing_relations(resolved)
        result["locks"] = []
        if relations != []:
            result["locks"] = [
                relation_lock_entry(row, query_length)
                for row in self.rows("relation locks", relation_locks_query(version_num), {"relations": relations})
            ]
        result["invalid_indexes"] = [
            invalid_index_entry(row) for row in self.rows("invalid indexes", INVALID_INDEXES_QUERY)
        ]
        result["root_blocking_pids"] = root_blocking_pids(result["blocking"])
        result["summary"] = summarize(result)
        return result

    def backend_pid(self) -> int:
        return self.rows("the backend pid", BACKEND_PID_QUERY)[0]["pid"]

    def pooler(self) -> dict:
        """The backend pid of this connection before, while and after a second connection holds a transaction."""
        backend_pids = [self.backend_pid()]
        probe = connect(self.module, autocommit=False, application_name=self.application_name)
        probe_pid, probe_error = None, None
        release = threading.Timer(PROBE_HOLD_SECONDS, rollback_quietly, [probe])
        try:
            self.queries.append(PROBE_QUERY_PREFIX + BACKEND_PID_QUERY)
            probe_pid = probe.execute(BACKEND_PID_QUERY, prepare=False).fetchone()[0]
        except psycopg.Error as exc:
            probe_error = error_text(exc)
        release.start()
        try:
            backend_pids.append(self.backend_pid())
        finally:
            release.cancel()
            release.join()
            rollback_quietly(probe)
            probe.close()
        backend_pids.append(self.backend_pid())
        return pooler_finding(backend_pids, probe_pid, probe_error)
