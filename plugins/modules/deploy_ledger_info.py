#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_ledger_info
short_description: Read the deploy ledger of the application database
version_added: 0.1.0
description:
  - Reads O(state_schema)C(.deploys), the rows M(safedeploy.migrations.deploy_ledger) writes, newest first.
  - RV(last_succeeded) is the newest succeeded row of the environment, what a rollback returns to and what tells
    that a deploy has nothing to do.
  - A missing table is no error; RV(exists) is false and the lists are empty.
  - RV(deploy_locks) lists the deploy locks M(safedeploy.migrations.deploy_lock) holds, that is the deploys running
    now.
  - With O(version_table), RV(current_revisions) tells the database's alembic revision in the same connection, so
    that a deploy can see that nothing changed since its last success without starting alembic.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._state_schema
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
  - safedeploy.migrations._attributes.info_module
options:
  environment:
    description: Only rows and deploy locks of this environment.
    type: str
  kind:
    description: Only rows of these kinds; all when not set or empty.
    type: list
    elements: str
    choices: [deploy, rollback, restore]
  outcome:
    description: Only rows with this outcome. Does not apply to RV(last_succeeded).
    type: str
    choices: [running, succeeded, failed]
  deploy_id:
    description: Only the row with this id, a positive id.
    type: int
  limit:
    description: Most rows returned in RV(deploys). Does not apply to RV(last) and RV(last_succeeded).
    type: int
    default: 20
  version_table:
    description:
      - Alembic's version table to read RV(current_revisions) from; not read when not set.
    type: str
  version_table_schema:
    description: Schema of O(version_table); the search path finds it when not set.
    type: str
"""

EXAMPLES = r"""
- name: Read the ledger of production
  safedeploy.migrations.deploy_ledger_info:
    login_db: shop
    environment: production
    kind: [deploy, rollback]
  register: ledger

- name: Nothing to do when the last good deploy already brought this version
  ansible.builtin.meta: end_host
  when:
    - ledger.last_succeeded is not none
    - ledger.last_succeeded.app_version_to == app_version
    - ledger.last.outcome == 'succeeded'

- name: Roll back to the version of the last good deploy
  ansible.builtin.debug:
    msg: "roll back to {{ ledger.last_succeeded.app_version_to }} at {{ ledger.last_succeeded.revision_reached }}"
  when: ledger.last_succeeded is not none
"""

RETURN = r"""
exists:
  description: Whether the ledger table exists.
  type: bool
  returned: always
  sample: true
deploys:
  description: The rows matching the filters, newest (highest id) first, at most O(limit).
  type: list
  elements: dict
  returned: always
  contains: &entry
    id: {description: Id of the row., type: int, returned: always, sample: 42}
    kind: {description: "V(deploy), V(rollback) or V(restore).", type: str, returned: always, sample: deploy}
    environment: {description: Environment deployed to., type: str, returned: always, sample: production}
    app_version_from: {description: Application version before., type: str, returned: always, sample: 1.2.0}
    app_version_to: {description: Application version deployed., type: str, returned: always, sample: 1.3.0}
    revision_from: {description: Database revision before., type: str, returned: always, sample: "0003"}
    revision_to: {description: Target database revision., type: str, returned: always, sample: "0004"}
    revision_reached: {description: Database revision at the end., type: str, returned: always, sample: "0004"}
    plan_hash: {description: Plan hash of the migration., type: str, returned: always, sample: 9c1f0e}
    strategy: {description: How it was deployed., type: str, returned: always, sample: migrate-then-restart}
    rollback_method: {description: How it can be undone., type: str, returned: always, sample: downgrade}
    backup_path: {description: Backup taken before., type: str, returned: always, sample: /var/backups/shop.dump}
    backup_sha256: {description: sha256 of the backup., type: str, returned: always, sample: 5d41402abc4b2a76}
    deployed_by: {description: Who ran it., type: str, returned: always, sample: ops}
    started_at:
      description: Start, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2024-05-01T10:15:03.120000+00:00"
    finished_at:
      description: End, ISO 8601 in UTC; null while running.
      type: str
      returned: always
      sample: "2024-05-01T10:16:41.005000+00:00"
    outcome: {description: "V(running), V(succeeded) or V(failed).", type: str, returned: always, sample: succeeded}
    rescue:
      description: What the rescue did.
      type: str
      returned: always
      sample: downgraded to 0003; restarted 1.2.0
    message: {description: A sentence for people., type: str, returned: always, sample: null}
    details: {description: Anything else., type: dict, returned: always, sample: {}}
last:
  description: The newest row matching the filters, or null.
  type: dict
  returned: always
  contains: *entry
last_succeeded:
  description: The newest succeeded row matching O(environment), O(kind) and O(deploy_id), or null.
  type: dict
  returned: always
  contains: *entry
