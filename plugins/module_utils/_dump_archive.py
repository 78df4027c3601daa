# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""pg_dump archives: the dump command, the verification read and the manifest."""

from __future__ import annotations

import os
import re

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import (
    MANIFEST_KIND,
    MANIFEST_VERSION,
    checksum_backup,
    format_timestamp,
)

_HEADER_FIELDS = {
    "TOC Entries": "toc_entries",
    "Format": "archive_format",
    "Compression": "compression",
    "Dumped from database version": "server_version",
    "Dumped by pg_dump version": "pg_dump_version",
}


def get_dump_cmd(params: dict, conninfo: str, file_path: str | None) -> list[str]:
    """pg_dump arguments; without file_path the archive goes to stdout (custom format only)."""
    args = ["--format=%s" % params["format"]]
    if params["jobs"] > 1:
        args.append("--jobs=%d" % params["jobs"])
    if params["compress"] is not None:
        args.append("--compress=%d" % params["compress"])
    if file_path:
        args.append("--file=%s" % file_path)
    args.append("--dbname=%s" % conninfo)
    return args


def get_list_cmd(archive: str | None) -> list[str]:
    """pg_restore --list reads only the table of contents; without archive it reads stdin."""
    return ["--list"] + ([archive] if archive else [])


def get_full_read_cmd(archive: str | None) -> list[str]:
    """Restoring to /dev/null reads and decompresses every data block, which a TOC listing does not."""
    return ["--file=/dev/null"] + ([archive] if archive else [])


def archive_header(toc: str) -> dict:
    """The fields of the header that `pg_restore --list` prints, e.g. TOC entries and versions."""
    header = {}
    for line in toc.splitlines():
        match = re.match(r";\s+([^:]+):\s*(.*)$", line)
        if match and match.group(1).strip() in _HEADER_FIELDS:
            header[_HEADER_FIELDS[match.group(1).strip()]] = match.group(2).strip()
    for key in ("server_version", "pg_dump_version"):
        if key in header:
            header[key] = header[key].split()[0]
    if "toc_entries" in header:
        header["toc_entries"] = int(header["toc_entries"])
    return header


def build_manifest(
    name: str,
    database: str,
    params: dict,
    header: dict,
    sha256: str,
    files: dict,
    size: int,
    created_at,
    duration: float,
) -> dict:
    return {
        "kind": MANIFEST_KIND,
        "version": MANIFEST_VERSION,
        "name": name,
        "database": database,
        "format": params["format"],
        "jobs": params["jobs"],
        "compress": params["compress"],
        "container": params["container"],
        "sha256": sha256,
        "files": files,
        "size": size,
        "toc_entries": header.get("toc_entries"),
        "server_version": header.get("server_version"),
        "pg_dump_version": header.get("pg_dump_version"),
        "labels": {key: str(value) for key, value in params["labels"].items()},
        "created_at": format_timestamp(created_at),
        "duration_seconds": round(duration, 3),
    }


class ArchiveVerifier:
    """Lists and fully reads an archive with pg_restore where it was written, checksumming it meanwhile."""

    def __init__(self, client, partial: str, scratch: str | None = None):
        self.client = client
        self.partial = partial
        self.scratch = scratch
        self.checksums: tuple = ()

    def verify(self) -> str:
        if self.scratch:
            return self.verify_in_container_then_copy()
        # a custom archive streamed out of a container is fed back through stdin
        archive = None if self.client.container else self.partial
        stdin_path = self.partial if self.client.container else None
        toc = self.client.run("pg_restore --list", "pg_restore", get_list_cmd(archive), stdin_path=stdin_path)
        reader = self.client.start(
            "full read of the archive", "pg_restore", get_full_read_cmd(archive), stdin_path=stdin_path
        )
        try:
            self.checksums = checksum_backup(self.partial)
        finally:
            self.client.finish("full read of the archive", reader)
        return toc

    def verify_in_container_then_copy(self) -> str:
        toc = self.client.run("pg_restore --list", "pg_restore", get_list_cmd(self.scratch))
        reader = self.client.start("full read of the archive", "pg_restore", get_full_read_cmd(self.scratch))
        self.client.finish("full read of the archive", reader)
        self.client.docker(
            "copy the archive out of the container",
            ["cp", "%s:%s" % (self.client.container, self.scratch), self.partial],
        )
        for root, dirs, names in os.walk(self.partial):
            for name in dirs + names + ["."]:
                os.chown(os.path.join(root, name), os.getuid(), os.getgid())
        self.checksums = checksum_backup(self.partial)
        return toc
