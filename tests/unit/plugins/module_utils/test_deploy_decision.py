# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_decision import (
    DeployDecisionError,
    deploy_decision,
    quick_look,
)

IMAGE_ID = {"app": "sha256:" + "a" * 64, "worker": "sha256:" + "b" * 64}


def container(service, name=None, **changes):
    """A healthy container of release 1.2.0 as the stack role lists it."""
    row = {
        "service": service,
        "name": name or "shop-%s-1" % service,
        "state": "running",
        "status": "Up 5 minutes (healthy)",
        "image": "shop-%s:1.2.0" % service,
        "image_id": IMAGE_ID.get(service, "sha256:" + "c" * 64),
        "release": "1.2.0",
        "address": "172.18.0.5",
    }
    row.update(changes)
    return row


# deploy 7 brought 1.2.0 to 0003 and recorded web1's image ids; nothing moved since
LEDGER = {
    "last": {
        "id": 7,
        "kind": "deploy",
        "outcome": "succeeded",
        "app_version_to": "1.2.0",
        "revision_from": "0002",
        "revision_to": "0003",
        "details": {"target_revision": "head", "app_images": {"web1": dict(IMAGE_ID)}},
    },
    "current_revisions": ["0003"],
    "deploy_locks": [],
}
CONTAINERS = [
    container("app"),
    container("app", "shop-app-2"),
    container("worker"),
    container("postgres", image="postgres:16"),
    container("safedeploy-proxy", image="nginx:1.27"),
    container("redis", state="exited", status="Exited (0) 2 hours ago"),
]
# containers_by_service is derived from containers unless a case sets it
INPUTS = dict(
    ledger=LEDGER,
    app_version="1.2.0",
    revision="head",
    containers=CONTAINERS,
    release_services=["app", "worker"],
    release_up=True,
    proxy="safedeploy",
    database_service="postgres",
    database_enabled=True,
    host="web1",
)
DELETE = object()


def by_service(containers: list) -> dict:
    return {row["service"]: row for row in containers}


def changed(changes: dict) -> dict:
    """INPUTS with the value at each dotted path (list items by index) replaced, or removed when it is DELETE."""
    inputs = copy.deepcopy(INPUTS)
    for path, value in changes.items():
        if path.startswith("containers_by_service"):
            inputs.setdefault("containers_by_service", by_service(inputs["containers"]))
        *parents, key = path.split(".")
        where = inputs
        for part in parents:
            where = where[int(part)] if isinstance(where, list) else where[part]
        key = int(key) if isinstance(where, list) else key
        if value is DELETE:
            del where[key]
        else:
            where[key] = value
    return inputs


def look(inputs: dict) -> dict:
    inputs = dict(inputs)
    inputs.setdefault("containers_by_service", by_service(inputs["containers"]))
    return quick_look(inputs.pop("ledger"), **inputs)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"revision": "heads", "ledger.last.details.target_revision": "heads"},
        {"proxy": "none", "containers_by_service.safedeploy-proxy": DELETE},
        {"proxy": "traefik", "containers_by_service.safedeploy-proxy": DELETE},
        {"database_enabled": False, "database_service": "", "containers_by_service.postgres": DELETE},
        {"containers.5.state": "dead"},
        {"ledger.last.details.running_beside": {"web1": ["postgres"], "web2": ["redis"]}},
        {"ledger.last.details.running_beside": {"web1": "redis"}},
        {"ledger.last.details.running_beside": ["redis"]},
    ],
    ids=[
        "as left",
        "heads",
        "no proxy",
        "the team's proxy is not looked at",
        "an external database",
        "a service beside the release stopped",
        "what ran beside it runs",
        "a record that is no list",
        "a record that is no mapping",
    ],
)
def test_the_release_runs_as_the_last_deploy_left_it(changes):
    assert look(changed(changes)) == {
        "unchanged": True,
        "reason": "1.2.0 runs on revision 0003 as deploy 7 left it",
        "beside_stopped": [],
    }


