#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: alembic_migrate
short_description: Bring a database to an Alembic revision under an advisory lock, with lock_timeout and retries
version_added: 0.1.0
author: safedeploy.migrations maintainers (@safedeploy)
description:
  - Runs the application's own C(alembic upgrade) (or, when allowed, C(downgrade)) through O(runner) while holding a
    session-level PostgreSQL advisory lock on a dedicated connection, so that concurrent runs never migrate at once.
    The lock is taken by bounded polling, its holder is visible in C(pg_stat_activity.application_name), and the server
    releases it if this module dies.
  - After winning the lock it reads the current revision again, so the loser of a race finds nothing to do and
    reports C(changed=false).
  - Sets C(lock_timeout), C(statement_timeout) and C(client_connection_check_interval) on alembic's own connection
    through E(PGOPTIONS). A DDL statement that cannot get its lock in time fails instead of queueing every reader of
    the table behind it; the module then retries from wherever the database now is, on an escalating schedule, and
    reports the sessions that blocked it.
  - Records the sha256 of every applied revision script in O(state_schema)C(.applied_revisions), so that
    M(safedeploy.migrations.alembic_info) reports scripts edited after they were applied.
  - Reads the graph (C(alembic history --verbose)) and runs the first attempt in one process of the runner's python
    when O(runner) names alembic (a console script or C(python -m alembic)), else one process per command.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._alembic
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details:
      - Takes no lock and runs no DDL; predicts C(changed) and the revisions that would be applied.
  diff_mode:
    support: full
    details:
      - Shows the revision before and after, and the SQL of the pending range (alembic offline mode) as C(prepared).
options:
  revision:
    description:
      - The revision to bring the database to. V(head) needs a single head; V(heads) upgrades every branch.
      - A revision id (or a unique prefix) lower than the current one, V(base) or V(-1) downgrade, and need
        O(allow_downgrade=true).
    type: str
    default: head
  allow_downgrade:
    description:
      - Allow a target below the current revision.
    type: bool
    default: false
  lock_wait_timeout:
    description:
      - Seconds to wait for the migration advisory lock held by another run before failing with its holder; V(0) or
        more.
    type: float
    default: 300
  advisory_lock_key:
    description:
      - The advisory lock key, a signed 64-bit integer; derived from the database and the version table when not set.
    type: int
  lock_timeout:
    description:
      - C(lock_timeout) of alembic's connection for the first attempt, as a PostgreSQL duration (V(500ms), V(2s)).
      - More than 0, since V(0) would let a DDL statement wait for its lock for ever with every reader of the table
        queued behind it.
    type: str
    default: 2s
  max_lock_timeout:
    description:
      - The longest C(lock_timeout) the escalating retries reach; it bounds how long readers of a table can queue
        behind a waiting DDL statement. Four times O(lock_timeout) when not set; never below O(lock_timeout).
    type: str
  statement_timeout:
    description:
      - C(statement_timeout) of alembic's connection; V(0) means none.
      - It applies to every statement of the run, a C(CREATE INDEX CONCURRENTLY) included, which waits for every
        older transaction of the database before it builds; a build cut short leaves an INVALID index (see
        M(safedeploy.migrations.pg_preflight)'s C(invalid_indexes) policy). The deploy role leaves it at V(0).
    type: str
    default: "0"
  client_connection_check_interval:
    description:
      - How often the server checks that alembic is still connected during a long statement, so a killed runner's
        statement is cancelled promptly.
    type: str
    default: 2s
  retries:
    description:
      - Extra attempts after a lock timeout (SQLSTATE 55P03), V(0) or more. Each attempt doubles C(lock_timeout) up
        to O(max_lock_timeout).
    type: int
    default: 3
  retry_budget:
    description:
      - Seconds, wall clock, after which no further attempt is started; V(0) or more, V(0) starting no retry.
    type: float
    default: 600
  application_name:
    description:
      - C(application_name) of the connection that holds the advisory lock; the host name and process id are added.
    type: str
    default: safedeploy.alembic_migrate
  history:
    description:
      - The revision graph of the same scripts, as M(safedeploy.migrations.migration_plan_info) or
        M(safedeploy.migrations.alembic_info) returned it (their C(history)). The module then does not run
        C(alembic history), which otherwise runs in the same alembic process as the upgrade.
      - Graph and scripts must match; the revision the database reaches is checked against the target either way.
      - An entry's C(down_revisions), C(depends_on) and C(branch_labels) are lists of ids; a single id as a string
        stands for a list of one, as alembic's own C(down_revision) may be.
    type: list
    elements: dict
seealso:
  - module: safedeploy.migrations.alembic_info
"""

EXAMPLES = r"""
- name: Migrate to head in the compose one-shot, once for the whole play
  safedeploy.migrations.alembic_migrate:
    runner: [docker, compose, -p, erpmax, -f, /srv/erpmax/compose.yml, run, --rm, -T, -e, PGOPTIONS, migration, alembic]
    login_host: 127.0.0.1
    login_user: erpmax
    db: erpmax_orchestrator
    lock_timeout: 2s
    retries: 5
  run_once: true
  register: migration

- name: Step back one revision
  safedeploy.migrations.alembic_migrate:
    runner: [/opt/erpmax/venv/bin/alembic, -c, /opt/erpmax/alembic.ini]
    db: erpmax_orchestrator
    revision: "-1"
    allow_downgrade: true
"""

RETURN = r"""
from_revision:
  description: The revision (comma-joined when several) before the run; null at base.
  returned: always
  type: str
  sample: 0002_customer_phone
to_revision:
  description: The revision after the run (in check mode, the one it would reach).
  returned: always
  type: str
  sample: 0004_drop_legacy_code
direction:
  description: V(upgrade), V(downgrade) or V(none).
  returned: always
  type: str
  sample: upgrade
applied:
  description: Revisions applied (or undone), in order; in check mode, the ones that would be.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "0003_index_jobs_status", "message": "index jobs.status concurrently"}]
