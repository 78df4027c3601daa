# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The storefront example's pure parts, and its files agreeing with each other.

The image build step (prune_revisions.py), the release features, and releases.yml, the revision scripts, the
compose file, .env.production.example and the example inventory checked against one another. What needs docker
(the stack, the images, alembic) is in tests/e2e/test_storefront_example.py.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples" / "storefront"
RELEASES = yaml.safe_load((EXAMPLE_DIR / "releases.yml").read_text())["releases"]
BY_VERSION = {release["version"]: release for release in RELEASES}
TEST_RELEASES = [
    release for release in RELEASES if (EXAMPLE_DIR / "migrations" / "test_releases" / release["version"]).is_dir()
]
MAIN_RELEASES = [release for release in RELEASES if release not in TEST_RELEASES]
COMPOSE = yaml.safe_load((EXAMPLE_DIR / "docker-compose.prod.yml").read_text())
INVENTORY = yaml.safe_load((EXAMPLE_DIR / "inventory" / "group_vars" / "all.yml").read_text())
APP_IMAGE_SERVICES = ["migration", "web", "worker-emails", "worker-reports"]
# alembic_version.version_num is VARCHAR(32)
MAX_REVISION_ID_LENGTH = 32


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prune = load("storefront_prune_revisions", EXAMPLE_DIR / "prune_revisions.py")
release = load("storefront_release", EXAMPLE_DIR / "storefront" / "release.py")


def script_path(version: str, entry: dict) -> Path:
    if version in {test_release["version"] for test_release in TEST_RELEASES}:
        return EXAMPLE_DIR / "migrations" / "test_releases" / version / entry["file"]
    return EXAMPLE_DIR / "migrations" / "versions" / entry["file"]


GRAPH = {
    revision: parents
    for path in (EXAMPLE_DIR / "migrations").rglob("*.py")
    if path.name != "env.py"
    for revision, parents in [prune.down_revisions(path)]
}


def heads(graph: dict[str, list[str]]) -> list[str]:
    return sorted(set(graph) - {parent for parents in graph.values() for parent in parents})


