# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A team's own stack in another shape than test_own_stack.py's: the team's own proxy in front of its app (its nginx
configuration copied beside the compose file), and no proxy at all. Its history starts with a first deploy that
fails, and ends with releases whose revisions read the database: one that the rows it meets would break, refused
before the backup, and the one that migrates those rows first. Every playbook runs from the installed Galaxy
tarball by FQCN, from a directory outside the repository.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

# the fixtures' modules are plugins of this one; rewrite their asserts before the imports below load them
pytest.register_assert_rewrite("compose_stack", "installed_collection", "storefront_stack", "team_stack")
pytest_plugins = ("compose_stack", "installed_collection", "storefront_stack")

from compose_stack import docker, free_port
from http_load import Load
from storefront_stack import COMPOSE_FILE_NAME, STOREFRONT
from team_stack import HEADS, TeamTarget, get, revision

# the team's own proxy, in front of web: it finds web's replicas by name on every request, as an online deploy needs
# a file the edge serves that is no UTF-8 text: it must reach the host byte for byte, without a deprecation warning
EDGE_BANNER = "Caf\u00e9 \u00e0 la carte\n".encode("latin-1") + bytes(range(256))
EDGE_CONF = """resolver 127.0.0.11 valid=1s ipv6=off;
server {
    listen 80;
    location / {
        set $web http://web:9000;
        proxy_pass $web;
        proxy_next_upstream error timeout http_502 http_503 http_504;
        proxy_connect_timeout 500ms;
    }
}
"""


def with_own_proxy(port: int) -> str:
    """The team's file with a proxy service of its own, `edge`, publishing the address web no longer publishes."""
    compose = yaml.safe_load((STOREFRONT / COMPOSE_FILE_NAME).read_text())
    del compose["services"]["web"]["ports"]
    # a scratch directory of each web container: an anonymous volume, which an online deploy must not leave behind
    compose["services"]["web"]["volumes"] = ["/srv/scratch"]
    compose["services"]["edge"] = {
        "image": "nginx:stable-bookworm",
        "ports": ["127.0.0.1:%d:80" % port],
        "volumes": ["./edge/nginx.conf:/etc/nginx/conf.d/default.conf:ro"],
        "networks": ["frontend"],
        "restart": "unless-stopped",
    }
    return yaml.safe_dump(compose, sort_keys=False)


def anonymous_volumes(team: TeamTarget, service: str) -> set[str]:
    """The anonymous volumes the service's containers mount."""
    names = docker(
        "ps", "-aq", "--filter", "label=com.docker.compose.project=%s" % team.project,
        "--filter", "label=com.docker.compose.service=%s" % service,
    ).split()  # fmt: skip
    mounts = (
        [mount for inspect in json.loads(docker("inspect", *names)) for mount in inspect["Mounts"]] if names else []
    )
    return {mount["Name"] for mount in mounts if mount["Type"] == "volume" and mount["Destination"] == "/srv/scratch"}


@pytest.fixture(scope="module")
def edge_team(tmp_path_factory, installed_collection, storefront_images):
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.1.0-broken", "1.3.0", "1.3.0-unsafe"):
        storefront_images(version)
    root = tmp_path_factory.mktemp("edge")
    (root / "edge-nginx.conf").write_text(EDGE_CONF)
    (root / "banner.bin").write_bytes(EDGE_BANNER)
    port = free_port()
    machine_vars = {
        "stack_proxy": "edge",
        "stack_compose_extra_files": [
            {"src": str(root / "edge-nginx.conf"), "dest": "edge/nginx.conf"},
            {"src": str(root / "banner.bin"), "dest": "edge/banner.bin"},
        ],
    }
    target = TeamTarget(
        root, installed_collection, name="edge", compose_text=with_own_proxy(port), machine_vars=machine_vars
    )
    target.edge_port = port
    try:
        yield target
    finally:
        target.down()


def test_a_failed_first_deploy_leaves_the_database_as_it_was(edge_team):
    playbook = edge_team.deploy("1.1.0-broken")
    assert playbook.rc != 0
    assert "gift_message" in playbook.failures()
    # the database as before the deploy: no table of the app, no alembic revision; the ledger keeps the attempt
    tables = edge_team.rows(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'safedeploy')"
    )
    assert tables == [], tables
    ((kind, version, outcome, _strategy, rescue),) = edge_team.ledger()
    assert (kind, version, outcome) == ("deploy", "1.1.0-broken", "failed"), (kind, version, outcome)
    assert rescue.startswith(("restored ", "downgraded ")) and "rescue failed" not in rescue, rescue
    # nothing of the release was left behind, running or not
    assert sorted(edge_team.containers()) == ["postgres"], edge_team.containers()
    retry = edge_team.deploy("1.0.0")
    assert retry.rc == 0, retry.failures()
    assert revision(edge_team) == [HEADS["1.0.0"]]


