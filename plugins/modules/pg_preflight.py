#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_preflight
short_description: Clear the way for a PostgreSQL migration by policy - wait for, fail on, cancel or terminate sessions
version_added: 0.1.0
description:
  - Reads what M(safedeploy.migrations.pg_lock_info) reads and applies a policy to each finding that stands in the way
    of a migration touching O(relations).
  - Session findings are the sessions holding or awaiting a lock on O(relations) (C(lock_holders)), transactions
    older than O(min_xact_age) (C(long_transactions)), sessions idle in a transaction (C(idle_in_transaction)) and
    running C(pg_dump) or C(pg_dumpall) sessions (C(dumps_running)), all in the database of O(login_db).
  - A session in several findings gets the most decisive of their policies (V(fail), V(terminate), V(cancel),
    V(wait)). Cancel and terminate only reach sessions whose transaction is at least O(signal_min_age) seconds old;
    younger ones are waited for.
  - V(wait) polls every O(wait_interval) seconds until no session stands in the way, or fails naming the sessions
    still there after O(wait_timeout) seconds.
  - A session whose transaction began after the previous read is no longer waited for, so a worker that runs one
    short transaction after the other on O(relations) does not hold the wait up.
  - Findings whose policy is V(warn) are reported as Ansible warnings, in the standard C(warnings) of the result.
  - A session too young to signal is waited for, and signalled once its transaction reaches O(signal_min_age)
    during the wait.
  - The module's own connections are never counted; they use the C(application_name) C(safedeploy.pg_preflight).
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Reads only; never signals a session and never waits. RV(actions) lists what would be done with a C(would_)
        prefix and C(changed) predicts whether a session would be cancelled or terminated.
  diff_mode:
    support: none
