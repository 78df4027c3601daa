# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""A verified backup restored into a database: verification, inspection of the target, the clean restore in one
transaction. The module pg_restore and the composite deploy_restore run it."""

from __future__ import annotations

import contextlib
import os
import time

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import checksum_problems, read_manifest
from ansible_collections.safedeploy.migrations.plugins.module_utils._clean_restore import (
    INVENTORY_QUERY,
    clean_script,
    clean_statements,
    get_psql_cmd,
    get_script_cmd,
    not_in_backup,
    parse_inventory,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._dump_archive import get_list_cmd
from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import ClientToolError, PgClient
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import sql

APPLICATION_NAME = "safedeploy.pg_restore"
USER_RELATIONS = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"""


def restore_argument_spec() -> dict:
    """pg_restore's own options, besides the connection's."""
    return dict(
        src=dict(type="path", required=True),
        maintenance_db=dict(type="str", default="postgres"),
        create=dict(type="bool", default=False),
        clean=dict(type="bool", default=False),
        no_owner=dict(type="bool", default=False),
        jobs=dict(type="int", default=1),
        container=dict(type="str"),
        bin_dir=dict(type="path"),
    )


class RestoreFailed(Exception):
    """Ends the module once the scratch copy is gone: a sentence, and the client tool's failure when one failed."""

    def __init__(self, msg: str, tool_error: ClientToolError | None = None):
        super().__init__(msg if tool_error is None else "%s: %s" % (msg, tool_error))
        self.tool_error = tool_error


def changed_by_failed_restore(created: bool, dropped: bool, single_transaction: bool) -> bool:
    """Whether a failed restore left anything changed: a database it created and could not drop again, or part of
    a restore of several jobs (not one transaction) into a database that was there before."""
    if created:
        return not dropped
    return not single_transaction


def get_restore_cmd(params: dict, conninfo: str, archive: str | None) -> list[str]:
    """pg_restore into a new or empty database (a clean restore goes through psql instead)."""
    args = ["--dbname=%s" % conninfo, "--exit-on-error"]
    if params["no_owner"]:
        args.append("--no-owner")
    # one transaction makes a failed restore leave the target untouched; parallel jobs cannot share one
    args.append("--jobs=%d" % params["jobs"] if params["jobs"] > 1 else "--single-transaction")
    return args + ([archive] if archive else [])


