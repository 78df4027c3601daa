# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._rollback_plan import (
    RollbackPlanError,
    rollback_plan,
)

# the example app's releases and the revision each one's deploy reaches
REVISION = {"1.0.0": "0001", "1.1.0": "0002", "1.2.0": "0003", "1.3.0": "0004"}
FROM = {"1.0.0": None, "1.1.0": "0001", "1.2.0": "0002", "1.3.0": "0003"}


def deploy(row_id, version, start=None, outcome="succeeded", method="downgrade", backup=True):
    """A deploy row as deploy_ledger_info returns it; start: the release it started from (the one before by default)."""
    revision_from = REVISION[start] if start else FROM[version]
    return dict(
        id=row_id,
        kind="deploy",
        outcome=outcome,
        app_version_to=version,
        revision_from=revision_from,
        revision_reached=REVISION[version],
        rollback_method=method,
        backup_path="/backups/%d_at_%s.dump" % (row_id, revision_from or "base") if backup else None,
        details={},
    )


def rollback(row_id, to_id, version, outcome="succeeded", method="downgrade"):
    """A rollback row; the details hold the id as text, the way the ledger keeps a templated value."""
    return dict(
        id=row_id,
        kind="rollback",
        outcome=outcome,
        app_version_to=version,
        revision_reached=REVISION[version],
        rollback_method=method,
        backup_path=None,
        details={"rollback_to_deploy_id": str(to_id)},
    )


def restore(row_id, version, revision=None):
    """A restore row as roles/restore records it: the backup's release and the revision it brought back."""
    return dict(
        id=row_id,
        kind="restore",
        outcome="succeeded",
        app_version_to=version,
        revision_from="0004",
        revision_reached=revision or REVISION[version],
        rollback_method="restore",
        backup_path="/backups/restored.dump",
        details={},
    )


CHAIN = [deploy(1, "1.0.0"), deploy(2, "1.1.0"), deploy(3, "1.2.0")]
# the reported bug: deploy 1.0.0, deploy 1.1.0, rollback to 1.0.0, deploy 1.1.0 again
REDEPLOYED = [deploy(1, "1.0.0"), deploy(2, "1.1.0"), rollback(3, 1, "1.0.0"), deploy(4, "1.1.0", start="1.0.0")]
# back from 1.2.0 to 1.1.0, then on to 1.3.0 from there: deploy 3 is undone already
ROLLED_BACK_THEN_ON = CHAIN + [rollback(4, 2, "1.1.0"), deploy(5, "1.3.0", start="1.1.0")]


def ids(rows):
    return [row["id"] for row in rows]


def row_id(row):
    return row["id"] if row else None


def decision(plan) -> tuple:
    """(status, anchor id, target id, undone ids, backup id) of a plan."""
    return plan["status"], row_id(plan["anchor"]), row_id(plan["target"]), ids(plan["undone"]), row_id(plan["backup"])


@pytest.mark.parametrize(
    ("ledger", "options", "expected"),
    [
        pytest.param(CHAIN, {}, ("rollback", 3, 2, [3], 3), id="plain-chain"),
        pytest.param(CHAIN[:2], {}, ("rollback", 2, 1, [2], 2), id="two-deploys"),
        pytest.param(CHAIN, {"rollback_to_deploy_id": 1}, ("rollback", 3, 1, [3, 2], 2), id="chain-two-back"),
        pytest.param(list(reversed(CHAIN)), {}, ("rollback", 3, 2, [3], 3), id="any-order"),
        # not 1.1.0 -> 1.1.0: deploy 4 is undone, with the backup it took at 1.0.0's revision after the rollback
        pytest.param(REDEPLOYED, {}, ("rollback", 4, 1, [4], 4), id="deploy-rollback-redeploy"),
        pytest.param(
            CHAIN + [rollback(4, 2, "1.1.0")], {}, ("rollback", 2, 1, [2], 2), id="second-rollback-walks-back"
        ),
        pytest.param(
            CHAIN + [rollback(4, 2, "1.1.0"), rollback(5, 1, "1.0.0"), deploy(6, "1.3.0", start="1.0.0")],
            {},
            ("rollback", 6, 1, [6], 6),
            id="redeploy-after-two-rollbacks",
        ),
        pytest.param(ROLLED_BACK_THEN_ON, {}, ("rollback", 5, 2, [5], 5), id="over-a-rollback"),
        # 1.3.0 started from 1.1.0's state: going to 1.0.0 undoes it and deploy 2, not deploy 3
        pytest.param(
            ROLLED_BACK_THEN_ON, {"rollback_to_deploy_id": 1}, ("rollback", 5, 1, [5, 2], 2), id="undone-skips-undone"
        ),
        # 1.2.0's state is not on the way back from 1.3.0: 1.3.0 is undone, with no backup at 1.2.0's revision
        pytest.param(
            ROLLED_BACK_THEN_ON,
            {"rollback_to_deploy_id": 3},
            ("rollback", 5, 3, [5], None),
            id="named-deploy-off-the-way",
        ),
    ],
)
def test_anchor_target_undone_and_backup(ledger, options, expected):
    assert decision(rollback_plan(ledger, **options)) == expected