@pytest.fixture
def example_copy(tmp_path) -> Path:
    """What the image build copies into /app, for the build step to change."""
    shutil.copy(EXAMPLE_DIR / "releases.yml", tmp_path / "releases.yml")
    shutil.copytree(EXAMPLE_DIR / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_build_step_reads_the_heads_of_releases_yml():
    expected = {entry["version"]: entry["heads"] for entry in RELEASES}
    assert prune.release_heads((EXAMPLE_DIR / "releases.yml").read_text()) == expected


@pytest.mark.parametrize("version", list(BY_VERSION))
def test_an_image_ships_its_head_and_every_ancestor_and_nothing_else(example_copy, version):
    seen = [*(EXAMPLE_DIR / "migrations" / "versions").glob("*.py")]
    seen += (EXAMPLE_DIR / "migrations" / "test_releases" / version).glob("*.py")
    removed = prune.prune(example_copy, version)
    paths = list((example_copy / "migrations" / "versions").glob("*.py"))
    shipped = dict(prune.down_revisions(path) for path in paths)
    assert heads(shipped) == sorted(BY_VERSION[version]["heads"])
    assert set(shipped) == prune.kept_revisions(BY_VERSION[version]["heads"], GRAPH)
    assert sorted(path.name for path in removed + paths) == sorted(path.name for path in seen)
    assert not (example_copy / "migrations" / "test_releases").exists()


def test_an_image_of_a_release_ships_the_older_releases_and_no_test_release(example_copy):
    prune.prune(example_copy, "1.1.0")
    names = sorted(path.name for path in (example_copy / "migrations" / "versions").glob("*.py"))
    expected = [entry["file"] for version in ("1.0.0", "1.1.0") for entry in BY_VERSION[version]["revisions"]]
    assert names == sorted(expected)


def test_an_unknown_release_fails_the_build_naming_it(example_copy):
    with pytest.raises(prune.PruneError, match=r"APP_VERSION 2\.0\.0 is not a release of releases.yml \(1\.0\.0, "):
        prune.prune(example_copy, "2.0.0")


def test_a_head_without_its_script_fails_the_build(example_copy):
    (example_copy / "migrations" / "versions" / BY_VERSION["1.0.0"]["revisions"][0]["file"]).unlink()
    with pytest.raises(prune.PruneError, match="revision 967555f8ede8 is not among the revision scripts"):
        prune.prune(example_copy, "1.1.0")


def test_kept_revisions_follows_every_parent_of_a_merge():
    graph = {"a": [], "b": ["a"], "c": ["a"], "m": ["b", "c"], "x": ["m"]}
    assert prune.kept_revisions(["m"], graph) == {"a", "b", "c", "m"}


@pytest.mark.parametrize(
    ("version", "customer_email", "daily_sales"),
    [("1.0.0", False, False), ("1.1.0", True, False), ("1.1.0-broken", True, False), ("1.2.0", True, True)]
    + [("1.3.0", True, True), ("1.3.0-unsafe", True, True)],
)
def test_each_release_uses_only_the_schema_of_its_revisions(version, customer_email, daily_sales):
    assert release.features(version) == (customer_email, daily_sales)


@pytest.mark.parametrize("version", ["latest", "1.2", ""])
def test_a_version_that_is_no_release_is_refused(version):
    with pytest.raises(ValueError, match="is not a release version like 1.2.0"):
        release.version_key(version)


def test_releases_yml_lists_every_revision_script_once_where_it_lives():
    listed = [(entry["version"], revision) for entry in RELEASES for revision in entry["revisions"]]
    assert sorted(revision["id"] for _version, revision in listed) == sorted(GRAPH)
    for version, entry in listed:
        path = script_path(version, entry)
        assert path.name.startswith(entry["id"] + "_")
        assert prune.down_revisions(path)[0] == entry["id"]
        assert len(entry["id"]) <= MAX_REVISION_ID_LENGTH


@pytest.mark.parametrize("entry", RELEASES, ids=[entry["version"] for entry in RELEASES])
def test_each_release_builds_on_the_head_of_the_one_before(entry):
    previous = BY_VERSION[entry["after"]] if "after" in entry else MAIN_RELEASES[MAIN_RELEASES.index(entry) - 1]
    first = entry["revisions"][0]
    assert GRAPH[first["id"]] == ([] if entry is RELEASES[0] else previous["heads"])
    assert entry["heads"] == [entry["revisions"][-1]["id"]]


def test_the_source_tree_has_a_single_head_the_last_release():
    main_graph = {
        revision: GRAPH[revision] for entry in MAIN_RELEASES for revision in [r["id"] for r in entry["revisions"]]
    }
    assert heads(main_graph) == MAIN_RELEASES[-1]["heads"]


def test_fails_at_names_a_revision_of_its_own_release():
    failing = {entry["version"]: entry["fails_at"] for entry in RELEASES if "fails_at" in entry}
    assert failing == {"1.1.0-broken": "65e8d4dc88b8"}
    assert BY_VERSION["1.1.0-broken"]["revisions"][0]["id"] == failing["1.1.0-broken"]


def test_versions_agree_between_package_pyproject_dockerfile_and_releases():
    latest = MAIN_RELEASES[-1]["version"]
    assert '__version__ = "%s"' % latest in (EXAMPLE_DIR / "storefront" / "__init__.py").read_text()
    assert re.search(r'^version = "%s"$' % re.escape(latest), (EXAMPLE_DIR / "pyproject.toml").read_text(), re.M)
    assert "ARG APP_VERSION=%s\n" % latest in (EXAMPLE_DIR / "Dockerfile").read_text()


def test_requirements_pin_every_direct_dependency():
    def normalized(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pinned = {
        normalized(line.split("==")[0])
        for line in (EXAMPLE_DIR / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    direct = re.findall(
        r'^\s+"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?[<>=!~]', (EXAMPLE_DIR / "pyproject.toml").read_text(), re.M
    )
    assert len(direct) == 7
    assert {normalized(name) for name in direct} <= pinned


def test_the_compose_file_is_the_team_layout():
    services = COMPOSE["services"]
    assert sorted(services) == sorted(["postgres", "redis", *APP_IMAGE_SERVICES])
    assert not [name for name, service in services.items() if "container_name" in service]
    for name in APP_IMAGE_SERVICES:
        assert services[name]["image"] == "storefront-example:${APP_VERSION}"
        assert services[name]["env_file"] == ".env.production"
    assert services["migration"]["command"] == "alembic upgrade head"
    assert services["migration"]["restart"] == "no"
    assert services["migration"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker-emails", "worker-reports"):
        assert services[name]["depends_on"]["migration"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["web"]["ports"] == ["${WEB_PORT:-8000}:9000"]
    assert services["web"]["networks"] == ["backend", "frontend"]
    assert {name for name, service in services.items() if "frontend" in service["networks"]} == {"web"}
    assert services["postgres"]["volumes"] == ["postgres_data:/var/lib/postgresql/data"]


def test_every_variable_the_compose_file_reads_is_documented_and_set_by_the_inventory():
    read = set(re.findall(r"\$\{([A-Z_]+)", (EXAMPLE_DIR / "docker-compose.prod.yml").read_text()))
    example = (EXAMPLE_DIR / ".env.production.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.M))
    assert read == {"APP_VERSION", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "WEB_PORT"}
    assert read | {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "API_TOKEN"} <= documented
    # the collection sets the release through stack_version_variable, the rest comes from stack_env
    assert set(INVENTORY["stack_env"]) | {INVENTORY["stack_version_variable"]} == documented - {"WORKER_INTERVAL"}


def test_the_inventory_names_the_team_services_and_keeps_secrets_out():
    services = INVENTORY["stack_services"]
    named = [services["database"], services["migration"], *services["app"], *services["workers"]]
    assert sorted(named) == sorted(set(COMPOSE["services"]) - {"redis"})
    assert INVENTORY["stack_health_port"] == 9000
    assert "EXPOSE 9000\n" in (EXAMPLE_DIR / "Dockerfile").read_text()
    for name in ("POSTGRES_PASSWORD", "DATABASE_URL", "SECRET_KEY", "API_TOKEN"):
        assert "{{" in INVENTORY["stack_env"][name], name
    assert "lookup(" in INVENTORY["stack_db_password"]