attempts:
  description:
    - One entry per alembic run, with the lock_timeout used, the outcome and the sessions that blocked it.
    - The C(query) of a blocking session is cut to 200 characters, with its secrets redacted as
      M(safedeploy.migrations.pg_lock_info) does.
  returned: always
  type: list
  elements: dict
  sample: [{"attempt": 1, "lock_timeout": "2000ms", "outcome": "lock_timeout", "blockers": [{"pid": 4242}]},
           {"attempt": 2, "lock_timeout": "4000ms", "outcome": "applied", "blockers": []}]
lock_wait_seconds:
  description: Time spent waiting for the migration advisory lock.
  returned: always
  type: float
  sample: 0.0
advisory_lock_key:
  description: The advisory lock key used.
  returned: always
  type: int
  sample: -4217362512884563102
duration_seconds:
  description: Wall time of the whole run.
  returned: always
  type: float
  sample: 3.4
commands:
  description:
    - The runner commands run. The history and the first attempt may have run in one alembic process; for a compose
      one-shot both then name the same container (C(--name)).
  returned: always
  type: list
  elements: list
  sample: [["/opt/erpmax/venv/bin/alembic", "history", "--verbose"], ["alembic", "upgrade", "0004"]]
"""

import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    RevisionError,
    downgrade_path,
    resolve_target,
    upgrade_path,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_offline import offline_range
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    AlembicRunner,
    RunnerError,
    is_lock_timeout,
    pgoptions,
    runner_problem,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_state import (
    AdvisoryLock,
    advisory_lock_key,
    ensure_checksum_table,
    forget_applied,
    read_current_revisions,
    record_applied,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_status import (
    AlembicStatus,
    alembic_argument_spec,
    history_entry,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_info import session_query
from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_retry import (
    BLOCKERS_QUERY,
    backoff_seconds,
    duration_ms,
    format_ms,
    lock_timeout_schedule,
    option_problems,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    dict_row,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)

# the blocker's statement in attempts[].blockers[].query, secrets redacted
BLOCKER_QUERY_LENGTH = 200


def joined(revisions: list[str]) -> str | None:
    return ",".join(revisions) or None


class Migration:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.started = time.monotonic()
        self.runner = AlembicRunner.from_params(self.params)
        self.application_name = "%s@%s:%d" % (self.params["application_name"], socket.gethostname(), os.getpid())
        self.connection = connect(module, application_name=self.application_name[:63])
        self.lock = None
        self.database = self.connection.info.dbname
        self.lock_key = self.params["advisory_lock_key"]
        if self.lock_key is None:
            self.lock_key = advisory_lock_key(
                self.database, self.params["version_table_schema"], self.params["version_table"]
            )
        self.result = dict(
            changed=False,
            applied=[],
            attempts=[],
            lock_wait_seconds=0.0,
            direction="none",
            advisory_lock_key=self.lock_key,
            commands=self.runner.commands,
        )

    def run(self) -> None:
        if self.params["history"]:
            status = AlembicStatus.from_history(self.params["history"], self.connection, self.params)
        else:
            # the history and the upgrade decided from it in one alembic process: one start-up, not two
            self.runner.open_session()
            status = AlembicStatus.read(self.runner, self.connection, self.params)
        if status.unknown:
            self.fail(
                "the database is at revision %s, which the migration scripts do not know: the code is older "
                "than the database" % ", ".join(status.unknown)
            )
        target = self.resolve(status)
        direction, path = self.plan(status, status.current, target)
        self.result.update(
            from_revision=joined(status.current),
            to_revision=joined(target),
            direction=direction,
            applied=status.describe(path),
            changed=bool(path),
        )
        if self.module._diff and path:
            self.result["diff"] = self.diff(status.current, target, direction)
        if self.module.check_mode or not path:
            self.finish()

        lock = self.lock = AdvisoryLock(self.connection, self.lock_key)
        if not lock.acquire(self.params["lock_wait_timeout"]):
            self.result["lock_wait_seconds"] = lock.waited_seconds
            self.fail(
                "another migration holds the advisory lock %s on database %s: %s; waited %.1f s"
                % (self.lock_key, self.database, describe_holder(lock.holder()), lock.waited_seconds)
            )
        self.result["lock_wait_seconds"] = lock.waited_seconds
        self.migrate_under_lock(status, target)
        self.finish()

    def resolve(self, status: AlembicStatus) -> list[str]:
        revision = self.params["revision"]
        try:
            if revision == "-1":
                if len(status.current) != 1:
                    self.fail(
                        "revision -1 needs exactly one current revision, the database has %s"
                        % (joined(status.current) or "none")
                    )
                return status.revisions[status.current[0]]["down_revisions"]
            return resolve_target(status.revisions, revision)
        except RevisionError as exc:
            self.fail(str(exc))

    def plan(self, status: AlembicStatus, current: list[str], target: list[str]) -> tuple[str, list[str]]:
        """('upgrade'|'downgrade'|'none', revisions in the order they would run)."""
        pending = upgrade_path(status.revisions, current, target)
        undo = downgrade_path(status.revisions, current, target)
        if pending and undo:
            self.fail(
                "revision %s is on another branch than the database (at %s); migrate to a common revision first"
                % (joined(target), joined(current))
            )
        if undo and not self.params["allow_downgrade"]:
            self.fail(
                "revision %s is below the database's revision %s: set allow_downgrade to go down"
                % (joined(target) or "base", joined(current))
            )
        if undo:
            return "downgrade", undo
        return ("upgrade", pending) if pending else ("none", [])

    def diff(self, current: list[str], target: list[str], direction: str) -> dict:
        before = "revision: %s\n" % (joined(current) or "base")
        after = "revision: %s\n" % (joined(target) or "base")
        try:
            prepared = self.runner.run([direction, offline_range(current, alembic_target(target), direction), "--sql"])
        except RunnerError as exc:
            prepared = "-- offline SQL is not available for this range: %s\n" % exc
        return {"before": before, "after": after, "prepared": prepared}

    def migrate_under_lock(self, status: AlembicStatus, target: list[str]) -> None:
        budget_ends = self.started + self.params["retry_budget"]
        schedule = lock_timeout_schedule(self.lock_timeout_ms, self.params["retries"], self.max_lock_timeout_ms)
        # read again under the lock: a run that lost the race finds nothing left to do
        before = current = self.read_current()
        self.result["from_revision"] = joined(before)
        for attempt, lock_timeout_ms in enumerate(schedule, start=1):
            direction, path = self.plan(status, current, target)
            if not path:
                break
            try:
                environment = {"PGOPTIONS": self.pgoptions(lock_timeout_ms)}
                try:
                    self.runner.run([direction, alembic_target(target)], extra_env=environment)
                finally:
                    # a retry starts a process of its own: an engine the app's env.py keeps would keep its lock_timeout
                    self.runner.close_session()
                self.result["attempts"].append(self.attempt(attempt, lock_timeout_ms, "applied"))
                self.check_target_reached(status, before, target)
                break
            except RunnerError as exc:
                lock_timed_out = is_lock_timeout(exc.stderr)
                outcome = "lock_timeout" if lock_timed_out else "failed"
                self.result["attempts"].append(self.attempt(attempt, lock_timeout_ms, outcome, lock_timed_out))
                last_attempt = attempt == len(schedule) or time.monotonic() + backoff_seconds(attempt) > budget_ends
                if not lock_timed_out or last_attempt:
                    self.settle(status, before)
                    where = "the database is at revision %s" % (joined(self.read_current()) or "base")
                    if lock_timed_out:
                        blockers = self.result["attempts"][-1]["blockers"]
                        where += " after %d attempts; %s" % (attempt, describe_blockers(blockers))
                    self.fail("%s; %s" % (exc, where), cmd=exc.argv, rc=exc.rc, stderr=exc.stderr)
                time.sleep(backoff_seconds(attempt))
                # transaction_per_migration may have committed some revisions: go on from there
                current = self.read_current()
        self.settle(status, before)

    def check_target_reached(self, status: AlembicStatus, before: list[str], target: list[str]) -> None:
        """alembic's exit code is not the truth: the database is (its runner may point at another database)."""
        after = self.read_current()
        if sorted(after) != sorted(target):
            self.settle(status, before)
            self.fail(
                "alembic reported success but database %s is at revision %s, not %s: does the runner's database "
                "(DATABASE_URL of the one-shot or alembic.ini) name another database than db?"
                % (self.database, joined(after) or "base", joined(target) or "base")
            )

    def settle(self, status: AlembicStatus, before: list[str]) -> None:
        """Report what really changed, read from the database, and record the applied scripts' checksums."""
        after = self.read_current()
        direction, path = self.plan_between(status, before, after)
        self.result.update(
            to_revision=joined(after), direction=direction, applied=status.describe(path), changed=bool(path)
        )
        if path:
            self.record_checksums(status, direction, path)

    def plan_between(self, status: AlembicStatus, before: list[str], after: list[str]) -> tuple[str, list[str]]:
        applied = upgrade_path(status.revisions, before, after)
        if applied:
            return "upgrade", applied
        undone = downgrade_path(status.revisions, before, after)
        return ("downgrade", undone) if undone else ("none", [])

    def record_checksums(self, status: AlembicStatus, direction: str, path: list[str]) -> None:
        schema = self.params["state_schema"]
        try:
            ensure_checksum_table(self.connection, schema)
            if direction == "upgrade":
                entries = [
                    (r, status.checksum(r, self.params["script_location"]), status.revisions[r]["path"]) for r in path
                ]
                record_applied(self.connection, schema, entries)
            else:
                forget_applied(self.connection, schema, path)
        except psycopg.Error as exc:
            self.module.warn("could not record script checksums in schema %s: %s" % (schema, error_text(exc)))

    def attempt(self, number: int, lock_timeout_ms: int, outcome: str, with_blockers: bool = False) -> dict:
        blockers = self.blockers(lock_timeout_ms) if with_blockers else []
        return {"attempt": number, "lock_timeout": format_ms(lock_timeout_ms), "outcome": outcome, "blockers": blockers}

    def blockers(self, lock_timeout_ms: int) -> list[dict]:
        with self.connection.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(BLOCKERS_QUERY, {"older_than": lock_timeout_ms / 1000.0}).fetchall()
        return [dict(row, query=session_query(row["query"], BLOCKER_QUERY_LENGTH)) for row in rows]

    def read_current(self) -> list[str]:
        return read_current_revisions(
            self.connection, self.params["version_table"], self.params["version_table_schema"]
        )

    def pgoptions(self, lock_timeout_ms: int) -> str:
        return pgoptions(
            {
                "lock_timeout": format_ms(lock_timeout_ms),
                "statement_timeout": format_ms(duration_ms(self.params["statement_timeout"])),
                "client_connection_check_interval": format_ms(
                    duration_ms(self.params["client_connection_check_interval"])
                ),
            }
        )

    @property
    def lock_timeout_ms(self) -> int:
        return duration_ms(self.params["lock_timeout"])

    @property
    def max_lock_timeout_ms(self) -> int:
        if self.params["max_lock_timeout"]:
            return duration_ms(self.params["max_lock_timeout"])
        return 4 * self.lock_timeout_ms

    def close(self) -> None:
        """Release the lock explicitly; closing the connection would release it too, this says so in the log."""
        try:
            self.runner.close_session()
        except RunnerError as exc:
            self.module.warn("ending the alembic session failed: %s" % exc)
        if not self.connection.closed:
            if self.lock is not None:
                self.lock.release()
            self.connection.close()
        self.result["duration_seconds"] = round(time.monotonic() - self.started, 3)

    def finish(self) -> None:
        self.close()
        self.module.exit_json(**self.result)

    def fail(self, msg: str, **extra) -> None:
        try:
            self.close()
        except psycopg.Error as exc:
            self.module.warn("closing the connection failed: %s" % error_text(exc))
        self.result.update(extra)
        self.result["changed"] = bool(self.result.get("attempts")) and self.result["changed"]
        self.module.fail_json(msg=msg, **self.result)


