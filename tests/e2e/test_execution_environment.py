# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environment: ansible-builder finds the collection's needs and its build installs them.

No image is built (no registry here for the base image): `ansible-builder create` writes the build context, and
the introspection script that context runs in its builder stage, after the galaxy install, is run against this
collection as installed for the tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import BUILD, REPO

BIN = Path(sys.executable).parent
COLLECTIONS = BUILD / "collections"
FROM_COLLECTION = "  # from collection safedeploy.migrations"


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def run(*argv: str, cwd: Path | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_introspection_lists_the_collection_requirements():
    found = yaml.safe_load(run(str(BIN / "ansible-builder"), "introspect", "--sanitize", str(COLLECTIONS)))
    wanted = requirement_lines(REPO / "meta" / "ee-requirements.txt")
    assert found["python"] == [line + FROM_COLLECTION for line in wanted]
    assert found["system"] == [line + FROM_COLLECTION for line in requirement_lines(REPO / "meta" / "ee-bindep.txt")]
    # the managed hosts run the same modules, so they need the same packages
    assert wanted == requirement_lines(REPO / "requirements" / "managed-host.txt")


def test_the_build_context_installs_the_collection_and_its_requirements(tmp_path):
    context = tmp_path / "context"
    run(
        str(BIN / "ansible-builder"),
        "create",
        "-f",
        str(REPO / "execution-environment.yml"),
        "--context",
        str(context),
        "--output-filename",
        "Containerfile",
    )
    containerfile = (context / "Containerfile").read_text()
    galaxy_install = "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml"
    assert galaxy_install in containerfile
    # the galaxy stage installs this collection from git, which the base image lacks (ansible-builder issue #628)
    install_git = "RUN $PKGMGR install -y git-core && $PKGMGR clean all"
    galaxy_stage = containerfile.index("FROM base AS galaxy")
    assert galaxy_stage < containerfile.find(install_git) < containerfile.index(galaxy_install)
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy == yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())
    names = [collection["name"] for collection in galaxy["collections"]]
    assert names[0].endswith("/safedeploy.migrations.git") and "community.docker" in names
    # the builder stage introspects the installed collections, then `assemble` builds wheels of what it found
    introspect = "RUN $PYCMD /output/scripts/introspect.py introspect --write-bindep=/tmp/src/bindep.txt"
    assert introspect in containerfile and "RUN /output/scripts/assemble" in containerfile
    # the final stage installs the system packages of the bindep.txt the introspection wrote
    assert "RUN /output/scripts/install-from-bindep" in containerfile
    written = tmp_path / "requirements.txt"
    written_bindep = tmp_path / "bindep.txt"
    run(
        sys.executable,
        str(context / "_build" / "scripts" / "introspect.py"),
        "introspect",
        str(COLLECTIONS),
        "--write-pip",
        str(written),
        "--write-bindep",
        str(written_bindep),
    )
    assert requirement_lines(written) == requirement_lines(REPO / "meta" / "ee-requirements.txt")
    assert requirement_lines(written_bindep) == requirement_lines(REPO / "meta" / "ee-bindep.txt")
