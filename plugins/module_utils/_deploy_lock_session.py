# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The deploy lock of one environment on one connection: take it (waiting, or taking over a dead holder), renew it,
give it back. The module deploy_lock and the composite deploy_start run it."""

from __future__ import annotations

import time

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    WORKING_SESSIONS_QUERY,
    ddl_statements,
    delete_query,
    describe_holder,
    heartbeat_query,
    insert_query,
    is_stale,
    lock_entry,
    select_query,
    table_identifier,
    take_over_query,
    working_patterns,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import TABLE_EXISTS_QUERY
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    describe_target,
    dict_row,
    error_text,
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

    def __init__(self, module, connection) -> None:
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