# one row per condition of the quick look, in its order: the verdict is no, and the reason says why
@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("ledger.last", None, "the ledger has no deploy to compare with"),
        ("ledger", {"skipped": True, "changed": False}, "the ledger has no deploy to compare with"),
        ("ledger.last.outcome", "failed", "the ledger's last row (7) did not succeed: it is failed"),
        ("ledger.last.outcome", "running", "the ledger's last row (7) did not succeed: it is running"),
        ("ledger.last.kind", "rollback", "the ledger's last row (7) is a rollback, not a deploy"),
        ("ledger.last.app_version_to", "1.1.0", "the last deploy (7) brought 1.1.0, not 1.2.0"),
        ("revision", "0003", "revision 0003 is asked: only head or heads can be found unchanged"),
        ("revision", "heads", "the last deploy aimed at head, not heads"),
        ("ledger.last.details.target_revision", DELETE, "the last deploy aimed at no revision, not head"),
        ("ledger.last.details", None, "the last deploy aimed at no revision, not head"),
        ("ledger.current_revisions", ["0002"], "the database is at 0002, not at 0003 where the last deploy left it"),
        ("ledger.current_revisions", [], "the database is at base, not at 0003"),
        ("ledger.current_revisions", ["0003", "0003b"], "the database is at 0003, 0003b, not at 0003"),
        ("ledger.current_revisions", DELETE, "the database is at base, not at 0003"),
        ("ledger.deploy_locks", [{"holder": "awx job 12"}], "a deploy runs: 1 deploy lock(s) held"),
        ("ledger.deploy_locks", DELETE, "the ledger did not tell whether a deploy runs"),
        ("ledger.last.details.app_images", DELETE, "the last deploy recorded no image ids for web1"),
        ("ledger.last.details.app_images", None, "the last deploy recorded no image ids for web1"),
        ("ledger.last.details.app_images.web1", None, "the last deploy recorded no image ids for web1"),
        ("host", "web2", "the last deploy recorded no image ids for web2"),
        ("release_up", False, "a service of the release (app, worker) has no running container"),
        ("containers.1.state", "exited", "container shop-app-2 is exited"),
        ("containers.2.release", "1.1.0", "container shop-worker-1 runs release 1.1.0, not 1.2.0"),
        ("containers.2.release", None, "container shop-worker-1 runs release None, not 1.2.0"),
        (
            "containers.0.image",
            "sha256:" + "d" * 64,
            "container shop-app-1 runs sha256:%s, an image its tag no longer names" % ("d" * 64),
        ),
        ("ledger.last.details.app_images.web1.worker", DELETE, "the last deploy recorded no image for service worker"),
        (
            "containers.2.image_id",
            "sha256:" + "e" * 64,
            "container shop-worker-1 runs image sha256:%s, not sha256:%s as the last deploy recorded"
            % ("e" * 64, "b" * 64),
        ),
        ("containers.1.status", "Up 3 seconds (health: starting)", "container shop-app-2 is not healthy: Up 3 sec"),
        ("containers.2.status", "Up 2 hours (unhealthy)", "container shop-worker-1 is not healthy: Up 2 hours"),
        ("containers.4.state", "exited", "the proxy safedeploy-proxy is exited"),
        ("containers_by_service.safedeploy-proxy", DELETE, "the proxy safedeploy-proxy is missing"),
        ("containers.3.state", "restarting", "the database postgres is restarting"),
        ("containers_by_service.postgres", DELETE, "the database postgres is missing"),
        ("database_service", "", "the database  is missing"),
        ("containers.3.status", "Up 1 second (health: starting)", "the database postgres is not healthy: Up 1 sec"),
        ("containers.3.status", "Up 1 hour (unhealthy)", "the database postgres is not healthy: Up 1 hour"),
        # the team's redis ran when the last deploy finished, and has exited since
        (
            "ledger.last.details.running_beside",
            {"web1": ["redis"]},
            "service redis is exited; it ran when the last deploy finished",
        ),
        ("ledger.last.details.running_beside", {"web1": ["search"]}, "service search is missing; it ran when"),
    ],
)
def test_any_difference_takes_the_long_way_and_names_itself(path, value, reason):
    verdict = look(changed({path: value}))
    assert verdict["unchanged"] is False
    assert verdict["reason"].startswith(reason)