@pytest.mark.parametrize(
    ("ledger", "expected"),
    [
        pytest.param(CHAIN + [deploy(4, "1.3.0", outcome="failed")], (3, 2, [3]), id="failed-deploy"),
        pytest.param(CHAIN + [deploy(4, "1.3.0", outcome="running")], (3, 2, [3]), id="running-deploy"),
        pytest.param(CHAIN + [rollback(4, 2, "1.1.0", outcome="failed")], (3, 2, [3]), id="failed-rollback"),
        pytest.param(
            [deploy(1, "1.0.0"), deploy(2, "1.1.0", outcome="failed"), deploy(3, "1.1.0")],
            (3, 1, [3]),
            id="failed-deploy-between",
        ),
    ],
)
def test_rows_that_did_not_succeed_are_ignored(ledger, expected):
    plan = rollback_plan(ledger)
    assert (plan["anchor"]["id"], plan["target"]["id"], ids(plan["undone"])) == expected


@pytest.mark.parametrize(
    ("ledger", "expected"),
    [
        # the backup deploy 3 took at 1.1.0's revision is back: the state of deploy 2 runs
        pytest.param(CHAIN + [restore(4, "1.1.0")], ("rollback", 2, 1, [2], 2), id="restore-as-anchor"),
        # a restore in the middle counts as the state it brought back, like a rollback
        pytest.param(
            CHAIN + [restore(4, "1.0.0"), deploy(5, "1.3.0", start="1.0.0")],
            ("rollback", 5, 1, [5], 5),
            id="restore-passed-over",
        ),
        # the state a rollback went back to, brought back by a restore: deploy 1's, with nothing before it
        pytest.param(
            CHAIN + [rollback(4, 1, "1.0.0"), deploy(5, "1.3.0", start="1.0.0"), restore(6, "1.0.0")],
            ("no_target", 1, None, [], None),
            id="restore-of-a-rolled-back-state",
        ),
        # a release no deploy left on that revision: only the restore knows it, a downgrade has no plan to trust
        pytest.param(
            CHAIN + [restore(4, "1.0.9", revision="0001")],
            ("downgrade_loses_data", 4, 3, [4], None),
            id="restore-alone",
        ),
    ],
)
def test_restore_rows(ledger, expected):
    assert decision(rollback_plan(ledger)) == expected


def test_a_restore_alone_names_itself_and_has_no_backup_to_restore():
    ledger = CHAIN + [restore(4, "1.0.9", revision="0001")]
    downgrade = rollback_plan(ledger)["refusal"]
    assert downgrade == (
        "rollback_method=downgrade refused: restore 4 (1.0.9 at 0001) brought back a state that no successful deploy "
        "of the ledger left, so no plan says its downgrade keeps the data; run with -e rollback_method=restore"
    )
    plan = rollback_plan(ledger, rollback_method="restore")
    assert plan["status"] == "no_backup"
    assert "no deploy it undoes (restore 4 (1.0.9 at 0001)) recorded a backup taken at revision 0003" in plan["refusal"]


