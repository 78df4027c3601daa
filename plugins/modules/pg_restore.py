#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a verified pg_backup backup into a PostgreSQL database
version_added: 0.1.0
author: safedeploy.migrations maintainers (@safedeploy)
description:
  - Restores a backup written by M(safedeploy.migrations.pg_backup) with C(pg_restore).
  - Before the database is touched, the backup is checked against its manifest (sha256 of the archive, or of every
    file of a directory backup) and its table of contents is read; a truncated, bit-flipped or incomplete backup is
    refused with the reason.
  - Refuses to restore into a database that already holds tables unless O(clean=true), so nothing is mixed or lost
    by accident.
  - With O(jobs=1) the restore runs in a single transaction, so a failure leaves the target as it was.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Verifies the backup and inspects the target database, then reports whether it would create and restore it.
  diff_mode:
    support: none
options:
  src:
    description:
      - Path of the backup (file or directory) or of its manifest (C(.json)).
    type: path
    required: true
  login_db:
    description:
      - The target database; the database named in the manifest when not set.
    type: str
    aliases: [db, database]
  maintenance_db:
    description:
      - Database to connect to when checking for and creating the target.
    type: str
    default: postgres
  create:
    description:
      - Create the target database when it does not exist.
    type: bool
    default: false
  clean:
    description:
      - Drop and recreate the objects of the backup that exist in the target (C(pg_restore --clean --if-exists)).
      - Needed to restore into a database that already holds tables, for example for a rollback.
    type: bool
    default: false
  no_owner:
    description:
      - Do not restore ownership (C(pg_restore --no-owner)); objects then belong to O(login_user).
    type: bool
    default: false
  jobs:
    description:
      - Number of parallel restore jobs. With more than one the restore is not a single transaction.
    type: int
    default: 1
  container:
    description:
      - Name of a running container that runs the PostgreSQL server; C(pg_restore) then runs inside it with
        C(docker exec). The connection options are seen from inside the container.
    type: str
  bin_dir:
    description:
      - Directory holding C(pg_restore) on the managed host; the E(PATH) is searched when not set.
    type: path
seealso:
  - module: safedeploy.migrations.pg_backup
"""

EXAMPLES = r"""
- name: Restore the backup taken before the failed deploy, replacing the current objects
  safedeploy.migrations.pg_restore:
    login_user: erpmax
    login_password: "{{ vault_db_password }}"
    src: "{{ backup.manifest_path }}"
    clean: true

- name: Restore a drill copy into a new database through the postgres container
  safedeploy.migrations.pg_restore:
    container: erpmax_postgres
    login_user: erpmax
    src: /srv/erpmax/backups/erpmax_orchestrator_20261123T101500123456Z.dump
    db: erpmax_restore_drill
    create: true
"""

RETURN = r"""
database:
  description: The target database.
  returned: always
  type: str
  sample: erpmax_orchestrator
backup_path:
  description: Path of the backup that was (or would be) restored.
  returned: always
  type: str
  sample: /var/backups/erpmax/erpmax_orchestrator_20261123T101500123456Z.dump
created:
  description: Whether the target database was (or would be) created.
  returned: always
  type: bool
  sample: false
cleaned:
  description: Whether existing objects were (or would be) replaced.
  returned: always
  type: bool
  sample: true
manifest:
  description: The manifest of the backup, as written by M(safedeploy.migrations.pg_backup).
  returned: success
  type: dict
  sample: {"database": "erpmax_orchestrator", "format": "custom", "sha256": "9f86d08...", "size": 1048576}
duration_seconds:
  description: Time spent restoring.
  returned: changed and not check mode
  type: float
  sample: 3.2
commands:
  description: The commands run, as argument lists; the password is never part of them.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/pg_restore", "--list", "/var/backups/erpmax/x.dump"]]
queries:
  description: The SQL statements run.
  returned: always
  type: list
  elements: str
  sample: ["SELECT 1 FROM pg_database WHERE datname = 'erpmax_orchestrator'"]
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import checksum_problems, read_manifest
from ansible_collections.safedeploy.migrations.plugins.module_utils._dump_archive import get_list_cmd
from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import ClientToolError, PgClient
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    ensure_psycopg,
    postgres_common_argument_spec,
    sql,
)

