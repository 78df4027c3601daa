# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Online deploys under a constant load through the proxy: no failed request, the new release served at the end.

A client on loopback sends at least 50 requests per second to /health for the whole deploy and counts every answer
that is not a 2xx, and every connection error. The same load during a stop_the_world deploy shows the gap, which is
recorded in the test output (not asserted). The tests run in file order on one compose project.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

import pytest

pytest_plugins = ("compose_stack", "deploy_stack")

# several clients, so one slow answer never lowers the rate below what the issue asks for (50/s)
CLIENTS = 4
REQUESTS_PER_SECOND_PER_CLIENT = 20


@dataclass
class Load:
    """Steady streams of GET /health, a new connection each, like independent clients."""

    port: int
    answers: list = field(default_factory=list)  # (time, version) of each 2xx answer
    failed: list = field(default_factory=list)  # (time, status or error) of each other outcome
    _stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> None:
        interval = 1.0 / REQUESTS_PER_SECOND_PER_CLIENT
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/health")
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if 200 <= response.status < 300:
                    self.answers.append((time.monotonic(), json.loads(body).get("app_version")))
                else:
                    self.failed.append((started, response.status))
            except OSError as error:
                self.failed.append((started, type(error).__name__))
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def __enter__(self):
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self.threads:
            thread.join()
        self.seconds = time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return (len(self.answers) + len(self.failed)) / self.seconds

    @property
    def versions(self) -> list:
        """The versions that answered, first and last by time, and every one in between."""
        ordered = [version for _, version in sorted(self.answers)]
        return [ordered[0], ordered[-1], sorted(set(ordered))] if ordered else []

    @property
    def longest_gap(self) -> float:
        """The longest time without a successful answer."""
        times = [self.started] + sorted(moment for moment, _ in self.answers) + [self.started + self.seconds]
        return max(later - earlier for earlier, later in zip(times, times[1:]))


@pytest.fixture(scope="module")
def target(deploy_target, release_images):
    for version in ("1.1.0", "1.2.0", "1.3.0", "1.4.0-unhealthy"):
        release_images(version)
    assert deploy_target.deploy("1.1.0").rc == 0
    return deploy_target


def test_online_deploy_under_load_fails_no_request(target):
    with Load(target.app_port) as load:
        playbook = target.deploy("1.2.0", deploy_strategy="online")
    assert playbook.rc == 0, playbook.failures()
    assert load.rate >= 50, load.rate
    assert load.failed == [], load.failed[:10]
    assert load.versions[:2] == ["1.1.0", "1.2.0"], load.versions
    assert target.health()[1]["revision"] == "0003_jobs_queue_index"


def test_stop_the_world_shows_the_gap(target, capsys):
    with Load(target.app_port) as load:
        playbook = target.deploy("1.3.0", deploy_strategy="stop_the_world")
    assert playbook.rc == 0, playbook.failures()
    with capsys.disabled():
        print(
            "\nstop_the_world under load: %d ok, %d failed, longest gap without an answer %.1f s"
            % (len(load.answers), len(load.failed), load.longest_gap)
        )


def test_new_release_that_never_gets_healthy_leaves_the_old_one_serving(target):
    with Load(target.app_port) as load:
        playbook = target.deploy("1.4.0-unhealthy", deploy_strategy="online")
    assert playbook.rc != 0
    assert "old replica(s) keep serving" in playbook.failures()
    assert load.failed == [], load.failed[:10]
    assert load.versions[2] == ["1.3.0"], load.versions
    assert target.revision() == "0004_drop_customer_legacy_code"