def test_a_state_before_that_only_a_restore_left_is_no_target():
    ledger = [deploy(1, "1.0.0"), restore(2, "1.0.9", revision="0001"), deploy(3, "1.1.0", start="1.0.0")]
    plan = rollback_plan(ledger, environment="e2e")
    assert (plan["status"], plan["target"]) == ("no_target", None)
    assert plan["refusal"] == (
        "no successful deploy of e2e to go back to (the state before deploy 3 (1.1.0 at 0002) is the one restore 2 "
        "(1.0.9 at 0001) brought back, which no successful deploy of the ledger left; name the deploy to go back to "
        "with rollback_to_deploy_id)"
    )
    # back to 1.0.0's revision, the one the restore brought: the downgrade undoes deploy 3's revision only
    assert decision(rollback_plan(ledger, rollback_to_deploy_id=1)) == ("rollback", 3, 1, [3, 2], 3)


@pytest.mark.parametrize(
    ("ledger", "options"),
    [
        pytest.param(REDEPLOYED, {"rollback_to_deploy_id": 4}, id="the-anchor-itself"),
        pytest.param(REDEPLOYED, {"rollback_to_deploy_id": 2}, id="an-older-deploy-of-the-same-state"),
        pytest.param(REDEPLOYED[:3], {"rollback_to_deploy_id": 1}, id="the-deploy-a-rollback-went-back-to"),
        pytest.param(
            CHAIN + [restore(4, "1.1.0")], {"rollback_to_deploy_id": 2}, id="the-deploy-a-restore-brought-back"
        ),
    ],
)
def test_nothing_to_do_when_the_target_state_runs(ledger, options):
    for method in ("downgrade", "restore"):
        plan = rollback_plan(ledger, rollback_method=method, **options)
        assert (plan["status"], plan["nothing_to_do"], plan["refusal"]) == ("nothing_to_do", True, None)
        assert (plan["target"]["id"], plan["undone"], plan["backup"]) == (options["rollback_to_deploy_id"], [], None)


@pytest.mark.parametrize(
    ("ledger", "options", "why"),
    [
        pytest.param([], {}, "the ledger has no successful deploy", id="empty-ledger"),
        pytest.param(
            [deploy(1, "1.0.0", outcome="failed")], {}, "the ledger has no successful deploy", id="all-failed"
        ),
        pytest.param(
            CHAIN[:1],
            {},
            "nothing before deploy 1 (1.0.0 at 0001), whose state runs now, left another release or revision",
            id="one-deploy",
        ),
        # back at 1.0.0 after a rollback: there is nothing older to go to
        pytest.param(
            REDEPLOYED[:3],
            {},
            "nothing before deploy 1 (1.0.0 at 0001), whose state runs now",
            id="rolled-back-to-the-first",
        ),
        pytest.param(CHAIN, {"rollback_to_deploy_id": 99}, "ledger id 99 is not a successful deploy", id="unknown-id"),
        pytest.param(
            CHAIN + [deploy(4, "1.3.0", outcome="failed")],
            {"rollback_to_deploy_id": 4},
            "ledger id 4 is not a successful deploy: the deploy of 1.3.0 failed",
            id="failed-deploy",
        ),
        pytest.param(
            REDEPLOYED,
            {"rollback_to_deploy_id": 3},
            "ledger id 3 is not a successful deploy: it is a rollback back to deploy 1; to go to that state, run with "
            "-e rollback_to_deploy_id=1",
            id="rollback-row",
        ),
        pytest.param(
            CHAIN + [restore(4, "1.1.0")],
            {"rollback_to_deploy_id": 4},
            "ledger id 4 is not a successful deploy: it is a restore",
            id="restore-row",
        ),
        pytest.param(
            REDEPLOYED[:3],
            {"rollback_to_deploy_id": 2},
            "deploy 2 (1.1.0 at 0002) is newer than deploy 1 (1.0.0 at 0001), whose state runs now: a rollback only "
            "goes back; deploy 1.1.0 again with deploy.yml",
            id="newer-than-what-runs",
        ),
    ],
)
def test_no_target_is_refused_and_says_why(ledger, options, why):
    plan = rollback_plan(ledger, environment="e2e", **options)
    assert (plan["status"], plan["nothing_to_do"], plan["target"]) == ("no_target", False, None)
    assert (plan["undone"], plan["backup"]) == ([], None)
    assert plan["refusal"].startswith("no successful deploy of e2e to go back to (" + why), plan["refusal"]
    assert plan["refusal"].endswith(")")


