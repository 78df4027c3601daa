# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.compose import (
    FilterModule,
    compose_env_file,
    compose_extra_files,
    compose_literal,
    compose_networks,
    compose_shape,
    database_url_with_db,
)

SEED_SERVICES = {"database": "postgres", "migration": "migration", "app": ["app"], "workers": ["worker"]}
TEAM_SERVICES = {
    "database": "postgres",
    "migration": "migration",
    "app": ["web"],
    "workers": ["worker-emails", "worker-reports"],
}
# what `docker compose config --format json` prints for a team's file, environments included
TEAM_CONFIG = {
    "name": "storefront",
    "services": {
        "postgres": {"image": "postgres:15-bookworm", "environment": {"POSTGRES_PASSWORD": "secret"}},
        "redis": {"image": "redis:7-bookworm", "restart": "unless-stopped"},
        # a one-shot job beside the app, and a service compose does not restart
        "seed-search": {"image": "storefront:1.1.0", "restart": "on-failure"},
        "exporter": {"image": "exporter:1"},
        "migration": {"image": "storefront:1.1.0", "environment": {"SECRET_KEY": "secret"}},
        "web": {"image": "storefront:1.1.0", "environment": {"SECRET_KEY": "secret"}},
        "worker-emails": {"image": "storefront:1.1.0"},
        "worker-reports": {"image": "storefront-reports:1.1.0"},
        "safedeploy-proxy": {"image": "nginx:stable-bookworm", "restart": "always"},
    },
}


@pytest.mark.parametrize(
    "value, line",
    [
        ("plain", 'A="plain"'),
        ("pa$$word ${HOME} $X", r'A="pa\$\$word \${HOME} \$X"'),
        ('it\'s "quoted"', r'A="it' + "'" + r's \"quoted\""'),
        ("back\\slash\\n", r'A="back\\slash\\n"'),
        ("two\nlines\r\n", r'A="two\nlines\r\n"'),
        ("\ttab # not a comment", r'A="\ttab # not a comment"'),
        ("", 'A=""'),
        (8000, 'A="8000"'),
        (1.5, 'A="1.5"'),
        (False, 'A="false"'),
        (True, 'A="true"'),
        (None, 'A=""'),
        ("ünï €", 'A="ünï €"'),
    ],
)
def test_env_values_are_double_quoted_and_escaped(value, line):
    assert compose_env_file({"A": value}).splitlines() == [line]


def test_env_file_is_sorted_with_a_header():
    text = compose_env_file({"B": "2", "A": "1"}, header="managed\nmode 0600")
    assert text == '# managed\n# mode 0600\nA="1"\nB="2"\n'


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "A\nprivileged: true", "A\n", "", "A=B", "É"])
def test_env_names_must_be_variable_names(name):
    with pytest.raises(AnsibleFilterError, match="is not a variable name"):
        compose_env_file({name: "x"})


@pytest.mark.parametrize("value", [{"nested": 1}, ["a"], b"bytes"])
def test_env_values_must_be_scalars_and_are_not_shown(value):
    with pytest.raises(AnsibleFilterError) as raised:
        compose_env_file({"SECRET_KEY": value})
    assert "SECRET_KEY" in str(raised.value)
    assert "nested" not in str(raised.value)


def test_env_values_refuse_nul():
    with pytest.raises(AnsibleFilterError, match="NUL"):
        compose_env_file({"A": "x\0y"})


def test_env_file_needs_a_dict():
    with pytest.raises(AnsibleFilterError, match="dict"):
        compose_env_file(["A=1"])


@pytest.mark.parametrize(
    "value, text",
    [
        ("nginx:stable", '"nginx:stable"'),
        ("pa$s ${X}", '"pa$$s $${X}"'),
        ("a\nprivileged: true", '"a\\nprivileged: true"'),
        (5432, '"5432"'),
    ],
)
def test_literals_are_json_strings_without_interpolation(value, text):
    assert compose_literal(value) == text


def test_literals_refuse_collections():
    with pytest.raises(AnsibleFilterError):
        compose_literal({"a": 1})


@pytest.mark.parametrize(
    "service, networks",
    [
        ({"image": "x"}, ["default"]),
        ({"networks": ["backend", "frontend"]}, ["backend", "frontend"]),
        ({"networks": {"frontend": {"aliases": ["w"]}, "backend": None}}, ["backend", "frontend"]),
        (None, ["default"]),
    ],
)
def test_networks_of_a_service(service, networks):
    assert compose_networks({"services": {"web": service}}, "web") == networks


def test_networks_of_a_missing_service():
    with pytest.raises(AnsibleFilterError, match="defines no service web; it defines: app"):
        compose_networks({"services": {"app": {}}}, "web")
    with pytest.raises(AnsibleFilterError):
        compose_networks("not a compose file", "web")


def test_shape_of_a_team_stack_keeps_no_environment():
    shape = compose_shape(TEAM_CONFIG, TEAM_SERVICES, proxy="safedeploy")
    assert shape == {
        "services": [
            "exporter",
            "migration",
            "postgres",
            "redis",
            "safedeploy-proxy",
            "seed-search",
            "web",
            "worker-emails",
            "worker-reports",
        ],
        "images": {
            "exporter": "exporter:1",
            "migration": "storefront:1.1.0",
            "postgres": "postgres:15-bookworm",
            "redis": "redis:7-bookworm",
            "safedeploy-proxy": "nginx:stable-bookworm",
            "seed-search": "storefront:1.1.0",
            "web": "storefront:1.1.0",
            "worker-emails": "storefront:1.1.0",
            "worker-reports": "storefront-reports:1.1.0",
        },
        "others": ["exporter", "redis", "safedeploy-proxy", "seed-search"],
        # restarted by compose whenever they stop: a one-shot job and a service without a policy are not
        "kept_up": ["redis", "safedeploy-proxy"],
        "release_services": ["web", "worker-emails", "worker-reports"],
        "release_images": ["storefront-reports:1.1.0", "storefront:1.1.0"],
    }
    assert "secret" not in json.dumps(shape)


