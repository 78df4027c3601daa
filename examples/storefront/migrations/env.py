# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Alembic environment, as `alembic init` writes it, with the URL from the app's own settings.

Importing the settings means alembic needs the app's whole environment (SECRET_KEY and API_TOKEN too), like the
web app: without it every alembic command, `--sql` included, stops with storefront.settings.SettingsError.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool
from storefront.settings import settings

config = context.config
# configparser interpolation: a %-escape in the URL (an encoded password) must reach SQLAlchemy unchanged
config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))

if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# no autogenerate: the revisions are written by hand
target_metadata = None


def run_migrations_offline() -> None:
    """Render the SQL (`alembic upgrade --sql`): the URL gives the dialect, nothing connects."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        # alembic's default: the whole range in one transaction, so a failing revision takes the earlier ones back
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
