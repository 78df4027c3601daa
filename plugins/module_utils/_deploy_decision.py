# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""What a deploy does: the quick look before the plan, and the decision after it (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.safedeploy.migrations.plugins.module_utils._migration_reach import long_reach

# docker's status of a container whose healthcheck failed or has not passed yet
NOT_HEALTHY = re.compile(r"[(](unhealthy|health: starting)[)]")
PROXY_SERVICE = "safedeploy-proxy"
STRATEGIES = ("auto", "online", "stop_the_world")
ON_FAILURE = ("downgrade", "restore", "none")
PLAN_SUMMARY_KEYS = ("pending", "backward_compatible", "rollback_method")
# a backup or migration that may take longer than this runs under Ansible's async, which prints a status line at each
# poll and goes on when the controller goes away; a shorter one runs plainly, since async costs it at least one poll
# interval and an async_status module run
ASYNC_AFTER_SECONDS = 10


class DeployDecisionError(ValueError):
    """An input the decision cannot be made from; the sentence names it."""


def quick_look(
    ledger,
    *,
    app_version: str,
    revision: str,
    containers: list,
    containers_by_service: dict,
    release_services: list,
    release_up: bool,
    proxy: str,
    database_service: str,
    database_enabled: bool,
    host: str,
) -> dict:
    """Whether the release asked for runs exactly as the ledger's last successful deploy left it on this host.

    ledger is deploy_ledger_info's result (last, current_revisions, deploy_locks); containers, containers_by_service
    and release_up are the stack role's stack_service_containers, stack_containers and stack_release_up. The reason
    names the first difference, in the order the tests are made. beside_stopped lists the services beside the release
    that ran when the last deploy finished and do not now, for the nothing-to-do stop to start again.
    """
    ledger = as_mapping(ledger)
    last = as_mapping(ledger.get("last"))
    details = as_mapping(last.get("details"))
    recorded = recorded_images(details, host)
    release = [container for container in containers if container.get("service") in release_services]
    stopped = beside_stopped(details, host, containers_by_service)
    difference = (
        ledger_difference(ledger, last, details, app_version, revision)
        or release_difference(recorded, host, release_up, release_services)
        or container_difference(release, recorded, app_version)
        or proxy_difference(proxy, containers_by_service)
        or database_difference(database_enabled, database_service, containers_by_service)
        or beside_difference(stopped, containers_by_service)
    )
    if difference:
        return {"unchanged": False, "reason": difference, "beside_stopped": stopped}
    reason = "%s runs on revision %s as deploy %s left it" % (app_version, last.get("revision_to"), last.get("id"))
    return {"unchanged": True, "reason": reason, "beside_stopped": stopped}


def beside_stopped(details: Mapping, host: str, containers_by_service: dict) -> list:
    """The services beside the release (the team's redis, a search engine) that ran when the last deploy finished on
    this host (finish.yml's running_beside) and do not now. One that had exited by then (a one-shot job) is not."""
    recorded = as_mapping(details.get("running_beside")).get(host)
    services = [str(service) for service in recorded] if isinstance(recorded, list) else []
    return [service for service in services if state_of(service, containers_by_service) != "running"]


def state_of(service: str, containers_by_service: dict) -> str:
    return (containers_by_service.get(service) or {}).get("state") or "missing"


def beside_difference(stopped: list, containers_by_service: dict) -> str | None:
    if not stopped:
        return None
    return "service %s is %s; it ran when the last deploy finished" % (
        stopped[0],
        state_of(stopped[0], containers_by_service),
    )


def as_mapping(value) -> Mapping:
    """The value when it is a dict, else an empty one: null, '' and the unexpected all mean nothing recorded."""
    return value if isinstance(value, Mapping) else {}


def recorded_images(details: Mapping, host: str):
    """service -> image id of this host's containers at the last success, None when it recorded none."""
    app_images = details.get("app_images", {})
    return app_images.get(host) if isinstance(app_images, Mapping) else None


