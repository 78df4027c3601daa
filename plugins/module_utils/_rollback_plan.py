# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The rollback's decision from the deploy ledger (pure functions)."""

from __future__ import annotations

METHODS = ("downgrade", "restore")


class RollbackPlanError(ValueError):
    """A ledger or an option the rollback cannot be decided from; the sentence names it."""


def rollback_plan(
    ledger,
    rollback_to_deploy_id=None,
    rollback_method: str = "downgrade",
    environment: str = "default",
    proxy: str = "none",
    running_version=None,
) -> dict:
    """What a rollback does, given the ledger rows of one environment (any order, any outcome).

    Only succeeded rows count. Each leaves a state (app version, revision) made by one deploy: a deploy its own, a
    rollback the deploy it went back to, a restore the deploy whose state it brought back. The anchor is the deploy
    whose state runs now; the target is rollback_to_deploy_id, or the newest row before the anchor's position that
    left another state.
    """
    if rollback_method not in METHODS:
        raise RollbackPlanError("rollback_plan: rollback_method must be one of %s" % ", ".join(METHODS))
    wanted = deploy_id_option(rollback_to_deploy_id)
    rows = ledger_rows(ledger)
    succeeded = [row for row in rows if row.get("outcome") == "succeeded"]
    plan = dict(
        status="rollback",
        refusal=None,
        nothing_to_do=False,
        anchor=None,
        target=None,
        undone=[],
        backup=None,
        strategy="stop_the_world",
    )
    if not succeeded:
        return refused(plan, "no_target", no_target(environment, "the ledger has no successful deploy"))
    made_by = state_rows(succeeded)
    anchor = plan["anchor"] = made_by[succeeded[0]["id"]]
    if wanted is None:
        target, problem = previous_state(succeeded, made_by, anchor, environment)
    else:
        target, problem = named_deploy(rows, wanted, environment)
    plan["target"] = target
    if problem:
        return refused(plan, "no_target", problem)
    if state(target) == state(anchor):
        return dict(plan, status="nothing_to_do", nothing_to_do=True)
    if target["id"] > anchor["id"]:
        return refused(dict(plan, target=None), "no_target", no_target(environment, newer_than_anchor(target, anchor)))
    undone = plan["undone"] = undone_rows(succeeded, made_by, anchor, target)
    plan["backup"] = backup_row(undone, target)
    if rollback_method == "downgrade":
        problem = downgrade_problem(undone, target)
        if problem:
            return refused(plan, "downgrade_loses_data", "rollback_method=downgrade refused: %s" % problem)
    elif plan["backup"] is None:
        return refused(plan, "no_backup", no_backup(undone, target))
    return dict(plan, strategy=rollback_strategy(undone, rollback_method, proxy, running_version))


def rollback_strategy(undone: list[dict], rollback_method: str, proxy: str, running_version) -> str:
    """online: the target release starts behind the proxy first and the downgrade runs after the newer app stopped.

    Only when every deploy undone went online (its plan proved the release before it runs on its schema, and its
    changes were additive, so the target release runs on the newest one too), the app runs and a proxy serves it.
    A restore replaces the whole database under the app: never online.
    """
    every_online = bool(undone) and all(
        row.get("kind") == "deploy" and row.get("strategy") == "online" for row in undone
    )
    if rollback_method == "downgrade" and every_online and proxy not in ("none", "", None) and running_version:
        return "online"
    return "stop_the_world"