APPLICATION_NAME = "safedeploy.pg_restore"
USER_RELATIONS = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"""


def get_restore_cmd(params: dict, conninfo: str, archive: str | None) -> list[str]:
    args = ["--dbname=%s" % conninfo, "--exit-on-error"]
    if params["clean"]:
        args += ["--clean", "--if-exists"]
    if params["no_owner"]:
        args.append("--no-owner")
    # one transaction makes a failed restore leave the target untouched; parallel jobs cannot share one
    args.append("--jobs=%d" % params["jobs"] if params["jobs"] > 1 else "--single-transaction")
    return args + ([archive] if archive else [])


class RestoreManager:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.client = PgClient(module, self.params["container"], self.params["bin_dir"], APPLICATION_NAME)
        self.result = dict(
            changed=False, created=False, cleaned=False, commands=self.client.commands, queries=self.client.queries
        )

    def run(self) -> None:
        if self.params["jobs"] < 1:
            self.module.fail_json(msg="jobs must be at least 1")
        manifest, backup_path = self.verified_backup()
        database = self.params["login_db"] or manifest["database"]
        self.result.update(database=database, backup_path=backup_path, manifest=manifest)
        if self.client.container:
            self.client.check_container_running()
        try:
            self.read_table_of_contents(backup_path, manifest)
            exists = self.database_exists(database)
            self.check_target(database, exists)
        except ClientToolError as exc:
            self.fail("cannot inspect the restore target %s" % database, exc)
        self.result.update(changed=True, created=not exists, cleaned=self.params["clean"] and exists)
        if self.module.check_mode:
            self.module.exit_json(**self.result)

        started = time.monotonic()
        if not exists:
            self.create_database(database)
        try:
            self.restore(database, backup_path, manifest)
        except ClientToolError as exc:
            if not exists:
                self.drop_created_database(database)
            self.fail("restore of %s into database %s failed" % (backup_path, database), exc)
        self.result["duration_seconds"] = round(time.monotonic() - started, 3)
        self.module.exit_json(**self.result)

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

    def read_table_of_contents(self, backup_path: str, manifest: dict) -> None:
        if not self.client.container:
            self.client.run("pg_restore --list", "pg_restore", get_list_cmd(backup_path))
        elif manifest["format"] == "custom":
            self.client.run("pg_restore --list", "pg_restore", get_list_cmd(None), stdin_path=backup_path)

    def database_exists(self, database: str) -> bool:
        query = sql.SQL("SELECT 1 FROM pg_database WHERE datname = {}").format(sql.Literal(database))
        return bool(self.client.rows(self.params["maintenance_db"], query))

    def check_target(self, database: str, exists: bool) -> None:
        if not exists and not self.params["create"]:
            self.module.fail_json(
                msg="target database %s does not exist; set create: true to create it" % database, **self.result
            )
        if exists and not self.params["clean"]:
            relations = int(self.client.rows(database, sql.SQL(USER_RELATIONS))[0][0])
            if relations:
                self.module.fail_json(
                    msg="target database %s already holds %d tables, views or sequences; nothing was restored; "
                    "set clean: true to replace the objects of the backup" % (database, relations),
                    **self.result,
                )

    def create_database(self, database: str) -> None:
        try:
            self.client.rows(
                self.params["maintenance_db"], sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
            )
        except ClientToolError as exc:
            self.fail("cannot create database %s" % database, exc)

    def drop_created_database(self, database: str) -> None:
        try:
            self.client.rows(
                self.params["maintenance_db"], sql.SQL("DROP DATABASE {}").format(sql.Identifier(database))
            )
        except ClientToolError:
            self.module.warn("could not drop database %s created for the failed restore" % database)

    def restore(self, database: str, backup_path: str, manifest: dict) -> None:
        conninfo = self.client.conninfo(database)
        operation = "pg_restore"
        if not self.client.container:
            self.client.run(operation, "pg_restore", get_restore_cmd(self.params, conninfo, backup_path))
        elif manifest["format"] == "custom" and self.params["jobs"] == 1:
            self.client.run(
                operation, "pg_restore", get_restore_cmd(self.params, conninfo, None), stdin_path=backup_path
            )
        else:
            # directory archives and parallel jobs need the archive as a path inside the container
            scratch = self.client.scratch_path(".safedeploy-restore-%s" % os.path.basename(backup_path))
            self.client.docker(
                "copy the backup into the container", ["cp", backup_path, "%s:%s" % (self.client.container, scratch)]
            )
            try:
                self.client.run(operation, "pg_restore", get_restore_cmd(self.params, conninfo, scratch))
            finally:
                self.client.docker("remove the scratch copy", ["exec", self.client.container, "rm", "-rf", scratch])

    def fail(self, operation: str, exc: ClientToolError) -> None:
        self.module.fail_json(
            msg="%s: %s" % (operation, exc), cmd=exc.argv, rc=exc.rc, stderr=exc.stderr, **self.result
        )


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        maintenance_db=dict(type="str", default="postgres"),
        create=dict(type="bool", default=False),
        clean=dict(type="bool", default=False),
        no_owner=dict(type="bool", default=False),
        jobs=dict(type="int", default=1),
        container=dict(type="str"),
        bin_dir=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg(module)
    RestoreManager(module).run()


if __name__ == "__main__":
    main()
