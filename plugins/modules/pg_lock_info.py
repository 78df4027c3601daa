#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_lock_info
short_description: Report who blocks whom, long and idle transactions, pg_dump and advisory locks in PostgreSQL
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity) and C(pg_locks) and reports the sessions that get in the way of a schema migration.
  - RV(blocking) lists lock waits found with C(pg_blocking_pids()), one entry per waiting and blocking backend pair.
  - RV(long_transactions), RV(idle_in_transaction), RV(dumps_running) and RV(advisory_locks) cover the whole
    cluster, each session names its database; RV(locks) and RV(invalid_indexes) cover the database of O(login_db).
  - RV(pooler) tells whether the connection goes through a transaction-pooling proxy such as PgBouncer with
    C(pool_mode = transaction), where session settings and advisory locks do not survive the transaction.
  - The module's own connection is excluded and uses the C(application_name) C(safedeploy.pg_lock_info).
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
  - safedeploy.migrations._attributes.info_module
options:
  fail_on_transaction_pooling:
    description:
      - Fail when RV(pooler.transaction_pooling) is true, after reading everything else.
    type: bool
    default: false
  min_xact_age:
    description:
      - Transactions open for at least this many seconds are reported in RV(long_transactions).
    type: float
    default: 60
  query_length:
    description:
      - Longest query text returned, in characters; longer texts are cut and end with C(...).
      - Whitespace runs are folded into one space. V(0) returns no query text at all.
      - Secrets are redacted before the text is cut, see the notes.
    type: int
    default: 200
  relations:
    description:
      - Relation names, optionally schema-qualified (C(public.orders)), whose locks RV(locks) reports.
      - Resolved like C(to_regclass()), with the search path of O(login_user); names that do not exist are listed
        in RV(missing_relations). A name the server cannot read as a relation name fails the module naming it
        (newer servers may list it in RV(missing_relations) instead).
      - When not set, RV(locks) lists every relation-level lock of the database; an empty list reports none.
    type: list
    elements: str
requirements:
  - pglast on the managed host to redact query text (without it a text that hints at a secret is hidden whole).
notes:
  - The login role should be a superuser or a member of C(pg_read_all_stats) (C(pg_monitor)); other roles see
    sessions of other roles without query, state or client address.
  - Needs PostgreSQL 10 or later. Wait times count from C(pg_locks.waitstart) on PostgreSQL 14 and later, from the
    start of the waiting statement before.
  - C(pg_blocking_pids()) reports heavyweight locks only (not LWLocks or buffer pins). It also names backends queued
    ahead for a conflicting lock, a parallel query by its leader, and a prepared transaction as pid V(0). A row lock
    wait shows as C(transactionid) without a relation.
  - RV(invalid_indexes) also lists an index that C(CREATE INDEX CONCURRENTLY) or C(REINDEX CONCURRENTLY) is still
    building; after the build it lists only the leftovers of an interrupted one.
  - The pooler check reads C(pg_backend_pid()) in three transactions on the module's connection while a second
    connection to the same target holds a transaction open during the second read. Directly or through a
    session pool the pid never changes and the second connection never gets it. Through a transaction pool with
    more than one server connection the pid changes; with PgBouncer's default LIFO reuse the second connection
    is handed the first backend, which is proof even with a pool of one.
  - The views are read one after another, so a session may appear in one list and be gone from the next.
  - The query text of other sessions is returned with its secrets redacted, read with the pglast scanner, so quoted,
    C(E'') and dollar-quoted literals count alike. A literal after C(PASSWORD) (C(CREATE ROLE), C(ALTER USER),
    C(OPTIONS (password ...))) or C(CONNECTION), every literal among the arguments of pgcrypto, C(crypt()),
    C(dblink) and C(set_config()) calls, a literal holding a conninfo password or a URL with C(user:password@), and a
    comment naming a password or secret become C('<redacted>'). A text that does not scan, such as one
    C(track_activity_query_size) cut inside a literal, is hidden whole; so is, without pglast, any text that hints at
    a secret.
"""

EXAMPLES = r"""
- name: Who is in the way of the migration?
  safedeploy.migrations.pg_lock_info:
    login_host: db.example.com
    login_user: migrator
    login_password: "{{ vault_migrator_password }}"
    login_db: shop
    relations: [orders, public.customers]
    min_xact_age: 30
    fail_on_transaction_pooling: true
  register: pg_locks

