# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image build step: remove the revisions of releases newer than APP_VERSION, as that release's image lacked them.

migrations/versions/<release>/ holds each release's revisions, so an image built with APP_VERSION=1.1.0 ships
only 1.0.0 and 1.1.0 and its `alembic upgrade head` stops where the real 1.1.0 did. A test release's directory
(1.4.0-broken, made by ship_test_release.py) stays only in that release's own image. The test-only sets under
migrations/extra/ stay: they are inert unless chosen with `alembic -n SET`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from app.release import is_release_version, version_key

# 1.4.0-broken: a test release, a pre-release of 1.4.0 in semver terms
_TEST_RELEASE = re.compile(r"^\d+(?:\.\d+)*-")


def release_order(version: str) -> tuple[tuple[int, ...], bool]:
    """1.3.0 < 1.4.0-broken < 1.4.0."""
    return version_key(version), not _TEST_RELEASE.match(version)


def unshipped_release_dirs(versions_dir: Path, app_version: str) -> list[Path]:
    """The release directories an image of app_version lacks: newer releases, and other test releases."""
    shipped_up_to = release_order(app_version)
    return sorted(
        path
        for path in versions_dir.iterdir()
        if path.is_dir()
        and is_release_version(path.name)
        and path.name != app_version
        # a test release's directory belongs to its own image only, whatever its number
        and (_TEST_RELEASE.match(path.name) or release_order(path.name) > shipped_up_to)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions-dir", type=Path, default=Path(__file__).parent / "migrations" / "versions")
    parser.add_argument("--app-version", default=os.environ.get("APP_VERSION", ""))
    args = parser.parse_args()
    if not args.app_version:
        parser.error("APP_VERSION is not set")
    for path in unshipped_release_dirs(args.versions_dir, args.app_version):
        print("prune_revisions: %s is not part of %s, removed" % (path.name, args.app_version))
        shutil.rmtree(path)


if __name__ == "__main__":
    main()