class RestoreManager:
    """One restore; fails its module with what it did so far."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.client = PgClient(module, self.params["container"], self.params["bin_dir"], APPLICATION_NAME)
        self.result = dict(
            changed=False, created=False, cleaned=False, commands=self.client.commands, queries=self.client.queries
        )

    def run(self) -> dict:
        if self.params["jobs"] < 1:
            self.module.fail_json(msg="jobs must be at least 1")
        manifest, backup_path = self.verified_backup()
        database = self.params["login_db"] or manifest["database"]
        self.result.update(database=database, backup_path=backup_path, manifest=manifest)
        if self.client.container:
            self.client.check_container_running()
        try:
            with self.archive_in_reach(backup_path, manifest) as archive:
                self.inspect_and_restore(database, backup_path, archive)
        except RestoreFailed as exc:
            failure = exc.tool_error
            if failure is not None:
                self.result.update(cmd=failure.argv, rc=failure.rc, stderr=failure.stderr)
            self.module.fail_json(msg=str(exc), **self.result)
        return self.result

    def inspect_and_restore(self, database: str, backup_path: str, archive: tuple) -> None:
        try:
            toc = self.client.run("pg_restore --list", "pg_restore", get_list_cmd(archive[0]), stdin_path=archive[1])
            exists = self.database_exists(database)
            self.check_target(database, exists)
            statements = self.plan_clean(database, toc) if self.params["clean"] and exists else None
        except ClientToolError as exc:
            raise RestoreFailed("cannot inspect the restore target %s" % database, exc) from exc
        self.result.update(changed=True, created=not exists, cleaned=statements is not None)
        if self.module.check_mode:
            return

        started = time.monotonic()
        if not exists:
            self.create_database(database)
        try:
            if statements is None:
                self.restore(database, archive)
            else:
                self.clean_restore(database, archive, statements)
        except ClientToolError as exc:
            dropped = not exists and self.drop_created_database(database)
            single_transaction = statements is not None or self.params["jobs"] == 1
            changed = changed_by_failed_restore(not exists, dropped, single_transaction)
            # a clean restore is one transaction: it failed, so nothing was emptied
            self.result.update(changed=changed, created=not exists and not dropped, cleaned=False)
            if statements is None:
                raise RestoreFailed("restore of %s into database %s failed" % (backup_path, database), exc) from exc
            raise RestoreFailed(
                "clean restore of %s into database %s failed and was rolled back, the database is as it was"
                % (backup_path, database),
                exc,
            ) from exc
        self.result["duration_seconds"] = round(time.monotonic() - started, 3)

    def verified_backup(self) -> tuple[dict, str]:
        try:
            manifest, backup_path, _manifest_path = read_manifest(self.params["src"])
        except (OSError, ValueError) as exc:
            self.module.fail_json(msg="cannot restore %s: %s" % (self.params["src"], exc), **self.result)
        problems = checksum_problems(backup_path, manifest)
        if problems:
            self.module.fail_json(
                msg="backup %s failed verification, nothing was restored: %s" % (backup_path, "; ".join(problems)),
                **self.result,
            )
        return manifest, backup_path

    @contextlib.contextmanager
    def archive_in_reach(self, backup_path: str, manifest: dict):
        """(path, stdin path) of the archive for pg_restore: a path on the host or in the container, or stdin."""
        if not self.client.container:
            yield backup_path, None
            return
        # a directory archive and parallel jobs need a path; a custom archive streams through stdin otherwise
        needs_path = manifest["format"] == "directory" or (self.params["jobs"] > 1 and not self.module.check_mode)
        if not needs_path:
            yield None, backup_path
            return
        scratch = self.client.scratch_path(".safedeploy-restore-%s" % os.path.basename(backup_path))
        try:
            self.client.docker(
                "copy the backup into the container", ["cp", backup_path, "%s:%s" % (self.client.container, scratch)]
            )
        except ClientToolError as exc:
            raise RestoreFailed("cannot restore %s" % backup_path, exc) from exc
        try:
            yield scratch, None
        finally:
            self.remove_scratch(scratch)

    def remove_scratch(self, scratch: str) -> None:
        try:
            self.client.docker("remove the scratch copy", ["exec", self.client.container, "rm", "-rf", scratch])
        except ClientToolError as exc:
            self.module.warn("could not remove %s from container %s: %s" % (scratch, self.client.container, exc))

    def database_exists(self, database: str) -> bool:
        query = sql.SQL("SELECT 1 FROM pg_database WHERE datname = {}").format(sql.Literal(database))
        return bool(self.client.rows(self.params["maintenance_db"], query))

    def check_target(self, database: str, exists: bool) -> None:
        if not exists and not self.params["create"]:
            raise RestoreFailed("target database %s does not exist; set create: true to create it" % database)
        if exists and not self.params["clean"]:
            relations = int(self.client.rows(database, sql.SQL(USER_RELATIONS))[0][0])
            if relations:
                raise RestoreFailed(
                    "target database %s already holds %d tables, views or sequences; nothing was restored; "
                    "set clean: true to replace them with the backup" % (database, relations)
                )
        if exists and self.params["clean"] and self.params["jobs"] > 1:
            raise RestoreFailed(
                "jobs: %d cannot restore into the existing database %s with clean: true, nothing was restored: "
                "a clean restore is one transaction, which parallel jobs cannot share; set jobs: 1, or restore "
                "into a new database with create: true" % (self.params["jobs"], database)
            )

    def plan_clean(self, database: str, toc: str) -> list[str]:
        """The statements that empty the target, and what of it the backup does not bring back."""
        inventory = parse_inventory(self.client.rows(database, sql.SQL(INVENTORY_QUERY)))
        statements = clean_statements(inventory)
        self.result.update(
            dropped_schemas=inventory["schemas"],
            dropped_extensions=inventory["extensions"],
            dropped_large_objects=inventory["large_objects"],
            not_in_backup=not_in_backup(inventory, toc),
            clean_statements=statements,
        )
        return statements

    def create_database(self, database: str) -> None:
        try:
            self.client.rows(
                self.params["maintenance_db"], sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
            )
        except ClientToolError as exc:
            self.result.update(changed=False, created=False)
            raise RestoreFailed("cannot create database %s" % database, exc) from exc

    def drop_created_database(self, database: str) -> bool:
        try:
            self.client.rows(
                self.params["maintenance_db"], sql.SQL("DROP DATABASE {}").format(sql.Identifier(database))
            )
            return True
        except ClientToolError:
            self.module.warn("could not drop database %s created for the failed restore" % database)
            return False

    def restore(self, database: str, archive: tuple) -> None:
        args = get_restore_cmd(self.params, self.client.conninfo(database), archive[0])
        self.client.run("pg_restore", "pg_restore", args, stdin_path=archive[1])

    def clean_restore(self, database: str, archive: tuple, statements: list[str]) -> None:
        """The statements, then the archive's SQL, in one psql session and one transaction."""
        self.client.queries.extend(statements)
        self.client.pipe(
            ("pg_restore", "pg_restore", get_script_cmd(self.params, archive[0])),
            ("psql", "psql", get_psql_cmd(self.client.conninfo(database))),
            clean_script(statements),
            stdin_path=archive[1],
        )
