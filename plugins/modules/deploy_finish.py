#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_finish
short_description: Finish a deploy, rollback or restore - its ledger entry, then its deploy lock given back
version_added: 0.1.0
description:
  - The last database steps of a deploy, a rollback or a restore in one run, on one connection - the ledger entry
    finished with its O(outcome) (M(safedeploy.migrations.deploy_ledger) with C(state=finished)), then the deploy lock
    given back (M(safedeploy.migrations.deploy_lock) with C(state=released)).
  - Without O(deploy_id) (the run failed before its entry was written) only the lock is given back.
  - A ledger write that fails fails the module and keeps the lock - the next deploy then waits for the lease, takes the
    lock over and closes the entry, instead of finding a free lock beside an entry that says C(running).
  - A lock that cannot be given back (the database went away after the ledger write) is a warning, not a failure - the
    outcome is recorded, and the lock is taken over once it has been silent for its lease. A lock that is no longer
    this O(owner)'s is left to its holder.
  - The roles' deploy, rollback and restore run it; M(safedeploy.migrations.deploy_ledger) and
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
      - Reads the entry and the lock, reports the entry as it would be and whether the lock would be given back, and
        writes nothing.
  diff_mode:
    support: full
    details:
      - The ledger entry before and after.
options:
  environment:
    description: The environment of the deploy lock, for example V(staging).
    type: str
    required: true
  owner:
    description: The id the deploy lock was taken with (M(safedeploy.migrations.deploy_lock)'s O(owner)).
    type: str
    required: true
  deploy_id:
    description: The ledger entry to finish, a positive id. Omit it when the run failed before writing one.
    type: int
  outcome:
    description: How the run ended.
    type: str
    required: true
    choices: [succeeded, failed]
  revision_reached:
    description: The database revision at the end.
    type: str
  backup_path:
    description: Path of the backup taken before.
    type: str
  backup_sha256:
    description: sha256 of that backup.
    type: str
  rescue:
    description: What the rescue did, for example V(downgraded 0004 -> 0003; restarted 1.2.0).
    type: str
  msg:
    description: A sentence for people, such as the error that failed the run; stored in the column C(message).
    type: str
  details:
    description: Keys merged into the entry's details.
    type: dict
seealso:
  - module: safedeploy.migrations.deploy_start
  - module: safedeploy.migrations.deploy_ledger
  - module: safedeploy.migrations.deploy_lock
"""

EXAMPLES = r"""
- name: Record the deploy of 1.3.0 and give the deploy lock back
  safedeploy.migrations.deploy_finish:
    login_db: shop
    environment: production
    owner: "{{ lock_owner }}"
    deploy_id: "{{ deploy_record.deploy_id }}"
    outcome: succeeded
    revision_reached: "0004"
"""

RETURN = r"""
deploy_id:
  description: Id of the ledger entry finished; null without O(deploy_id).
  type: int
  returned: always
  sample: 42
entry:
  description:
    - The entry as M(safedeploy.migrations.deploy_ledger) returns it (in check mode as it would be); null without
      O(deploy_id).
  type: dict
  returned: always
released:
  description: Whether the deploy lock was this owner's and is given back (would be, in check mode).
  type: bool
  returned: always
  sample: true
executed_queries:
  description: The ledger's SQL run (that would run in check mode), with its parameters as placeholders.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    APPLICATION_NAME as LOCK_APPLICATION_NAME,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    MIN_LEASE_SECONDS,
    option_problems,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock_session import DeployLock
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import FINISHED_OUTCOMES
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger_writer import DeployLedger
from ansible_collections.safedeploy.migrations.plugins.module_utils._module_part import ModulePart, StepFailed
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)

ENTRY_OPTIONS = ("revision_reached", "backup_path", "backup_sha256", "rescue", "msg")


def ledger_params(params: dict) -> dict:
    """deploy_ledger's options for state=finished; the lock's environment is no column to write."""
    return dict(params, state="finished", environment=None)


def lock_params(params: dict) -> dict:
    """deploy_lock's options for state=released."""
    return dict(params, state="released", holder=None, app_version=None, phase=None, wait=0, lease=MIN_LEASE_SECONDS)


class DeployFinish:
    """The ledger, then the lock; a ledger failure keeps the lock, a lock failure is a warning."""

    def __init__(self, module: AnsibleModule, connection):
        self.module = module
        self.params = module.params
        self.connection = connection
        self.done: dict = dict(changed=False, deploy_id=None, entry=None, released=False, executed_queries=[])

    def run(self) -> dict:
        if self.params["deploy_id"] is not None:
            self.finish_entry()
        self.release_lock()
        return self.done

    def finish_entry(self) -> None:
        ledger = DeployLedger(ModulePart(self.module, ledger_params(self.params), self.done), self.connection)
        # the audit trail so far goes with a failure too
        self.done["executed_queries"] = ledger.executed_queries
        finished = ledger.finished()
        if not self.module._diff:
            finished.pop("diff", None)
        self.done.update(finished)

    def release_lock(self) -> None:
        part = ModulePart(self.module, lock_params(self.params), self.done, raise_failure=True)
        try:
            self.done["released"] = DeployLock(part, self.connection).released()["changed"]
        except StepFailed as failure:
            self.warn_kept(failure.result["msg"])
        except psycopg.Error as exc:
            # the connection broke, and rolling the failed statement back failed too
            self.warn_kept(
                "giving back the deploy lock of %s failed: %s" % (self.params["environment"], error_text(exc))
            )

    def warn_kept(self, why: str) -> None:
        self.module.warn(
            "%s; the outcome is recorded, and the lock is taken over once it has been silent for its lease" % why
        )


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        environment=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        deploy_id=dict(type="int"),
        outcome=dict(type="str", required=True, choices=list(FINISHED_OUTCOMES)),
        details=dict(type="dict"),
        state_schema=dict(type="str", default="safedeploy"),
        **{name: dict(type="str") for name in ENTRY_OPTIONS},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    problems = option_problems(lock_params(module.params))
    if problems:
        module.fail_json(msg="; ".join(problems))
    connection = connect(module, autocommit=False, application_name=LOCK_APPLICATION_NAME)
    try:
        result = DeployFinish(module, connection).run()
    finally:
        connection.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