- name: Stop before DDL while a pg_dump runs or sessions already queue for the tables
  ansible.builtin.assert:
    that:
      - pg_locks.dumps_running | selectattr('database', 'equalto', 'shop') | list | length == 0
      - pg_locks.locks | rejectattr('granted') | list | length == 0
    fail_msg: "blocked: {{ pg_locks.blocking | map(attribute='blocking_pid') | unique | list }}"

- name: Stop while an interrupted CREATE INDEX CONCURRENTLY left an invalid index
  ansible.builtin.assert:
    that: pg_locks.invalid_indexes | length == 0
    fail_msg: "drop or rebuild: {{ pg_locks.invalid_indexes | map(attribute='index') | list }}"

- name: Show who holds the migration advisory lock
  ansible.builtin.debug:
    msg: "{{ pg_locks.advisory_locks | selectattr('granted') | map(attribute='application_name') | list }}"
"""

RETURN = r"""
database: {description: Database the module connected to., type: str, returned: always, sample: shop}
server_version: {description: Version of the server., type: str, returned: always, sample: "15.8"}
blocking:
  description: One entry per waiting backend and each backend it waits for, longest wait first.
  type: list
  elements: dict
  returned: always
  contains:
    blocked_pid: {description: Backend waiting for a lock., type: int, returned: always, sample: 4242}
    blocking_pid: {description: "Blocker; 0 is a prepared transaction.", type: int, returned: always, sample: 4200}
    locktype: {description: Kind of the awaited lock., type: str, returned: always, sample: relation}
    mode: {description: Mode of the awaited lock., type: str, returned: always, sample: AccessExclusiveLock}
    relation: {description: "Awaited relation, if in this database.", type: str, returned: always, sample: orders}
    wait_seconds: {description: Seconds the backend has waited., type: float, returned: always, sample: 12.5}
    blocked:
      description: Session of RV(blocking[].blocked_pid).
      type: dict
      returned: always
      contains: &session
        pid: {description: "Backend process id; null if none matched.", type: int, returned: always, sample: 4200}
        database: {description: Database of the session., type: str, returned: always, sample: shop}
        user: {description: Role of the session., type: str, returned: always, sample: app}
        application_name: {description: Name the client gave., type: str, returned: always, sample: gunicorn}
        client_addr: {description: "Client IP; null for a Unix socket.", type: str, returned: always, sample: 10.0.3.7}
        backend_type: {description: Kind of backend., type: str, returned: always, sample: client backend}
        state: {description: State of the session., type: str, returned: always, sample: idle in transaction}
        wait_event_type: {description: "What it waits for, if anything.", type: str, returned: always, sample: Lock}
        wait_event: {description: The wait event., type: str, returned: always, sample: relation}
        xact_age_seconds: {description: Seconds the transaction is open., type: float, returned: always, sample: 75.2}
        state_age_seconds: {description: Seconds since the state changed., type: float, returned: always, sample: 70.1}
        query:
          description: Last query, secrets redacted and shortened to O(query_length); null with O(query_length=0).
          type: str
          returned: always
          sample: ALTER ROLE app PASSWORD '<redacted>'
    blocking:
      description: "Session of RV(blocking[].blocking_pid); all null for a prepared transaction."
      type: dict
      returned: always
      contains: *session
root_blocking_pids:
  description: Backends that block others and wait for nobody, the heads of the chains in RV(blocking).
  type: list
  elements: int
  returned: always
  sample: [4200]
long_transactions:
  description: Sessions whose transaction is open for at least O(min_xact_age) seconds, oldest first.
  type: list
  elements: dict
  returned: always
  contains: *session
idle_in_transaction:
  description: Sessions idle inside an open transaction, of any age, longest idle first.
  type: list
  elements: dict
  returned: always
  contains: *session
dumps_running:
  description: Sessions of C(pg_dump) or C(pg_dumpall), found by their C(application_name).
  type: list
  elements: dict
  returned: always
  contains: *session
advisory_locks:
  description: Advisory locks held or awaited and the session of their holder or waiter.
  type: list
  elements: dict
  returned: always
  contains:
    <<: *session
    key: {description: "The bigint key; null for two keys.", type: int, returned: always, sample: 7243010002}
    key_pair: {description: "The two integer keys, or null.", type: list, elements: int, returned: always, sample: null}
    mode: {description: Lock mode., type: str, returned: always, sample: ExclusiveLock}
    granted: {description: Whether the lock is held (not awaited)., type: bool, returned: always, sample: true}
