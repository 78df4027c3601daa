# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The example application's pure parts, and releases.yml against the revision scripts and alembic.ini.

What needs PostgreSQL (upgrade, downgrade, the app, the worker) is exercised by the integration and e2e tests.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples" / "orchestrator"
RELEASES = yaml.safe_load((EXAMPLE_DIR / "releases.yml").read_text())["releases"]
MAIN_RELEASES = [release for release in RELEASES if release["alembic_name"] == "alembic"]
TEST_RELEASES = [release for release in RELEASES if release["alembic_name"] != "alembic"]
# alembic_version.version_num is VARCHAR(32)
MAX_REVISION_ID_LENGTH = 32


@pytest.fixture(scope="module")
def example():
    """The example's `app` package and its image build steps, imported from the example directory."""
    sys.path.insert(0, str(EXAMPLE_DIR))
    try:
        yield {
            "database_url": importlib.import_module("app.database_url"),
            "release": importlib.import_module("app.release"),
            "prune": build_step("prune_revisions"),
            "ship": build_step("ship_test_release"),
        }
    finally:
        sys.path.remove(str(EXAMPLE_DIR))
        for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
            del sys.modules[name]


def build_step(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLE_DIR / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_revision(path: Path) -> dict:
    """revision, down_revisions and whether downgrade() only raises NotImplementedError, without importing."""
    tree = ast.parse(path.read_text())
    values = {}
    downgrade_raises = False
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(node.value)
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            body = node.body
            downgrade_raises = (
                len(body) == 1
                and isinstance(body[0], ast.Raise)
                and getattr(body[0].exc.func, "id", None) == "NotImplementedError"
            )
    down = values["down_revision"]
    return {
        "revision": values["revision"],
        "down_revisions": [] if down is None else [down] if isinstance(down, str) else list(down),
        "downgrade_raises": downgrade_raises,
        "path": path,
        "docstring": ast.get_docstring(tree) or "",
    }


def scripts_in(directories: list[Path]) -> dict[str, dict]:
    found = [parse_revision(path) for directory in directories for path in sorted(directory.rglob("[0-9]*.py"))]
    return {script["revision"]: script for script in found}


def heads(scripts: dict[str, dict]) -> list[str]:
    parents = {parent for script in scripts.values() for parent in script["down_revisions"]}
    return sorted(set(scripts) - parents)


def version_locations(section: str, example_dir: Path = EXAMPLE_DIR) -> list[Path]:
    parser = configparser.ConfigParser(defaults={"here": str(example_dir)})
    parser.read(example_dir / "alembic.ini")
    return [Path(location) for location in parser.get(section, "version_locations").split(":")]


ALL_SCRIPTS = scripts_in([EXAMPLE_DIR / "migrations" / "versions", EXAMPLE_DIR / "migrations" / "extra"])


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://erpmax:pw@db:5432/erpmax_orchestrator",
        "postgresql+psycopg://erpmax:pw@db:5432/erpmax_orchestrator",
        "postgresql+psycopg2://erpmax:pw@db:5432/erpmax_orchestrator",
        "postgres://erpmax:pw@db:5432/erpmax_orchestrator",
    ],
)
def test_database_url_either_form_converts_to_both(example, given):
    module = example["database_url"]
    assert module.libpq_url(given) == "postgresql://erpmax:pw@db:5432/erpmax_orchestrator"
    assert module.sqlalchemy_url(given) == "postgresql+psycopg://erpmax:pw@db:5432/erpmax_orchestrator"


def test_database_url_other_scheme_is_refused_without_echoing_the_password(example):
    module = example["database_url"]
    with pytest.raises(module.DatabaseUrlError) as caught:
        module.libpq_url("mysql://erpmax:s3cret@db/erp")
    assert "'mysql'" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_database_url_missing_is_named(example):
    module = example["database_url"]
    with pytest.raises(module.DatabaseUrlError, match="DATABASE_URL is not set"):
        module.database_url_from_env({"DATABASE_URL": "  "})