deploy_locks:
  description: The deploy locks held now, one per environment with a deploy running; empty when none is.
  type: list
  elements: dict
  returned: always
  contains:
    environment: {description: The environment., type: str, returned: always, sample: staging}
    holder: {description: Who deploys., type: str, returned: always, sample: awx job 12 by alice}
    app_version: {description: The release being deployed., type: str, returned: always, sample: 1.4.0}
    deploy_id: {description: "The ledger row of the deploy, once known.", type: int, returned: always, sample: 42}
    phase: {description: The phase of the last heartbeat., type: str, returned: always, sample: migration}
    acquired_at:
      description: When it was taken, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2024-05-01T10:15:03.120000+00:00"
    heartbeat_at:
      description: The last heartbeat, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2024-05-01T10:16:00.500000+00:00"
    silent_seconds:
      description: Seconds since the last heartbeat, on the database server's clock.
      type: float
      returned: always
      sample: 2.5
current_revisions:
  description: The revisions in O(version_table), sorted; empty when alembic never ran on this database.
  type: list
  elements: str
  returned: when O(version_table) is set
  sample: ["0004"]
executed_queries:
  description: The SQL run, in order, with its parameters as placeholders.
  type: list
  elements: str
  returned: always
  sample: ['SELECT * FROM "safedeploy"."deploys" WHERE environment = %(environment)s ORDER BY id DESC LIMIT %(limit)s']
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_state import read_current_revisions
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import list_query, lock_entry
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    table_identifier as lock_table_identifier,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import (
    KINDS,
    OUTCOMES,
    READER_APPLICATION_NAME,
    LedgerSession,
    filter_clause,
    newest_query,
    row_to_entry,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)

TABLES_EXIST_QUERY = (
    "SELECT to_regclass(%(table)s) IS NOT NULL AS exists, to_regclass(%(locks)s) IS NOT NULL AS locks_exist"
)


class LedgerReader(LedgerSession):
    """Read-only queries on one autocommit connection, kept as the audit trail."""

    def rows(self, what: str, query, params: dict) -> list:
        self.executed_queries.append(query if isinstance(query, str) else query.as_string(self.connection))
        try:
            return self.cursor.execute(query, params).fetchall()
        except psycopg.Error as exc:
            target = "the deploy ledger %s of %s" % (self.table_name, describe_target(self.params))
            self.module.fail_json(
                msg="reading %s from %s failed: %s" % (what, target, error_text(exc)),
                executed_queries=self.executed_queries,
            )

    def newest(self, what: str, limit: int, outcome: str | None) -> list:
        params = self.params
        where, values = filter_clause(params["deploy_id"], params["environment"], params["kind"], outcome)
        rows = self.rows(what, newest_query(self.schema, where), dict(values, limit=limit))
        return [row_to_entry(row) for row in rows]

    def deploy_locks(self) -> list:
        environment = self.params["environment"]
        rows = self.rows("the deploy locks", list_query(self.schema, environment), {"environment": environment})
        return [lock_entry(row) for row in rows]

    def current_revisions(self) -> list:
        table, schema = self.params["version_table"], self.params["version_table_schema"]
        self.executed_queries.append("SELECT version_num FROM %s.%s" % (schema or "<search_path>", table))
        try:
            return read_current_revisions(self.connection, table, schema)
        except psycopg.Error as exc:
            target = describe_target(self.params)
            self.module.fail_json(
                msg="reading the revision in %s of %s failed: %s" % (table, target, error_text(exc)),
                executed_queries=self.executed_queries,
            )

    def read(self) -> dict:
        result = dict(exists=False, deploys=[], last=None, last_succeeded=None, deploy_locks=[])
        # one round trip for both tables; either may be missing
        tables = {"table": self.table, "locks": lock_table_identifier(self.schema).as_string(self.connection)}
        found = self.rows("the tables", TABLES_EXIST_QUERY, tables)[0]
        result["exists"] = found["exists"]
        if found["locks_exist"]:
            result["deploy_locks"] = self.deploy_locks()
        if result["exists"]:
            result["deploys"] = self.newest("the deploys", self.params["limit"], self.params["outcome"])
            last = result["deploys"][:1]
            if not self.params["limit"]:
                last = self.newest("the last deploy", 1, self.params["outcome"])
            last_succeeded = self.newest("the last succeeded deploy", 1, "succeeded")
            result["last"] = last[0] if last else None
            result["last_succeeded"] = last_succeeded[0] if last_succeeded else None
        if self.params["version_table"]:
            result["current_revisions"] = self.current_revisions()
        return dict(result, executed_queries=self.executed_queries)


def validate(module: AnsibleModule) -> None:
    if module.params["limit"] < 0:
        module.fail_json(msg="limit must be 0 or more rows, got %s" % module.params["limit"])
    if module.params["deploy_id"] is not None and module.params["deploy_id"] < 1:
        module.fail_json(msg="deploy_id must be a positive id, got %s" % module.params["deploy_id"])
    if not module.params["state_schema"]:
        module.fail_json(msg="state_schema must not be empty")


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        state_schema=dict(type="str", default="safedeploy"),
        environment=dict(type="str"),
        kind=dict(type="list", elements="str", choices=list(KINDS)),
        outcome=dict(type="str", choices=list(OUTCOMES)),
        deploy_id=dict(type="int"),
        limit=dict(type="int", default=20),
        version_table=dict(type="str"),
        version_table_schema=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    validate(module)
    connection = connect(module, application_name=READER_APPLICATION_NAME)
    try:
        result = LedgerReader(module, connection).read()
    finally:
        connection.close()
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
