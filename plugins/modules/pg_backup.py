#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: Write a verified backup of one PostgreSQL database
version_added: 0.1.0
author: safedeploy.migrations maintainers (@safedeploy)
description:
  - Dumps one database with C(pg_dump) in custom or directory format under a temporary name, verifies the archive,
    writes a JSON manifest beside it and only then gives both their final names; a failure at any step, even a disk
    that fills while the manifest is written, publishes neither and leaves no partial file.
  - "Verification: the sha256 of the archive, the table of contents (C(pg_restore --list)) and a full read of every
    data block (C(pg_restore -f /dev/null)); the table of contents alone accepts truncated and bit-flipped archives."
  - A custom archive is checked while it is dumped, with no extra pass over the disk. The output of pg_dump flows
    once through the module into the file, the sha256 and a reading C(pg_restore).
  - The verified backup is flushed to disk (fsync) before it gets its final name, so it survives a crash of the host
    during the migration that follows.
  - Checks the free space of O(dest) against the database size before dumping.
  - Removes the partial files that killed runs of pg_backup left for the database in O(dest), found by their exact
    names (RV(removed_partials)); not while another pg_backup run writes in O(dest), whose files they could be.
  - Prunes older backups of the same database by O(keep_last) and O(max_age) after the new backup is verified.
    Retention removes only what pg_backup wrote itself, a manifest C(<name>.json) of this database whose C(name) is
    a file name pg_backup gives (C(<database>_<UTC timestamp>.dump) or C(.dir)) and is no link, and that backup. Any
    other C(.json) file in O(dest) is left alone, warned about and listed in RV(retention_skipped).
  - Files and manifests are created with mode C(0600), directories with C(0700). Every file is created new, never
    through an existing file or link.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Connects, reads the database size and checks the free space, then reports the backup it would write, the
        backups it would prune and the partial files it would remove, without dumping.
  diff_mode:
    support: none
options:
  login_db:
    description:
      - The database to back up.
    required: true
    aliases: [db, database]
    type: str
  dest:
    description:
      - Existing directory that receives the backup and its manifest.
      - It must belong to the user that runs the module and be writable by nobody else (no group or other write
        permission); anyone else who can write there could plant links or replace backups, so it is refused.
    type: path
    required: true
  format:
    description:
      - V(custom) writes one file (C(pg_dump -Fc)); V(directory) writes a directory and can dump in parallel.
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description:
      - Number of parallel dump jobs; more than one needs O(format=directory).
    type: int
    default: 1
  compress:
    description:
      - Compression level 0-9 passed to C(pg_dump --compress); the pg_dump default when not set.
    type: int
  exclude_table_data:
    description:
      - Tables (C(pg_dump) patterns) whose rows are left out; their definitions are kept, so a restore recreates them
        empty.
      - The default leaves out the rows of the deploy lock (M(safedeploy.migrations.deploy_lock)), which are the state
        of the deploy running now, not data; a restore must not bring back a lock an old deploy held.
    type: list
    elements: str
    default: [safedeploy.deploy_locks]
  container:
    description:
      - Name of a running container that runs the PostgreSQL server; C(pg_dump) and C(pg_restore) then run inside it
        with C(docker exec), so the client always matches the server version.
      - The connection options are then seen from inside the container; an empty O(login_host) uses its Unix socket.
    type: str
  bin_dir:
    description:
      - Directory holding C(pg_dump) and C(pg_restore) on the managed host; the E(PATH) is searched when not set.
    type: path
  labels:
    description:
      - Free-form strings stored in the manifest, for example the application version and the Alembic revision.
    type: dict
    default: {}
  keep_last:
    description:
      - Keep at least this many newest backups of the database in O(dest) (the new one included).
      - With O(max_age), a backup is pruned only when it is beyond the newest O(keep_last) B(and) older than O(max_age).
    type: int
  max_age:
    description:
      - Prune backups of the database older than this, as seconds or with a unit (V(90m), V(12h), V(7d), V(2w)).
      - The backup just written is never pruned.
    type: str
  required_space_ratio:
    description:
      - Fail before dumping unless the free space of O(dest) is at least this times the database size
        (C(pg_database_size)). Lower it when compression is known to work well; V(0) disables the check; a
        negative value is refused.
    type: float
    default: 1.0
seealso:
  - module: safedeploy.migrations.pg_restore
notes:
  - The result names the backup RV(backup_path) rather than C(path), so Ansible does not replace RV(size) with the
    size of a directory entry.
  - Only backups with a manifest are found by retention and accepted by M(safedeploy.migrations.pg_restore).