@pytest.mark.parametrize(
    ("version", "key"),
    [("1.2.0", (1, 2, 0)), ("1.4.0-broken", (1, 4, 0)), ("10.0", (10, 0)), ("2.0.1+local", (2, 0, 1))],
)
def test_version_key_orders_by_release_numbers(example, version, key):
    assert example["release"].version_key(version) == key


def test_version_key_refuses_a_non_version(example):
    with pytest.raises(ValueError, match="not a release version"):
        example["release"].version_key("latest")


@pytest.mark.parametrize(
    ("app_version", "removed"),
    [
        ("1.0.0", ["1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.4.0-broken", "1.4.0-slow"]),
        ("1.1.0", ["1.2.0", "1.3.0", "1.4.0", "1.4.0-broken", "1.4.0-slow"]),
        # 1.4.0-broken sorts as (1, 4, 0), above 1.3.0, and must still go
        ("1.3.0", ["1.4.0", "1.4.0-broken", "1.4.0-slow"]),
        ("1.4.0-broken", ["1.4.0", "1.4.0-slow"]),
        ("1.4.0", ["1.4.0-broken", "1.4.0-slow"]),
        ("1.3.0+local", ["1.4.0", "1.4.0-broken", "1.4.0-slow"]),
    ],
)
def test_an_image_keeps_the_revisions_of_its_release_and_older(example, tmp_path, app_version, removed):
    for name in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.4.0-broken", "1.4.0-slow", "__pycache__"):
        (tmp_path / name).mkdir()
    unshipped = example["prune"].unshipped_release_dirs(tmp_path, app_version)
    assert [path.name for path in unshipped] == removed


