# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tarball `ansible-galaxy collection build` makes of this repository: what users install.

It ships what users need (plugins, roles, playbooks with the files they import, meta, the staging and production
inventories to copy, the user docs, the licence) and nothing only we need (tests, CI, lint settings, the demo's
inventory, unreleased changelog fragments, the docs of the test suite and the benchmarks). Its MANIFEST.json declares
the collections the roles and playbooks call, and every relative link of its README and docs resolves inside it.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
# the whole top level: anything new there has to be decided on, shipped here or left out in galaxy.yml's build_ignore
TOP_LEVEL = {
    "COPYING",
    "FILES.json",
    "LICENSES",
    "MANIFEST.json",
    "README.md",
    "changelogs",
    "docs",
    "inventories",
    "meta",
    "playbooks",
    "plugins",
    "requirements",
    "roles",
}
DEVELOPMENT_ONLY = (
    ".ci",
    ".config",
    ".gitignore",
    "Makefile",
    "changelogs/fragments",
    "collections",
    "docs/benchmarks",
    "docs/benchmarks.md",
    "docs/testing.md",
    "examples",
    "execution-environment.yml",
    "images",
    "inventories/local",
    "pyproject.toml",
    "requirements.yml",
    "requirements/dev.txt",
    "scripts",
    "tests",
)
# directories users need whole
USER_TREES = ("plugins", "roles", "playbooks", "meta", "inventories/staging", "inventories/production", "LICENSES")
USER_FILES = (
    "README.md",
    "COPYING",
    "changelogs/changelog.yaml",
    "changelogs/config.yaml",
    "requirements/controller.txt",
    "requirements/managed-host.txt",
    "playbooks/deploy.yml",
    "playbooks/plays/inventory_check.yml",
    "playbooks/vars/awx_setup.yml",
    "playbooks/tasks/awx_job_template.yml",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
)
# awx.awx is called only by playbooks/awx_setup.yml and its task files, and is left optional (README.md, Install)
AWX_SETUP = ("playbooks/awx_setup.yml", "playbooks/tasks/awx_job_template.yml", "playbooks/tasks/awx_workflow.yml")
OPTIONAL = {"awx.awx": AWX_SETUP}
OWN = {"ansible.builtin", "safedeploy.migrations"}
# a module as a task's key, an action group of module_defaults, a lookup, a filter or a test named by FQCN
COLLECTION_REFERENCES = (
    re.compile(r"^[ -]*([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*:", re.MULTILINE),
    re.compile(r"group/([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z]"),
    re.compile(r"(?:lookup|query)\(\s*['\"]([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z]"),
    re.compile(r"(?:\||\bis\s+(?:not\s+)?)\s*([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*"),
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
REPOSITORY_FILE = GALAXY["repository"] + "/blob/main/"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("galaxy")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    completed = subprocess.run(
        [str(galaxy), "collection", "build", "--output-path", str(output), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return output / ("%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"]))


@pytest.fixture(scope="module")
def members(tarball) -> set:
    with tarfile.open(tarball) as archive:
        return {member.name for member in archive.getmembers()}


def read_member(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as archive:
        return archive.extractfile(name).read().decode()


def repository_files(*trees: str) -> set:
    """The files under the repository's trees as the tarball names them, Python caches aside."""
    return {
        str(path.relative_to(REPO))
        for tree in trees
        for path in (REPO / tree).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def collections_called() -> dict:
    """collection -> the files of roles and playbooks that call one of its plugins by FQCN."""
    found: dict = {}
    for path in sorted([*REPO.glob("roles/**/*.yml"), *REPO.glob("roles/**/*.j2"), *REPO.glob("playbooks/**/*.yml")]):
        text = path.read_text()
        # a template's keys are the file it renders (compose labels), not tasks: only its expressions call plugins
        for pattern in COLLECTION_REFERENCES[1:] if path.suffix == ".j2" else COLLECTION_REFERENCES:
            for collection in pattern.findall(text):
                found.setdefault(collection, set()).add(str(path.relative_to(REPO)))
    return found


def test_top_level_holds_only_what_users_need(members):
    assert {name.split("/")[0] for name in members} == TOP_LEVEL


@pytest.mark.parametrize("path", DEVELOPMENT_ONLY)
def test_development_files_are_left_out(members, path):
    shipped = sorted(name for name in members if name == path or name.startswith(path + "/"))
    assert not shipped


def test_user_files_are_shipped(members):
    user_docs = repository_files("docs") - {"docs/testing.md", "docs/benchmarks.md"}
    user_docs = {name for name in user_docs if not name.startswith("docs/benchmarks/")}
    expected = repository_files(*USER_TREES) | set(USER_FILES) | user_docs
    assert {"docs/runbooks.md", "roles/deploy/meta/argument_specs.yml", "plugins/modules/pg_backup.py"} <= expected
    assert sorted(expected - members) == []


def test_every_role_argument_spec_and_module_is_shipped(members):
    roles = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())
    modules = sorted(path.name for path in (REPO / "plugins" / "modules").glob("*.py"))
    assert roles and modules
    assert [role for role in roles if "roles/%s/meta/argument_specs.yml" % role not in members] == []
    assert [module for module in modules if "plugins/modules/%s" % module not in members] == []


def test_manifest_declares_the_dependencies_of_galaxy_yml_and_requirements_yml(tarball):
    manifest = json.loads(read_member(tarball, "MANIFEST.json"))
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert manifest["collection_info"]["dependencies"] == GALAXY["dependencies"]
    assert {entry["name"]: entry["version"] for entry in requirements} == GALAXY["dependencies"]


def test_dependencies_are_the_collections_the_roles_and_playbooks_call():
    called = collections_called()
    assert "community.docker" in called, "the scan found none of the calls it must find"
    required = {collection for collection in called if collection not in OWN and collection not in OPTIONAL}
    assert required == set(GALAXY["dependencies"])
    for collection, callers in OPTIONAL.items():
        assert called.get(collection, set()) <= set(callers), "%s is optional, so only %s may call it" % (
            collection,
            ", ".join(callers),
        )


def test_relative_links_of_the_shipped_docs_resolve_inside_the_tarball(tarball, members):
    documents = sorted(name for name in members if name == "README.md" or re.fullmatch(r"docs/[^/]+\.md", name))
    assert "README.md" in documents and "docs/runbooks.md" in documents
    broken = []
    for document in documents:
        for link in MARKDOWN_LINK.findall(read_member(tarball, document)):
            target = link.split("#", 1)[0]
            if link.startswith(REPOSITORY_FILE):
                # a file of the repository the tarball does not ship: it must exist there
                found = (REPO / target[len(REPOSITORY_FILE) :]).exists()
            else:
                found = not target or bool(re.match(r"[a-z]+:", target))
                found = found or posixpath.normpath(posixpath.join(posixpath.dirname(document), target)) in members
            if not found:
                broken.append("%s: %s" % (document, link))
    assert broken == []