def test_an_unknown_id_reads_as_the_reliability_table_quotes_it():
    assert rollback_plan(CHAIN, rollback_to_deploy_id="99", environment="e2e")["refusal"] == (
        "no successful deploy of e2e to go back to (ledger id 99 is not a successful deploy)"
    )


@pytest.mark.parametrize(
    ("ledger", "options", "refused"),
    [
        pytest.param(CHAIN[:2] + [deploy(3, "1.2.0", method="restore")], {}, "3", id="the-undone-deploy"),
        pytest.param(
            CHAIN[:2] + [deploy(3, "1.2.0", method="restore")], {"rollback_to_deploy_id": 1}, "3", id="one-of-two"
        ),
        pytest.param(
            [deploy(1, "1.0.0"), deploy(2, "1.1.0", method="restore"), deploy(3, "1.2.0", method="restore")],
            {"rollback_to_deploy_id": 1},
            "3, 2",
            id="both",
        ),
        # deploy 2 said restore, but rollback 3 undid it already: undoing deploy 4 is a downgrade of its own plan
        pytest.param(
            [deploy(1, "1.0.0"), deploy(2, "1.1.0", method="restore")] + REDEPLOYED[2:], {}, None, id="already-undone"
        ),
        pytest.param(REDEPLOYED[:3] + [deploy(4, "1.1.0", start="1.0.0", method="restore")], {}, "4", id="redeployed"),
    ],
)
def test_a_downgrade_is_refused_for_exactly_the_undone_deploys_planned_as_restore(ledger, options, refused):
    plan = rollback_plan(ledger, **options)
    if refused is None:
        assert (plan["status"], plan["refusal"]) == ("rollback", None)
    else:
        assert plan["status"] == "downgrade_loses_data"
        assert plan["refusal"] == (
            "rollback_method=downgrade refused: the plan of deploy(s) %s said restore (a downgrade would lose data); "
            "run with -e rollback_method=restore" % refused
        )
    assert rollback_plan(ledger, rollback_method="restore", **options)["status"] == "rollback"


@pytest.mark.parametrize(
    ("ledger", "options", "backup"),
    [
        # the oldest undone deploy that left the target's revision, not deploy 2, whose backup misses the writes
        # made on 1.0.0 after the rollback
        pytest.param(REDEPLOYED, {}, "/backups/4_at_0001.dump", id="after-a-rollback"),
        pytest.param(CHAIN, {"rollback_to_deploy_id": 1}, "/backups/2_at_0001.dump", id="oldest-undone"),
        # deploy 3 backed up 1.1.0's revision, but it is not undone: deploy 5 is, and started from 1.1.0's
        pytest.param(ROLLED_BACK_THEN_ON, {}, "/backups/5_at_0002.dump", id="not-an-undone-one"),
        pytest.param(CHAIN + [restore(4, "1.1.0")], {}, "/backups/2_at_0001.dump", id="not-the-restored-one"),
    ],
)
def test_a_restore_takes_the_backup_of_the_target_revision_from_the_undone_deploys(ledger, options, backup):
    plan = rollback_plan(ledger, rollback_method="restore", **options)
    assert (plan["status"], plan["backup"]["backup_path"]) == ("rollback", backup)


@pytest.mark.parametrize(
    ("ledger", "options", "refusal"),
    [
        pytest.param(
            CHAIN[:2] + [deploy(3, "1.2.0", backup=False)],
            {},
            "no deploy it undoes (deploy 3 (1.2.0 at 0003)) recorded a backup taken at revision 0002",
            id="no-backup",
        ),
        pytest.param(
            ROLLED_BACK_THEN_ON,
            {"rollback_to_deploy_id": 3},
            "no deploy it undoes (deploy 5 (1.3.0 at 0004)) recorded a backup taken at revision 0003",
            id="no-backup-at-that-revision",
        ),
    ],
)
def test_a_restore_without_a_backup_at_the_target_revision_is_refused(ledger, options, refusal):
    plan = rollback_plan(ledger, rollback_method="restore", **options)
    assert (plan["status"], plan["backup"]) == ("no_backup", None)
    assert plan["refusal"] == "rollback_method=restore refused: " + refusal
    assert rollback_plan(ledger, **options)["status"] == "rollback"