@pytest.mark.parametrize(
    "services, database, proxy, missing",
    [
        (SEED_SERVICES, True, "", "app, worker"),
        (dict(TEAM_SERVICES, app=["web", "admin"]), True, "", "admin"),
        (dict(TEAM_SERVICES, database="db"), True, "", "db"),
        (TEAM_SERVICES, True, "traefik", "traefik"),
    ],
)
def test_shape_names_the_services_the_files_lack(services, database, proxy, missing):
    with pytest.raises(AnsibleFilterError, match="define no service %s" % missing):
        compose_shape(TEAM_CONFIG, services, database=database, proxy=proxy)


def test_shape_of_an_external_database_needs_no_database_service():
    config = {"services": {name: spec for name, spec in TEAM_CONFIG["services"].items() if name != "postgres"}}
    assert compose_shape(config, dict(TEAM_SERVICES, database=""), database=False)["others"] == [
        "exporter",
        "redis",
        "safedeploy-proxy",
        "seed-search",
    ]


@pytest.mark.parametrize(
    "services, message",
    [
        ("app", "must be a dict"),
        (dict(TEAM_SERVICES, proxy="nginx"), "unknown key"),
        (dict(TEAM_SERVICES, app=[]), "stack_services.app must name a service"),
        (dict(TEAM_SERVICES, migration=""), "stack_services.migration must name a service"),
        (dict(TEAM_SERVICES, migration=["a", "b"]), "one service each"),
        (dict(TEAM_SERVICES, workers=["bad name"]), "not a compose service name"),
        (dict(TEAM_SERVICES, app=["web\nprivileged: true"]), "not a compose service name"),
        (dict(TEAM_SERVICES, app=["web\n"]), "not a compose service name"),
        (dict(TEAM_SERVICES, workers=["worker;}"]), "not a compose service name"),
    ],
)
def test_stack_services_are_checked(services, message):
    with pytest.raises(AnsibleFilterError, match=message):
        compose_shape(TEAM_CONFIG, services)


def test_shape_needs_a_compose_config():
    with pytest.raises(AnsibleFilterError, match="docker compose config"):
        compose_shape({"name": "x"}, TEAM_SERVICES)


RESERVED = ("compose.safedeploy.yml", ".env")


def test_extra_files_get_a_destination_and_a_mode():
    assert compose_extra_files(
        ["/team/nginx.conf", {"src": "/team/certs/key.pem", "dest": "certs/key.pem", "mode": "0600"}], RESERVED
    ) == [
        {"src": "/team/nginx.conf", "dest": "nginx.conf", "mode": "0644"},
        {"src": "/team/certs/key.pem", "dest": "certs/key.pem", "mode": "0600"},
    ]


def test_extra_files_destinations_drop_dot_components():
    assert compose_extra_files([{"src": "/team/nginx.conf", "dest": "./conf/./nginx.conf"}], RESERVED) == [
        {"src": "/team/nginx.conf", "dest": "conf/nginx.conf", "mode": "0644"}
    ]


@pytest.mark.parametrize(
    "items, message",
    [
        ("nginx.conf", "must be a list"),
        ([{"dest": "x"}], "has no src"),
        ([""], "has no src"),
        ([{"src": "/a", "dest": "/etc/passwd"}], "relative path"),
        ([{"src": "/a", "dest": "../outside"}], "relative path"),
        ([{"src": "/a", "dest": "a//b"}], "relative path"),
        (["/team/compose.safedeploy.yml"], "relative path"),
        ([{"src": "/a", "dest": ".env"}], "relative path"),
        ([{"src": "/a", "dest": "./.env"}], "relative path"),
        ([{"src": "/a", "dest": "."}], "relative path"),
        (["/team/."], "relative path"),
    ],
)
def test_extra_files_are_checked(items, message):
    with pytest.raises(AnsibleFilterError, match=message):
        compose_extra_files(items, RESERVED)


@pytest.mark.parametrize(
    "url, database, expected",
    [
        (
            "postgresql://orchestrator@postgres:5432/orchestrator",
            "scratch",
            "postgresql://orchestrator@postgres:5432/scratch",
        ),
        (
            "postgresql+psycopg://shop:p%40ss@postgres/shop?sslmode=disable",
            "shop_test_1",
            "postgresql+psycopg://shop:p%40ss@postgres/shop_test_1?sslmode=disable",
        ),
        ("postgres://u@h", "db", "postgres://u@h/db"),
        ("postgresql://u@h/a", "odd name/x", "postgresql://u@h/odd%20name%2Fx"),
    ],
)
def test_database_url_aimed_at_another_database(url, database, expected):
    assert database_url_with_db(url, database) == expected


def test_database_url_must_be_a_url():
    with pytest.raises(AnsibleFilterError, match="expects a URL"):
        database_url_with_db("host=postgres dbname=x", "y")


def test_every_filter_is_registered():
    assert set(FilterModule().filters()) == {
        "compose_env_file",
        "compose_extra_files",
        "compose_literal",
        "compose_networks",
        "compose_shape",
        "database_url_with_db",
        "stack_services_checked",
    }
