#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Hold the deploy lock of an environment in the application database
version_added: 0.1.0
description:
  - One deploy at a time per environment, across controllers, AWX jobs and people. The lock is a row of
    O(state_schema)C(.deploy_locks) naming its O(owner), who holds it, the release and the phase; a session-level
    advisory lock would not outlive one module run, and a deploy spans many.
  - V(acquired) takes the lock, waiting up to O(wait) seconds while another deploy holds it. A holder silent for more
    than O(lease) seconds (no heartbeat) with none of its long steps connected to the database (the migration, a
    backup, a restore, a pre-flight) is dead, for example a killed C(ansible-playbook); its lock is taken over and
    returned as RV(taken_over), so the caller can close the holder's ledger entry.
  - V(held) is the heartbeat, with the current O(phase) and the ledger's O(deploy_id); it fails when the lock is no
    longer this owner's, since another deploy judged it dead and took over.
  - V(released) deletes the row if it is this owner's.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details: Reads the lock and writes nothing. V(acquired) does not wait and returns the other holder as RV(lock).
  diff_mode:
    support: none
options:
  state:
    description: Take, refresh or give back the lock.
    type: str
    required: true
    choices: [acquired, held, released]
  environment:
    description: The environment the lock is for, for example V(staging); not empty.
    type: str
    required: true
  owner:
    description: An id unique to this deploy run, not empty; every state of one run passes the same.
    type: str
    required: true
  holder:
    description: Who deploys, for the messages of the deploys that wait, for example V(awx job 12 by alice).
    type: str
  app_version:
    description: The release being deployed.
    type: str
  phase:
    description: What the deploy does now, for example V(backup), V(migration) or V(roll).
    type: str
  deploy_id:
    description: The ledger row of this deploy, once there is one, a positive id. With O(state=held).
    type: int
  wait:
    description: Seconds V(acquired) waits for another holder to finish before it fails naming it.
    type: int
    default: 0
  lease:
    description:
      - Seconds without a heartbeat after which a holder with no long step connected is dead. Longer than the
        longest gap between two heartbeats of a live deploy.
      - At least V(10). Every heartbeat is a task of its own, so a live deploy is silent for seconds between two
        even when it does nothing slow; a shorter lease lets a second deploy judge it dead and take its lock, and with
        V(0) two deploys that start together both acquire it.
    type: int
    default: 600
  state_schema:
    description: Schema of the collection's own tables in the application database.
    type: str
    default: safedeploy
"""

EXAMPLES = r"""
- name: Take the deploy lock of staging
  safedeploy.migrations.deploy_lock:
    state: acquired
    environment: staging
    owner: "{{ deploy_lock_owner }}"
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}"
    app_version: 1.4.0
    phase: plan
    wait: 300
    login_db: shop
  register: lock

- name: Heartbeat before the migration
  safedeploy.migrations.deploy_lock:
    state: held
    environment: staging
    owner: "{{ deploy_lock_owner }}"
    phase: migration
    deploy_id: 42
    login_db: shop

- name: Give the lock back
  safedeploy.migrations.deploy_lock:
    state: released
    environment: staging
    owner: "{{ deploy_lock_owner }}"
    login_db: shop
"""

RETURN = r"""
acquired:
  description: Whether this owner holds the lock now. False in check mode.
  type: bool
  returned: always
  sample: true
lock:
  description: The lock row after the call; in check mode the row as it is, possibly another holder's; null if none.
  type: dict
  returned: always
  contains: &row
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
waited_for:
  description: The other holder V(acquired) waited for (as last seen), or null when the lock was free.
  type: dict
  returned: always
  contains: *row
taken_over:
  description: The dead holder whose lock V(acquired) took over, or null.
  type: dict
  returned: always
  contains: *row
waited_seconds:
  description: Seconds V(acquired) waited.
  type: float
  returned: always
  sample: 12.4
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    APPLICATION_NAME,
    WORKING_SESSIONS_QUERY,
    ddl_statements,
    delete_query,
    describe_holder,
    heartbeat_query,
    insert_query,
    is_stale,
    lock_entry,
    option_problems,
    select_query,
    table_identifier,
    take_over_query,
    working_patterns,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import TABLE_EXISTS_QUERY
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    dict_row,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)

POLL_SECONDS = 1.0


def lock_result(changed=False, acquired=False, lock=None, waited_seconds=0.0, waited_for=None, taken_over=None):
    """Every state returns the same keys; rows are passed through lock_entry."""
    return dict(
        changed=changed,
        acquired=acquired,
        lock=lock_entry(lock) if lock else None,
        waited_seconds=waited_seconds,
        waited_for=lock_entry(waited_for) if waited_for else None,
        taken_over=lock_entry(taken_over) if taken_over else None,
    )


