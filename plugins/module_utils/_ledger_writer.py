# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The deploy ledger's writes on one connection: start an entry, finish it, put rows back after a restore. The
module deploy_ledger and the composites deploy_start, deploy_finish and deploy_restore run it."""

from __future__ import annotations

import json

from ansible_collections.safedeploy.migrations.plugins.module_utils._ledger import (
    COLUMN_NAMES,
    KINDS,
    OPTION_COLUMNS,
    TABLE_EXISTS_QUERY,
    LedgerSession,
    column_values,
    ddl_statements,
    entries_to_restore,
    expected_entry,
    filter_clause,
    finish_query,
    finished_changes,
    insert_query,
    newest_query,
    normalized_entry,
    row_to_entry,
    select_by_id_query,
    select_by_ids_query,
    sequence_query,
    upsert_query,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    describe_target,
    error_text,
    psycopg,
)


class DeployLedger(LedgerSession):
    """One transaction per run: create the table if missing, write, commit."""

    def __init__(self, module, connection) -> None:
        super().__init__(module, connection)
        self.check_mode = module.check_mode

    def where(self) -> str:
        return "the deploy ledger %s of %s" % (self.table_name, describe_target(self.params))

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, executed_queries=self.executed_queries)

    def run(self, what: str, query, params: dict | None = None, execute: bool = True) -> list:
        """Runs (or only lists) a statement; the audit trail keeps placeholders, never values."""
        self.executed_queries.append(query if isinstance(query, str) else query.as_string(self.connection))
        if not execute:
            return []
        try:
            self.cursor.execute(query, params)
            return self.cursor.fetchall() if self.cursor.description else []
        except psycopg.Error as exc:
            self.fail("%s %s failed: %s" % (what, self.where(), error_text(exc)))

    def commit(self) -> None:
        try:
            self.connection.commit()
        except psycopg.Error as exc:
            self.fail("committing the write to %s failed: %s" % (self.where(), error_text(exc)))

    def table_exists(self) -> bool:
        return self.run("looking for", TABLE_EXISTS_QUERY, {"table": self.table})[0]["exists"]

    def create_table(self) -> None:
        # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: only when missing.
        for statement in ddl_statements(self.schema):
            self.run("creating", statement, execute=not self.check_mode)

    def started(self) -> dict:
        values = column_values(self.params, OPTION_COLUMNS)
        values.setdefault("kind", KINDS[0])
        values["outcome"] = "running"
        if not self.table_exists():
            self.create_table()
        rows = self.run("inserting into", insert_query(self.schema, list(values)), values, not self.check_mode)
        if self.check_mode:
            entry = dict.fromkeys(COLUMN_NAMES)
            entry.update(values, details=self.params["details"])
        else:
            self.commit()
            entry = row_to_entry(rows[0])
        return dict(changed=True, deploy_id=entry["id"], entry=entry, diff=dict(before={}, after=entry))

    def finished(self) -> dict:
        deploy_id = self.params["deploy_id"]
        missing = "cannot finish deploy %s: no row with that id in %s" % (deploy_id, self.where())
        if not self.table_exists():
            self.fail(missing + " (the table does not exist)")
        rows = self.run("reading", select_by_id_query(self.schema, lock=not self.check_mode), {"deploy_id": deploy_id})
        if not rows:
            self.fail(missing)
        before = row_to_entry(rows[0])
        values = column_values(self.params, OPTION_COLUMNS)
        changes = finished_changes(before, self.params["outcome"], values)
        if not changes:
            return dict(changed=False, deploy_id=deploy_id, entry=before)
        params = dict(values, outcome=self.params["outcome"], deploy_id=deploy_id)
        rows = self.run("updating", finish_query(self.schema, list(values)), params, not self.check_mode)
        if self.check_mode:
            after = expected_entry(before, changes)
        else:
            self.commit()
            after = row_to_entry(rows[0])
        return dict(changed=True, deploy_id=deploy_id, entry=after, diff=dict(before=before, after=after))

    def all_entries(self) -> list:
        """Every row, newest first, for a restore to put back; none while the table is missing."""
        if not self.table_exists():
            return []
        where, values = filter_clause(None, None, None, None)
        rows = self.run("reading", newest_query(self.schema, where), dict(values, limit=None))
        return [row_to_entry(row) for row in rows]

    def restored(self) -> dict:
        wanted = [normalized_entry(entry) for entry in self.params["entries"]]
        exists = self.table_exists()
        current = {}
        if exists and wanted:
            query = select_by_ids_query(self.schema, lock=not self.check_mode)
            rows = self.run("reading", query, {"ids": [entry["id"] for entry in wanted]})
            current = {row["id"]: row_to_entry(row) for row in rows}
        to_restore = entries_to_restore(wanted, current)
        if not exists and to_restore:
            self.create_table()
        restored_ids = sorted(entry["id"] for entry in to_restore)
        if to_restore:
            params = {"entries": json.dumps(to_restore)}
            rows = self.run("putting rows back into", upsert_query(self.schema), params, not self.check_mode)
            restored_ids = restored_ids if self.check_mode else sorted(row["id"] for row in rows)
        if exists or to_restore:
            query = sequence_query(self.schema)
            self.run("moving the id sequence of", query, {"table": self.table}, not self.check_mode)
        if not self.check_mode:
            self.commit()
        diff = dict(
            before={"deploys": [current[i] for i in restored_ids if i in current]},
            after={"deploys": sorted((e for e in to_restore if e["id"] in restored_ids), key=lambda e: e["id"])},
        )
        return dict(changed=bool(restored_ids), restored_ids=restored_ids, diff=diff)

    def apply(self) -> dict:
        result = getattr(self, self.params["state"])()
        if not self.module._diff:
            result.pop("diff", None)
        return dict(result, executed_queries=self.executed_queries)
