# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A constant HTTP load on the app's /health, for the zero-downtime test and benchmark: what failed, and the gaps."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

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
        self.threads = [threading.Thread(target=self.client, daemon=True) for _client in range(CLIENTS)]
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
        ordered = [version for _moment, version in sorted(self.answers)]
        return [ordered[0], ordered[-1], sorted(set(ordered))] if ordered else []

    @property
    def longest_gap(self) -> float:
        """The longest time without a successful answer."""
        times = [self.started] + sorted(moment for moment, _version in self.answers) + [self.started + self.seconds]
        return max(later - earlier for earlier, later in zip(times, times[1:]))
