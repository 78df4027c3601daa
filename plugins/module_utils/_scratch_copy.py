# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""A schema-only copy of the live database at its current revision, in a scratch database on the same server, and
a sampler of the locks its sessions hold; the copy is dropped on every path."""

from __future__ import annotations

import contextlib
import secrets
import threading
import types

from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import PgClient
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import normalized
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import connect, psycopg, sql

SCRATCH_PREFIX = "safedeploy_plan_"
SAMPLE_SECONDS = 0.01
LIVE_DATABASE_QUERY = """SELECT current_database(), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
    pg_get_userbyid(d.datdba), r.rolsuper
FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user"""
# the locks of every other session on the scratch database, with the statement it runs
SAMPLE_QUERY = """SELECT a.query, c.oid::regclass::text, l.mode FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE l.locktype = 'relation' AND l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid()
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"""


def tools_view(module, pg_tools: dict | None):
    """The module as PgClient sees it: pg_dump and psql may reach the server at another address (in its container)."""
    pg_tools = pg_tools or {}
    params = dict(module.params)
    for key in ("login_host", "login_port"):
        if pg_tools.get(key) is not None:
            params[key] = pg_tools[key]
    return types.SimpleNamespace(
        params=params, fail_json=module.fail_json, get_bin_path=module.get_bin_path, run_command=module.run_command
    )


class ScratchCopyError(Exception):
    """The live schema could not be copied into a scratch database."""


class ScratchCopy:
    """`with ScratchCopy(...) as name:` a database holding the live schema and the live revision, gone afterwards."""

    def __init__(self, module, connection, pg_tools: dict | None, version_table: str, version_schema, current):
        self.module = module
        self.connection = connection
        tools = pg_tools or {}
        self.client = PgClient(tools_view(module, pg_tools), tools.get("container"), tools.get("bin_dir"))
        self.version = (version_schema, version_table)
        self.current = list(current)
        self.name = SCRATCH_PREFIX + secrets.token_hex(6)
        self.created = False

    def __enter__(self) -> str:
        try:
            self.create()
            self.copy_schema()
            self.set_revision()
        except BaseException:
            self.drop()
            raise
        return self.name

    def __exit__(self, *exc_info) -> None:
        self.drop()

    def execute(self, connection, query, params=None) -> list[tuple]:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []

    def create(self) -> None:
        live, encoding, collate, ctype, owner, superuser = self.execute(self.connection, LIVE_DATABASE_QUERY)[0]
        self.live = live
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(self.name), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
        )
        if superuser:
            # the app's alembic may log in as the live database's owner, who must own the copy as well
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        try:
            self.execute(self.connection, statement)
        except psycopg.Error as exc:
            raise ScratchCopyError(
                "creating the scratch database %s for the traced plan failed: %s (the login role needs CREATEDB; "
                "trace=never plans without a copy)" % (self.name, " ".join(str(exc).split()))
            ) from exc
        self.created = True

    def copy_schema(self) -> None:
        dump = ["--schema-only", "--dbname", self.client.conninfo(self.live)]
        restore = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname"]
        self.client.pipe(
            ("copying the live schema (pg_dump --schema-only)", "pg_dump", dump),
            ("restoring the schema into %s (psql)" % self.name, "psql", restore + [self.client.conninfo(self.name)]),
            b"",
        )

    def set_revision(self) -> None:
        if not self.current:
            return
        schema, table = self.version
        name = (
            sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table)) if schema else sql.Identifier(table)
        )
        with connect(self.module, self.name) as scratch:
            for revision in self.current:
                self.execute(scratch, sql.SQL("INSERT INTO {} (version_num) VALUES (%s)").format(name), [revision])

    def drop(self) -> None:
        if not self.created:
            return
        statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.name))
        if self.connection.info.server_version >= 130000:
            statement += sql.SQL(" WITH (FORCE)")
        self.execute(self.connection, statement)
        self.created = False


class LockSampler:
    """Samples, in a thread, the relation locks other sessions hold on the scratch database: {statement: locks}.
    Statements outside a transaction release their locks when they end, so sampling is the only way to see them."""

    def __init__(self, module, database: str):
        self.module = module
        self.database = database
        self.seen: dict = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def __enter__(self) -> LockSampler:
        self.connection = connect(self.module, self.database, application_name="safedeploy.plan_trace_sampler")
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join()
        self.connection.close()

    def sample(self) -> None:
        with contextlib.suppress(psycopg.Error):
            while not self.stopping.is_set():
                for query, relation, mode in self.connection.execute(SAMPLE_QUERY).fetchall():
                    found = self.seen.setdefault(normalized(query), [])
                    if [relation, mode] not in found:
                        found.append([relation, mode])
                self.stopping.wait(SAMPLE_SECONDS)