@pytest.mark.parametrize(
    ("running_beside", "changes", "stopped"),
    [
        # recorded running at the last success, stopped or gone since: named in the record's order
        ({"web1": ["search", "redis"]}, {}, ["search", "redis"]),
        ({"web1": ["redis"]}, {"containers.5.state": "running"}, []),
        # another host's record, none, or one that is no list, names none
        ({"web2": ["redis"]}, {}, []),
        (None, {}, []),
        ({"web1": "redis"}, {}, []),
        # found whatever else differs, for the stop to start them
        ({"web1": ["redis"]}, {"ledger.last.app_version_to": "1.1.0"}, ["redis"]),
    ],
)
def test_the_services_beside_the_release_that_stopped_since_the_last_deploy(running_beside, changes, stopped):
    inputs = changed(dict(changes, **{"ledger.last.details.running_beside": running_beside}))
    assert look(inputs)["beside_stopped"] == stopped


def test_the_reason_is_the_first_test_failed_by_any_container_then_the_first_such_container():
    inputs = changed(
        {
            "containers.0.status": "Up 1 hour (unhealthy)",
            "containers.2.state": "exited",
            "containers.1.state": "created",
        }
    )
    assert look(inputs)["reason"] == "container shop-app-2 is created"


def test_an_exited_replica_counts_although_its_service_has_a_running_one():
    inputs = changed({"containers": CONTAINERS + [container("app", "shop-app-3", state="exited")]})
    assert look(inputs) == {"unchanged": False, "reason": "container shop-app-3 is exited", "beside_stopped": []}


# the ledger's revision_to joins two heads with a comma, the version table lists them in its own order
@pytest.mark.parametrize(
    "current, unchanged",
    [
        (["0003a", "0003b"], True),
        (["0003b", "0003a"], True),
        (["0003a"], False),
        (["0003a", "0003b", "0003c"], False),
    ],
)
def test_two_heads_are_unchanged_in_any_order(current, unchanged):
    heads = {
        "revision": "heads",
        "ledger.last.details.target_revision": "heads",
        "ledger.last.revision_to": "0003a,0003b",
        "ledger.current_revisions": current,
    }
    assert look(changed(heads))["unchanged"] is unchanged


# migration_plan_info's plan of 1.3.0 from 0003: one backward-compatible revision, downgradable
# 0004 adds a nullable column to customer, a table of 8 KiB
ADD_COLUMN = {
    "kind": "ALTER TABLE",
    "bookkeeping": False,
    "relations": [{"relation": "customer", "rewrites_table": False, "scans_table": False}],
}
PLAN = {
    "from_revision": "0003",
    "to_revision": "0004",
    "plan_hash": "5e88",
    "summary": {"pending": 1, "backward_compatible": True, "rollback_method": "downgrade"},
    "revisions": [
        {
            "revision": "0004",
            "statements": [ADD_COLUMN],
            "relations": [{"relation": "customer", "exists": True, "total_bytes": 8192}],
        }
    ],
}
RUNNING = dict(
    app_version="1.3.0",
    previous_version="1.2.0",
    running_version="1.2.0",
    release_up=True,
    strategy="auto",
    proxy="safedeploy",
    proxied_service="app",
    on_failure="downgrade",
)


def decide(plan=None, summary=None, **inputs):
    plan = dict(PLAN if plan is None else plan, summary=dict(PLAN["summary"], **(summary or {})))
    return deploy_decision(plan, **dict(RUNNING, **inputs))


def test_a_decision_reads_the_plan_and_says_what_it_does():
    assert decide() == {
        "pending": 1,
        "from_revision": "0003",
        "to_revision": "0004",
        "nothing_to_do": False,
        "strategy_chosen": "online",
        "rescue_method": "downgrade",
        # no earlier backup to judge by: the backup may be long
        "backup_async": True,
        # a column added to a small table: the migration is short
        "migration_async": False,
        "migration_async_reason": None,
        "refusal": None,
        "summary": "deploying 1.2.0 -> 1.3.0: 1 revision(s) 0003 -> 0004, strategy online (asked: auto), on failure "
        "downgrade",
    }