def test_the_team_s_own_proxy_serves_an_online_update_without_a_failed_request(edge_team):
    assert (edge_team.stack_dir / "edge" / "nginx.conf").read_text() == EDGE_CONF
    assert (edge_team.stack_dir / "edge" / "nginx.conf").stat().st_mode & 0o777 == 0o644
    assert "safedeploy-proxy" not in edge_team.containers()
    assert get(edge_team.edge_port, "/health") == (200, {"status": "ok"})
    old_scratch = anonymous_volumes(edge_team, "web")
    assert old_scratch
    with Load(edge_team.edge_port) as load:
        update = edge_team.deploy("1.1.0")
    assert update.rc == 0, update.failures()
    assert len(load.answers) > 100 and load.failed == [], (len(load.answers), load.failed[:10])
    # the old replicas went with their scratch volumes; the new ones have their own
    assert anonymous_volumes(edge_team, "web") and not anonymous_volumes(edge_team, "web") & old_scratch
    assert [
        volume for volume in old_scratch if docker("volume", "ls", "-q", "--filter", "name=" + volume).strip()
    ] == []
    assert (edge_team.stack_dir / "edge" / "banner.bin").read_bytes() == EDGE_BANNER
    assert "could not be decoded" not in update.stdout + update.stderr
    assert edge_team.ledger()[-1][:4] == ("deploy", "1.1.0", "succeeded", "online")


def test_without_a_proxy_auto_stops_the_world(edge_team):
    # 1.2.0 is backward compatible: with a proxy, auto deploys it online
    playbook = edge_team.deploy("1.2.0", check=True, stack_proxy="none")
    assert playbook.rc == 0, playbook.failures()
    assert "strategy stop_the_world (asked: auto)" in playbook.task("Report the decision")["msg"]
    assert edge_team.ledger()[-1][1] == "1.1.0"


def test_a_release_the_rows_would_break_is_refused_before_the_backup_and_the_fixed_one_deploys(edge_team):
    with edge_team.connect() as connection:
        # rows the 1.3.0 schema cannot take as they are: an order without an address, two products of one name
        connection.execute("INSERT INTO orders (product_id, quantity, total_cents) VALUES (1, 1, 1200)")
        connection.execute("INSERT INTO products (sku, name, price_cents) VALUES ('MUG-002', 'Enamel mug', 1300)")
    backups = edge_team.stack_dir / "backups"
    kept = sorted(path.name for path in backups.iterdir()) if backups.exists() else []
    before = revision(edge_team)
    web = [image for _name, image, _state, _at in edge_team.containers()["web"]]

    refused = edge_team.deploy("1.3.0-unsafe")
    assert refused.rc != 0
    failure = refused.failures()
    assert "existing rows would make the migration fail" in failure, failure
    assert re.search(r"684dfd0c3ade \(orders\): \d+ rows? with NULL in customer_email", failure), failure
    assert "684dfd0c3ade (products): 1 duplicate group of name, e.g. name=Enamel mug" in failure, failure
    # its revision reads the database: alembic's offline mode cannot render it, the plan traced it on a copy
    plan = refused.task("Show the plan")["msg"][0]
    assert "SQL offline + traced" in plan, plan
    assert (sorted(path.name for path in backups.iterdir()) if backups.exists() else []) == kept
    assert revision(edge_team) == before
    assert [image for _name, image, _state, _at in edge_team.containers()["web"]] == web
    assert get(edge_team.edge_port, "/health")[0] == 200

    deployed = edge_team.deploy("1.3.0")
    assert deployed.rc == 0, deployed.failures()
    plan = deployed.task("Show the plan")["msg"]
    assert "SQL offline + traced" in plan[0], plan
    # the findings are warnings now: the data migration reads those rows first, and fixes them
    assert "may fix them" in plan[4], plan
    assert revision(edge_team) == ["96069d0b06f2"]
    assert edge_team.rows("SELECT count(*) FROM orders WHERE customer_email IS NULL") == [(0,)]
    assert edge_team.rows("SELECT name FROM products WHERE sku = 'MUG-002'") == [("Enamel mug (MUG-002)",)]
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ux_products_name'::regclass"
    assert edge_team.rows(valid) == [(True,)]
    databases = "SELECT count(*) FROM pg_database WHERE datname LIKE 'safedeploy_plan_%'"
    assert edge_team.rows(databases) == [(0,)]
    assert edge_team.ledger()[-1][:3] == ("deploy", "1.3.0", "succeeded")
