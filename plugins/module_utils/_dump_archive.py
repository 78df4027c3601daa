# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""pg_dump archives: the dump command, the verification read and the manifest."""

from __future__ import annotations

import hashlib
import os
import re
from subprocess import PIPE

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import (
    MANIFEST_KIND,
    MANIFEST_VERSION,
    checksum_backup,
    create_private_directory,
    create_private_file,
    format_timestamp,
    refuse_existing,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import close_input, feed

_CHUNK = 1024 * 1024

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
    args.extend("--exclude-table-data=%s" % pattern for pattern in params.get("exclude_table_data") or [])
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


class ArchiveWriter:
    """Dumps one database into `partial` and verifies it where it was written; returns the TOC and checksums.

    `partial` must not exist: it is created new, never through a link, and `partial_created` tells the caller
    whether what is there now is its own to remove.
    """

    def __init__(self, client, params: dict, conninfo: str, partial: str, scratch: str | None = None):
        self.client = client
        self.params = params
        self.conninfo = conninfo
        self.partial = partial
        self.scratch = scratch
        self.partial_created = False

    def write(self) -> tuple[str, tuple]:
        if self.params["format"] == "custom":
            return self.stream_custom()
        if self.scratch:
            return self.directory_in_container()
        return self.directory_here()

    def stream_custom(self) -> tuple[str, tuple]:
        """pg_dump's output passes through here once: to the file, to sha256 and to a full-read pg_restore."""
        dump = self.client.start("pg_dump", "pg_dump", get_dump_cmd(self.params, self.conninfo, None), stdout=PIPE)
        reader = self.client.start("full read of the archive", "pg_restore", get_full_read_cmd(None), stdin=PIPE)
        digest = hashlib.sha256()
        size = 0
        reader_open = True
        try:
            with os.fdopen(create_private_file(self.partial), "wb") as archive:
                self.partial_created = True
                for chunk in iter(lambda: dump.stdout.read(_CHUNK), b""):
                    archive.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    reader_open = reader_open and feed(reader, chunk)
        except BaseException:
            # a full disk or an interrupt: neither tool may outlive the failed backup
            for process in (dump, reader):
                process.kill()
                process.wait()
            raise
        close_input(reader)
        self.client.finish("pg_dump", dump)
        self.client.finish("full read of the archive", reader)
        toc = self.list_contents(None if self.client.container else self.partial)
        return toc, (digest.hexdigest(), {}, size)

    def list_contents(self, archive: str | None) -> str:
        stdin = self.partial if archive is None else None
        return self.client.run("pg_restore --list", "pg_restore", get_list_cmd(archive), stdin_path=stdin)

    def directory_here(self) -> tuple[str, tuple]:
        # pg_dump fills an empty directory it is given, and a new one cannot be a planted link
        create_private_directory(self.partial)
        self.partial_created = True
        self.client.run("pg_dump", "pg_dump", get_dump_cmd(self.params, self.conninfo, self.partial))
        toc = self.list_contents(self.partial)
        reader = self.client.start("full read of the archive", "pg_restore", get_full_read_cmd(self.partial))
        try:
            checksums = checksum_backup(self.partial)
        finally:
            self.client.finish("full read of the archive", reader)
        return toc, checksums

    def directory_in_container(self) -> tuple[str, tuple]:
        """A directory archive cannot go through a pipe: written and read inside the container, then copied out."""
        operation = "pg_dump in container %s" % self.client.container
        self.client.run(operation, "pg_dump", get_dump_cmd(self.params, self.conninfo, self.scratch))
        toc = self.list_contents(self.scratch)
        self.client.run("full read of the archive", "pg_restore", get_full_read_cmd(self.scratch))
        source = "%s:%s" % (self.client.container, self.scratch)
        # docker cp copies into a directory that exists, so the partial cannot be made first
        refuse_existing(self.partial)
        self.partial_created = True
        self.client.docker("copy the archive out of the container", ["cp", source, self.partial])
        for root, dirs, names in os.walk(self.partial):
            for name in dirs + names + ["."]:
                os.chown(os.path.join(root, name), os.getuid(), os.getgid())
        return toc, checksum_backup(self.partial)
