# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import subprocess

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._dump_archive import (
    ArchiveWriter,
    archive_header,
    get_dump_cmd,
    get_full_read_cmd,
    get_list_cmd,
)

TOC = """;
; Archive created at 2026-11-23 22:02:59 UTC
;     dbname: shop
;     TOC Entries: 15
;     Compression: -1
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Integer: 4 bytes
;     Offset: 8 bytes
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
;
;
; Selected TOC Entries:
;
215; 1259 16390 TABLE public pgbench_accounts postgres
"""


def test_archive_header():
    assert archive_header(TOC) == {
        "toc_entries": 15,
        "archive_format": "CUSTOM",
        "compression": "-1",
        "server_version": "15.18",
        "pg_dump_version": "15.18",
    }


def params(**overrides):
    base = {"format": "custom", "jobs": 1, "compress": None}
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "overrides, file_path, expected",
    [
        ({}, "/b/x", ["--format=custom", "--file=/b/x", "--dbname=DSN"]),
        ({}, None, ["--format=custom", "--dbname=DSN"]),
        ({"compress": 0}, "/b/x", ["--format=custom", "--compress=0", "--file=/b/x", "--dbname=DSN"]),
        (
            {"format": "directory", "jobs": 4, "compress": 5},
            "/b/x",
            ["--format=directory", "--jobs=4", "--compress=5", "--file=/b/x", "--dbname=DSN"],
        ),
        (
            {"exclude_table_data": ["safedeploy.deploy_locks", "audit.*"]},
            None,
            [
                "--format=custom",
                "--exclude-table-data=safedeploy.deploy_locks",
                "--exclude-table-data=audit.*",
                "--dbname=DSN",
            ],
        ),
    ],
)
def test_get_dump_cmd(overrides, file_path, expected):
    assert get_dump_cmd(params(**overrides), "DSN", file_path) == expected


def test_list_and_read_commands_read_stdin_without_a_path():
    assert get_list_cmd(None) == ["--list"]
    assert get_list_cmd("/b/x") == ["--list", "/b/x"]
    assert get_full_read_cmd(None) == ["--file=/dev/null"]
    assert get_full_read_cmd("/b/x") == ["--file=/dev/null", "/b/x"]


class ToolsThatPrintNothing:
    """Stands in for PgClient: every tool is `true`, so nothing but the partial file matters."""

    container = None

    def start(self, operation, tool, args, stdin=None, stdout=None):
        return subprocess.Popen(["true"], stdin=stdin, stdout=stdout)

    def run(self, operation, tool, args, stdin_path=None, stdout_path=None):
        return ""


@pytest.mark.parametrize("backup_format", ["custom", "directory"])
def test_archive_writer_never_writes_through_a_planted_link(tmp_path, backup_format):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    partial = tmp_path / ".erp_20261123T120000000000Z.dump.partial"
    partial.symlink_to(victim)
    writer = ArchiveWriter(ToolsThatPrintNothing(), params(format=backup_format), "DSN", str(partial))
    with pytest.raises(FileExistsError, match="refusing to write through an existing file or link"):
        writer.write()
    assert victim.read_text() == "precious"
    assert partial.is_symlink() and not writer.partial_created