def alembic_target(target: list[str]) -> str:
    """What to hand alembic for resolved target heads."""
    if len(target) > 1:
        return "heads"
    return target[0] if target else "base"


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "its holder ended meanwhile"
    return (
        "pid %(pid)s, application_name %(application_name)s, client %(client_addr)s, user %(usename)s, "
        "connected since %(backend_start)s" % holder
    )


def describe_blockers(blockers: list[dict]) -> str:
    """Who kept the lock from us, in the words an operator acts on."""
    if not blockers:
        return "the blocking sessions had ended when the lock timed out"
    sessions = [
        "pid %s (%s, user %s, %s, transaction open %.0f s, on %s)"
        % (
            b["pid"],
            b["application_name"] or "no application_name",
            b["user"],
            b["state"],
            b["xact_seconds"],
            ", ".join(b["relations"]),
        )
        for b in blockers
    ]
    return "blocked by " + "; ".join(sessions)


def validate(module: AnsibleModule) -> None:
    problems = option_problems(module.params)
    if runner_problem(module.params["runner"]):
        problems.insert(0, runner_problem(module.params["runner"]))
    try:
        for entry in module.params["history"] or []:
            history_entry(entry)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        module.fail_json(msg="; ".join(problems))


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(alembic_argument_spec())
    argument_spec.update(
        revision=dict(type="str", default="head"),
        allow_downgrade=dict(type="bool", default=False),
        lock_wait_timeout=dict(type="float", default=300),
        advisory_lock_key=dict(type="int", no_log=False),
        lock_timeout=dict(type="str", default="2s"),
        max_lock_timeout=dict(type="str"),
        statement_timeout=dict(type="str", default="0"),
        client_connection_check_interval=dict(type="str", default="2s"),
        retries=dict(type="int", default=3),
        retry_budget=dict(type="float", default=600),
        application_name=dict(type="str", default="safedeploy.alembic_migrate"),
        history=dict(type="list", elements="dict"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    validate(module)
    migration = Migration(module)
    try:
        migration.run()
    except RunnerError as exc:
        migration.fail(str(exc), cmd=exc.argv, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr)
    except psycopg.Error as exc:
        migration.fail("reading the alembic state of database %s failed: %s" % (migration.database, error_text(exc)))


if __name__ == "__main__":
    main()
