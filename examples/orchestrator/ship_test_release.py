# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image build step: a test release's revision set becomes its release directory, so plain `alembic` runs it.

In the source tree a test release of releases.yml (an `alembic_name` other than `alembic`) is reachable only
with `alembic -n NAME`, but a deploy runs plain `alembic upgrade head`. So the image of APP_VERSION=1.4.0-merge
moves what section [merge] adds to the default one (migrations/extra/branch and merge) into
migrations/versions/1.4.0-merge/: the default section then sees exactly what `alembic -n merge` sees.
Any other APP_VERSION: nothing changes. Runs after prune_revisions.py.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
from pathlib import Path

DEFAULT_SECTION = "alembic"
# the image has no YAML parser; releases.yml keeps each `version:` and `alembic_name:` on a line of its own
_RELEASE_FIELD = re.compile(r"""^\s*(?:-\s+)?(version|alembic_name):\s*["']?([^"'\s#]+)""")


class ShipError(Exception):
    pass


def alembic_names(releases_yml: str) -> dict[str, str]:
    """version -> alembic_name of every release in releases.yml."""
    names: dict[str, str] = {}
    version = None
    for line in releases_yml.splitlines():
        match = _RELEASE_FIELD.match(line)
        if match and match.group(1) == "version":
            version = match.group(2)
        elif match and version is not None:
            names[version] = match.group(2)
    return names


def added_locations(alembic_ini: Path, section: str) -> list[Path]:
    """The version_locations `alembic -n SECTION` sees beyond those of the default section."""
    parser = configparser.ConfigParser(defaults={"here": str(alembic_ini.resolve().parent)})
    parser.read(alembic_ini)
    if not parser.has_section(section):
        raise ShipError("alembic.ini has no section [%s]" % section)

    def locations(name: str) -> list[Path]:
        # path_separator = os in alembic.ini
        return [Path(location) for location in parser.get(name, "version_locations").split(os.pathsep)]

    default = locations(DEFAULT_SECTION)
    return [location for location in locations(section) if location not in default]


def ship_test_release(example_dir: Path, app_version: str) -> Path | None:
    """Move app_version's revision set into migrations/versions/<app_version>/; None for any other release."""
    section = alembic_names((example_dir / "releases.yml").read_text()).get(app_version, DEFAULT_SECTION)
    if section == DEFAULT_SECTION:
        return None
    locations = added_locations(example_dir / "alembic.ini", section)
    missing = [str(location) for location in locations if not location.is_dir()]
    if missing:
        raise ShipError("section [%s] names missing version locations: %s" % (section, ", ".join(missing)))
    release_dir = example_dir / "migrations" / "versions" / app_version
    if release_dir.exists():
        raise ShipError("%s exists already" % release_dir)
    release_dir.mkdir()
    for location in locations:
        # moved, not copied: `alembic -n NAME` in the image would otherwise find each revision twice
        shutil.move(location, release_dir / location.name)
    return release_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--app-version", default=os.environ.get("APP_VERSION", ""))
    args = parser.parse_args()
    if not args.app_version:
        parser.error("APP_VERSION is not set")
    try:
        release_dir = ship_test_release(args.example_dir, args.app_version)
    except ShipError as error:
        parser.exit(1, "ship_test_release: %s is a test release, but %s\n" % (args.app_version, error))
    if release_dir is not None:
        shipped = ", ".join(sorted(path.name for path in release_dir.iterdir()))
        print("ship_test_release: %s ships the sets %s as its release directory" % (args.app_version, shipped))


if __name__ == "__main__":
    main()
