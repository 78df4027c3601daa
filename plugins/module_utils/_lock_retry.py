# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""lock_timeout retries: durations, the escalating schedule and the options that set them (pure functions)."""

from __future__ import annotations

import re

_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
MAX_BACKOFF_SECONDS = 5.0
BIGINT_RANGE = (-(2**63), 2**63 - 1)
DURATION_OPTIONS = ("lock_timeout", "max_lock_timeout", "statement_timeout", "client_connection_check_interval")

BLOCKERS_QUERY = """SELECT a.pid, a.application_name, a.usename AS user, host(a.client_addr) AS client_addr, a.state,
    EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS xact_seconds, a.query,
    array_agg(DISTINCT l.relation::regclass::text ORDER BY l.relation::regclass::text) AS relations
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND a.xact_start < now() - make_interval(secs => %(older_than)s)
    AND l.relation NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace)
GROUP BY a.pid, a.application_name, a.usename, a.client_addr, a.state, a.xact_start, a.query
ORDER BY a.xact_start"""


def duration_ms(value) -> int:
    """Milliseconds in a PostgreSQL duration: 500, '500ms', '2s', '1min'; 0 means no limit."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?", text)
    if not match:
        raise ValueError("%r is not a PostgreSQL duration such as 500ms, 2s or 1min" % (value,))
    return int(float(match.group(1)) * _UNITS_MS[match.group(2) or "ms"])


def format_ms(milliseconds: int) -> str:
    return "%dms" % milliseconds


def lock_timeout_schedule(base_ms: int, retries: int, max_ms: int) -> list[int]:
    """lock_timeout per attempt: doubling from the base up to max_ms, which bounds how long readers queue behind us."""
    return [min(base_ms * (2**attempt), max(max_ms, base_ms)) for attempt in range(retries + 1)]


def backoff_seconds(attempt: int) -> float:
    """Pause after a failed attempt, to let the blocker finish and the queue behind us drain."""
    return min(0.5 * (2**attempt), MAX_BACKOFF_SECONDS)


def option_problems(params: dict) -> list[str]:
    """One sentence per alembic_migrate lock or retry option that makes no sense, naming it."""
    problems, durations = [], {}
    for option in DURATION_OPTIONS:
        if params.get(option) is not None:
            try:
                durations[option] = duration_ms(params[option])
            except ValueError as exc:
                problems.append("%s: %s" % (option, exc))
    lock_ms, max_ms = durations.get("lock_timeout"), durations.get("max_lock_timeout")
    if lock_ms == 0:
        problems.append(
            "lock_timeout must be more than 0: with 0 a DDL statement waits for its lock for ever and every reader "
            "of the table queues behind it"
        )
    elif lock_ms is not None and max_ms is not None and max_ms < lock_ms:
        problems.append(
            "max_lock_timeout (%s) must not be below lock_timeout (%s)"
            % (params["max_lock_timeout"], params["lock_timeout"])
        )
    for option, unit in (("retries", "attempts"), ("retry_budget", "seconds"), ("lock_wait_timeout", "seconds")):
        if params.get(option) is not None and params[option] < 0:
            problems.append("%s must be 0 or more %s, got %s" % (option, unit, params[option]))
    key = params.get("advisory_lock_key")
    if key is not None and not BIGINT_RANGE[0] <= key <= BIGINT_RANGE[1]:
        problems.append("advisory_lock_key must be a signed 64-bit integer, got %s" % key)
    return problems
