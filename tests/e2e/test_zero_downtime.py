# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Online deploys under a constant load through the proxy: no failed request, the new release served at the end.

A client on loopback sends at least 50 requests per second to /health for the whole deploy and counts every answer
that is not a 2xx, and every connection error; the online deploy's rollback, online too, fails no request either.
The gap a stop_the_world deploy has under the same load is measured by tests/bench/bench_zero_downtime.py. The tests
run in file order on one compose project.
"""

from __future__ import annotations

import pytest
from http_load import Load

pytest_plugins = ("compose_stack", "deploy_stack")
# the load must reach 50 requests/s whatever else runs: `make e2e` runs this module alone
pytestmark = pytest.mark.exclusive


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


def test_the_rollback_of_an_online_deploy_fails_no_request(target):
    # 1.1.0 takes over behind the proxy on 1.2.0's schema, then the downgrade runs under it
    with Load(target.app_port) as load:
        rollback = target.run("rollback.yml")
    assert rollback.rc == 0, rollback.failures()
    assert target.ledger()[-1]["strategy"] == "online"
    assert load.rate >= 50, load.rate
    assert load.failed == [], load.failed[:10]
    assert load.versions[:2] == ["1.2.0", "1.1.0"], load.versions
    assert target.health()[1]["revision"] == "0002_job_priority"


def test_new_release_that_never_gets_healthy_leaves_the_old_one_serving(target):
    # 1.4.0-unhealthy builds on 1.3.0, whose revision drops a column 1.2.0 reads: start from 1.3.0, not online
    start = target.deploy("1.3.0")
    assert start.rc == 0, start.failures()
    with Load(target.app_port) as load:
        # the health gate gives up sooner than the inventory's 40 s: nothing here gets healthy late
        playbook = target.deploy("1.4.0-unhealthy", deploy_strategy="online", stack_health_timeout=15)
    assert playbook.rc != 0
    assert "old replica(s) keep serving" in playbook.failures()
    assert load.failed == [], load.failed[:10]
    assert load.versions[2] == ["1.3.0"], load.versions
    assert target.revision() == "0004_drop_customer_legacy_code"
