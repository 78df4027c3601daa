# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The promotion gate's verdict from the evidence, the release and the plan (pure functions)."""

from __future__ import annotations

import json

from ansible.module_utils.common.text.converters import to_text


class PromotionError(ValueError):
    """An argument the verdict cannot be given on; the sentence names it."""


def promotion_verdict(
    evidence,
    required_from: str = "",
    environment: str = "",
    app_version: str = "",
    plan=None,
    override: bool = False,
    source: str = "the evidence store",
) -> dict:
    """Whether a deploy of app_version may go ahead, given the evidence that it succeeded on required_from.

    Without a plan only the evidence is checked (status evidence_found); with one, its plan hash must be the one the
    evidence recorded. An override turns a refusal into status overridden and keeps the refusal's sentence.
    """
    if not isinstance(override, bool):
        raise PromotionError("promotion_verdict: override must be a boolean")
    verdict = {
        "allowed": True,
        "status": "not_required",
        "msg": "no promotion required",
        "required_from": required_from or None,
        "source": source,
        "plan_hash": None,
        "evidence_plan_hash": None,
        "evidence_ledger_id": None,
    }
    if not required_from:
        return verdict
    if not app_version:
        raise PromotionError("promotion_verdict: app_version is required")
    plan_hash = plan_field(plan, "plan_hash")
    record = evidence_record(evidence)
    if isinstance(record, dict):
        verdict.update(evidence_plan_hash=record.get("plan_hash"), evidence_ledger_id=record.get("ledger_id"))
    verdict["plan_hash"] = plan_hash
    problem = evidence_problem(record, required_from, app_version, source)
    status = "missing" if problem else "evidence_found"
    if not problem and plan is not None:
        problem = plan_difference(record, plan, environment or "this environment", required_from, app_version)
        status = "plan_differs" if problem else "promoted"
    if not problem:
        verdict.update(status=status, msg=evidence_found_msg(record, required_from, app_version, plan is not None))
    elif override:
        verdict.update(status="overridden", msg="overridden: %s" % problem)
    else:
        verdict.update(allowed=False, status=status, msg=problem)
    return verdict


def plan_field(plan, name: str):
    if plan is None:
        return None
    if not isinstance(plan, dict) or not plan.get("plan_hash"):
        raise PromotionError("promotion_verdict: plan must be a migration plan with a plan_hash")
    return plan.get(name)


def evidence_record(evidence):
    """The evidence as a dict, None when there is none, or the text it came as when it is no JSON object."""
    if evidence is None or evidence == "" or evidence == {}:
        return None
    if isinstance(evidence, (str, bytes)):
        try:
            evidence = json.loads(to_text(evidence))
        except ValueError:
            return to_text(evidence)
    return evidence if isinstance(evidence, dict) else to_text(evidence)


def evidence_problem(record, required_from: str, app_version: str, source: str) -> str | None:
    """Why the record does not show app_version succeeding on required_from, or None when it does."""
    if record is None:
        return "no evidence that %s succeeded on %s in %s; deploy it to %s first" % (
            app_version,
            required_from,
            source,
            required_from,
        )
    if not isinstance(record, dict):
        return "the promotion evidence in %s is not a JSON object" % source
    if record.get("environment") != required_from:
        return "the promotion evidence in %s is from %s, not %s" % (source, record.get("environment"), required_from)
    if record.get("app_version") != app_version:
        return "no evidence that %s succeeded on %s: %s is for %s; deploy %s to %s first" % (
            app_version,
            required_from,
            source,
            record.get("app_version"),
            app_version,
            required_from,
        )
    if record.get("outcome") != "succeeded":
        return "%s did not succeed on %s: %s says %s" % (app_version, required_from, source, record.get("outcome"))
    if not record.get("plan_hash"):
        return "the promotion evidence in %s has no plan_hash" % source
    return None


def plan_difference(record: dict, plan: dict, environment: str, required_from: str, app_version: str) -> str | None:
    if record["plan_hash"] == plan["plan_hash"]:
        return None
    return (
        "the plan differs from the one %s ran on %s: %s would migrate %s -> %s with plan hash %s, %s migrated %s -> %s "
        "with plan hash %s (the databases started at different revisions, or the release's scripts changed)"
        % (
            app_version,
            required_from,
            environment,
            plan.get("from_revision") or "base",
            plan.get("to_revision") or "base",
            plan["plan_hash"],
            required_from,
            record.get("revision_from") or "base",
            record.get("revision_to") or "base",
            record["plan_hash"],
        )
    )


def evidence_found_msg(record: dict, required_from: str, app_version: str, plan_compared: bool) -> str:
    msg = "%s succeeded on %s (ledger id %s) with plan hash %s" % (
        app_version,
        required_from,
        record.get("ledger_id"),
        record["plan_hash"],
    )
    return msg + (", the plan here is the same" if plan_compared else "")
