# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_containers, containers_by_service and running_services on docker_host_info's listing of a project."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.containers import (
    compose_containers,
    containers_by_service,
    running_services,
)


def listed(name, service, state="running", networks=None, oneoff=None, release="1.2.0", **extra):
    """One container as docker_host_info lists it with verbose_output."""
    labels = {"com.docker.compose.service": service, "com.docker.compose.project": "shop"}
    labels.update({"io.safedeploy.release": release} if release else {})
    labels.update({"com.docker.compose.oneoff": oneoff} if oneoff else {})
    return dict(
        {
            "Names": ["/" + name],
            "Labels": labels,
            "State": state,
            "Status": "Up 3 minutes" if state == "running" else "Exited (0) 1 minute ago",
            "Image": "shop:1.2.0",
            "ImageID": "sha256:" + "a" * 64,
            "NetworkSettings": {
                "Networks": {"shop_default": {"IPAddress": "172.18.0.5"}} if networks is None else networks
            },
            "Config": {"Env": ["SECRET_KEY=s3cret"]},
        },
        **extra,
    )


def test_each_container_is_summarised_without_its_environment():
    summaries = compose_containers([listed("shop-worker-1", "worker"), listed("shop-app-1", "app")])
    assert [summary["name"] for summary in summaries] == ["shop-app-1", "shop-worker-1"]
    assert summaries[0] == {
        "service": "app",
        "name": "shop-app-1",
        "state": "running",
        "status": "Up 3 minutes",
        "image": "shop:1.2.0",
        "image_id": "sha256:" + "a" * 64,
        "release": "1.2.0",
        "address": "172.18.0.5",
    }
    assert "s3cret" not in repr(summaries)


@pytest.mark.parametrize(
    "networks, expected",
    [
        ({"host": {"IPAddress": ""}}, "127.0.0.1"),
        ({"shop_default": {"IPAddress": ""}, "shop_edge": {"IPAddress": "172.19.0.2"}}, "172.19.0.2"),
        ({"shop_default": {"IPAddress": ""}}, None),
        ({}, None),
    ],
)
def test_the_address_the_host_reaches_the_container_on(networks, expected):
    assert compose_containers([listed("shop-app-1", "app", networks=networks)])[0]["address"] == expected


def test_one_off_runs_are_left_out_and_a_missing_label_is_none():
    summaries = compose_containers(
        [listed("shop-migration-run-1", "migration", oneoff="True"), listed("shop-redis-1", "redis", release=None)]
    )
    assert [(summary["name"], summary["release"]) for summary in summaries] == [("shop-redis-1", None)]


@pytest.mark.parametrize(
    "states, expected",
    [
        (["exited", "running"], "running"),
        (["running", "exited"], "running"),
        (["created", "restarting", "paused"], "restarting"),
        (["exited"], "exited"),
    ],
)
def test_a_service_is_represented_by_a_running_container_when_it_has_one(states, expected):
    listing = [listed("shop-app-%d" % number, "app", state=state) for number, state in enumerate(states, 1)]
    by_service = containers_by_service(compose_containers(listing))
    assert list(by_service) == ["app"] and by_service["app"]["state"] == expected


@pytest.mark.parametrize(
    ("listing", "exclude", "expected"),
    [
        # a service counts once, with any running container; exited and restarting ones do not count
        (
            [
                listed("shop-app-1", "app"),
                listed("shop-app-2", "app", state="exited"),
                listed("shop-redis-1", "redis"),
                listed("shop-cron-1", "cron", state="restarting"),
                listed("shop-search-1", "search", state="exited"),
                listed("shop-postgres-1", "postgres"),
            ],
            ["app", "worker", "postgres", "safedeploy-proxy"],
            ["redis"],
        ),
        ([listed("shop-redis-1", "redis"), listed("shop-app-1", "app")], [], ["app", "redis"]),
        ([listed("shop-redis-1", "redis")], None, ["redis"]),
        # a container without the service label is no service
        ([listed("stray", None)], [], []),
        ([], ["app"], []),
    ],
)
def test_the_services_running_beside_the_ones_left_out(listing, exclude, expected):
    assert running_services(compose_containers(listing), exclude) == expected


@pytest.mark.parametrize(
    "function, value",
    [(compose_containers, None), (compose_containers, {}), (containers_by_service, "app"), (running_services, "app")],
)
def test_anything_but_a_listing_is_refused(function, value):
    with pytest.raises(AnsibleFilterError, match="expects"):
        function(value)