class DeployLock:
    """The lock row of one environment; every attempt is one short transaction, so no lock is held while waiting."""

    def __init__(self, module: AnsibleModule, connection) -> None:
        self.module = module
        self.params = module.params
        self.connection = connection
        self.schema = self.params["state_schema"]
        self.key = dict(environment=self.params["environment"], token=self.params["owner"])

    def fail(self, msg: str, **result) -> None:
        self.module.fail_json(msg=msg, **result)

    def query(self, what: str, statement, params: dict | None = None) -> list:
        try:
            with self.connection.cursor(row_factory=dict_row) as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            self.connection.rollback()
            self.fail(
                "%s the deploy lock of %s in %s failed: %s"
                % (what, self.params["environment"], describe_target(self.params), error_text(exc))
            )

    def table_exists(self) -> bool:
        table = table_identifier(self.schema).as_string(self.connection)
        return self.query("looking for", TABLE_EXISTS_QUERY, {"table": table})[0]["exists"]

    def working_sessions(self) -> list:
        return self.query("reading the sessions of", WORKING_SESSIONS_QUERY, {"patterns": working_patterns()})

    def attempt(self) -> tuple:
        """One transaction: take a free or stale lock, or return the live holder. (ours, holder, sessions, stale)"""
        values = dict(
            self.key, holder=self.params["holder"], app_version=self.params["app_version"], phase=self.params["phase"]
        )
        rows = self.query("taking", insert_query(self.schema), values)
        if rows:
            return rows[0], None, [], False
        held = self.query("reading", select_query(self.schema, lock=True), self.key)
        if not held:
            # released between the two statements: the next attempt takes it
            return None, None, [], False
        holder = held[0]
        if holder["token"] == self.params["owner"]:
            # a retried task of this same run
            refreshed = self.query(
                "refreshing", heartbeat_query(self.schema), dict(self.key, phase=None, deploy_id=None)
            )
            return refreshed[0], None, [], False
        sessions = self.working_sessions()
        if not is_stale(holder, self.params["lease"], sessions):
            return None, holder, sessions, False
        rows = self.query("taking over", take_over_query(self.schema), dict(values, stale_token=holder["token"]))
        return (rows[0] if rows else None), holder, sessions, True

    def acquired(self) -> dict:
        if self.module.check_mode:
            return self.read_only()
        # as deploy_ledger: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists
        if not self.table_exists():
            for statement in ddl_statements(self.schema):
                self.query("creating the table of", statement)
        self.connection.commit()
        started = time.monotonic()
        waited_for = None
        while True:
            ours, holder, sessions, stale = self.attempt()
            self.connection.commit()
            waited = round(time.monotonic() - started, 1)
            if ours is not None:
                return lock_result(True, True, ours, waited, None if stale else waited_for, holder if stale else None)
            if holder is not None:
                waited_for = holder
                if waited >= self.params["wait"]:
                    self.fail(
                        "%s is being deployed by %s. Waited %.0f s (wait: %s). If that deploy is dead, its lock is "
                        "taken over once it has been silent for the lease (%s s) with nothing of it connected; "
                        "a shorter lease (deploy_lock_lease) takes over sooner."
                        % (
                            self.params["environment"],
                            describe_holder(holder, sessions),
                            waited,
                            self.params["wait"],
                            self.params["lease"],
                        ),
                        **lock_result(lock=holder, waited_seconds=waited, waited_for=holder),
                    )
            time.sleep(POLL_SECONDS)

    def read_only(self) -> dict:
        row = self.query("reading", select_query(self.schema, lock=False), self.key) if self.table_exists() else []
        free = not row or row[0]["token"] == self.params["owner"]
        return lock_result(changed=free, lock=row[0] if row else None, waited_for=None if free else row[0])

    def held(self) -> dict:
        if not self.table_exists():
            rows = []
        elif self.module.check_mode:
            rows = [
                row
                for row in self.query("reading", select_query(self.schema, lock=False), self.key)
                if row["token"] == self.params["owner"]
            ]
        else:
            params = dict(self.key, phase=self.params["phase"], deploy_id=self.params["deploy_id"])
            rows = self.query("refreshing", heartbeat_query(self.schema), params)
            self.connection.commit()
        if not rows and not self.module.check_mode:
            self.fail_lost()
        return lock_result(acquired=bool(rows), lock=rows[0] if rows else None)

    def fail_lost(self) -> None:
        current = self.query("reading", select_query(self.schema, lock=False), self.key) if self.table_exists() else []
        self.fail(
            "the deploy lock of %s is no longer this deploy's, %s; stopping before anything else changes"
            % (
                self.params["environment"],
                "it is held by " + describe_holder(current[0], []) if current else "nobody holds it",
            )
        )

    def released(self) -> dict:
        rows = []
        if self.table_exists():
            if self.module.check_mode:
                rows = self.query("reading", select_query(self.schema, lock=False), self.key)
                rows = [row for row in rows if row["token"] == self.params["owner"]]
            else:
                rows = self.query("releasing", delete_query(self.schema), self.key)
                self.connection.commit()
        return lock_result(changed=bool(rows))


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        state=dict(type="str", required=True, choices=["acquired", "held", "released"]),
        environment=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        holder=dict(type="str"),
        app_version=dict(type="str"),
        phase=dict(type="str"),
        deploy_id=dict(type="int"),
        wait=dict(type="int", default=0),
        lease=dict(type="int", default=600),
        state_schema=dict(type="str", default="safedeploy"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    problems = option_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    connection = connect(module, autocommit=False, application_name=APPLICATION_NAME)
    try:
        result = getattr(DeployLock(module, connection), module.params["state"])()
    finally:
        connection.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
