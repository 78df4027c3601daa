# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A compose project's containers as the roles read them from community.docker.docker_host_info: compose_containers,
containers_by_service, running_services."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
RELEASE_LABEL = "io.safedeploy.release"


def address(container: dict) -> str | None:
    """Where the container answers from the host: loopback on the host network, else its first network address."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    if "host" in networks:
        return "127.0.0.1"
    return next((network.get("IPAddress") for network in networks.values() if (network or {}).get("IPAddress")), None)


def compose_containers(containers) -> list:
    """Each container of the project but one-off runs (a migration's `compose run`), summarised, sorted by name.

    Nothing of a container's environment is kept: it holds the app's secrets.
    """
    if not isinstance(containers, list):
        raise AnsibleFilterError("compose_containers: expects docker_host_info's containers (verbose_output: true)")
    found = []
    for container in containers:
        labels = container.get("Labels") or {}
        if labels.get(ONEOFF_LABEL, "False") == "True":
            continue
        found.append(
            {
                "service": labels.get(SERVICE_LABEL),
                "name": (container.get("Names") or [""])[0].lstrip("/"),
                "state": container.get("State"),
                "status": container.get("Status"),
                "image": container.get("Image"),
                "image_id": container.get("ImageID"),
                "release": labels.get(RELEASE_LABEL),
                "address": address(container),
            }
        )
    return sorted(found, key=lambda summary: summary["name"].lower())


def containers_by_service(summaries) -> dict:
    """service -> one container of it, a running one when there is one (compose_containers' summaries)."""
    if not isinstance(summaries, list):
        raise AnsibleFilterError("containers_by_service: expects the list compose_containers returns")
    # sorted by state, the last one wins: running sorts after created, exited, paused and restarting
    return {summary["service"]: summary for summary in sorted(summaries, key=lambda summary: summary["state"] or "")}


def running_services(summaries, exclude=()) -> list:
    """The services with a running container, sorted, but those in exclude (compose_containers' summaries)."""
    if not isinstance(summaries, list):
        raise AnsibleFilterError("running_services: expects the list compose_containers returns")
    running = {summary["service"] for summary in summaries if summary.get("state") == "running"}
    return sorted(service for service in running - set(exclude or ()) if service)


class FilterModule:
    def filters(self):
        return {
            "compose_containers": compose_containers,
            "containers_by_service": containers_by_service,
            "running_services": running_services,
        }