@pytest.mark.parametrize(
    ("ledger", "options", "match"),
    [
        ("deploys", {}, "expects the ledger's rows"),
        ({"id": 1}, {}, "expects the ledger's rows"),
        ([{"kind": "deploy"}], {}, "every ledger row must be a dict with an integer id"),
        (["row"], {}, "every ledger row must be a dict with an integer id"),
        (CHAIN, {"rollback_method": "sideways"}, "rollback_method must be one of downgrade, restore"),
        (CHAIN, {"rollback_to_deploy_id": "latest"}, "rollback_to_deploy_id must be a ledger id, got 'latest'"),
        (CHAIN, {"rollback_to_deploy_id": True}, "rollback_to_deploy_id must be a ledger id, got True"),
    ],
)
def test_bad_arguments_are_named(ledger, options, match):
    with pytest.raises(RollbackPlanError, match=match):
        rollback_plan(ledger, **options)


def test_an_unset_id_is_the_previous_state():
    for unset in (None, ""):
        assert rollback_plan(REDEPLOYED, rollback_to_deploy_id=unset)["target"]["id"] == 1


def online(row: dict) -> dict:
    return dict(row, strategy="online")


def stopped(row: dict) -> dict:
    return dict(row, strategy="stop_the_world")


ONLINE = {"proxy": "safedeploy", "running_version": "1.2.0"}


@pytest.mark.parametrize(
    ("ledger", "options", "strategy"),
    [
        # the newest deploy went online: the release before it runs on its schema, so it starts first
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0")), online(deploy(3, "1.2.0"))], ONLINE, "online"),
        # two undone deploys, both online
        (
            [deploy(1, "1.0.0"), online(deploy(2, "1.1.0")), online(deploy(3, "1.2.0"))],
            dict(ONLINE, rollback_to_deploy_id=1),
            "online",
        ),
        # one of them stopped the world: its plan did not prove the older release runs on its schema
        (
            [deploy(1, "1.0.0"), stopped(deploy(2, "1.1.0")), online(deploy(3, "1.2.0"))],
            dict(ONLINE, rollback_to_deploy_id=1),
            "stop_the_world",
        ),
        ([deploy(1, "1.0.0"), deploy(2, "1.1.0"), stopped(deploy(3, "1.2.0"))], ONLINE, "stop_the_world"),
        # a ledger from before the strategy was recorded
        (CHAIN, ONLINE, "stop_the_world"),
        # no proxy to serve two releases through, nothing running, or the caller did not say
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0"))], dict(ONLINE, proxy="none"), "stop_the_world"),
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0"))], dict(ONLINE, running_version=None), "stop_the_world"),
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0"))], {}, "stop_the_world"),
        # the team's own proxy service serves as well
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0"))], dict(ONLINE, proxy="traefik"), "online"),
        # a restore replaces the database under the app
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0"))], dict(ONLINE, rollback_method="restore"), "stop_the_world"),
        # a restore that brought back deploy 2's state: deploy 2 is what is undone, and it went online
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0")), restore(3, "1.1.0")], ONLINE, "online"),
        # a restore of a state no deploy left: the downgrade is refused, nothing starts
        ([deploy(1, "1.0.0"), online(deploy(2, "1.1.0")), restore(3, "1.1.0", "0009")], ONLINE, "stop_the_world"),
        # nothing to do, or refused: nothing starts
        ([deploy(1, "1.0.0")], ONLINE, "stop_the_world"),
    ],
)
def test_a_rollback_goes_online_only_when_every_deploy_it_undoes_did(ledger, options, strategy):
    assert rollback_plan(ledger, **options)["strategy"] == strategy