"""

EXAMPLES = r"""
- name: Back up the application database before migrating
  safedeploy.migrations.pg_backup:
    login_host: db.internal
    login_user: erpmax
    login_password: "{{ vault_db_password }}"
    db: erpmax_orchestrator
    dest: /var/backups/erpmax
    labels:
      app_version: "1.4.0"
      alembic_revision: 3f2a1c9d8e7b
    keep_last: 10
    max_age: 14d
  register: backup

- name: Back up through the postgres container of a compose stack, in parallel
  safedeploy.migrations.pg_backup:
    container: erpmax_postgres
    login_user: erpmax
    db: erpmax_orchestrator
    dest: /srv/erpmax/backups
    format: directory
    jobs: 2
"""

RETURN = r"""
backup_path:
  description: Path of the backup (a file for V(custom), a directory for V(directory)); in check mode the path it
    would have.
  returned: always
  type: str
  sample: /var/backups/erpmax/erpmax_orchestrator_20261123T101500123456Z.dump
sha256:
  description: sha256 of the backup file, or of the sorted list of file digests of a directory backup.
  returned: changed and not check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size:
  description: Size of the backup in bytes (all files of a directory backup).
  returned: changed and not check mode
  type: int
  sample: 1048576
manifest_path:
  description: Path of the JSON manifest beside the backup.
  returned: always
  type: str
  sample: /var/backups/erpmax/erpmax_orchestrator_20261123T101500123456Z.dump.json
manifest:
  description: The manifest that was written.
  returned: changed and not check mode
  type: dict
  contains:
    database:
      description: The database that was dumped.
      type: str
      sample: erpmax_orchestrator
    format:
      description: V(custom) or V(directory).
      type: str
      sample: custom
    sha256:
      description: As RV(sha256).
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    size:
      description: As RV(size).
      type: int
      sample: 1048576
    files:
      description: sha256 of every file of a directory backup, by relative path; empty for V(custom).
      type: dict
      sample: {"toc.dat": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}
    toc_entries:
      description: Number of entries in the archive's table of contents.
      type: int
      sample: 42
    server_version:
      description: Version of the server that was dumped.
      type: str
      sample: "15.18"
    pg_dump_version:
      description: Version of the pg_dump that wrote the archive.
      type: str
      sample: "15.18"
    labels:
      description: As O(labels).
      type: dict
      sample: {"app_version": "1.4.0"}
    created_at:
      description: UTC time the dump started.
      type: str
      sample: "2026-11-23T10:15:00.123456Z"
    duration_seconds:
      description: Time spent dumping and verifying.
      type: float
      sample: 12.5
pruned:
  description: Backups removed (or that would be removed in check mode) by O(keep_last) and O(max_age).
  returned: always
  type: list
  elements: str
  sample: [/var/backups/erpmax/erpmax_orchestrator_20261101T101500000000Z.dump]
retention_skipped:
  description:
    - The C(.json) files in O(dest) that retention left alone, because pg_backup did not write them as a manifest
      of this database; each is also a warning. Manifests of other databases are not listed.
    - Empty when neither O(keep_last) nor O(max_age) is set.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /var/backups/erpmax/notes.json
    reason:
      description: Why it was left alone, said of the file.
      type: str
      sample: "is not a pg_backup manifest: it holds a list, not an object"
removed_partials:
  description:
    - Partial files of the database that killed runs of pg_backup left in O(dest), removed (or that would be
      removed in check mode) before dumping.
  returned: always
  type: list
  elements: str
  sample: [/var/backups/erpmax/.erpmax_orchestrator_20261122T101500123456Z.dump.partial]
database_size:
  description: C(pg_database_size) of the database when the backup started.
  returned: always
  type: int
  sample: 8388608
commands:
  description: The commands run, as argument lists; the password is never part of them.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/pg_dump", "--format=custom", "--file=/var/backups/erpmax/.x.partial", "--dbname=host=db"]]
queries:
  description: The SQL statements run.
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_database_size(current_database()), current_setting('server_version')"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup_manager import (
    BackupManager,
    backup_argument_spec,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    ensure_psycopg,
    postgres_common_argument_spec,
)


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec["login_db"].update(required=True)
    argument_spec.update(backup_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    ensure_psycopg(module)
    # pg_dump and pg_restore create files readable by the owner only
    os.umask(0o077)
    module.exit_json(**BackupManager(module).run())


if __name__ == "__main__":
    main()
