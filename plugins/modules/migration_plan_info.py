#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_plan_info
short_description: The plan of a migration before it runs - SQL, locks, lint, compatibility, rollback, plan hash
version_added: 0.1.0
author: safedeploy.migrations maintainers (@safedeploy)
description:
  - For the database's current revision to O(revision), returns per pending revision the offline SQL
    (C(alembic upgrade a:b --sql), one alembic run for the whole range), the statements with the relations each
    touches and the lock it takes (parsed by pglast, PostgreSQL's own parser), whether it runs outside a transaction,
    squawk lint findings, a backward-compatibility verdict with its reasons, and the rollback method.
  - Each relation the plan touches is sized from the live database (rows estimate, bytes), so a rewrite of a large
    table is visible before anyone runs it.
  - The plan hash is a sha256 over the ordered revision ids and their SQL; the same code and starting revision give
    the same hash on every machine.
  - With O(data_checks), every pending statement that can fail on rows that exist now (C(SET NOT NULL), a new
    C(NOT NULL) column without a default, a unique index or constraint, a primary key, a foreign key, a C(CHECK)
    constraint, a column type change) is checked against the live database by a read-only query that counts those
    rows, each in a C(READ ONLY) transaction of its own under O(data_check_timeout). Tables the plan creates are
    skipped; a finding on a table an earlier statement of the plan writes to is a warning, since that data change
    may fix the rows.
  - When a pending revision cannot be rendered offline (it reads the database through C(op.get_bind()), an inspector
    or an ORM session, which alembic's C(--sql) mode cannot run), or with O(trace=always), the plan is traced. The
    live database's schema is copied (C(pg_dump --schema-only) into C(psql)) into a scratch database on the same
    server with the live revision in its version table, the application's own alembic runs the pending upgrades and
    then the downgrades back on that copy, and every statement it executes is recorded by SQLAlchemy listeners loaded
    into its python (its C(env.py) is not touched; every connection it opens goes to the scratch database). Each
    statement's relation locks are read from C(pg_locks) of the migrating session, statements outside a transaction
    (C(CREATE INDEX CONCURRENTLY)) are sampled while they run, and a table rewrite shows as a changed C(relfilenode).
    The scratch database is dropped on every path, also in check mode, where it is the plan's only change and gone
    when the module returns. A revision that fails on the copy fails the module, naming the revision and the error,
    before anything changed.
  - Each revision's C(sql_source) says where its SQL came from; revisions that rendered offline keep their offline
    SQL, and with a trace every revision's relations carry the traced lock modes (C(lock_source)).
  - The script graph, the upgrade SQL and the downgrade SQL come from one python running alembic's own command line
    three times (one container start for a compose one-shot runner) when the runner's last word is an alembic
    console script or C(python -m alembic); otherwise, or when that run fails, each is a run of the runner itself.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._alembic
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
  - safedeploy.migrations._attributes.info_module
options:
  revision:
    description:
      - The target of the plan; V(head) needs a single head.
    type: str
    default: head
  lint:
    description:
      - Run squawk on each revision's SQL.
    type: bool
    default: true
  squawk_path:
    description:
      - The squawk binary; searched in E(PATH) and beside the Python interpreter when not set.
    type: path
  lint_error_rules:
    description:
      - squawk rules whose findings are errors; V(*) makes every finding an error.
      - The collection's defaults when not set.
    type: list
    elements: str
  lint_warning_rules:
    description:
      - squawk rules reported as warnings even when O(lint_error_rules) (or V(*)) makes them errors, for example the
        compatibility rules when a deploy answers them itself by stopping the old app and backing up first.
    type: list
    elements: str
  lint_ignore_rules:
    description:
      - squawk rules to leave out. The collection's defaults when not set (for example the lock and statement timeout
        rules, which M(safedeploy.migrations.alembic_migrate) covers).
    type: list
    elements: str
  data_checks:
    description:
      - Count, in the live database, the rows each pending statement would fail on (see the description).
    type: bool
    default: true
  data_check_timeout:
    description:
      - The C(statement_timeout) each data check runs under, as a PostgreSQL duration; a check that does not finish
        in time is a warning, not an error. More than 0, so that no check scans a live table without a limit.
    type: str
    default: 10s
  trace:
    description:
      - V(auto) traces the plan on a scratch copy when a pending revision cannot be rendered offline; V(always) traces
        every plan (the lock modes from C(pg_locks)); V(never) fails as alembic's offline mode does.
      - A trace needs the O(runner)'s alembic as a console script or C(python -m alembic), SQLAlchemy in its python,
        C(pg_dump) and C(psql) (see O(pg_tools)), and a login role that may create databases.
    type: str
    choices: [auto, always, never]
    default: auto
  pg_tools:
    description:
      - Where C(pg_dump) and C(psql) run for the scratch copy of a traced plan; the other connection options are the
        module's.
    type: dict
    default: {}
    suboptions:
      container:
        description:
          - A running container of the PostgreSQL server to run them in, as for M(safedeploy.migrations.pg_backup).
        type: str
      login_host:
        description:
          - The server's address as the tools see it (inside O(pg_tools.container), empty for its Unix socket).
        type: str
      login_port:
        description:
          - The server's port as the tools see it.
        type: int
      bin_dir:
        description:
          - Directory of the tools on the managed host; searched in E(PATH) when not set.
        type: path
requirements:
  - pglast (the PostgreSQL parser) and squawk (the C(squawk-cli) package) on the managed host.
seealso:
  - module: safedeploy.migrations.alembic_migrate
  - module: safedeploy.migrations.pg_lock_info
"""

EXAMPLES = r"""
- name: Plan the migration of this release
  safedeploy.migrations.migration_plan_info:
    runner: [docker, compose, -p, erpmax, -f, /srv/erpmax/compose.yml, run, --rm, -T, migration, alembic]
    login_host: 127.0.0.1
    login_user: erpmax
    db: erpmax_orchestrator
  register: plan

- name: Stop here when the previous app version cannot run on the new schema
  ansible.builtin.assert:
    that: plan.summary.backward_compatible
    fail_msg: "{{ plan.summary.incompatible_reasons }}"
"""

RETURN = r"""
from_revision:
  description: The database's revision (comma-joined when several); null at base.
  returned: always
  type: str
  sample: 0002_job_priority
to_revision:
  description: The revision the plan ends at.
  returned: always
  type: str
  sample: 0004_drop_customer_legacy_code
plan_hash:
  description: sha256 over the ordered revision ids and their SQL.
  returned: always
  type: str
  sample: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
revisions:
  description: The pending revisions, in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    revision:
      description: Revision id.
      type: str
      sample: 0003_jobs_queue_index
    message:
      description: First line of the revision's docstring.
      type: str
      sample: Index the job queue by priority
    sql:
      description: The revision's SQL, offline or traced (C(sql_source)).
      type: str
      sample: "BEGIN;\n\nALTER TABLE jobs ADD COLUMN priority SMALLINT;\n..."
    sql_source:
      description: V(offline) when alembic's C(--sql) mode rendered it, V(traced) when it was recorded on the copy.
      type: str
      sample: traced
    traced_locks:
      description:
        - With a trace, every relation lock the revision's statements took on the copy, strongest per relation and
          C(lock_source) (V(traced) or V(sampled)).
      type: list
      elements: dict
      sample: [{"relation": "jobs", "lock_mode": "ShareUpdateExclusiveLock", "lock_source": "sampled"}]
    statements:
      description: Each statement with its kind, relations, lock modes and flags.
      type: list
      elements: dict
      sample:
        - {"kind": "CREATE INDEX", "transactional": false,
           "relations": [{"relation": "jobs", "lock_mode": "ShareUpdateExclusiveLock"}]}
    relations:
      description:
        - Each relation touched, with the strongest lock, rewrites and scans, and its live size.
        - With a trace, C(lock_source) V(traced) marks a lock mode (and rewrite) read from C(pg_locks) on the copy,
          V(sampled) a mode only sampled while a statement outside a transaction ran (it can only strengthen the
          parsed mode), C(parsed_lock_mode) the mode read from the SQL; relations only the trace saw (indexes,
          foreign-key targets) are listed too.
      type: list
      elements: dict
      sample:
        - {"relation": "jobs", "lock_mode": "ShareUpdateExclusiveLock", "exists": true, "rows_estimate": 120000,
           "total_bytes": 15319040}
    transactional:
      description: Whether every statement runs inside a transaction.
      type: bool
      sample: false
    findings:
      description:
        - squawk findings with rule, severity, message and the statement.
        - Severity V(info) marks a rule that is moot on a table the plan itself creates (empty, nothing waits).
      type: list
      elements: dict
      sample:
        - {"rule": "require-concurrent-index-creation", "severity": "error",
           "message": "During normal index creation, table updates are blocked"}
    backward_compatible:
      description: Whether the previous app version keeps working on the schema after this revision.
      type: bool
      sample: true
    incompatible_reasons:
      description: Why it does not.
      type: list
      elements: str
      sample: ["drops column customers.legacy_code"]
    rollback_method:
      description: V(downgrade) when the downgrade works and nothing is destroyed, V(restore) otherwise.
      type: str
      sample: downgrade
    rollback_reason:
      description: Why that rollback method.
      type: str
      sample: its downgrade reverses it
    data_findings:
      description:
        - One per data check of the revision's statements (O(data_checks)), with its C(kind), C(relation),
          C(columns), C(violations) (the count; null when only an error says it), an C(example) key, C(error),
          C(severity) (V(error), V(warning) or V(ok)) and a one-line C(message).
      type: list
      elements: dict
      sample:
        - {"kind": "not_null", "relation": "orders", "columns": ["status"], "violations": 3, "example": {"id": "17"},
           "severity": "error", "message": "0005_status_required (orders): 3 rows with NULL in status, e.g. id=17"}
summary:
  description:
    - The whole plan in one place.
    - C(sql_sources) lists where the revisions' SQL came from (V(offline), V(traced)).
    - C(concurrent_indexes) names the indexes the plan builds with C(CONCURRENTLY), which an interrupted build
      leaves invalid (see O(safedeploy.migrations.pg_preflight#module:planned_indexes)).
  returned: always
  type: dict
  sample:
    pending: 2
    relations: [customers, jobs]
    backward_compatible: false
    incompatible_reasons: ["0004: drops column customers.legacy_code"]
    transactional: false
    destructive: true
    rollback_method: restore
    lint_errors: 1
    lint_warnings: 0
    data_errors: 1
    data_warnings: 0
    data_findings: ["0005_status_required (orders): 3 rows with NULL in status, e.g. id=17"]
    concurrent_indexes: [ix_jobs_queue]
    sql_sources: [offline]
    plan_hash: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
history:
  description:
    - Every revision of the scripts, newest first, as M(safedeploy.migrations.alembic_info) returns it.
    - M(safedeploy.migrations.alembic_migrate) takes it as O(safedeploy.migrations.alembic_migrate#module:history)
      and then needs no alembic run to read the graph.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "0002_customer_phone", "down_revisions": ["0001_initial"], "depends_on": [],
            "message": "add phone", "path": "/app/migrations/versions/0002_customer_phone.py", "branch_labels": []}]
trace:
  description:
    - With a traced plan, the scratch database it used (dropped since), the seconds its copy took
      (C(copy_seconds)), the seconds the alembic run on it took (C(run_seconds)), both with the drop
      (C(total_seconds)), and the statements recorded; null without a trace.
  returned: always
  type: dict
  sample: {"database": "safedeploy_plan_3f9c0a1b2c4d", "copy_seconds": 0.41, "run_seconds": 1.92,
           "total_seconds": 2.47, "statements": 57}
trace_failure:
  description: When a pending revision failed on the copy of the live schema (the module fails), which and why.
  returned: failure
  type: dict
  sample: {"revision": "0005_status_required", "error": "psycopg.errors.NotNullViolation: ..."}
commands:
  description: The runner, squawk and scratch copy commands run.
  returned: always
  type: list
  elements: list
  sample:
    - [alembic, history, --verbose]
    - [alembic, upgrade, "0002_job_priority:0004_drop_customer_legacy_code", --sql]
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    RevisionError,
    resolve_target,
    upgrade_path,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    AlembicRunner,
    RunnerError,
    runner_problem,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_state import read_current_revisions
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_status import (
    AlembicStatus,
    alembic_argument_spec,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._data_check_run import run_data_checks
from ansible_collections.safedeploy.migrations.plugins.module_utils._data_checks import plan_data_checks
from ansible_collections.safedeploy.migrations.plugins.module_utils._lock_retry import duration_ms
from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_plan import (
    RELATION_SIZES_QUERY,
    apply_trace,
    attach_sizes,
    describe_revision,
    downgrade_sql_by_revision,
    likely_offline_commands,
    offline_target,
    plan_summary,
    read_trace,
    relax_on_tables_the_plan_creates,
    rendered_upgrade_steps,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import (
    readable_argument_spec,
    show_public_values,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import ClientToolError
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import (
    mark_data_migration_reads,
    traced_sql,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    dict_row,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._scratch_copy import (
    LockSampler,
    ScratchCopy,
    ScratchCopyError,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import PGLAST_IMPORT_ERROR, SqlPlanError
from ansible_collections.safedeploy.migrations.plugins.module_utils._squawk import (
    SquawkError,
    classify,
    find_squawk,
    lint_sql,
)

APPLICATION_NAME = "safedeploy.migration_plan_info"


class TraceFailure(Exception):
    """A pending revision failed when it ran on the copy of the live schema: it would fail on the live database."""

    def __init__(self, failure: dict):
        self.failure = failure
        super().__init__(
            "revision %s fails when it runs on a copy of the live schema, so it would fail in the deploy: %s"
            % (failure["revision"], failure["error"])
        )


class Planner:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.runner = AlembicRunner.from_params(self.params)
        self.connection = connect(module, application_name=APPLICATION_NAME)
        self.squawk = find_squawk(module, self.params["squawk_path"]) if self.params["lint"] else None
        self.commands_of_copy: list[list[str]] = []
        self.trace_times: dict | None = None

    def plan(self) -> dict:
        current = read_current_revisions(
            self.connection, self.params["version_table"], self.params["version_table_schema"]
        )
        self.runner.prefetch(likely_offline_commands(current, self.params["revision"]))
        status = AlembicStatus.read(self.runner, self.connection, self.params, current)
        if status.unknown:
            raise RevisionError(
                "the database is at revision %s, which the migration scripts do not know: the code is older than the "
                "database" % ", ".join(status.unknown)
            )
        target = resolve_target(status.revisions, self.params["revision"])
        pending = upgrade_path(status.revisions, status.current, target)
        revisions = []
        if pending:
            target_name = offline_target(self.params["revision"], target)
            offline, offline_failure = rendered_upgrade_steps(self.runner, status.current, target_name)
            if offline_failure and self.params["trace"] == "never":
                offline_failure.args = (
                    "%s (with trace=auto such a revision is run on a copy of the live schema)" % offline_failure,
                )
                raise offline_failure
            trace = None
            if self.params["trace"] == "always" or any(revision not in offline for revision in pending):
                trace = self.trace(status.current, target_name, pending)
                downgrades = trace["downgrades"]
            else:
                downgrades = downgrade_sql_by_revision(self.runner, status.current, target_name, pending)
            for revision in pending:
                revisions.append(
                    self.describe(revision, status.revisions[revision]["message"], offline, trace, downgrades)
                )
            relax_on_tables_the_plan_creates(revisions)
            attach_sizes(revisions, self.relation_sizes(revisions))
            self.check_data(revisions)
        summary = plan_summary(revisions)
        return dict(
            from_revision=",".join(status.current) or None,
            to_revision=",".join(target) or None,
            revisions=revisions,
            summary=summary,
            plan_hash=summary["plan_hash"],
            history=status.history(),
            trace=self.trace_times,
        )

    def describe(self, revision: str, message: str, offline: dict, trace: dict | None, downgrades: dict) -> dict:
        """The plan entry of one revision: its offline SQL where that rendered, else the SQL traced on the copy;
        with a trace, its locks and rewrites as the copy showed them."""
        traced = trace["upgrades"].get(revision) if trace else None
        if traced is None and revision not in offline:
            raise RevisionError(
                "the traced run on the copy did not record revision %s: no write of it into the version table %s "
                "was seen (set version_table and version_table_schema as env.py does)"
                % (revision, self.params["version_table"])
            )
        no_downgrade = None
        if trace and revision not in downgrades:
            failure = trace["downgrade_failure"]
            no_downgrade = (
                "its downgrade fails on a copy of the live schema: %s" % failure["error"]
                if failure and failure["revision"] == revision
                else "its downgrade was not reached on the copy: a later revision's downgrade failed"
            )
        if revision in offline:
            sql, lint_sql, source = offline[revision]["sql"], offline[revision]["lint_sql"], "offline"
        else:
            sql = lint_sql = traced_sql(traced)
            source = "traced"
        entry = describe_revision(revision, message, sql, downgrades.get(revision), no_downgrade)
        entry["sql_source"] = source
        if source == "traced":
            mark_data_migration_reads(entry["statements"])
        entry["findings"] = self.lint(lint_sql)
        if traced is not None:
            apply_trace(entry, traced, trace["sampled"], self.params["version_table"])
        return entry

    def trace(self, current: list[str], target: str, pending: list[str]) -> dict:
        """Run the pending migrations, and their downgrades back, on a schema-only copy of the live database."""
        params = self.params
        copy = ScratchCopy(
            self.module, self.connection, params["pg_tools"], params["version_table"],
            params["version_table_schema"], current,
        )  # fmt: skip
        started = time.monotonic()
        try:
            with copy as database, LockSampler(self.module, database) as sampler:
                copied = time.monotonic()
                commands = [["upgrade", target], ["downgrade", ",".join(current) or "base"]]
                answers, events = self.runner.trace(database, commands)
                ran = time.monotonic()
        finally:
            self.commands_of_copy = copy.client.commands
        trace = read_trace(answers, events, params["version_table"], pending)
        trace["sampled"] = sampler.seen
        self.trace_times = {
            "database": database,
            "copy_seconds": round(copied - started, 3),
            "run_seconds": round(ran - copied, 3),
            "total_seconds": round(time.monotonic() - started, 3),
            "statements": len(events),
        }
        if trace["failure"]:
            raise TraceFailure(trace["failure"])
        return trace

    def check_data(self, revisions: list[dict]) -> None:
        findings = []
        if self.params["data_checks"]:
            timeout = duration_ms(self.params["data_check_timeout"])
            findings = run_data_checks(self.connection, plan_data_checks(revisions), timeout)
        for revision in revisions:
            revision["data_findings"] = [found for found in findings if found["revision"] == revision["revision"]]

    def lint(self, sql: str) -> list[dict]:
        if not self.squawk:
            return []
        findings = lint_sql(self.squawk, sql, pg_version=self.server_version(), commands=self.runner.commands)
        params = self.params
        return classify(findings, params["lint_error_rules"], params["lint_ignore_rules"], params["lint_warning_rules"])

    def server_version(self) -> str:
        return "%d.%d" % divmod(self.connection.info.server_version // 100, 100)

    def relation_sizes(self, revisions: list[dict]) -> dict:
        names = sorted({relation["relation"] for revision in revisions for relation in revision["relations"]})
        with self.connection.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(RELATION_SIZES_QUERY, {"names": names}).fetchall()
        return {row.pop("name"): row for row in rows}


def validate(module: AnsibleModule) -> None:
    problems = [runner_problem(module.params["runner"])]
    try:
        if duration_ms(module.params["data_check_timeout"]) == 0:
            problems.append(
                "data_check_timeout must be more than 0: with 0 a data check scans the live table without a time "
                "limit; set data_checks to false to run none"
            )
    except ValueError as exc:
        problems.append("data_check_timeout: %s" % exc)
    if any(problems):
        module.fail_json(msg="; ".join(problem for problem in problems if problem))


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(alembic_argument_spec())
    argument_spec.update(
        revision=dict(type="str", default="head"),
        lint=dict(type="bool", default=True),
        squawk_path=dict(type="path"),
        lint_error_rules=dict(type="list", elements="str"),
        lint_ignore_rules=dict(type="list", elements="str"),
        lint_warning_rules=dict(type="list", elements="str"),
        data_checks=dict(type="bool", default=True),
        data_check_timeout=dict(type="str", default="10s"),
        trace=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        pg_tools=dict(
            type="dict",
            default={},
            options=dict(
                container=dict(type="str"),
                login_host=dict(type="str"),
                login_port=dict(type="int"),
                bin_dir=dict(type="path"),
            ),
        ),
    )
    module = AnsibleModule(argument_spec=readable_argument_spec(argument_spec), supports_check_mode=True)
    show_public_values(module)
    if PGLAST_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pglast"), exception=PGLAST_IMPORT_ERROR)
    validate(module)
    try:
        planner = Planner(module)
        result = planner.plan()
    except SquawkError as exc:
        module.fail_json(msg=str(exc), cmd=exc.argv, rc=exc.rc, stderr=exc.stderr)
    except RunnerError as exc:
        module.fail_json(msg=str(exc), cmd=exc.argv, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr)
    except TraceFailure as exc:
        module.fail_json(msg=str(exc), trace_failure=exc.failure, commands=planner.runner.commands)
    except ClientToolError as exc:
        module.fail_json(msg="the scratch copy of the live schema failed: %s" % exc, cmd=exc.argv, rc=exc.rc)
    except ScratchCopyError as exc:
        module.fail_json(msg=str(exc))
    except (RevisionError, SqlPlanError) as exc:
        module.fail_json(msg=str(exc))
    except psycopg.Error as exc:
        module.fail_json(msg="reading the database for the plan failed: %s" % error_text(exc))
    module.exit_json(changed=False, commands=planner.runner.commands + planner.commands_of_copy, **result)


if __name__ == "__main__":
    main()
