#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_restore
short_description: Restore a deploy's backup under its deploy lock, keeping the ledger's newer rows
version_added: 0.1.0
description:
  - A database restore as a deploy's rescue, a rollback or a restore does it, in one run - the ledger's rows read
    (M(safedeploy.migrations.deploy_ledger_info)), the verified backup restored over the application database in one
    transaction (M(safedeploy.migrations.pg_restore) with C(clean=true)), the rows the backup's older copy of the
    ledger lacks put back (M(safedeploy.migrations.deploy_ledger) with C(state=restored)), and the deploy lock, whose
    rows the backup leaves out, taken back under this O(owner) (M(safedeploy.migrations.deploy_lock) with
    C(state=acquired), no wait).
  - A failure fails the module with what was done before it - RV(database_restored) says whether the database is the
    backup's now, so that a caller knows whether the release that ran before may start on it. RV(lock_failed) says
    another deploy took the lock while the restore ran.
  - The roles' deploy rescue, rollback and restore run it; M(safedeploy.migrations.pg_restore) and the ledger and lock
    modules stay for plays of your own.
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
      - Reads the ledger, verifies the backup and inspects the database as M(safedeploy.migrations.pg_restore) does in
        check mode, reads the lock, and writes nothing.
  diff_mode:
    support: none
options:
  environment:
    description: The environment of the deploy lock, for example V(staging).
    type: str
    required: true
  owner:
    description: The id the deploy lock was taken with (RV(safedeploy.migrations.deploy_lock#module:owner)).
    type: str
    required: true
  holder:
    description: Who runs the restore, for the lock taken back.
    type: str
  app_version:
    description: The release the lock taken back names.
    type: str
  phase:
    description: The phase the lock taken back names, for example V(rescue) or V(rollback).
    type: str
  deploy_id:
    description: The ledger entry of this run, a positive id, for the lock taken back.
    type: int
  lease:
    description: The deploy lock's lease in seconds (M(safedeploy.migrations.deploy_lock)'s O(lease)).
    type: int
    default: 600
  restore:
    description:
      - The backup to restore, with options of M(safedeploy.migrations.pg_restore); the target is O(login_db), emptied
        first (C(clean=true)). O(restore.login_host) and O(restore.login_port) are the server as the restore tools see
        it, for example inside O(restore.container).
    type: dict
    required: true
    suboptions:
      src:
        description: Path of the backup or of its manifest, written by M(safedeploy.migrations.pg_backup).
        type: path
        required: true
      login_host:
        description: Host of the database as the restore tools see it (inside O(restore.container) when set).
        type: str
      login_port:
        description: Port of the database as the restore tools see it.
        type: int
      container:
        description: Running container of the PostgreSQL server in which C(pg_restore) and C(psql) run.
        type: str
      bin_dir:
        description: Directory holding C(pg_restore) and C(psql) on the managed host.
        type: path
      maintenance_db:
        description: Database to connect to when checking for the target.
        type: str
        default: postgres
      no_owner:
        description: Do not restore ownership (C(pg_restore --no-owner)).
        type: bool
        default: false
seealso:
  - module: safedeploy.migrations.pg_restore
  - module: safedeploy.migrations.deploy_ledger
  - module: safedeploy.migrations.deploy_lock
"""

EXAMPLES = r"""
- name: Restore the backup taken before the deploy
  safedeploy.migrations.deploy_restore:
    login_db: shop
    environment: production
    owner: "{{ lock.owner }}"
    phase: rescue
    restore:
      src: "{{ deploy_record.backup.manifest_path }}"
      container: shop-postgres-1
      login_host: ""
  register: restored
"""

RETURN = r"""
kept:
  description: How many rows of the ledger were read before the restore.
  type: int
  returned: always
  sample: 42
database_restored:
  description: Whether the database holds the backup now (false in check mode and when the restore failed).
  type: bool
  returned: always
  sample: true
restore:
  description: What M(safedeploy.migrations.pg_restore) returned (backup_path, duration_seconds, dropped_schemas...).
  type: dict
  returned: when the restore ran
restored_ids:
  description: Ids of the ledger's rows put back (that would be, in check mode).
  type: list
  elements: int
  returned: success
  sample: [41, 42]
lock:
  description: The deploy lock taken back, as M(safedeploy.migrations.deploy_lock) returns it.
  type: dict
  returned: success
lock_failed:
  description: Another deploy took the deploy lock while the restore ran; only in a failure.
  type: bool
  returned: failure
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import option_problems
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
from ansible_collections.safedeploy.migrations.plugins.module_utils._restore_manager import (
    APPLICATION_NAME,
    RestoreManager,
    restore_argument_spec,
)

RESTORE_OPTIONS = ("src", "container", "bin_dir", "maintenance_db", "no_owner")


def restore_params(params: dict) -> dict:
    """pg_restore's options: the application database emptied and replaced, by the tools at their host and port."""
    return dict(client_tool_params(params, params["restore"]), clean=True, create=False, jobs=1)


def ledger_params(params: dict, entries: list) -> dict:
    """deploy_ledger's options for state=restored."""
    return dict(params, state="restored", entries=entries)


def lock_params(params: dict) -> dict:
    """deploy_lock's options for taking the lock back at once."""
    return dict(params, state="acquired", wait=0)


class DeployRestore:
    """The ledger read, the restore, the rows put back, the lock taken back; failures carry what is done."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.done: dict = dict(changed=False, kept=0, database_restored=False)

    def part(self, params: dict, **failure) -> ModulePart:
        return ModulePart(self.module, params, dict(self.done, **failure))

    def run(self) -> dict:
        kept = self.with_connection(lambda connection: DeployLedger(self.part(self.params), connection).all_entries())
        self.done["kept"] = len(kept)
        # no session of this module holds a row while the restore drops the tables
        restore = RestoreManager(self.part(restore_params(self.params))).run()
        self.done.update(changed=restore["changed"], restore=restore, database_restored=not self.module.check_mode)
        self.with_connection(lambda connection: self.put_back(connection, kept))
        return self.done

    def with_connection(self, step):
        connection = connect(self.module, autocommit=False, application_name=APPLICATION_NAME)
        try:
            return step(connection)
        finally:
            connection.close()

    def put_back(self, connection, kept: list) -> None:
        ledger = DeployLedger(self.part(ledger_params(self.params, kept)), connection)
        self.done["restored_ids"] = ledger.restored()["restored_ids"]
        lock = DeployLock(self.part(lock_params(self.params), lock_failed=True), connection)
        self.done["lock"] = lock.acquired()["lock"]


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    restore_options = {name: spec for name, spec in restore_argument_spec().items() if name in RESTORE_OPTIONS}
    restore_options.update(login_host=dict(type="str"), login_port=dict(type="int"))
    argument_spec.update(
        environment=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        holder=dict(type="str"),
        app_version=dict(type="str"),
        phase=dict(type="str"),
        deploy_id=dict(type="int"),
        lease=dict(type="int", default=600),
        restore=dict(type="dict", required=True, options=restore_options),
        state_schema=dict(type="str", default="safedeploy"),
    )
    module = AnsibleModule(argument_spec=readable_argument_spec(argument_spec), supports_check_mode=True)
    show_public_values(module)
    problems = option_problems(lock_params(module.params))
    if problems:
        module.fail_json(msg="; ".join(problems))
    ensure_psycopg(module)
    module.exit_json(**DeployRestore(module).run())


if __name__ == "__main__":
    main()
