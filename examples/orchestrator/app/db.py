# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Database access: one short psycopg connection per unit of work, and the schema revision the database is at."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from app.database_url import database_url_from_env, libpq_url


def connection_params(application_name: str) -> dict:
    """Keyword arguments for psycopg; the URL's own application_name or connect_timeout win over ours."""
    params = conninfo_to_dict(libpq_url(database_url_from_env()))
    # application_name tells the app, the worker and a migration apart in pg_stat_activity and lock reports
    params.setdefault("application_name", application_name)
    params.setdefault("connect_timeout", os.environ.get("DB_CONNECT_TIMEOUT", "5"))
    return params


def connect(application_name: str) -> psycopg.Connection:
    """A blocking connection in autocommit mode: callers open transactions explicitly."""
    return psycopg.connect(**connection_params(application_name), autocommit=True, row_factory=dict_row)


async def connect_async(application_name: str) -> psycopg.AsyncConnection:
    """An asyncio connection; `async with` commits on success and closes it."""
    return await psycopg.AsyncConnection.connect(**connection_params(application_name), row_factory=dict_row)


async def current_revisions(connection: psycopg.AsyncConnection) -> list[str]:
    """The alembic revision(s) the database is at, sorted; empty before the first migration."""
    cursor = await connection.execute("SELECT to_regclass('alembic_version') IS NOT NULL AS present")
    row = await cursor.fetchone()
    if not row or not row["present"]:
        return []
    cursor = await connection.execute("SELECT version_num FROM alembic_version ORDER BY version_num")
    return [row["version_num"] for row in await cursor.fetchall()]
