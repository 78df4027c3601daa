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
  state_schema:
    description:
      - Schema of the collection's own tables in the application database; the ledger is its table C(deploys).
    type: str
    default: safedeploy
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

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import (
    COLUMN_NAMES,
    COLUMN_OPTIONS,
    FINISHED_OUTCOMES,
    KINDS,
    OPTION_COLUMNS,
    TABLE_EXISTS_QUERY,
    WRITER_APPLICATION_NAME,
    LedgerSession,
    column_values,
    ddl_statements,
    entries_to_restore,
    entry_problems,
    expected_entry,
    finish_query,
    finished_changes,
    insert_query,
    misplaced_options,
    normalized_entry,
    row_to_entry,
    select_by_id_query,
    select_by_ids_query,
    sequence_query,
    upsert_query,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)


class DeployLedger(LedgerSession):
    """One transaction per run: create the table if missing, write, commit."""

    def __init__(self, module: AnsibleModule, connection) -> None:
        super().__init__(module, connection)
        self.check_mode = module.check_mode

    def where(self) -> str:
        return "the deploy ledger %s of %s" % (self.table_name, describe_target(self.params))

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, executed_queries=self.executed_queries)

    def run(self, what: str, query, params: dict | None = None, execute: bool = True) -> list:
        """Runs (or only lists) a statement; the audit trail keeps placeholders, never values."""
        self.executed_queries.append(query if isinstance(query, str) else query.as_string(self.connection))
        if not execute:
            return []
        try:
            self.cursor.execute(query, params)
            return self.cursor.fetchall() if self.cursor.description else []
        except psycopg.Error as exc:
            self.fail("%s %s failed: %s" % (what, self.where(), error_text(exc)))

    def commit(self) -> None:
        try:
            self.connection.commit()
        except psycopg.Error as exc:
            self.fail("committing the write to %s failed: %s" % (self.where(), error_text(exc)))

    def table_exists(self) -> bool:
        return self.run("looking for", TABLE_EXISTS_QUERY, {"table": self.table})[0]["exists"]

    def create_table(self) -> None:
        # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: only when missing.
        for statement in ddl_statements(self.schema):
            self.run("creating", statement, execute=not self.check_mode)

    def started(self) -> dict:
        values = column_values(self.params, OPTION_COLUMNS)
        values.setdefault("kind", KINDS[0])
        values["outcome"] = "running"
        if not self.table_exists():
            self.create_table()
        rows = self.run("inserting into", insert_query(self.schema, list(values)), values, not self.check_mode)
        if self.check_mode:
            entry = dict.fromkeys(COLUMN_NAMES)
            entry.update(values, details=self.params["details"])
        else:
            self.commit()
            entry = row_to_entry(rows[0])
        return dict(changed=True, deploy_id=entry["id"], entry=entry, diff=dict(before={}, after=entry))

    def finished(self) -> dict:
        deploy_id = self.params["deploy_id"]
        missing = "cannot finish deploy %s: no row with that id in %s" % (deploy_id, self.where())
        if not self.table_exists():
            self.fail(missing + " (the table does not exist)")
        rows = self.run("reading", select_by_id_query(self.schema, lock=not self.check_mode), {"deploy_id": deploy_id})
        if not rows:
            self.fail(missing)
        before = row_to_entry(rows[0])
        values = column_values(self.params, OPTION_COLUMNS)
        changes = finished_changes(before, self.params["outcome"], values)
        if not changes:
            return dict(changed=False, deploy_id=deploy_id, entry=before)
        params = dict(values, outcome=self.params["outcome"], deploy_id=deploy_id)
        rows = self.run("updating", finish_query(self.schema, list(values)), params, not self.check_mode)
        if self.check_mode:
            after = expected_entry(before, changes)
        else:
            self.commit()
            after = row_to_entry(rows[0])
        return dict(changed=True, deploy_id=deploy_id, entry=after, diff=dict(before=before, after=after))

    def restored(self) -> dict:
        wanted = [normalized_entry(entry) for entry in self.params["entries"]]
        exists = self.table_exists()
        current = {}
        if exists and wanted:
            query = select_by_ids_query(self.schema, lock=not self.check_mode)
            rows = self.run("reading", query, {"ids": [entry["id"] for entry in wanted]})
            current = {row["id"]: row_to_entry(row) for row in rows}
        to_restore = entries_to_restore(wanted, current)
        if not exists and to_restore:
            self.create_table()
        restored_ids = sorted(entry["id"] for entry in to_restore)
        if to_restore:
            params = {"entries": json.dumps(to_restore)}
            rows = self.run("putting rows back into", upsert_query(self.schema), params, not self.check_mode)
            restored_ids = restored_ids if self.check_mode else sorted(row["id"] for row in rows)
        if exists or to_restore:
            query = sequence_query(self.schema)
            self.run("moving the id sequence of", query, {"table": self.table}, not self.check_mode)
        if not self.check_mode:
            self.commit()
        diff = dict(
            before={"deploys": [current[i] for i in restored_ids if i in current]},
            after={"deploys": sorted((e for e in to_restore if e["id"] in restored_ids), key=lambda e: e["id"])},
        )
        return dict(changed=bool(restored_ids), restored_ids=restored_ids, diff=diff)

    def apply(self) -> dict:
        result = getattr(self, self.params["state"])()
        if not self.module._diff:
            result.pop("diff", None)
        return dict(result, executed_queries=self.executed_queries)


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