options:
  relations:
    description:
      - Relation names, optionally schema-qualified, that the migration touches, for example C(summary.relations)
        of RV(safedeploy.migrations.migration_plan_info#module:summary).
      - A name the server cannot read as a relation name fails the module naming it; one that does not exist is
        listed in RV(findings.missing_relations).
    type: list
    elements: str
    required: true
  policies:
    description:
      - What to do about each finding. Session findings take V(wait), V(fail), V(cancel), V(terminate) or
        V(ignore); V(invalid_indexes) and V(transaction_pooling) take V(fail), V(warn) or V(ignore);
        V(invalid_indexes) also takes V(drop).
    type: dict
    suboptions:
      lock_holders:
        description: Sessions holding or awaiting a lock on O(relations).
        type: str
        choices: [wait, fail, cancel, terminate, ignore]
        default: wait
      long_transactions:
        description: Sessions whose transaction is open for at least O(min_xact_age) seconds.
        type: str
        choices: [wait, fail, cancel, terminate, ignore]
        default: wait
      idle_in_transaction:
        description: Sessions idle inside an open transaction. V(cancel) does not end these; use V(terminate).
        type: str
        choices: [wait, fail, cancel, terminate, ignore]
        default: wait
      dumps_running:
        description: Sessions of C(pg_dump) or C(pg_dumpall), found by their C(application_name).
        type: str
        choices: [wait, fail, cancel, terminate, ignore]
        default: wait
      invalid_indexes:
        description:
          - Invalid indexes of the database, such as left by an interrupted C(CREATE INDEX CONCURRENTLY).
          - V(drop) drops, with C(DROP INDEX CONCURRENTLY), those named in O(planned_indexes), which the migration
            builds again and could not while the invalid one holds the name; an index still being built (listed in
            C(pg_stat_progress_create_index)) is left alone. Other invalid indexes are warnings.
        type: str
        choices: [fail, warn, ignore, drop]
        default: warn
      transaction_pooling:
        description: The connection goes through a transaction-pooling proxy, where advisory locks are unsafe.
        type: str
        choices: [fail, warn, ignore]
        default: fail
  planned_indexes:
    description:
      - Indexes, by name or C(schema.name), that the migration builds concurrently, for example
        C(summary.concurrent_indexes) of RV(safedeploy.migrations.migration_plan_info#module:summary); what
        O(policies.invalid_indexes=drop) may drop.
    type: list
    elements: str
    default: []
  min_xact_age:
    description: Transactions open for at least this many seconds are C(long_transactions).
    type: float
    default: 60
  signal_min_age:
    description: Cancel or terminate only sessions whose transaction is at least this many seconds old.
    type: float
    default: 60
  allow_applications:
    description: Sessions with one of these C(application_name) values are never counted.
    type: list
    elements: str
    default: []
  wait_timeout:
    description: Seconds to wait for the sessions to go before failing.
    type: float
    default: 60
  wait_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 2
notes:
  - The query text of the sessions is never returned, only their pid, application, user, state and transaction age.
  - The login role needs C(pg_signal_backend) (or superuser) to cancel or terminate sessions of other roles, and
    C(pg_read_all_stats) to see them fully.
"""

EXAMPLES = r"""
- name: Wait up to 2 minutes for sessions in the way of the migration, terminate old pg_dump runs
  safedeploy.migrations.pg_preflight:
    login_host: db.example.com
    login_user: migrator
    login_password: "{{ vault_migrator_password }}"
    login_db: shop
    relations: "{{ plan.summary.relations }}"
    policies:
      dumps_running: terminate
      idle_in_transaction: terminate
    signal_min_age: 300
    allow_applications: [pgwatch]
    wait_timeout: 120
  register: preflight

- name: Refuse at once when anyone holds a lock on the tables
  safedeploy.migrations.pg_preflight:
    relations: [orders, public.customers]
    policies:
      lock_holders: fail
      long_transactions: ignore
      idle_in_transaction: ignore
      invalid_indexes: fail
"""

RETURN = r"""
cleared:
  description:
    - Whether nothing stands in the way anymore.
  type: bool
  returned: always
  sample: true
findings:
  description: The sessions of each finding at the first read, after O(allow_applications), plus the state findings.
  type: dict
  returned: always
  contains:
    lock_holders:
      description: Sessions holding or awaiting a lock on O(relations).
      type: list
      elements: dict
      returned: always
      contains: &session
        pid: {description: Backend process id., type: int, returned: always, sample: 4200}
        application_name: {description: Name the client gave., type: str, returned: always, sample: gunicorn}
        user: {description: Role of the session., type: str, returned: always, sample: app}
        state: {description: State of the session., type: str, returned: always, sample: idle in transaction}
        xact_age_seconds: {description: Seconds the transaction is open., type: float, returned: always, sample: 75.2}
        relation: {description: "Relations of O(relations) it locks, or null.", type: str, returned: always, sample: t}
    long_transactions:
      description: Transactions open for at least O(min_xact_age) seconds.
      type: list
      elements: dict
      returned: always
      contains: *session
    idle_in_transaction:
      description: Sessions idle inside a transaction.
      type: list
      elements: dict
      returned: always
      contains: *session
    dumps_running:
      description: Sessions of C(pg_dump) or C(pg_dumpall).
      type: list
      elements: dict
      returned: always
      contains: *session
    invalid_indexes:
      description: Invalid indexes as RV(safedeploy.migrations.pg_lock_info#module:invalid_indexes) returns them.
      type: list
      elements: dict
      returned: always
      sample: [{schema: public, index: orders_code_idx, table: orders}]
    transaction_pooling: {description: A transaction pool was seen., type: bool, returned: always, sample: false}
    missing_relations:
      description: Names in O(relations) that do not exist (yet).
      type: list
      elements: str
      returned: always
      sample: []
remaining:
  description: The sessions still in the way at the end, with their decided action and findings.
  type: list
  elements: dict
  returned: always
  sample: [{pid: 4200, action: wait, findings: [idle_in_transaction], application_name: psql, relation: null}]
actions:
  description: What was done (or would be in check mode) to each session.
  type: list
  elements: dict
  returned: always
  contains:
    pid: {description: The session., type: int, returned: always, sample: 4200}
    action:
      description:
        - One of V(fail), V(wait), V(cancel), V(terminate), V(drop_index), or those with a V(would_) prefix in check
          mode. V(drop_index) entries have no C(pid) and name the C(index).
      type: str
      returned: always
      sample: terminate
    application_name: {description: Its application_name., type: str, returned: always, sample: pg_dump}
    reason: {description: Its findings and the session., type: str, returned: always, sample: "dumps_running: pid 4200"}
waited_seconds: {description: Seconds spent waiting., type: float, returned: always, sample: 4.1}
queries:
  description: The SQL the module ran, with its parameters, in order.
  type: list
  elements: str
  returned: always
  sample: ["SELECT pg_terminate_backend(4200) AS signalled"]
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_info import LockInfoReader
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import (
    readable_argument_spec,
    show_public_values,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    describe_target,
    error_text,
    postgres_common_argument_spec,
    psycopg,
    sql,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._preflight import (
    APPLICATION_NAME,
    DEFAULT_POLICIES,
    INVALID_INDEX_POLICIES,
    SESSION_POLICIES,
    SIGNAL_FUNCTIONS,
    STATE_FINDINGS,
    STATE_POLICIES,
    action_entry,
    blocked_message,
    decide,
    drop_allowed,
    drop_transactions_begun_since,
    planned_invalid_indexes,
    session_findings,
    signal_query,
    state_verdicts,
    would,
)

# Time for a signalled backend to leave pg_stat_activity before the next read.
SIGNAL_SETTLE_SECONDS = 0.2
# An invalid index is also what a CREATE INDEX CONCURRENTLY still running shows; that one is never dropped.
BUILDING_QUERY = (
    "SELECT pid FROM pg_stat_progress_create_index "
    "WHERE index_relid = to_regclass(quote_ident(%(schema)s) || '.' || quote_ident(%(index)s))"
)


class Preflight:
    """Reads, decides, signals and waits until the way is clear or the policy says fail."""

    def __init__(self, module: AnsibleModule, connection) -> None:
        self.module = module
        self.params = module.params
        self.reader = LockInfoReader(module, connection, APPLICATION_NAME)
        self.actions: list = []
        self.signalled: set = set()
        self.dropped: list = []
        self.previous_read: float | None = None
        self.result: dict = {"cleared": False, "findings": {}, "remaining": [], "waited_seconds": 0.0}

    def decisions(self) -> list:
        read_at = time.monotonic()
        lock_info = self.reader.read(self.params["relations"], self.params["min_xact_age"], 0)
        findings = drop_allowed(session_findings(lock_info), self.params["allow_applications"])
        if not self.result["findings"]:
            self.first_read(lock_info, findings)
        decisions = decide(findings, self.params["policies"], self.params["signal_min_age"])
        since_previous_read = None if self.previous_read is None else read_at - self.previous_read
        self.previous_read = read_at
        return drop_transactions_begun_since(decisions, since_previous_read)

    def first_read(self, lock_info: dict, findings: dict) -> None:
        pooler = self.reader.pooler()
        self.result["findings"] = dict(
            findings,
            invalid_indexes=lock_info["invalid_indexes"],
            transaction_pooling=pooler["transaction_pooling"],
            missing_relations=lock_info["missing_relations"],
        )
        failures, warnings = state_verdicts(lock_info, pooler, self.params["policies"], self.params["planned_indexes"])
        for warning in warnings:
            self.module.warn(warning)
        if failures:
            self.fail("pre-flight of %s failed: %s" % (self.target(), "; ".join(failures)))
        if self.params["policies"]["invalid_indexes"] == "drop":
            for index in planned_invalid_indexes(lock_info["invalid_indexes"], self.params["planned_indexes"]):
                self.drop_invalid_index(index)

    def drop_invalid_index(self, index: dict) -> None:
        name = "%s.%s" % (index["schema"], index["index"])
        building = self.reader.rows("the build of %s" % name, BUILDING_QUERY, index)
        if building:
            self.module.warn(
                "invalid index %s is still being built by pid %s; not dropped" % (name, building[0]["pid"])
            )
            return
        action = {"pid": None, "application_name": None, "index": name}
        reason = "invalid index %s on %s, which the plan builds again" % (name, index["table"])
        if self.module.check_mode:
            self.actions.append(dict(action, action=would("drop_index"), reason=reason))
            return
        statement = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.Identifier(index["schema"], index["index"])
        )
        try:
            self.reader.queries.append(statement.as_string(self.reader.cursor))
            self.reader.cursor.execute(statement)
        except psycopg.Error as exc:
            self.fail("dropping invalid index %s on %s failed: %s" % (name, self.target(), error_text(exc)))
        self.dropped.append(name)
        self.actions.append(dict(action, action="drop_index", reason=reason))

    def target(self) -> str:
        return describe_target(self.params, self.reader.database)

    def fail(self, msg: str, remaining: list | None = None) -> None:
        self.result["remaining"] = remaining or []
        self.module.fail_json(
            msg=msg, changed=bool(self.signalled), actions=self.actions, queries=self.reader.queries, **self.result
        )

    def signal(self, decision: dict) -> None:
        action = decision["action"]
        self.signalled.add(decision["pid"])
        self.actions.append(action_entry(decision, action))
        self.reader.rows(
            "%s of pid %s" % (SIGNAL_FUNCTIONS[action], decision["pid"]), signal_query(action), {"pid": decision["pid"]}
        )

    def run(self) -> dict:
        wait_started = None
        while True:
            decisions = self.decisions()
            failing = [d for d in decisions if d["action"] == "fail"]
            if failing:
                self.actions.extend(action_entry(d, "fail") for d in failing)
                what = "pre-flight of %s failed, sessions in the way" % self.target()
                self.fail(blocked_message(what, failing), decisions)
            if self.module.check_mode:
                return self.predict(decisions)
            to_signal = [d for d in decisions if d["action"] in SIGNAL_FUNCTIONS and d["pid"] not in self.signalled]
            for decision in to_signal:
                self.signal(decision)
            if to_signal:
                time.sleep(SIGNAL_SETTLE_SECONDS)
                continue
            if wait_started is not None:
                self.result["waited_seconds"] = round(time.monotonic() - wait_started, 3)
            if not decisions:
                return self.finish(decisions)
            wait_started = time.monotonic() if wait_started is None else wait_started
            self.note_waits(decisions)
            left = self.params["wait_timeout"] - (time.monotonic() - wait_started)
            if left <= 0:
                what = "pre-flight of %s gave up after waiting %.1f s, still in the way" % (
                    self.target(),
                    self.result["waited_seconds"],
                )
                self.fail(blocked_message(what, decisions), decisions)
            time.sleep(min(self.params["wait_interval"], left))

    def note_waits(self, decisions: list) -> None:
        waited = {entry["pid"] for entry in self.actions if entry["action"] == "wait"}
        self.actions.extend(action_entry(d, "wait") for d in decisions if d["pid"] not in waited | self.signalled)

    def predict(self, decisions: list) -> dict:
        self.actions.extend(action_entry(d, would(d["action"])) for d in decisions)
        self.result["cleared"] = not decisions
        self.result["remaining"] = decisions
        changed = any(d["action"] in SIGNAL_FUNCTIONS for d in decisions) or any(
            entry["action"] == would("drop_index") for entry in self.actions
        )
        return dict(self.result, changed=changed, actions=self.actions, queries=self.reader.queries)

    def finish(self, decisions: list) -> dict:
        self.result["cleared"] = True
        self.result["remaining"] = decisions
        changed = bool(self.signalled or self.dropped)
        return dict(self.result, changed=changed, actions=self.actions, queries=self.reader.queries)


def validate(module: AnsibleModule) -> None:
    for name in ("min_xact_age", "signal_min_age", "wait_timeout"):
        if module.params[name] < 0:
            module.fail_json(msg="%s must be 0 or more seconds, got %s" % (name, module.params[name]))
    if module.params["wait_interval"] <= 0:
        module.fail_json(msg="wait_interval must be more than 0 seconds, got %s" % module.params["wait_interval"])


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    session_policy = dict(type="str", choices=list(SESSION_POLICIES))
    state_policy = dict(type="str", choices=list(STATE_POLICIES))
    choices = {name: state_policy if name in STATE_FINDINGS else session_policy for name in DEFAULT_POLICIES}
    choices["invalid_indexes"] = dict(type="str", choices=list(INVALID_INDEX_POLICIES))
    argument_spec.update(
        relations=dict(type="list", elements="str", required=True),
        policies=dict(
            type="dict",
            apply_defaults=True,
            options={name: dict(choices[name], default=value) for name, value in DEFAULT_POLICIES.items()},
        ),
        planned_indexes=dict(type="list", elements="str", default=[]),
        min_xact_age=dict(type="float", default=60),
        signal_min_age=dict(type="float", default=60),
        allow_applications=dict(type="list", elements="str", default=[]),
        wait_timeout=dict(type="float", default=60),
        wait_interval=dict(type="float", default=2),
    )
    module = AnsibleModule(argument_spec=readable_argument_spec(argument_spec), supports_check_mode=True)
    show_public_values(module)
    validate(module)
    connection = connect(module, application_name=APPLICATION_NAME)
    try:
        result = Preflight(module, connection).run()
    finally:
        connection.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
