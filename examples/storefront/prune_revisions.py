# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image build step: the image of APP_VERSION ships that release's head and its ancestors, no other revision.

A test release's revisions (migrations/test_releases/<version>/) join migrations/versions/ in its own image
only. Standard library only: it runs before anything is installed, so releases.yml is read line by line.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
from pathlib import Path

_VERSION = re.compile(r"""^\s*-\s+version:\s*["']?([^"'\s#]+)""")
_HEADS = re.compile(r"^\s+heads:\s*\[([^\]]*)\]")


class PruneError(Exception):
    pass


def release_heads(releases_yml: str) -> dict[str, list[str]]:
    """version -> heads of every release; releases.yml keeps `version:` and `heads: [...]` on a line each."""
    heads: dict[str, list[str]] = {}
    version = None
    for line in releases_yml.splitlines():
        if _VERSION.match(line):
            version = _VERSION.match(line).group(1)
        elif _HEADS.match(line) and version is not None:
            heads[version] = [head.strip().strip("'\"") for head in _HEADS.match(line).group(1).split(",")]
    return heads


def down_revisions(script: Path) -> tuple[str, list[str]]:
    """(revision, its parents) of a revision script, read without importing it."""
    values = {}
    for node in ast.parse(script.read_text()).body:
        # `revision: str = "..."` as alembic's template writes it, or a plain assignment
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(node.value)
    if "revision" not in values:
        raise PruneError("%s sets no revision" % script.name)
    down = values.get("down_revision")
    return values["revision"], [] if down is None else [down] if isinstance(down, str) else list(down)


def kept_revisions(heads: list[str], parents: dict[str, list[str]]) -> set[str]:
    """The heads and every ancestor of them."""
    kept: set[str] = set()
    pending = list(heads)
    while pending:
        revision = pending.pop()
        if revision not in parents:
            raise PruneError("revision %s is not among the revision scripts" % revision)
        if revision not in kept:
            kept.add(revision)
            pending.extend(parents[revision])
    return kept


def prune(app_dir: Path, app_version: str) -> list[Path]:
    """Leaves migrations/versions/ as the image of app_version ships it; returns the scripts removed."""
    heads = release_heads((app_dir / "releases.yml").read_text())
    if app_version not in heads:
        raise PruneError("APP_VERSION %s is not a release of releases.yml (%s)" % (app_version, ", ".join(heads)))
    versions = app_dir / "migrations" / "versions"
    test_releases = app_dir / "migrations" / "test_releases"
    for script in sorted((test_releases / app_version).glob("*.py")):
        shutil.move(str(script), str(versions / script.name))
    scripts = {script: down_revisions(script) for script in sorted(versions.glob("*.py"))}
    kept = kept_revisions(heads[app_version], dict(scripts.values()))
    removed = [script for script, (revision, _parents) in scripts.items() if revision not in kept]
    for script in removed:
        script.unlink()
    shutil.rmtree(test_releases, ignore_errors=True)
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--app-version", default=os.environ.get("APP_VERSION", ""))
    args = parser.parse_args()
    try:
        for script in prune(args.app_dir, args.app_version):
            print("prune_revisions: %s is not part of %s, removed" % (script.name, args.app_version))
    except PruneError as error:
        parser.exit(1, "prune_revisions: %s\n" % error)


if __name__ == "__main__":
    main()
