"""alembic's generic env.py, reading the database URL from the environment and configuring no logging."""

import os

from alembic import context
from sqlalchemy import create_engine


def run_migrations_offline():
    context.configure(url=os.environ["DATABASE_URL"], literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    with create_engine(os.environ["DATABASE_URL"]).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