def ledger_difference(ledger: Mapping, last: Mapping, details: Mapping, app_version: str, revision: str) -> str | None:
    if last.get("outcome", "") != "succeeded":
        if not last:
            return "the ledger has no deploy to compare with"
        return "the ledger's last row (%s) did not succeed: it is %s" % (last.get("id"), last.get("outcome"))
    if last.get("kind") != "deploy":
        return "the ledger's last row (%s) is a %s, not a deploy" % (last.get("id"), last.get("kind"))
    if last.get("app_version_to") != app_version:
        return "the last deploy (%s) brought %s, not %s" % (last.get("id"), last.get("app_version_to"), app_version)
    if revision not in ("head", "heads"):
        return "revision %s is asked: only head or heads can be found unchanged" % revision
    if details.get("target_revision", "") != revision:
        return "the last deploy aimed at %s, not %s" % (details.get("target_revision") or "no revision", revision)
    current = ledger.get("current_revisions", [])
    if not isinstance(current, (list, tuple)) or sorted(map(str, current)) != recorded_revisions(last):
        shown = (", ".join(map(str, current)) or "base") if isinstance(current, (list, tuple)) else current
        return "the database is at %s, not at %s where the last deploy left it" % (shown, last.get("revision_to"))
    # locks the ledger did not read count as a deploy running
    locks = ledger.get("deploy_locks")
    if locks is None:
        return "the ledger did not tell whether a deploy runs"
    if len(locks) != 0:
        return "a deploy runs: %d deploy lock(s) held" % len(locks)
    return None


def recorded_revisions(last: Mapping) -> list:
    """The revisions the last deploy left, sorted: its revision_to joins two heads with a comma."""
    revision_to = last.get("revision_to")
    return sorted(str(revision_to).split(",")) if revision_to else []


def release_difference(recorded, host: str, release_up: bool, release_services: list) -> str | None:
    if not isinstance(recorded, Mapping):
        return "the last deploy recorded no image ids for %s" % host
    if not release_up:
        return "a service of the release (%s) has no running container" % ", ".join(release_services)
    return None


def container_difference(release: list, recorded: Mapping, app_version: str) -> str | None:
    """The first test failed by a container of the release; a test is made on all of them before the next test."""
    problems = [problem for problem in (container_problem(c, recorded, app_version) for c in release) if problem]
    return min(problems, key=lambda problem: problem[0])[1] if problems else None


def container_problem(container: dict, recorded: Mapping, app_version: str) -> tuple | None:
    """(test number, sentence) of the first test the container fails, or None."""
    name, service = container.get("name"), container.get("service")
    if container.get("state") != "running":
        return 0, "container %s is %s" % (name, container.get("state"))
    if container.get("release") != app_version:
        return 1, "container %s runs release %s, not %s" % (name, container.get("release"), app_version)
    # docker shows the image by id once its tag points to another image (rebuilt or re-pulled)
    if str(container.get("image")).startswith("sha256:"):
        return 2, "container %s runs %s, an image its tag no longer names" % (name, container.get("image"))
    if service not in recorded:
        return 3, "the last deploy recorded no image for service %s" % service
    if recorded[service] != container.get("image_id"):
        return 4, "container %s runs image %s, not %s as the last deploy recorded" % (
            name,
            container.get("image_id"),
            recorded[service],
        )
    if NOT_HEALTHY.search(str(container.get("status"))):
        return 5, "container %s is not healthy: %s" % (name, container.get("status"))
    return None


def proxy_difference(proxy: str, containers_by_service: dict) -> str | None:
    if proxy != "safedeploy":
        return None
    state = (containers_by_service.get(PROXY_SERVICE) or {}).get("state", "")
    return None if state == "running" else "the proxy %s is %s" % (PROXY_SERVICE, state or "missing")


def database_difference(enabled: bool, service: str, containers_by_service: dict) -> str | None:
    if not enabled:
        return None
    database = containers_by_service.get(service) or {}
    if database.get("state", "") != "running":
        return "the database %s is %s" % (service, database.get("state") or "missing")
    if NOT_HEALTHY.search(str(database.get("status"))):
        return "the database %s is not healthy: %s" % (service, database.get("status"))
    return None