def deploy_id_option(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RollbackPlanError("rollback_plan: rollback_to_deploy_id must be a ledger id, got %r" % value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RollbackPlanError("rollback_plan: rollback_to_deploy_id must be a ledger id, got %r" % value) from None


def ledger_rows(ledger) -> list[dict]:
    """The rows newest first, after checking each is a ledger row with an id."""
    if not isinstance(ledger, (list, tuple)):
        raise RollbackPlanError("rollback_plan expects the ledger's rows (deploy_ledger_info's deploys) as a list")
    for row in ledger:
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) or isinstance(row.get("id"), bool):
            raise RollbackPlanError("rollback_plan: every ledger row must be a dict with an integer id, got %r" % row)
    return sorted(ledger, key=lambda row: row["id"], reverse=True)


def state(row: dict) -> tuple:
    """What a row left running: the app version and the database revision ('' and None both mean base)."""
    return row.get("app_version_to"), row.get("revision_reached") or None


def left(row: dict, made_by: dict) -> tuple:
    """The state a succeeded row left: the one of the row that made it."""
    return state(made_by[row["id"]])


def went_back_to(row: dict):
    """The deploy id a rollback row went back to, as its details recorded it (a number or its text)."""
    value = (row.get("details") or {}).get("rollback_to_deploy_id")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def state_rows(succeeded: list[dict]) -> dict:
    """id -> the row that made the state a succeeded row left: a deploy, or the row itself when no deploy did."""
    by_id = {row["id"]: row for row in succeeded}
    made_by: dict = {}
    for row in reversed(succeeded):  # oldest first: an older row's answer is there when a newer one needs it
        made_by[row["id"]] = state_row(row, succeeded, by_id, made_by)
    return made_by


def state_row(row: dict, succeeded: list[dict], by_id: dict, made_by: dict) -> dict:
    if row.get("kind") == "deploy":
        return row
    target = by_id.get(went_back_to(row)) if row.get("kind") == "rollback" else None
    if target is not None and target.get("kind") == "deploy":
        return target
    # a restore (or a rollback whose deploy the ledger lacks) brought back the state of an older row, if one left it
    same = next((older for older in succeeded if older["id"] < row["id"] and left(older, made_by) == state(row)), None)
    return made_by[same["id"]] if same is not None else row


def previous_state(succeeded: list[dict], made_by: dict, anchor: dict, environment: str):
    """(target, problem): the deploy of the newest state before the anchor's position that differs from the anchor's."""
    before = next((row for row in succeeded if row["id"] < anchor["id"] and left(row, made_by) != state(anchor)), None)
    if before is None:
        why = "nothing before %s, whose state runs now, left another release or revision" % describe(anchor)
        return None, no_target(environment, why)
    target = made_by[before["id"]]
    if target.get("kind") != "deploy":
        return None, no_target(
            environment,
            "the state before %s is the one %s brought back, which no successful deploy of the ledger left; name the "
            "deploy to go back to with rollback_to_deploy_id" % (describe(anchor), describe(target)),
        )
    return target, None


def named_deploy(rows: list[dict], wanted: int, environment: str):
    """(target, problem): the row of rollback_to_deploy_id when it is a successful deploy."""
    row = next((row for row in rows if row["id"] == wanted), None)
    if row is not None and row.get("kind") == "deploy" and row.get("outcome") == "succeeded":
        return row, None
    why = "ledger id %d is not a successful deploy" % wanted
    if row is None:
        return None, no_target(environment, why)
    if row.get("kind") != "deploy":
        why += ": it is a %s" % row.get("kind")
        if went_back_to(row) is not None:
            why += " back to deploy %d; to go to that state, run with -e rollback_to_deploy_id=%d" % (
                went_back_to(row),
                went_back_to(row),
            )
        return None, no_target(environment, why)
    return None, no_target(
        environment, "%s: the deploy of %s %s" % (why, row.get("app_version_to"), row.get("outcome"))
    )


def undone_rows(succeeded: list[dict], made_by: dict, anchor: dict, target: dict) -> list[dict]:
    """The rows whose changes the rollback undoes, newest first: from the anchor back along the states that led to it.

    Each step goes to the deploy of the state the row started from, so a deploy that a rollback already undid is
    passed over; the walk ends at the target's state or at the target's position.
    """
    undone = []
    row = anchor
    while row["id"] > target["id"]:
        undone.append(row)
        before = next((older for older in succeeded if older["id"] < row["id"]), None)
        if before is None or left(before, made_by) == state(target):
            break
        row = made_by[before["id"]]
    return undone


def backup_row(undone: list[dict], target: dict):
    """The oldest undone deploy that backed up the database at the target's revision: the backup a restore uses."""
    revision = state(target)[1]
    at_target = [
        row
        for row in undone
        if row.get("kind") == "deploy" and row.get("backup_path") and (row.get("revision_from") or None) == revision
    ]
    return at_target[-1] if at_target else None


def downgrade_problem(undone: list[dict], target: dict) -> str | None:
    """Why a downgrade through the undone rows may lose data, or None."""
    problems = []
    restore_planned = [
        str(row["id"]) for row in undone if row.get("kind") == "deploy" and row.get("rollback_method") == "restore"
    ]
    if restore_planned:
        problems.append(
            "the plan of deploy(s) %s said restore (a downgrade would lose data)" % ", ".join(restore_planned)
        )
    # a restore back at the target's revision leaves the downgrade nothing of its own to undo
    unplanned = [describe(row) for row in undone if row.get("kind") != "deploy" and state(row)[1] != state(target)[1]]
    if unplanned:
        problems.append(
            "%s brought back a state that no successful deploy of the ledger left, so no plan says its downgrade keeps "
            "the data" % ", ".join(unplanned)
        )
    return "; ".join(problems) + "; run with -e rollback_method=restore" if problems else None


def no_backup(undone: list[dict], target: dict) -> str:
    return "rollback_method=restore refused: no deploy it undoes (%s) recorded a backup taken at revision %s" % (
        ", ".join(describe(row) for row in undone),
        state(target)[1] or "base",
    )


def newer_than_anchor(target: dict, anchor: dict) -> str:
    return "%s is newer than %s, whose state runs now: a rollback only goes back; deploy %s again with deploy.yml" % (
        describe(target),
        describe(anchor),
        target.get("app_version_to"),
    )


def no_target(environment: str, why: str) -> str:
    return "no successful deploy of %s to go back to (%s)" % (environment, why)


def describe(row: dict) -> str:
    """deploy 4 (1.1.0 at 0002_job_priority)."""
    return "%s %d (%s at %s)" % (row.get("kind"), row["id"], row.get("app_version_to"), state(row)[1] or "base")


def refused(plan: dict, status: str, refusal: str) -> dict:
    return dict(plan, status=status, refusal=refusal)
