# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The pre-flight policy of pg_preflight: which session gets which action, as pure functions over pg_lock_info data."""

from __future__ import annotations

APPLICATION_NAME = "safedeploy.pg_preflight"

SESSION_FINDINGS = ("lock_holders", "long_transactions", "idle_in_transaction", "dumps_running")
SESSION_POLICIES = ("wait", "fail", "cancel", "terminate", "ignore")
STATE_FINDINGS = ("invalid_indexes", "transaction_pooling")
STATE_POLICIES = ("fail", "warn", "ignore")
# invalid_indexes may also be dropped, when the plan builds them again
INVALID_INDEX_POLICIES = STATE_POLICIES + ("drop",)
DEFAULT_POLICIES = {
    "lock_holders": "wait",
    "long_transactions": "wait",
    "idle_in_transaction": "wait",
    "dumps_running": "wait",
    "invalid_indexes": "warn",
    "transaction_pooling": "fail",
}

# When one session falls under several findings the most decisive policy wins.
ACTION_RANK = {"fail": 4, "terminate": 3, "cancel": 2, "wait": 1, "ignore": 0}
SIGNAL_FUNCTIONS = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}
SESSION_KEYS = ("pid", "application_name", "user", "state", "xact_age_seconds")


def signal_query(action: str) -> str:
    return "SELECT %s(%%(pid)s) AS signalled" % SIGNAL_FUNCTIONS[action]


def _session(entry: dict, relation: str | None) -> dict:
    session = {key: entry.get(key) for key in SESSION_KEYS}
    session["relation"] = relation
    return session


def relations_by_pid(locks: list) -> dict:
    """pid -> comma-separated relations it holds or awaits a lock on, in first-seen order."""
    found: dict = {}
    for lock in locks:
        if lock.get("pid") is not None:
            found.setdefault(lock["pid"], [])
            if lock["relation"] not in found[lock["pid"]]:
                found[lock["pid"]].append(lock["relation"])
    return {pid: ", ".join(names) for pid, names in found.items()}


def session_findings(lock_info: dict) -> dict:
    """The sessions of each finding, limited to the database of the connection; one entry per pid."""
    database = lock_info["database"]
    relations = relations_by_pid(lock_info["locks"])
    findings = {"lock_holders": []}
    seen: set = set()
    for lock in lock_info["locks"]:
        if lock.get("pid") is not None and lock["pid"] not in seen:
            seen.add(lock["pid"])
            findings["lock_holders"].append(_session(lock, relations[lock["pid"]]))
    for name in ("long_transactions", "idle_in_transaction", "dumps_running"):
        findings[name] = [
            _session(entry, relations.get(entry["pid"]))
            for entry in lock_info[name]
            if entry.get("database") == database and entry.get("pid") is not None
        ]
    return findings


def drop_allowed(findings: dict, allow_applications: list) -> dict:
    """The findings without the sessions whose application_name is allow-listed."""
    allowed = set(allow_applications or [])
    return {
        name: [session for session in sessions if session["application_name"] not in allowed]
        for name, sessions in findings.items()
    }


def decide(findings: dict, policies: dict, signal_min_age: float) -> list:
    """One decision per session: the most decisive policy of its findings; signals spare the young (they wait)."""
    decisions: dict = {}
    for name in SESSION_FINDINGS:
        policy = policies[name]
        if policy == "ignore":
            continue
        for session in findings.get(name, []):
            action = policy
            if action in SIGNAL_FUNCTIONS and (session["xact_age_seconds"] or 0) < signal_min_age:
                action = "wait"
            current = decisions.get(session["pid"])
            if current is None:
                decisions[session["pid"]] = dict(session, action=action, findings=[name])
                continue
            current["findings"].append(name)
            if ACTION_RANK[action] > ACTION_RANK[current["action"]]:
                current["action"] = action
    return sorted(decisions.values(), key=lambda decision: decision["pid"])


def drop_transactions_begun_since(decisions: list, seconds: float | None) -> list:
    """The decisions without waits on transactions younger than `seconds`, the time since the previous read.

    Such a session ended the transaction it was waited for, or began after the wait did: a busy worker running one
    short transaction after the other is never in the way for long, the migration's lock_timeout covers it.
    """
    if seconds is None:
        return decisions
    return [decision for decision in decisions if not _wait_on_transaction_younger_than(decision, seconds)]


def _wait_on_transaction_younger_than(decision: dict, seconds: float) -> bool:
    age = decision["xact_age_seconds"]
    return decision["action"] == "wait" and age is not None and age < seconds


def describe_session(session: dict) -> str:
    age = session["xact_age_seconds"]
    parts = [
        "application_name=%s" % (session["application_name"] or "''"),
        "user=%s" % session["user"],
        "state=%s" % session["state"],
        "transaction age %s" % ("%.1f s" % age if age is not None else "none"),
    ]
    if session["relation"]:
        parts.append("relation %s" % session["relation"])
    return "pid %s (%s)" % (session["pid"], ", ".join(parts))


def action_entry(decision: dict, action: str) -> dict:
    return {
        "pid": decision["pid"],
        "action": action,
        "application_name": decision["application_name"],
        "reason": "%s: %s" % (", ".join(decision["findings"]), describe_session(decision)),
    }


def blocked_message(what: str, decisions: list) -> str:
    """'<what>: <finding> pid ... (...); ...' naming each session and why it counts."""
    sessions = "; ".join("%s %s" % ("/".join(d["findings"]), describe_session(d)) for d in decisions)
    return "%s: %s" % (what, sessions)


def planned_invalid_indexes(invalid: list, planned: list) -> list:
    """The invalid indexes the plan builds again (by name, or schema.name): what a failed CREATE INDEX CONCURRENTLY
    of an earlier run left, which keeps the retry from building it while it holds the name."""
    wanted = {name.lower().replace('"', "") for name in planned or ()}
    return [
        index for index in invalid if {index["index"].lower(), "%s.%s" % (index["schema"], index["index"])} & wanted
    ]


def state_verdicts(lock_info: dict, pooler: dict | None, policies: dict, planned_indexes: list | None = None) -> tuple:
    """(failure sentences, warning sentences) for invalid indexes and transaction pooling. With the `drop` policy
    the invalid indexes the plan builds again are left to be dropped, the others are warnings."""
    failures, warnings = [], []
    policy = policies["invalid_indexes"]
    invalid = lock_info["invalid_indexes"]
    if policy == "drop":
        dropped = planned_invalid_indexes(invalid, planned_indexes)
        invalid = [index for index in invalid if index not in dropped]
    if invalid and policy != "ignore":
        names = ", ".join("%s.%s on %s" % (i["schema"], i["index"], i["table"]) for i in invalid)
        sentence = "invalid indexes (left by an interrupted CREATE INDEX CONCURRENTLY?): %s" % names
        (failures if policy == "fail" else warnings).append(sentence)
    if pooler and pooler["transaction_pooling"] and policies["transaction_pooling"] != "ignore":
        sentence = (
            "the connection goes through a transaction-pooling proxy (%s); advisory locks and session settings are "
            "unsafe there" % pooler["detail"]
        )
        (failures if policies["transaction_pooling"] == "fail" else warnings).append(sentence)
    return failures, warnings


def would(action: str) -> str:
    return "would_" + action
