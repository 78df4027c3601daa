#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_ledger
short_description: Record deploys, rollbacks and restores in a ledger table of the application database
version_added: 0.1.0
description:
  - Writes one row per deploy, rollback or restore to O(state_schema)C(.deploys) in the database of O(login_db),
    with versions, revisions, plan hash, strategy, backup, who, when, the outcome and what a rescue did.
  - V(started) inserts a row with C(outcome=running) and returns its RV(deploy_id); V(finished) sets
    C(finished_at=now()), the O(outcome) and the other options given on that row.
  - V(restored) puts back rows read earlier with M(safedeploy.migrations.deploy_ledger_info). A database restore
    replaces the table with the backup's older copy, so the rows written after the backup are lost; this writes
    them again by id and moves the identity sequence past the highest id.
  - Creates the schema and the table when they are missing, in the same transaction as the write.
  - Read the ledger with M(safedeploy.migrations.deploy_ledger_info).
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
      - Reads the ledger and writes nothing. V(started) returns RV(deploy_id=null) and C(changed=true);
        RV(executed_queries) lists the statements that would run.
  diff_mode:
    support: full
    details:
      - The row before and after, for V(restored) the rows put back.
options:
  state:
    description:
      - V(started) inserts a row, V(finished) completes the row O(deploy_id), V(restored) puts back O(entries).
    type: str
    required: true
    choices: [started, finished, restored]
  deploy_id:
    description: The row to finish, the RV(deploy_id) that V(started) returned. Required with O(state=finished).
    type: int
  outcome:
    description: How it ended. Required with O(state=finished); V(started) always records C(running).
    type: str
    choices: [succeeded, failed]
  kind:
    description: What the row records. V(deploy) when not set with O(state=started).
    type: str
    choices: [deploy, rollback, restore]
  environment:
    description: The environment deployed to, for example V(staging). Required with O(state=started).
    type: str
  app_version_from:
    description: The application version running before.
    type: str
  app_version_to:
    description: The application version being deployed. Required with O(state=started).
    type: str
  revision_from:
    description: The database revision before.
    type: str
  revision_to:
    description: The target database revision.
    type: str
  revision_reached:
    description: The database revision at the end, which differs from O(revision_to) when it failed half-way.
    type: str
  plan_hash:
    description: The RV(safedeploy.migrations.migration_plan_info#module:plan_hash) of the migration.
    type: str
  strategy:
    description: How the deploy went, for example V(migrate-then-restart).
    type: str
  rollback_method:
    description: How it can be undone, V(downgrade) or V(restore) as the plan says.
    type: str
  backup_path:
    description: Path of the backup taken before.
    type: str
  backup_sha256:
    description: sha256 of that backup.
    type: str
  deployed_by:
    description: Who ran it, for example the AWX user.
    type: str
  rescue:
    description: What the rescue did, for example V(downgraded to 0003; restarted 1.2.0).
    type: str
  msg:
    description:
      - A sentence for people, such as the error that failed the deploy; stored in the column C(message) (Ansible
        reserves the option name C(message)).
    type: str
  details:
    description:
      - Anything else, stored as C(jsonb). With O(state=finished) its keys are merged into the row's details.
    type: dict
  entries:
    description:
      - Rows as RV(safedeploy.migrations.deploy_ledger_info#module:deploys) returned them, to put back by id.
        Required with O(state=restored).
      - Each needs C(id), C(kind), C(environment), C(app_version_to), C(started_at) and C(outcome); other columns
        left out are written as null.
    type: list
    elements: dict
notes:
  - Needs PostgreSQL 10 or later. The login role needs C(CREATE) on the database only while the table is missing.
  - Run O(state=restored) right after the database restore, before any new row is started.
"""

EXAMPLES = r"""
- name: Record the start of the deploy
  safedeploy.migrations.deploy_ledger:
    login_db: shop
    state: started
    environment: production
    app_version_from: 1.2.0
    app_version_to: 1.3.0
    revision_from: "0003"
    revision_to: "0004"
    plan_hash: "{{ plan.plan_hash }}"
    rollback_method: "{{ plan.rollback_method }}"
    backup_path: "{{ backup.path }}"
    backup_sha256: "{{ backup.sha256 }}"
    deployed_by: "{{ awx_user_name | default('ops') }}"
  register: ledger

- name: Record the end
  safedeploy.migrations.deploy_ledger:
    login_db: shop
    state: finished
    deploy_id: "{{ ledger.deploy_id }}"
    outcome: succeeded
    revision_reached: "0004"

- name: Read the ledger before restoring the database
  safedeploy.migrations.deploy_ledger_info:
    login_db: shop
    limit: 100
  register: ledger_before_restore

- name: Put back the rows the restore took away
  safedeploy.migrations.deploy_ledger:
    login_db: shop
    state: restored
    entries: "{{ ledger_before_restore.deploys }}"
"""

RETURN = r"""
deploy_id:
  description: Id of the row; null for O(state=started) in check mode.
  type: int
  returned: when O(state) is V(started) or V(finished)
  sample: 42
entry:
  description:
    - The row after the write (in check mode as it would be, without the timestamps the server sets), every column.
  type: dict
  returned: when O(state) is V(started) or V(finished)
  sample:
    id: 42
    kind: deploy
    environment: production
    app_version_from: 1.2.0
    app_version_to: 1.3.0
    revision_from: "0003"
    revision_to: "0004"
    revision_reached: "0004"
    plan_hash: 9c1f0e
    strategy: null
    rollback_method: downgrade
    backup_path: /var/backups/shop/shop-20240501T101500.dump
    backup_sha256: 5d41402abc4b2a76b9719d911017c592
    deployed_by: ops
    started_at: "2024-05-01T10:15:03.120000+00:00"
    finished_at: "2024-05-01T10:16:41.005000+00:00"
    outcome: succeeded
    rescue: null
    message: null
    details: {}
restored_ids:
  description: Ids of the rows put back because they were missing or different (that would be, in check mode).
  type: list
  elements: int
  returned: when O(state=restored)
  sample: [41, 42]
executed_queries:
  description: The SQL run (that would run in check mode), in order, with its parameters as placeholders.
  type: list
  elements: str
  returned: always
  sample:
    - SELECT to_regclass(%(table)s) IS NOT NULL AS exists
    - UPDATE "safedeploy"."deploys" SET finished_at = now(), outcome = %(outcome)s::text WHERE id = %(deploy_id)s
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import (
    COLUMN_OPTIONS,
    FINISHED_OUTCOMES,
    KINDS,
    WRITER_APPLICATION_NAME,
    entry_problems,
    misplaced_options,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger_writer import DeployLedger
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    postgres_common_argument_spec,
)


def validate(module: AnsibleModule) -> None:
    misplaced = misplaced_options(module.params["state"], module.params)
    if misplaced:
        module.fail_json(msg="state=%s does not take %s" % (module.params["state"], ", ".join(misplaced)))
    problems = entry_problems(module.params["entries"]) if module.params["state"] == "restored" else []
    if problems:
        module.fail_json(msg="cannot put the entries back: %s" % "; ".join(problems))
    if module.params["deploy_id"] is not None and module.params["deploy_id"] < 1:
        module.fail_json(msg="deploy_id must be a positive id, got %s" % module.params["deploy_id"])
    if not module.params["state_schema"]:
        module.fail_json(msg="state_schema must not be empty")


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        state=dict(type="str", required=True, choices=["started", "finished", "restored"]),
        state_schema=dict(type="str", default="safedeploy"),
        deploy_id=dict(type="int"),
        outcome=dict(type="str", choices=list(FINISHED_OUTCOMES)),
        kind=dict(type="str", choices=list(KINDS)),
        details=dict(type="dict"),
        entries=dict(type="list", elements="dict"),
    )
    argument_spec.update(
        {option: dict(type="str") for name, option in COLUMN_OPTIONS.items() if name not in ("kind", "details")},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[
            ("state", "started", ["environment", "app_version_to"]),
            ("state", "finished", ["deploy_id", "outcome"]),
            ("state", "restored", ["entries"]),
        ],
        supports_check_mode=True,
    )
    show_public_values(module)
    validate(module)
    connection = connect(module, autocommit=False, application_name=WRITER_APPLICATION_NAME)
    try:
        result = DeployLedger(module, connection).apply()
    finally:
        connection.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
