# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Database state around alembic: the current revision, the migration advisory lock, script checksums."""

from __future__ import annotations

import hashlib
import os
import time

from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import dict_row, sql

ADVISORY_LOCK_NAMESPACE = "safedeploy.migrations"
LOCK_HOLDER_QUERY = """SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.usename,
    a.backend_start, a.state, EXTRACT(EPOCH FROM now() - a.backend_start)::float8 AS held_seconds
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %(classid)s AND l.objid::bigint = %(objid)s
    AND l.objsubid = 1"""


def advisory_lock_key(database: str, version_table_schema: str | None, version_table: str) -> int:
    """A stable signed 64-bit key per database and version table, the same on every machine."""
    name = "%s:%s:%s.%s" % (ADVISORY_LOCK_NAMESPACE, database, version_table_schema or "public", version_table)
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_key_parts(key: int) -> dict:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}


def version_table_name(version_table: str, version_table_schema: str | None):
    return (
        sql.Identifier(version_table_schema, version_table) if version_table_schema else sql.Identifier(version_table)
    )


def read_current_revisions(connection, version_table: str, version_table_schema: str | None) -> list[str]:
    """Revisions in the version table; none when alembic never ran here."""
    if not relation_exists(connection, version_table_schema, version_table):
        return []
    query = sql.SQL("SELECT version_num FROM {} ORDER BY version_num").format(
        version_table_name(version_table, version_table_schema)
    )
    return [row[0] for row in connection.execute(query).fetchall()]


def relation_exists(connection, schema: str | None, name: str) -> bool:
    qualified = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    text = qualified.as_string(connection)
    return connection.execute("SELECT to_regclass(%s) IS NOT NULL", (text,)).fetchone()[0]


class AdvisoryLock:
    """A session-level advisory lock on its own autocommit connection: released by the server if we die."""

    def __init__(self, connection, key: int):
        self.connection = connection
        self.key = key
        self.held = False
        self.waited_seconds = 0.0

    def acquire(self, timeout: float, poll_interval: float = 0.2) -> bool:
        """Bounded polling with pg_try_advisory_lock: never an unbounded wait inside the server."""
        started = time.monotonic()
        while True:
            if self.connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
                self.held = True
                break
            if time.monotonic() - started >= timeout:
                break
            time.sleep(min(poll_interval, max(0.0, timeout - (time.monotonic() - started))))
            poll_interval = min(poll_interval * 1.5, 2.0)
        self.waited_seconds = round(time.monotonic() - started, 3)
        return self.held

    def holder(self) -> dict | None:
        cursor = self.connection.cursor(row_factory=dict_row)
        row = cursor.execute(LOCK_HOLDER_QUERY, lock_key_parts(self.key)).fetchone()
        if row and row.get("backend_start") is not None:
            row["backend_start"] = row["backend_start"].isoformat()
        return row

    def release(self) -> None:
        if self.held:
            self.connection.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self.held = False


def script_checksum(path: str | None, script_location: str | None) -> str | None:
    """sha256 of a revision script, found by its path or by its file name under script_location."""
    for candidate in candidate_paths(path, script_location):
        if os.path.isfile(candidate):
            with open(candidate, "rb") as handle:
                return hashlib.sha256(handle.read()).hexdigest()
    return None


def candidate_paths(path: str | None, script_location: str | None) -> list[str]:
    """The path alembic printed, else the same file name under script_location (scripts seen from a container)."""
    if not path:
        return []
    candidates = [path]
    if script_location:
        name = os.path.basename(path)
        for root, _dirs, names in os.walk(script_location):
            if name in names:
                candidates.insert(0, os.path.join(root, name))
    return candidates


CHECKSUM_TABLE_DDL = """CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.applied_revisions (
    revision text PRIMARY KEY,
    script_sha256 text,
    script_path text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL DEFAULT current_setting('application_name')
)"""


def ensure_checksum_table(connection, schema: str) -> None:
    for statement in CHECKSUM_TABLE_DDL.split(";\n"):
        connection.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))


def record_applied(connection, schema: str, entries: list[tuple[str, str | None, str | None]]) -> None:
    """Upsert (revision, sha256, path) for revisions just applied."""
    query = sql.SQL(
        "INSERT INTO {}.applied_revisions (revision, script_sha256, script_path) VALUES (%s, %s, %s) "
        "ON CONFLICT (revision) DO UPDATE SET script_sha256 = EXCLUDED.script_sha256, "
        "script_path = EXCLUDED.script_path, applied_at = now(), applied_by = current_setting('application_name')"
    ).format(sql.Identifier(schema))
    with connection.cursor() as cursor:
        cursor.executemany(query, entries)


def forget_applied(connection, schema: str, revisions: list[str]) -> None:
    query = sql.SQL("DELETE FROM {}.applied_revisions WHERE revision = ANY(%s)").format(sql.Identifier(schema))
    connection.execute(query, (revisions,))


def read_applied(connection, schema: str) -> dict:
    """{revision: script_sha256} recorded by alembic_migrate; empty when it never ran here."""
    if not relation_exists(connection, schema, "applied_revisions"):
        return {}
    query = sql.SQL("SELECT revision, script_sha256 FROM {}.applied_revisions").format(sql.Identifier(schema))
    return dict(connection.execute(query).fetchall())