@pytest.fixture
def example_copy(tmp_path) -> Path:
    """What the image build copies into /app, for the build steps to change."""
    copy = tmp_path / "app"
    copy.mkdir()
    for name in ("alembic.ini", "releases.yml"):
        shutil.copy(EXAMPLE_DIR / name, copy / name)
    shutil.copytree(EXAMPLE_DIR / "migrations", copy / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def revision_files(locations: list[Path]) -> list[str]:
    return sorted(path.name for location in locations for path in location.rglob("[0-9]*.py"))


def test_the_build_step_reads_every_alembic_name_of_releases_yml(example):
    expected = {release["version"]: release["alembic_name"] for release in RELEASES}
    assert example["ship"].alembic_names((EXAMPLE_DIR / "releases.yml").read_text()) == expected


@pytest.mark.parametrize("release", TEST_RELEASES, ids=[release["version"] for release in TEST_RELEASES])
def test_a_test_release_image_runs_its_set_with_plain_alembic(example, example_copy, release):
    example["ship"].ship_test_release(example_copy, release["version"])
    default = version_locations("alembic", example_copy)
    assert revision_files(default) == revision_files(version_locations(release["alembic_name"]))
    assert heads(scripts_in(default)) == sorted(release["heads"])
    # the section itself still works in the image, and finds no revision twice
    assert revision_files(version_locations(release["alembic_name"], example_copy)) == revision_files(default)


@pytest.mark.parametrize("app_version", ["1.3.0", "1.0.0", "1.4.0-unlisted", "2.0.0"])
def test_other_images_keep_their_revisions_where_they_are(example, example_copy, app_version):
    before = sorted(path.relative_to(example_copy) for path in example_copy.rglob("*"))
    assert example["ship"].ship_test_release(example_copy, app_version) is None
    assert sorted(path.relative_to(example_copy) for path in example_copy.rglob("*")) == before


def test_a_test_release_without_its_alembic_section_fails_the_build(example, example_copy):
    releases = example_copy / "releases.yml"
    releases.write_text(releases.read_text() + "\n  - version: 1.4.0-ghost\n    alembic_name: ghost\n")
    with pytest.raises(example["ship"].ShipError, match=r"no section \[ghost\]"):
        example["ship"].ship_test_release(example_copy, "1.4.0-ghost")


def test_a_test_release_never_overwrites_a_release_directory(example, example_copy):
    (example_copy / "migrations" / "versions" / "1.4.0-broken").mkdir()
    with pytest.raises(example["ship"].ShipError, match="exists already"):
        example["ship"].ship_test_release(example_copy, "1.4.0-broken")


def test_only_the_releases_marked_unhealthy_never_report_healthy(example):
    marked = {release["version"] for release in RELEASES if release.get("healthy", True) is False}
    assert marked
    assert marked == example["release"].NEVER_HEALTHY_RELEASES


@pytest.mark.parametrize(("app_version", "never_healthy"), [("1.4.0-unhealthy", True), ("1.3.0", False)])
def test_the_unhealthy_release_says_it_is_broken_on_purpose(example, monkeypatch, app_version, never_healthy):
    release = example["release"]
    monkeypatch.setenv("APP_VERSION", app_version)
    try:
        importlib.reload(release)
        assert release.NEVER_HEALTHY is never_healthy
        assert "release %s is broken on purpose" % app_version in release.NEVER_HEALTHY_REASON
    finally:
        monkeypatch.undo()
        importlib.reload(release)


@pytest.mark.parametrize("revision", sorted(ALL_SCRIPTS))
def test_revision_ids_fit_alembic_version_and_name_their_file(revision):
    script = ALL_SCRIPTS[revision]
    assert len(revision) <= MAX_REVISION_ID_LENGTH
    assert script["path"].name == revision + ".py"


@pytest.mark.parametrize("release", RELEASES, ids=[release["version"] for release in RELEASES])
def test_release_revisions_live_where_its_alembic_section_finds_them(release):
    if release["alembic_name"] == "alembic":
        expected_dir = EXAMPLE_DIR / "migrations" / "versions" / release["version"]
    else:
        expected_dir = EXAMPLE_DIR / "migrations" / "extra" / release["alembic_name"]
    for entry in release["revisions"]:
        assert ALL_SCRIPTS[entry["id"]]["path"].parent == expected_dir


@pytest.mark.parametrize("release", RELEASES, ids=[release["version"] for release in RELEASES])
def test_release_heads_match_the_scripts_its_section_sees(release):
    locations = version_locations(release["alembic_name"])
    if release["alembic_name"] == "alembic":
        # an image of this release ships only its own and older release directories
        shipped = [release["version"]] + [older["version"] for older in MAIN_RELEASES[: MAIN_RELEASES.index(release)]]
        locations = [locations[0] / version for version in shipped]
    assert heads(scripts_in(locations)) == sorted(release["heads"])


def test_the_default_section_has_a_single_head_at_the_last_release():
    assert heads(scripts_in(version_locations("alembic"))) == MAIN_RELEASES[-1]["heads"]


def test_downgrade_raises_exactly_where_releases_say_it_does_not_work():
    documented = {entry["id"]: entry["has_working_downgrade"] for release in RELEASES for entry in release["revisions"]}
    assert set(documented) == set(ALL_SCRIPTS)
    for revision, works in documented.items():
        assert ALL_SCRIPTS[revision]["downgrade_raises"] is not works, revision
        if not works:
            assert "IRREVERSIBLE" in ALL_SCRIPTS[revision]["docstring"]


def test_fails_at_names_a_revision_of_its_release():
    for release in RELEASES:
        if "fails_at" in release:
            assert release["fails_at"] in [entry["id"] for entry in release["revisions"]]


def test_versions_agree_between_package_pyproject_dockerfile_and_releases():
    latest = MAIN_RELEASES[-1]["version"]
    assert '__version__ = "%s"' % latest in (EXAMPLE_DIR / "app" / "__init__.py").read_text()
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
    pyproject = (EXAMPLE_DIR / "pyproject.toml").read_text()
    direct = re.findall(r'^\s+"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?[<>=!~]', pyproject, re.M)
    assert direct
    assert {normalized(name) for name in direct} <= pinned