def deploy_decision(
    plan,
    *,
    app_version: str,
    previous_version,
    running_version,
    release_up: bool,
    strategy: str,
    proxy: str,
    proxied_service: str,
    on_failure: str,
    last_succeeded=None,
    rehearsal=None,
    async_after_seconds: float = ASYNC_AFTER_SECONDS,
) -> dict:
    """What this deploy does, given migration_plan_info's plan and what runs.

    auto is online only for a backward-compatible plan with an app running and a proxy; a downgrade rescue becomes a
    restore when the plan says restore or starts from base (its downgrade would leave alembic's version table).
    """
    summary = plan_summary(plan)
    if strategy not in STRATEGIES:
        raise DeployDecisionError("strategy must be one of %s" % ", ".join(STRATEGIES))
    if on_failure not in ON_FAILURE:
        raise DeployDecisionError("on_failure must be one of %s" % ", ".join(ON_FAILURE))
    pending = pending_count(summary)
    decision = {
        "pending": pending,
        "from_revision": plan.get("from_revision") or None,
        "to_revision": plan["to_revision"],
        "nothing_to_do": pending == 0 and running_version == app_version and bool(release_up),
        "strategy_chosen": chosen_strategy(strategy, summary, running_version, proxy),
        "rescue_method": rescue_method(on_failure, summary, plan),
    }
    decision["backup_async"] = backup_async(last_succeeded, async_after_seconds)
    decision["migration_async_reason"] = migration_async_reason(plan, rehearsal, async_after_seconds)
    decision["migration_async"] = decision["migration_async_reason"] is not None
    decision["refusal"] = online_refusal(decision["strategy_chosen"], proxy, proxied_service)
    decision["summary"] = decision_summary(decision, previous_version, app_version, strategy)
    return decision


def plan_summary(plan) -> Mapping:
    summary = plan.get("summary") if isinstance(plan, Mapping) else None
    missing = [key for key in PLAN_SUMMARY_KEYS if not isinstance(summary, Mapping) or key not in summary]
    if "to_revision" not in (plan if isinstance(plan, Mapping) else {}):
        missing.insert(0, "to_revision")
    if missing:
        raise DeployDecisionError("the plan is not migration_plan_info's: it lacks %s" % ", ".join(missing))
    return summary


def pending_count(summary: Mapping) -> int:
    try:
        return int(summary["pending"])
    except (TypeError, ValueError):
        raise DeployDecisionError("the plan's pending count is %r, not a number" % summary["pending"]) from None


def chosen_strategy(strategy: str, summary: Mapping, running_version, proxy: str) -> str:
    if strategy != "auto":
        return strategy
    # an app that is there to keep serving and a proxy to serve through
    online = summary["backward_compatible"] and running_version is not None and proxy != "none"
    return "online" if online else "stop_the_world"


def rescue_method(on_failure: str, summary: Mapping, plan: Mapping) -> str:
    # a downgrade to base would leave alembic's version table in a database that had none
    if on_failure == "downgrade" and (summary["rollback_method"] == "restore" or not plan.get("from_revision")):
        return "restore"
    return on_failure


def backup_async(last_succeeded, after_seconds: float) -> bool:
    """Whether the backup may take after_seconds or more, and so runs under async with a status line at each poll.

    Long unless the last successful deploy's backup took less: a database grows slowly, and a first deploy or one
    after a slow backup is long.
    """
    durations = ((last_succeeded or {}).get("details") or {}).get("durations") or {}
    last_backup = seconds(durations.get("backup"))
    return last_backup is None or last_backup >= after_seconds


def migration_async_reason(plan, rehearsal, after_seconds: float) -> str | None:
    """Why the migration may take after_seconds or more and runs under async (it then goes on when the controller or
    its SSH connection goes away), or None when it is short and runs plainly.

    A rehearsal of the same plan measured it on a copy of the data; without one, the plan's reach decides: only the
    catalog and new or small tables is short. An after_seconds of 0 runs every migration under async.
    """
    if after_seconds <= 0:
        return "deploy_async_after_seconds is 0"
    rehearsal = as_mapping(rehearsal)
    rehearsed = seconds(rehearsal.get("duration_seconds"))
    if rehearsed is not None and rehearsal.get("plan_hash") == plan.get("plan_hash"):
        if rehearsed >= after_seconds:
            return "its rehearsal took %.1f s" % rehearsed
        return None
    return long_reach(plan)


def seconds(value) -> float | None:
    """A recorded duration, or None when there is none or it is no number."""
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def online_refusal(strategy_chosen: str, proxy: str, proxied_service: str) -> str | None:
    if strategy_chosen != "online" or proxy != "none":
        return None
    return (
        "deploy_strategy=online needs a proxy in front of %s (stack_proxy is none): two generations of the app cannot "
        "share its published port; deploy with stop_the_world or auto, or set stack_proxy" % proxied_service
    )


def decision_summary(decision: dict, previous_version, app_version: str, strategy: str) -> str:
    return "deploying %s -> %s: %s revision(s) %s -> %s, strategy %s (asked: %s), on failure %s" % (
        previous_version or "nothing",
        app_version,
        decision["pending"],
        decision["from_revision"] or "base",
        decision["to_revision"],
        decision["strategy_chosen"],
        strategy,
        decision["rescue_method"],
    )
