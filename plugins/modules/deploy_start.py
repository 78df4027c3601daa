#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_start
short_description: Start a deploy under its deploy lock, with a ledger entry and a verified backup
version_added: 0.1.0
description:
  - The first steps of a deploy's database phase in one run, on one connection - the ledger entry
    (M(safedeploy.migrations.deploy_ledger) with C(state=started)), the heartbeat of the deploy lock with the entry's id
    and the phase C(backup) (the lock must still be this O(owner)'s), and the verified backup
    (M(safedeploy.migrations.pg_backup)) when O(backup) is set.
  - The heartbeat of the next phase is the caller's (M(safedeploy.migrations.deploy_lock) with C(state=held)) - under
    C(async) this module finishes its backup when the controller is gone, and a lock naming the migration then would
    say that a migration was interrupted.
  - The deploy lock must have been taken before (M(safedeploy.migrations.deploy_lock) with C(state=acquired)).
  - Nothing is written when the lock is no longer this O(owner)'s or the backup's options are wrong (its directory
    aside, created first). A later failure fails the module with what the steps before it returned, so that a rescue
    still finds the ledger entry (RV(deploy_id)) to finish; RV(lock_failed) says the lock was no longer this deploy's
    (or could not be renewed), when a rescue must not touch a database that another deploy owns now.
  - The roles' deploy runs it; M(safedeploy.migrations.deploy_ledger), M(safedeploy.migrations.pg_backup) and
    M(safedeploy.migrations.deploy_lock) stay for plays of your own.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._state_schema
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Reads the lock, reports the ledger entry and the backup it would write (as the three modules do in check mode)
        and writes nothing. A backup directory that does not exist yet is reported as to be created, with no backup
        checked.
  diff_mode:
    support: none
options:
  environment:
    description: The environment being deployed, for example V(staging); the deploy lock's and the ledger entry's.
    type: str
    required: true
  owner:
    description: The id the deploy lock was taken with (M(safedeploy.migrations.deploy_lock)'s O(owner)).
    type: str
    required: true
  deployed_by:
    description: Who deploys, recorded in the ledger entry.
    type: str
  app_version_from:
    description: The release that runs before the deploy.
    type: str
  app_version_to:
    description: The release being deployed.
    type: str
    required: true
  revision_from:
    description: The database's revision before the deploy.
    type: str
  revision_to:
    description: The revision the deploy migrates to.
    type: str
  plan_hash:
    description: The migration plan's hash (M(safedeploy.migrations.migration_plan_info)).
    type: str
  strategy:
    description: How the release is rolled, for example V(online) or V(stop_the_world).
    type: str
  rollback_method:
    description: How the deploy is undone, for example V(downgrade) or V(restore).
    type: str
  details:
    description: Free-form details stored with the ledger entry.
    type: dict
  backup:
    description:
      - The verified backup to take after the ledger entry, with the options of M(safedeploy.migrations.pg_backup);
        the connection is this module's, with O(backup.login_host) and O(backup.login_port) as seen by the backup
        tools. Omit it when there is nothing to migrate.
      - Its O(backup.labels) get the ledger entry's id as C(deploy_id).
      - O(backup.dest) is created with mode C(0700) when it does not exist.
    type: dict
    suboptions:
      dest:
        description: Directory that receives the backup and its manifest.
        type: path
        required: true
      login_host:
        description: Host of the database as the backup tools see it (inside O(backup.container) when set).
        type: str
      login_port:
        description: Port of the database as the backup tools see it.
        type: int
      format:
        description: V(custom) writes one file; V(directory) writes a directory and can dump in parallel.
        type: str
        choices: [custom, directory]
        default: custom
      jobs:
        description: Number of parallel dump jobs; more than one needs O(backup.format=directory).
        type: int
        default: 1
      compress:
        description: Compression level 0-9 passed to C(pg_dump --compress).
        type: int
      exclude_table_data:
        description: Tables (C(pg_dump) patterns) whose rows are left out.
        type: list
        elements: str
        default: [safedeploy.deploy_locks]
      container:
        description: Running container of the PostgreSQL server in which C(pg_dump) and C(pg_restore) run.
        type: str
      bin_dir:
        description: Directory holding C(pg_dump) and C(pg_restore) on the managed host.
        type: path
      labels:
        description: Free-form strings stored in the manifest.
        type: dict
        default: {}
      keep_last:
        description: Keep at least this many newest backups of the database (the new one included).
        type: int
      max_age:
        description: Prune backups older than this, as seconds or with a unit (V(12h), V(7d)).
        type: str
      required_space_ratio:
        description: Fail before dumping unless the free space is at least this times the database size.
        type: float
        default: 1.0
seealso:
  - module: safedeploy.migrations.deploy_lock
  - module: safedeploy.migrations.deploy_ledger
  - module: safedeploy.migrations.pg_backup
"""

EXAMPLES = r"""
- name: Start the deploy of 1.3.0
  safedeploy.migrations.deploy_start:
    login_db: shop
    environment: production
    owner: "{{ lock_owner }}"
    deployed_by: alice
    app_version_from: 1.2.0
    app_version_to: 1.3.0
    revision_from: "0003"
    revision_to: "0004"
    backup:
      dest: /var/backups/shop
      keep_last: 10
  register: deploy_record
"""

RETURN = r"""
deploy_id:
  description: Id of the ledger entry; null in check mode, or when the run failed before the entry was written.
  type: int
  returned: always
  sample: 42
entry:
  description: The ledger entry as M(safedeploy.migrations.deploy_ledger) returns it.
  type: dict
  returned: when the entry was written (would be, in check mode)
backup:
  description:
    - What M(safedeploy.migrations.pg_backup) returned for the backup (backup_path, sha256, size, manifest_path,
      manifest, pruned...); null without O(backup).
    - Set only once the backup is verified and published.
  type: dict
  returned: always
lock:
  description: The deploy lock after the heartbeat, as M(safedeploy.migrations.deploy_lock) returns it.
  type: dict
  returned: success
lock_failed:
  description: The deploy lock could not be renewed, or was no longer this deploy's; only in a failure.
  type: bool
  returned: failure
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup_manager import (
    BackupManager,
    backup_argument_spec,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    APPLICATION_NAME as LOCK_APPLICATION_NAME,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock_session import DeployLock
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger_writer import DeployLedger
from ansible_collections.safedeploy.migrations.plugins.module_utils._module_part import ModulePart, client_tool_params
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import (
    readable_argument_spec,
    show_public_values,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    ensure_psycopg,
    postgres_common_argument_spec,
)

LEDGER_OPTIONS = (
    "app_version_from",
    "app_version_to",
    "revision_from",
    "revision_to",
    "plan_hash",
    "strategy",
    "rollback_method",
    "deployed_by",
)


def ledger_params(params: dict) -> dict:
    """deploy_ledger's options for state=started: a deploy of this environment."""
    return dict(params, state="started", kind="deploy")


def lock_params(params: dict, phase: str, deploy_id: int | None) -> dict:
    """deploy_lock's options for state=held."""
    return dict(
        params,
        state="held",
        holder=params["deployed_by"],
        app_version=params["app_version_to"],
        phase=phase,
        deploy_id=deploy_id,
    )


def backup_params(params: dict, deploy_id: int | None) -> dict:
    """pg_backup's options: the connection's, the backup tools' host and port, the ledger id among the labels."""
    labels = dict(params["backup"]["labels"], deploy_id="" if deploy_id is None else str(deploy_id))
    return client_tool_params(params, dict(params["backup"], labels=labels))


class DeployStart:
    """The steps, each through the class of the module that does it alone, failures carrying what is done."""

    def __init__(self, module: AnsibleModule, connection):
        self.module = module
        self.params = module.params
        self.connection = connection
        self.done: dict = dict(changed=False, deploy_id=None, backup=None)

    def part(self, params: dict, **failure) -> ModulePart:
        return ModulePart(self.module, params, dict(self.done, **failure))

    def heartbeat(self, phase: str | None) -> dict:
        lock = self.part(lock_params(self.params, phase, self.done["deploy_id"]), lock_failed=True)
        return DeployLock(lock, self.connection).held()

    def run(self) -> dict:
        # nothing is written for a deploy whose lock is gone or whose backup options are wrong: the lock keeps its
        # phase until the entry exists, since a lock that names the backup means an entry to close (reconcile.yml)
        self.heartbeat(None)
        if self.params["backup"]:
            self.check_backup()
        entry = DeployLedger(self.part(ledger_params(self.params)), self.connection).started()
        self.done.update(changed=True, deploy_id=entry["deploy_id"], entry=entry["entry"])
        self.done["lock"] = self.heartbeat("backup")["lock"]
        if self.params["backup"]:
            self.done["backup"] = self.back_up()
        return self.done

    def check_backup(self) -> None:
        """The backup's options and directory, before the entry; the directory created 0700 when missing."""
        params = backup_params(self.params, None)
        if not os.path.isdir(params["dest"]):
            if self.module.check_mode:
                return
            os.makedirs(params["dest"], mode=0o700)
        BackupManager(self.part(params)).validate()

    def back_up(self) -> dict:
        params = backup_params(self.params, self.done["deploy_id"])
        if not os.path.isdir(params["dest"]):
            return dict(changed=True, backup_path=None, dest_created=params["dest"])
        return BackupManager(self.part(params)).run()


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    backup_options = dict(backup_argument_spec(), login_host=dict(type="str"), login_port=dict(type="int"))
    argument_spec.update(
        environment=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        details=dict(type="dict"),
        backup=dict(type="dict", options=backup_options),
        state_schema=dict(type="str", default="safedeploy"),
        **{name: dict(type="str") for name in LEDGER_OPTIONS},
    )
    argument_spec["app_version_to"]["required"] = True
    module = AnsibleModule(argument_spec=readable_argument_spec(argument_spec), supports_check_mode=True)
    show_public_values(module)
    ensure_psycopg(module)
    # pg_dump and pg_restore create files readable by the owner only
    os.umask(0o077)
    connection = connect(module, autocommit=False, application_name=LOCK_APPLICATION_NAME)
    try:
        result = DeployStart(module, connection).run()
    finally:
        connection.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
