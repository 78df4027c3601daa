# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image build step: remove the revisions of releases newer than APP_VERSION, as that release's image lacked them.

migrations/versions/<release>/ holds each release's revisions, so an image built with APP_VERSION=1.1.0 ships
only 1.0.0 and 1.1.0 and its `alembic upgrade head` stops where the real 1.1.0 did. The test-only sets under
migrations/extra/ stay: they are inert unless chosen with `alembic -n SET`.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from app.release import is_release_version, version_key


def newer_release_dirs(versions_dir: Path, app_version: str) -> list[Path]:
    shipped_up_to = version_key(app_version)
    return sorted(
        path
        for path in versions_dir.iterdir()
        if path.is_dir() and is_release_version(path.name) and version_key(path.name) > shipped_up_to
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions-dir", type=Path, default=Path(__file__).parent / "migrations" / "versions")
    parser.add_argument("--app-version", default=os.environ.get("APP_VERSION", ""))
    args = parser.parse_args()
    if not args.app_version:
        parser.error("APP_VERSION is not set")
    for path in newer_release_dirs(args.versions_dir, args.app_version):
        print("prune_revisions: %s is newer than %s, removed" % (path.name, args.app_version))
        shutil.rmtree(path)


if __name__ == "__main__":
    main()
