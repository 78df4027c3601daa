# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The deploy lock <state_schema>.deploy_locks: one row per environment while a deploy runs; its SQL and verdicts."""

from __future__ import annotations

import secrets

from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import iso_timestamp
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import sql

LOCK_TABLE = "deploy_locks"
APPLICATION_NAME = "safedeploy.deploy_lock"
# a live deploy is silent for seconds between two heartbeats (each a task, a module start); with a shorter lease two
# deploys that start together both take the lock, each judging the other dead
MIN_LEASE_SECONDS = 10
# Sessions that do a deploy's long work: while one is connected, its deploy is alive whatever its heartbeat says.
# Prefixes: alembic_migrate adds @host:pid to its name.
WORKING_APPLICATION_NAMES = (
    "safedeploy.alembic_migrate",
    "safedeploy.pg_backup",
    "safedeploy.pg_restore",
    "safedeploy.pg_preflight",
)

COLUMNS = (
    ("environment", "text PRIMARY KEY"),
    ("token", "text NOT NULL"),
    ("holder", "text"),
    ("app_version", "text"),
    ("deploy_id", "bigint"),
    ("phase", "text"),
    ("acquired_at", "timestamptz NOT NULL DEFAULT now()"),
    ("heartbeat_at", "timestamptz NOT NULL DEFAULT now()"),
)
# what a row returns: the columns and the heartbeat's age on the server's clock, never the controller's
RETURNING = "*, EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 AS silent_seconds"


def table_identifier(schema: str):
    return sql.Identifier(schema, LOCK_TABLE)


def ddl_statements(schema: str) -> list:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(definition)) for name, definition in COLUMNS
    )
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table_identifier(schema), columns),
    ]


def insert_query(schema: str):
    """Takes a free lock; returns nothing when another deploy holds it."""
    return sql.SQL(
        "INSERT INTO {} (environment, token, holder, app_version, phase) "
        "VALUES (%(environment)s, %(token)s, %(holder)s, %(app_version)s, %(phase)s) "
        "ON CONFLICT (environment) DO NOTHING RETURNING {}"
    ).format(table_identifier(schema), sql.SQL(RETURNING))


def select_query(schema: str, lock: bool):
    return sql.SQL("SELECT {} FROM {} WHERE environment = %(environment)s{}").format(
        sql.SQL(RETURNING), table_identifier(schema), sql.SQL(" FOR UPDATE" if lock else "")
    )


def list_query(schema: str, environment: str | None):
    """Every lock row, or the environment's, for readers."""
    where = sql.SQL(" WHERE environment = %(environment)s" if environment is not None else "")
    return sql.SQL("SELECT {} FROM {}{} ORDER BY environment").format(
        sql.SQL(RETURNING), table_identifier(schema), where
    )


def take_over_query(schema: str):
    """Gives a stale lock to this deploy, only if it is still the row that was judged stale."""
    return sql.SQL(
        "UPDATE {} SET token = %(token)s, holder = %(holder)s, app_version = %(app_version)s, deploy_id = NULL, "
        "phase = %(phase)s, acquired_at = now(), heartbeat_at = now() "
        "WHERE environment = %(environment)s AND token = %(stale_token)s RETURNING {}"
    ).format(table_identifier(schema), sql.SQL(RETURNING))


def heartbeat_query(schema: str):
    return sql.SQL(
        "UPDATE {} SET heartbeat_at = now(), phase = COALESCE(%(phase)s, phase), "
        "deploy_id = COALESCE(%(deploy_id)s, deploy_id) WHERE environment = %(environment)s AND token = %(token)s "
        "RETURNING {}"
    ).format(table_identifier(schema), sql.SQL(RETURNING))


def delete_query(schema: str):
    return sql.SQL("DELETE FROM {} WHERE environment = %(environment)s AND token = %(token)s RETURNING {}").format(
        table_identifier(schema), sql.SQL(RETURNING)
    )


WORKING_SESSIONS_QUERY = (
    "SELECT pid, application_name, state, EXTRACT(EPOCH FROM now() - backend_start)::float8 AS connected_seconds "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND application_name LIKE ANY(%(patterns)s) ORDER BY backend_start"
)


def working_patterns() -> list:
    """LIKE patterns of the working sessions' application_name."""
    return [name + "%" for name in WORKING_APPLICATION_NAMES]


def lock_entry(row: dict) -> dict:
    """A row as the module returns it: timestamps in ISO 8601 UTC, the heartbeat's age rounded."""
    entry = {name: row.get(name) for name, _definition in COLUMNS if name != "token"}
    entry["acquired_at"] = iso_timestamp(entry["acquired_at"])
    entry["heartbeat_at"] = iso_timestamp(entry["heartbeat_at"])
    entry["silent_seconds"] = round(row["silent_seconds"], 1)
    return entry


def new_owner() -> str:
    """An id for a run that took the lock without naming itself: 20 hex digits, unique enough across controllers."""
    return secrets.token_hex(10)


def option_problems(params: dict) -> list:
    """One sentence per option of deploy_lock that makes no sense, naming it."""
    problems = ["%s must not be empty" % name for name in ("environment", "owner") if not params[name]]
    if params["wait"] < 0:
        problems.append("wait must be 0 or more seconds, got %s" % params["wait"])
    if params["lease"] < MIN_LEASE_SECONDS:
        problems.append(
            "lease must be at least %d seconds, got %s: a live deploy is silent that long between two heartbeats, "
            "and a shorter lease lets a second deploy take its lock" % (MIN_LEASE_SECONDS, params["lease"])
        )
    if params["deploy_id"] is not None and params["deploy_id"] < 1:
        problems.append("deploy_id must be a positive id, got %s" % params["deploy_id"])
    return problems


def is_stale(row: dict, lease: int, working_sessions: list) -> bool:
    """A holder is dead when it has been silent longer than the lease and none of its long steps is connected."""
    return row["silent_seconds"] > lease and not working_sessions


def describe_holder(row: dict, working_sessions: list) -> str:
    """One sentence on the holder, for the error a waiting deploy ends with."""
    text = "%s (app %s%s, phase %s) since %s, last heard of %.0f s ago" % (
        row.get("holder") or "an unnamed deploy",
        row.get("app_version") or "unknown",
        ", ledger id %s" % row["deploy_id"] if row.get("deploy_id") else "",
        row.get("phase") or "unknown",
        iso_timestamp(row["acquired_at"]),
        row["silent_seconds"],
    )
    if working_sessions:
        text += "; still at work in the database: %s" % ", ".join(
            "%s (pid %s)" % (session["application_name"], session["pid"]) for session in working_sessions
        )
    return text
