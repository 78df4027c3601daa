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
  - With O(clean=true) the database ends as the backup holds it. Every schema but the system ones (and all they
    hold, tables, types, functions, sequences...), every extension created after initdb and every large object are
    dropped, the public schema is recreated as initdb makes it, then the backup's objects are restored; anything
    created after the backup, such as a failed migration's tables, types, schemas and extensions, is gone.
  - The drop and the restore are one transaction, run by C(psql) from the SQL that C(pg_restore) writes; a failure
    anywhere, even half-way through the data, leaves the database exactly as it was.
  - Objects outside any schema are not dropped first (roles, tablespaces, the database's own settings, comment and
    privileges, publications, subscriptions, event triggers, casts, procedural languages, foreign-data wrappers and
    servers, default privileges not tied to a schema); those the backup holds are dropped and recreated as
    C(pg_restore --clean --if-exists) does.
  - Into a new or empty database with O(jobs=1) the restore is one transaction as well.
  - A failed restore reports C(changed=false) unless it left something changed, a database it created and could
    not drop again, or part of a parallel restore into a database that was there before.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Verifies the backup, reads its table of contents and inspects the target database, then reports whether it
        would create it and, with O(clean=true), what it would drop (RV(dropped_schemas), RV(not_in_backup),
        RV(clean_statements)).
      - A directory backup restored through O(container) is copied into the container to be read, and removed.
  diff_mode:
    support: none
options:
  src:
    description:
      - Path of the backup (file or directory) or of its manifest (C(.json)).
      - The manifest must be one pg_backup writes, a JSON object of its kind that names the backup by a file name
        beside it, its database and its format; anything else is refused with the reason.
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
      - Replace everything the existing target holds with the backup, in one transaction; see the description.
      - Needed to restore into a database that already holds tables, for example for a rollback.
      - The login role must be able to drop every schema, extension and large object of the target (their owner, or
        a superuser) and to recreate the public schema (the database owner).
    type: bool
    default: false
  no_owner:
    description:
      - Do not restore ownership (C(pg_restore --no-owner)); objects then belong to O(login_user).
    type: bool
    default: false
  jobs:
    description:
      - Number of parallel restore jobs, for a restore into a new or empty database; with more than one that
        restore is not a single transaction (a database created for it is dropped again when it fails).
      - A restore with O(clean=true) into an existing database is one transaction, which parallel jobs cannot
        share, so more than one job is then refused.
    type: int
    default: 1
  container:
    description:
      - Name of a running container that runs the PostgreSQL server; C(pg_restore) (and C(psql) for a clean
        restore) then run inside it with C(docker exec). The connection options are seen from inside the container.
    type: str
  bin_dir:
    description:
      - Directory holding C(pg_restore) and C(psql) on the managed host; the E(PATH) is searched when not set.
    type: path
seealso:
  - module: safedeploy.migrations.pg_backup
"""

EXAMPLES = r"""
- name: Restore the backup taken before the failed deploy; what the migration created is dropped
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
  description: Whether the target database was (or would be) created; false when a failed restore dropped it again.
  returned: always
  type: bool
  sample: false
cleaned:
  description: Whether the existing database was (or would be) emptied before the backup was restored.
  returned: always
  type: bool
  sample: true
dropped_schemas:
  description:
    - The schemas of the target that were (or would be) dropped with everything in them before the restore; public
      is recreated empty, and the backup recreates its own.
  returned: when cleaned
  type: list
  elements: str
  sample: ["public", "safedeploy"]
dropped_extensions:
  description: The extensions of the target that were (or would be) dropped before the restore.
  returned: when cleaned
  type: list
  elements: str
  sample: ["pgcrypto"]
dropped_large_objects:
  description: How many large objects of the target were (or would be) removed before the restore.
  returned: when cleaned
  type: int
  sample: 0
not_in_backup:
  description: What the target held and the backup does not, so it is gone after the restore.
  returned: when cleaned
  type: dict
  contains:
    schemas:
      description: Schemas.
      type: list
      elements: str
    extensions:
      description: Extensions.
      type: list
      elements: str
    relations:
      description: Tables, views, materialized views, sequences and foreign tables, as C(schema.name).
      type: list
      elements: str
  sample: {"schemas": [], "extensions": [], "relations": ["public.invoices", "safedeploy.revision_checksums"]}
clean_statements:
  description:
    - The statements that empty the target, run (or to be run) in the restore's transaction before the backup's SQL.
  returned: when cleaned
  type: list
  elements: str
  sample: ["DROP SCHEMA IF EXISTS \"public\", \"safedeploy\" CASCADE",
           "CREATE SCHEMA public AUTHORIZATION pg_database_owner"]
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
  description:
    - The commands run, as argument lists; the password is never part of them.
    - A clean restore is two of them, C(pg_restore --file=-) whose output goes through the module into C(psql).
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/pg_restore", "--list", "/var/backups/erpmax/x.dump"]]
queries:
  description: The SQL statements run (in check mode only those that inspected the target).
  returned: always
  type: list
  elements: str
  sample: ["SELECT 1 FROM pg_database WHERE datname = 'erpmax_orchestrator'"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    ensure_psycopg,
    postgres_common_argument_spec,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._restore_manager import (
    RestoreManager,
    restore_argument_spec,
)


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(restore_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    ensure_psycopg(module)
    module.exit_json(**RestoreManager(module).run())


if __name__ == "__main__":
    main()
