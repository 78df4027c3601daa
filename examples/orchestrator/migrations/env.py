# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Alembic environment of the example app: DATABASE_URL, psycopg 3, one transaction per revision.

Deliberately no locking, lock_timeout or retries here: safedeploy.migrations.alembic_migrate adds them from the
outside (an advisory lock on its own connection; lock_timeout and statement_timeout through PGOPTIONS, which
libpq applies to this connection because nothing here sets the `options` connection parameter).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from app.database_url import DatabaseUrlError, database_url_from_env, sqlalchemy_url
from sqlalchemy import create_engine, pool

# offline SQL (--sql) needs only the dialect, so it renders without a database
OFFLINE_DIALECT_URL = "postgresql+psycopg://"

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def configured_url() -> str:
    try:
        return sqlalchemy_url(database_url_from_env())
    except DatabaseUrlError as error:
        raise CommandError(str(error)) from None


def run_migrations_offline() -> None:
    context.configure(
        url=configured_url() if os.environ.get("DATABASE_URL") else OFFLINE_DIALECT_URL,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(configured_url(), poolclass=pool.NullPool)
    try:
        # nothing may run on this connection before configure(): alembic would take that open transaction for
        # the caller's and ignore transaction_per_migration
        with engine.connect() as connection:
            # a failing revision then leaves the database at the last revision that committed
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