def succeeded(backup_seconds) -> dict:
    """The ledger's last successful deploy, as deploy_ledger_info returns it, with the seconds of its backup."""
    return {"id": 7, "outcome": "succeeded", "details": {"durations": {"backup": backup_seconds, "migration": 0.4}}}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        # the last backup was quick: so is this one
        ({"last_succeeded": succeeded(1.5)}, False),
        ({"last_succeeded": succeeded("2.0")}, False),
        # a slow last backup, none recorded (a first deploy, an older ledger, a rollback), or no number
        ({"last_succeeded": succeeded(10)}, True),
        ({"last_succeeded": succeeded(None)}, True),
        ({"last_succeeded": {"details": None}}, True),
        ({"last_succeeded": succeeded(True)}, True),
        ({"last_succeeded": succeeded("slow")}, True),
        ({}, True),
        # the threshold is the caller's
        ({"last_succeeded": succeeded(1.5), "async_after_seconds": 1}, True),
    ],
)
def test_only_a_backup_that_may_take_long_runs_under_async(inputs, expected):
    assert deploy_decision(PLAN, **dict(RUNNING, **inputs))["backup_async"] is expected


# a backfill of customer, 2 GiB
BACKFILL = {"kind": "UPDATE", "bookkeeping": False, "relations": [{"relation": "customer"}]}
BIG = [{"relation": "customer", "exists": True, "total_bytes": 2 << 30}]
BACKFILL_REACH = "0004: UPDATE reads customer (2147483648 bytes)"


def rehearsed(seconds, plan_hash="5e88") -> dict:
    """rehearse.yml's record of this release."""
    return {"plan_hash": plan_hash, "duration_seconds": seconds, "attempts": 1}


def revisions(statements, relations) -> dict:
    return {"revisions": [{"revision": "0004", "statements": statements, "relations": relations}]}


@pytest.mark.parametrize(
    ("plan", "inputs", "expected"),
    [
        # the plan's reach decides without a rehearsal
        ({}, {}, None),
        (revisions([BACKFILL], BIG), {}, BACKFILL_REACH),
        (revisions([], []), {}, None),
        # a rehearsal of the same plan measured it, on a copy of the data: its seconds decide either way
        (revisions([BACKFILL], BIG), {"rehearsal": rehearsed(3.2)}, None),
        ({}, {"rehearsal": rehearsed(42)}, "its rehearsal took 42.0 s"),
        ({}, {"rehearsal": rehearsed("10")}, "its rehearsal took 10.0 s"),
        # a rehearsal of another plan, or without seconds, says nothing of this one
        (revisions([BACKFILL], BIG), {"rehearsal": rehearsed(3.2, "0ther")}, BACKFILL_REACH),
        ({}, {"rehearsal": rehearsed(None)}, None),
        ({}, {"rehearsal": "not a record"}, None),
        # 0 keeps every migration async, the threshold is the caller's
        ({}, {"async_after_seconds": 0}, "deploy_async_after_seconds is 0"),
        ({}, {"rehearsal": rehearsed(3.2), "async_after_seconds": 3}, "its rehearsal took 3.2 s"),
        # a plan without its revisions cannot be judged short
        ({"revisions": None}, {}, "the plan lists no revisions"),
    ],
)
def test_only_a_migration_that_may_take_long_runs_under_async(plan, inputs, expected):
    decision = deploy_decision(dict(PLAN, **plan), **dict(RUNNING, **inputs))
    assert (decision["migration_async"], decision["migration_async_reason"]) == (expected is not None, expected)