locks:
  description:
    - Relation-level locks of the database on O(relations) (all when not set), held or awaited, and their session.
  type: list
  elements: dict
  returned: always
  contains:
    <<: *session
    relation: {description: Locked relation., type: str, returned: always, sample: orders}
    mode: {description: Lock mode., type: str, returned: always, sample: RowExclusiveLock}
    granted: {description: Whether the lock is held (not awaited)., type: bool, returned: always, sample: false}
    wait_seconds: {description: "Seconds waited; null when granted.", type: float, returned: always, sample: 3.1}
invalid_indexes:
  description: Indexes of the database with C(pg_index.indisvalid = false), by schema and name.
  type: list
  elements: dict
  returned: always
  contains:
    schema: {description: Schema of the index., type: str, returned: always, sample: public}
    index: {description: Name of the index., type: str, returned: always, sample: orders_code_idx}
    table: {description: Table of the index., type: str, returned: always, sample: orders}
    size_bytes: {description: Size of the index on disk., type: int, returned: always, sample: 16384}
    definition:
      description: The index definition from C(pg_get_indexdef()).
      type: str
      returned: always
      sample: CREATE UNIQUE INDEX orders_code_idx ON public.orders USING btree (code)
pooler:
  description: Whether the module's connection goes through a transaction-pooling proxy.
  type: dict
  returned: always
  contains:
    transaction_pooling:
      description:
        - True when the backend pid changed between transactions of the connection, or the second connection got
          one of its backends. Advisory locks and session settings are unsafe then.
      type: bool
      returned: always
      sample: true
    backend_pids:
      description: C(pg_backend_pid()) of the connection in each of its three transactions.
      type: list
      elements: int
      returned: always
      sample: [4301, 4302, 4301]
    probe_backend_pid:
      description: C(pg_backend_pid()) of the second connection inside its open transaction; null if it failed.
      type: int
      returned: always
      sample: 4301
    detail:
      description: The evidence in one sentence.
      type: str
      returned: always
      sample: "backend pid changed between transactions on one connection: 4301, 4302"
missing_relations:
  description: Names in O(relations) that are not a relation of the database.
  type: list
  elements: str
  returned: always
  sample: [orders_archive]
summary:
  description: Counts of the lists.
  type: dict
  returned: always
  contains:
    blocked_sessions: {description: Distinct waiters in RV(blocking)., type: int, returned: always, sample: 1}
    blocking_sessions: {description: Distinct blockers in RV(blocking)., type: int, returned: always, sample: 1}
    max_wait_seconds: {description: Longest wait in RV(blocking)., type: float, returned: always, sample: 12.5}
    long_transactions: {description: Entries in RV(long_transactions)., type: int, returned: always, sample: 2}
    idle_in_transaction: {description: Entries in RV(idle_in_transaction)., type: int, returned: always, sample: 1}
    dumps_running: {description: Entries in RV(dumps_running)., type: int, returned: always, sample: 0}
    advisory_locks: {description: Entries in RV(advisory_locks)., type: int, returned: always, sample: 1}
    locks_granted: {description: Held locks in RV(locks)., type: int, returned: always, sample: 3}
    locks_waiting: {description: Awaited locks in RV(locks)., type: int, returned: always, sample: 1}
    invalid_indexes: {description: Entries in RV(invalid_indexes)., type: int, returned: always, sample: 1}
queries:
  description: The SQL the module ran, with its parameters, in order.
  type: list
  elements: str
  returned: always
  sample: ["SELECT current_database() AS database, current_setting('server_version') AS server_version, ..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_info import (
    APPLICATION_NAME,
    LockInfoReader,
    transaction_pooling_message,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    postgres_common_argument_spec,
)


def validate(module: AnsibleModule) -> None:
    if module.params["min_xact_age"] < 0:
        module.fail_json(msg=f"min_xact_age must be 0 or more seconds, got {module.params['min_xact_age']}")
    if module.params["query_length"] < 0:
        module.fail_json(msg=f"query_length must be 0 or more characters, got {module.params['query_length']}")


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        fail_on_transaction_pooling=dict(type="bool", default=False),
        min_xact_age=dict(type="float", default=60),
        query_length=dict(type="int", default=200),
        relations=dict(type="list", elements="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    validate(module)
    params = module.params
    connection = connect(module, application_name=APPLICATION_NAME)
    try:
        reader = LockInfoReader(module, connection, APPLICATION_NAME)
        result = reader.read(params["relations"], params["min_xact_age"], params["query_length"])
        result["pooler"] = reader.pooler()
        result["queries"] = reader.queries
    finally:
        connection.close()
    if params["fail_on_transaction_pooling"] and result["pooler"]["transaction_pooling"]:
        module.fail_json(
            msg=transaction_pooling_message(describe_target(params, reader.database), result["pooler"]), **result
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
