# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""lock_timeout retries: PostgreSQL durations and the escalating schedule (pure functions)."""

from __future__ import annotations

import re

_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
MAX_BACKOFF_SECONDS = 5.0

BLOCKERS_QUERY = """SELECT a.pid, a.application_name, a.usename AS user, host(a.client_addr) AS client_addr, a.state,
    EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS xact_seconds, left(a.query, 200) AS query,
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
