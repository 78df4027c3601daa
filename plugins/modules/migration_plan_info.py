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
        in time is a warning, not an error.
    type: str
    default: 10s
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
      description: The revision's offline SQL.
      type: str
      sample: "BEGIN;\n\nALTER TABLE jobs ADD COLUMN priority SMALLINT;\n..."
    statements:
      description: Each statement with its kind, relations, lock modes and flags.
      type: list
      elements: dict
      sample:
        - {"kind": "CREATE INDEX", "transactional": false,
           "relations": [{"relation": "jobs", "lock_mode": "ShareUpdateExclusiveLock"}]}
    relations:
      description: Each relation touched, with the strongest lock, rewrites and scans, and its live size.
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
commands:
  description: The runner and squawk commands run.
  returned: always
  type: list
  elements: list
  sample:
    - [alembic, history, --verbose]
    - [alembic, upgrade, "0002_job_priority:0004_drop_customer_legacy_code", --sql]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    RevisionError,
    resolve_target,
    upgrade_path,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import AlembicRunner, RunnerError
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
    attach_sizes,
    describe_revision,
    downgrade_sql_by_revision,
    likely_offline_commands,
    offline_target,
    plan_summary,
    relax_on_tables_the_plan_creates,
    upgrade_steps_by_revision,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    dict_row,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import PGLAST_IMPORT_ERROR, SqlPlanError
from ansible_collections.safedeploy.migrations.plugins.module_utils._squawk import (
    SquawkError,
    classify,
    find_squawk,
    lint_sql,
)

APPLICATION_NAME = "safedeploy.migration_plan_info"


class Planner:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.runner = AlembicRunner.from_params(self.params)
        self.connection = connect(module, application_name=APPLICATION_NAME)
        self.squawk = find_squawk(module, self.params["squawk_path"]) if self.params["lint"] else None

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
            upgrades = upgrade_steps_by_revision(self.runner, status.current, target_name)
            downgrades = downgrade_sql_by_revision(self.runner, status.current, target_name, pending)
            for revision in pending:
                step = upgrades[revision]
                entry = describe_revision(
                    revision, status.revisions[revision]["message"], step["sql"], downgrades.get(revision)
                )
                entry["findings"] = self.lint(step["lint_sql"])
                revisions.append(entry)
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
        )

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
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if PGLAST_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pglast"), exception=PGLAST_IMPORT_ERROR)
    try:
        duration_ms(module.params["data_check_timeout"])
    except ValueError as exc:
        module.fail_json(msg="data_check_timeout: %s" % exc)
    try:
        planner = Planner(module)
        result = planner.plan()
    except SquawkError as exc:
        module.fail_json(msg=str(exc), cmd=exc.argv, rc=exc.rc, stderr=exc.stderr)
    except RunnerError as exc:
        module.fail_json(msg=str(exc), cmd=exc.argv, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr)
    except (RevisionError, SqlPlanError) as exc:
        module.fail_json(msg=str(exc))
    except psycopg.Error as exc:
        module.fail_json(msg="reading the database for the plan failed: %s" % error_text(exc))
    module.exit_json(changed=False, commands=planner.runner.commands, **result)


if __name__ == "__main__":
    main()