@pytest.mark.parametrize(
    ("plan", "summary", "inputs", "expected"),
    [
        ({}, {"pending": "2"}, {}, {"pending": 2}),
        (dict(PLAN, from_revision=""), {}, {}, {"from_revision": None}),
        (dict(PLAN, from_revision=None), {}, {}, {"from_revision": None}),
        ({}, {}, {"previous_version": None}, {"summary": "deploying nothing -> 1.3.0: 1 revision(s) 0003 -> 0004"}),
        (
            dict(PLAN, from_revision=None),
            {"pending": 4},
            {"previous_version": ""},
            {"summary": "deploying nothing -> 1.3.0: 4 revision(s) base -> 0004"},
        ),
    ],
)
def test_the_plan_is_read_as_the_report_shows_it(plan, summary, inputs, expected):
    decision = decide(plan or None, summary, **inputs)
    expected = dict(expected)
    summary_start = expected.pop("summary", "")
    assert decision["summary"].startswith(summary_start)
    assert {key: decision[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("pending", "inputs", "nothing_to_do"),
    [
        (0, dict(app_version="1.2.0"), True),
        (1, dict(app_version="1.2.0"), False),
        (0, {}, False),
        (0, dict(app_version="1.2.0", running_version=None), False),
        (0, dict(app_version="1.2.0", release_up=False), False),
    ],
    ids=["runs already", "a revision pending", "another release runs", "no app runs", "a service is down"],
)
def test_nothing_to_do_only_when_nothing_is_pending_and_the_release_runs_whole(pending, inputs, nothing_to_do):
    assert decide(summary={"pending": pending}, **inputs)["nothing_to_do"] is nothing_to_do


@pytest.mark.parametrize(
    ("strategy", "backward_compatible", "running_version", "proxy", "chosen"),
    [
        ("auto", True, "1.2.0", "safedeploy", "online"),
        ("auto", True, "1.2.0", "traefik", "online"),
        ("auto", False, "1.2.0", "safedeploy", "stop_the_world"),
        ("auto", True, None, "safedeploy", "stop_the_world"),
        ("auto", True, "1.2.0", "none", "stop_the_world"),
        ("online", False, None, "safedeploy", "online"),
        ("stop_the_world", True, "1.2.0", "safedeploy", "stop_the_world"),
    ],
)
def test_auto_is_online_only_for_a_compatible_plan_a_running_app_and_a_proxy(
    strategy, backward_compatible, running_version, proxy, chosen
):
    decision = decide(
        summary={"backward_compatible": backward_compatible},
        strategy=strategy,
        running_version=running_version,
        proxy=proxy,
    )
    assert decision["strategy_chosen"] == chosen
    assert "strategy %s (asked: %s)" % (chosen, strategy) in decision["summary"]


@pytest.mark.parametrize(
    ("on_failure", "rollback_method", "from_revision", "rescue"),
    [
        ("downgrade", "downgrade", "0003", "downgrade"),
        ("downgrade", "restore", "0003", "restore"),
        ("downgrade", "downgrade", None, "restore"),
        ("downgrade", "downgrade", "", "restore"),
        ("restore", "downgrade", "0003", "restore"),
        ("none", "restore", None, "none"),
    ],
)
def test_a_downgrade_rescue_becomes_a_restore_when_the_plan_says_so_or_starts_from_base(
    on_failure, rollback_method, from_revision, rescue
):
    decision = decide(
        dict(PLAN, from_revision=from_revision), {"rollback_method": rollback_method}, on_failure=on_failure
    )
    assert decision["rescue_method"] == rescue
    assert decision["summary"].endswith("on failure %s" % rescue)


@pytest.mark.parametrize(
    ("strategy", "proxy", "refused"),
    [
        ("online", "none", True),
        ("online", "safedeploy", False),
        ("auto", "none", False),
        ("stop_the_world", "none", False),
    ],
)
def test_online_without_a_proxy_is_refused(strategy, proxy, refused):
    refusal = decide(strategy=strategy, proxy=proxy, proxied_service="web")["refusal"]
    if refused:
        assert refusal == (
            "deploy_strategy=online needs a proxy in front of web (stack_proxy is none): two generations of the app "
            "cannot share its published port; deploy with stop_the_world or auto, or set stack_proxy"
        )
    else:
        assert refusal is None


@pytest.mark.parametrize(
    ("plan", "inputs", "match"),
    [
        (dict(PLAN, summary={"pending": 1}), {}, "it lacks backward_compatible, rollback_method"),
        ({"summary": PLAN["summary"]}, {}, "it lacks to_revision"),
        ({"changed": False, "skipped": True}, {}, "it lacks to_revision, pending, backward_compatible"),
        ("plan", {}, "it lacks to_revision"),
        (dict(PLAN, summary=dict(PLAN["summary"], pending="some")), {}, "pending count is 'some', not a number"),
        (dict(PLAN, summary=dict(PLAN["summary"], pending=None)), {}, "pending count is None, not a number"),
        (PLAN, {"strategy": "fast"}, "strategy must be one of auto, online, stop_the_world"),
        (PLAN, {"on_failure": "retry"}, "on_failure must be one of downgrade, restore, none"),
    ],
)
def test_what_cannot_be_decided_from_is_named(plan, inputs, match):
    with pytest.raises(DeployDecisionError, match=match):
        deploy_decision(plan, **dict(RUNNING, **inputs))
