# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The migration plan: per pending revision its SQL, locks, lint findings, compatibility and rollback method."""

from __future__ import annotations

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_offline import (
    offline_range,
    plan_hash,
    split_offline_sql,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    RunnerError,
    last_error_line,
    last_started_revision,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._plan_trace import (
    cut_into_revisions,
    drop_bookkeeping_reads,
    overlay_traced_locks,
    traced_locks,
    traced_sql,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._sql_plan import (
    analyze_sql,
    created_relations,
    relation_key,
    summarize,
)

RELATION_SIZES_QUERY = """SELECT requested.name, c.oid IS NOT NULL AS exists, c.reltuples::bigint AS rows_estimate,
    CASE WHEN c.oid IS NULL THEN NULL ELSE pg_total_relation_size(c.oid) END AS total_bytes, c.relkind::text
FROM unnest(%(names)s::text[]) AS requested(name) LEFT JOIN pg_class c ON c.oid = to_regclass(requested.name)"""


def offline_target(requested: str, target: list[str]) -> str:
    """The name the offline runs give alembic: a symbolic one as asked, so that likely_offline_commands matches."""
    if requested in ("head", "heads"):
        return requested
    return target[0] if len(target) == 1 else "heads"


def likely_offline_commands(current: list[str], requested: str) -> list[list[str]]:
    """The alembic runs a plan from current to the requested revision asks for when every revision goes back down."""
    return [
        ["history", "--verbose"],
        ["upgrade", offline_range(current, requested), "--sql"],
        ["downgrade", offline_range([requested], ",".join(current) or "base", "downgrade"), "--sql"],
    ]


def upgrade_steps_by_revision(runner, current: list[str], target: str) -> dict:
    """{revision: its offline upgrade step (sql, lint_sql)} from one alembic run over the whole range."""
    text = runner.run(["upgrade", offline_range(current, target), "--sql"])
    return {step["to_revision"]: step for step in split_offline_sql(text) if step["direction"] == "upgrade"}


def rendered_upgrade_steps(runner, current: list[str], target: str) -> tuple[dict, RunnerError | None]:
    """upgrade_steps_by_revision, or when offline mode fails (a revision reads the database), the steps of the
    revisions before the one that failed, and the failure."""
    try:
        return upgrade_steps_by_revision(runner, current, target), None
    except RunnerError as exc:
        # the last step alembic began is the one that raised: its SQL stops half-way
        steps = [step for step in split_offline_sql(exc.stdout) if step["direction"] == "upgrade"][:-1]
        return {step["to_revision"]: step for step in steps}, exc


def read_trace(answers: list[dict], events: list[dict], version_table: str, pending: list[str]) -> dict:
    """The traced run (upgrade, then downgrade back) as {upgrades: {revision: statements}, downgrades: {revision:
    sql}, failure, downgrade_failure}; a failure names the revision that raised on the copy and its error."""
    done, _rest = cut_into_revisions([e for e in events if e["command"] == 0], version_table)
    trace = {
        "upgrades": {revision: drop_bookkeeping_reads(statements, version_table) for revision, statements in done},
        "downgrades": {},
        "failure": None,
        "downgrade_failure": None,
    }
    if answers[0]["rc"] != 0:
        failing = next((revision for revision in pending if revision not in trace["upgrades"]), None)
        trace["failure"] = {"revision": failing, "error": last_error_line(answers[0]["stderr"] + answers[0]["stdout"])}
        return trace
    if len(answers) > 1:
        undone, _rest = cut_into_revisions([e for e in events if e["command"] == 1], version_table, "downgrade")
        trace["downgrades"] = {
            revision: traced_sql(drop_bookkeeping_reads(statements, version_table)) for revision, statements in undone
        }
        if answers[1]["rc"] != 0:
            failing = next((r for r in reversed(pending) if r not in trace["downgrades"]), None)
            error = last_error_line(answers[1]["stderr"] + answers[1]["stdout"])
            trace["downgrade_failure"] = {"revision": failing, "error": error}
    return trace


def apply_trace(entry: dict, statements: list[dict], sampled: dict, version_table: str) -> None:
    """The revision's relations with the lock modes and rewrites its traced statements showed."""
    named = {relation_key(relation["relation"]) for relation in entry["relations"]}
    held, seen_running, rewritten = traced_locks(statements, sampled, named, version_table)
    entry["relations"] = overlay_traced_locks(entry["relations"], held, seen_running, rewritten)
    entry["traced_locks"] = [
        {"relation": name, "lock_mode": mode, "lock_source": source}
        for source, modes in (("traced", held), ("sampled", seen_running))
        for name, mode in sorted(modes.items())
    ]


def downgrade_sql_by_revision(runner, current: list[str], target: str, pending: list[str]) -> dict:
    """{revision: its offline downgrade SQL, or None when its downgrade raises}; one run per irreversible revision."""
    found: dict = {}
    top = target
    while top and top not in current:
        try:
            text = runner.run(["downgrade", offline_range([top], ",".join(current) or "base", "downgrade"), "--sql"])
        except RunnerError as exc:
            failing = last_started_revision(exc.stderr + exc.stdout, runner.revision_files)
            if failing is None or failing not in pending or failing in found:
                raise
            # the failing revision's SQL stops half-way: it has no working downgrade
            found[failing] = None
            for step in split_offline_sql(exc.stdout):
                found.setdefault(step["from_revision"], step["sql"])
            top = previous_of(failing, pending)
            continue
        for step in split_offline_sql(text):
            found.setdefault(step["from_revision"], step["sql"])
        break
    return found


def previous_of(revision: str, pending: list[str]) -> str | None:
    index = pending.index(revision)
    return pending[index - 1] if index else None


def rollback_method(analysis: dict, downgrade_sql: str | None, no_downgrade: str | None = None) -> tuple[str, str]:
    """('downgrade'|'restore', why): a downgrade only when it exists, does something, and nothing was destroyed."""
    if downgrade_sql is None:
        return "restore", no_downgrade or "its downgrade raises (irreversible)"
    if analysis["destructive"]:
        return "restore", "it destroys data a downgrade cannot bring back"
    undo = [s for s in analyze_sql(downgrade_sql) if not s.get("bookkeeping")]
    does_something = [s for s in analysis["statements"] if not s.get("bookkeeping")]
    if does_something and not undo:
        return "restore", "its downgrade does nothing"
    return "downgrade", "its downgrade reverses it"


def describe_revision(
    revision: str, message: str, sql: str, downgrade_sql: str | None, no_downgrade: str | None = None
) -> dict:
    statements = analyze_sql(sql)
    summary = summarize(statements)
    entry = {
        "revision": revision,
        "message": message,
        "sql": sql,
        "statements": statements,
        "relations": summary["relations"],
        "transactional": summary["transactional"],
        "destructive": summary["destructive"],
        "backward_compatible": summary["backward_compatible"],
        "incompatible_reasons": summary["incompatible_reasons"],
        "downgrade_sql": downgrade_sql,
    }
    entry["rollback_method"], entry["rollback_reason"] = rollback_method(entry, downgrade_sql, no_downgrade)
    return entry


# Rules about writers waiting for a scan or a rewrite of existing rows: moot on a table the plan itself creates
RULES_MOOT_ON_NEW_TABLES = {
    "require-concurrent-index-creation", "adding-field-with-default", "adding-not-nullable-field",
    "adding-required-field", "adding-serial-primary-key-field", "adding-foreign-key-constraint",
    "constraint-missing-not-valid", "disallowed-unique-constraint", "changing-column-type",
}  # fmt: skip


def relax_on_tables_the_plan_creates(revisions: list[dict]) -> None:
    """For a statement whose every relation was created earlier in the plan, the findings of RULES_MOOT_ON_NEW_TABLES
    become `info` and its backward-compatibility reasons become notes: the table is empty, nothing waits, and the
    running release has never used it."""
    created: set[str] = set()
    for revision in revisions:
        for statement in revision["statements"]:
            text = statement["statement"].strip()
            touched = [relation_key(relation["relation"]) for relation in statement["relations"]]
            if touched and all(name in created for name in touched):
                for finding in revision.get("findings", []):
                    if finding["rule"] in RULES_MOOT_ON_NEW_TABLES and finding["statement"].strip() == text:
                        finding.update(severity="info", note="on a table this plan creates: empty, nothing waits")
                statement["notes"] += [
                    "%s, on a table this plan creates: the running release never used it" % reason
                    for reason in statement["incompatible_reasons"]
                ]
                statement["incompatible_reasons"] = []
            created.update(created_relations(statement))
        revision["incompatible_reasons"] = [r for s in revision["statements"] for r in s["incompatible_reasons"]]
        revision["backward_compatible"] = not revision["incompatible_reasons"]


def attach_sizes(revisions: list[dict], sizes: dict) -> None:
    for revision in revisions:
        for relation in revision["relations"]:
            relation.update(sizes.get(relation["relation"], {"exists": False}))


def plan_summary(revisions: list[dict]) -> dict:
    relations: dict = {}
    for revision in revisions:
        for relation in revision["relations"]:
            relations.setdefault(relation["relation"], []).append(revision["revision"])
    findings = [finding for revision in revisions for finding in revision.get("findings", [])]
    data = [finding for revision in revisions for finding in revision.get("data_findings", [])]
    return {
        "pending": len(revisions),
        "relations": sorted(relations),
        "backward_compatible": all(revision["backward_compatible"] for revision in revisions),
        "incompatible_reasons": [
            "%s: %s" % (revision["revision"], reason)
            for revision in revisions
            for reason in revision["incompatible_reasons"]
        ],
        "transactional": all(revision["transactional"] for revision in revisions),
        "destructive": any(revision["destructive"] for revision in revisions),
        "rollback_method": "restore" if any(r["rollback_method"] == "restore" for r in revisions) else "downgrade",
        "lint_errors": len([finding for finding in findings if finding["severity"] == "error"]),
        "lint_warnings": len([finding for finding in findings if finding["severity"] == "warning"]),
        "data_errors": len([finding for finding in data if finding["severity"] == "error"]),
        "data_warnings": len([finding for finding in data if finding["severity"] == "warning"]),
        "data_findings": [finding["message"] for finding in data if finding["severity"] != "ok"],
        "concurrent_indexes": [
            s["concurrent_index"] for revision in revisions for s in revision["statements"] if s.get("concurrent_index")
        ],
        "sql_sources": sorted({revision.get("sql_source", "offline") for revision in revisions}),
        "plan_hash": plan_hash([(revision["revision"], revision["sql"]) for revision in revisions]),
    }
