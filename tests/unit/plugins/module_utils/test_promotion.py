# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._promotion import PromotionError, promotion_verdict

STAGING_HASH = "a" * 64
PRODUCTION_HASH = "b" * 64

# what a successful staging deploy of 1.2.0 from an empty database records
EVIDENCE = {
    "environment": "staging",
    "app_version": "1.2.0",
    "plan_hash": STAGING_HASH,
    "revision_from": None,
    "revision_to": "0003_jobs_queue_index",
    "outcome": "succeeded",
    "ledger_id": 7,
}
SAME_PLAN = {"plan_hash": STAGING_HASH, "from_revision": None, "to_revision": "0003_jobs_queue_index"}
OTHER_PLAN = {
    "plan_hash": PRODUCTION_HASH,
    "from_revision": "0002_job_priority",
    "to_revision": "0003_jobs_queue_index",
}


def verdict(*evidence, **kwargs):
    """The verdict on a production deploy of 1.2.0, from EVIDENCE unless other evidence is given."""
    arguments = dict(required_from="staging", environment="production", app_version="1.2.0", source="store.json")
    arguments.update(kwargs)
    return promotion_verdict(*(evidence or (EVIDENCE,)), **arguments)


def test_no_gate_without_required_from():
    result = promotion_verdict(None, required_from="", app_version="1.2.0")
    assert (result["allowed"], result["status"], result["required_from"]) == (True, "not_required", None)


@pytest.mark.parametrize("evidence", [EVIDENCE, json.dumps(EVIDENCE), json.dumps(EVIDENCE).encode()])
def test_same_release_and_plan_is_promoted(evidence):
    result = verdict(evidence, plan=SAME_PLAN)
    assert (result["allowed"], result["status"]) == (True, "promoted")
    assert (result["plan_hash"], result["evidence_plan_hash"], result["evidence_ledger_id"]) == (
        STAGING_HASH,
        STAGING_HASH,
        7,
    )
    assert "1.2.0 succeeded on staging (ledger id 7)" in result["msg"]


def test_without_a_plan_only_the_evidence_is_checked():
    result = verdict()
    assert (result["allowed"], result["status"], result["plan_hash"]) == (True, "evidence_found", None)


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (None, "no evidence that 1.2.0 succeeded on staging in store.json; deploy it to staging first"),
        ("", "staging in store.json"),
        ({}, "staging in store.json"),
        ("not json", "the promotion evidence in store.json is not a JSON object"),
        ([EVIDENCE], "the promotion evidence in store.json is not a JSON object"),
        (dict(EVIDENCE, environment="qa"), "the promotion evidence in store.json is from qa, not staging"),
        (
            dict(EVIDENCE, app_version="1.1.0"),
            "no evidence that 1.2.0 succeeded on staging: store.json is for 1.1.0; deploy 1.2.0 to staging first",
        ),
        (dict(EVIDENCE, outcome="failed"), "1.2.0 did not succeed on staging: store.json says failed"),
        (dict(EVIDENCE, plan_hash=None), "the promotion evidence in store.json has no plan_hash"),
    ],
)
def test_unusable_evidence_is_missing_and_says_why(evidence, expected):
    for plan in (None, SAME_PLAN):
        result = verdict(evidence, plan=plan)
        assert (result["allowed"], result["status"]) == (False, "missing")
        assert expected in result["msg"]


def test_a_different_plan_is_refused_with_both_hashes_and_ranges():
    result = verdict(plan=OTHER_PLAN)
    assert (result["allowed"], result["status"]) == (False, "plan_differs")
    assert result["msg"] == (
        "the plan differs from the one 1.2.0 ran on staging: production would migrate 0002_job_priority -> "
        "0003_jobs_queue_index with plan hash %s, staging migrated base -> 0003_jobs_queue_index with plan hash %s "
        "(the databases started at different revisions, or the release's scripts changed)"
        % (PRODUCTION_HASH, STAGING_HASH)
    )
    assert (result["plan_hash"], result["evidence_plan_hash"]) == (PRODUCTION_HASH, STAGING_HASH)


@pytest.mark.parametrize(
    ("evidence", "plan", "refused_as"), [(None, None, "no evidence"), (EVIDENCE, OTHER_PLAN, "the plan differs")]
)
def test_an_override_allows_and_keeps_the_reason(evidence, plan, refused_as):
    result = verdict(evidence, plan=plan, override=True)
    assert (result["allowed"], result["status"]) == (True, "overridden")
    assert result["msg"].startswith("overridden: " + refused_as)


def test_an_override_changes_nothing_when_the_evidence_is_good():
    assert verdict(plan=SAME_PLAN, override=True)["status"] == "promoted"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(app_version=""), "app_version is required"),
        (dict(plan={"to_revision": "0003"}), "plan must be a migration plan"),
        (dict(plan="abc"), "plan must be a migration plan"),
        (dict(override="yes"), "override must be a boolean"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(PromotionError, match=match):
        verdict(**kwargs)
