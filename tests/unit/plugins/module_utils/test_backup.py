# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
import json
import os
import stat

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import (
    MANIFEST_KIND,
    backup_name,
    checksum_backup,
    checksum_problems,
    flush_to_disk,
    list_manifests,
    parse_duration,
    partial_path_for,
    read_manifest,
    select_pruned,
    tree_digest,
    write_private_json,
)

NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90), (90, 90), ("45m", 2700), ("12h", 43200), ("7d", 604800), ("2w", 1209600), (" 3 D ", 259200)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "-1d", "1.5h", "d"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "database, backup_format, expected",
    [
        ("erpmax", "custom", "erpmax_20261123T120000000000Z.dump"),
        ("erp max/../x", "directory", "erp_max_.._x_20261123T120000000000Z.dir"),
    ],
)
def test_backup_name(database, backup_format, expected):
    assert backup_name(database, NOW, backup_format) == expected


def test_partial_path_is_hidden_in_the_same_directory():
    assert partial_path_for("/b/erp_1.dump") == "/b/.erp_1.dump.partial"


def manifest(name, hours_old):
    created = NOW - datetime.timedelta(hours=hours_old)
    return ("/b/%s.json" % name, {"name": name, "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


BACKUPS = [manifest("new", 1), manifest("day", 24), manifest("week", 24 * 7), manifest("month", 24 * 30)]


@pytest.mark.parametrize(
    "keep_last, max_age, expected",
    [
        (None, None, []),
        (2, None, ["week", "month"]),
        (10, None, []),
        (None, 2 * 86400, ["week", "month"]),
        (1, 2 * 86400, ["week", "month"]),
        (3, 2 * 86400, ["month"]),
        (1, 60 * 86400, []),
    ],
)
def test_select_pruned(keep_last, max_age, expected):
    pruned = select_pruned(BACKUPS, keep_last, max_age, NOW)
    assert [item[1]["name"] for item in pruned] == expected


def test_select_pruned_never_prunes_the_kept_backup():
    pruned = select_pruned(BACKUPS, None, 60, NOW, keep_names=("new",))
    assert "new" not in [item[1]["name"] for item in pruned]


def test_checksum_of_a_file(tmp_path):
    path = tmp_path / "a.dump"
    path.write_bytes(b"archive")
    sha256, files, size = checksum_backup(str(path))
    assert files == {} and size == 7
    assert sha256 == __import__("hashlib").sha256(b"archive").hexdigest()


def test_checksum_of_a_directory_is_stable_and_sensitive(tmp_path):
    (tmp_path / "toc.dat").write_bytes(b"toc")
    (tmp_path / "3001.dat.gz").write_bytes(b"rows")
    sha256, files, size = checksum_backup(str(tmp_path))
    assert sorted(files) == ["3001.dat.gz", "toc.dat"] and size == 7
    assert sha256 == tree_digest(dict(reversed(list(files.items()))))
    (tmp_path / "3001.dat.gz").write_bytes(b"rowz")
    assert checksum_backup(str(tmp_path))[0] != sha256


def written_backup(tmp_path, content=b"0123456789"):
    path = tmp_path / "erp_1.dump"
    path.write_bytes(content)
    sha256, files, size = checksum_backup(str(path))
    return path, {"kind": MANIFEST_KIND, "name": path.name, "sha256": sha256, "files": files, "size": size}


def test_intact_backup_has_no_problems(tmp_path):
    path, data = written_backup(tmp_path)
    assert checksum_problems(str(path), data) == []


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(b"01234"), "truncated"),
        (lambda p: p.write_bytes(b"0123X56789"), "corrupted"),
        (lambda p: p.unlink(), "does not exist"),
    ],
)
def test_damaged_backup_is_named(tmp_path, damage, problem):
    path, data = written_backup(tmp_path)
    damage(path)
    assert problem in " ".join(checksum_problems(str(path), data))


def test_directory_backup_with_missing_file(tmp_path):
    backup = tmp_path / "erp.dir"
    backup.mkdir()
    (backup / "toc.dat").write_bytes(b"toc")
    (backup / "3001.dat.gz").write_bytes(b"rows")
    sha256, files, size = checksum_backup(str(backup))
    (backup / "3001.dat.gz").unlink()
    problems = checksum_problems(str(backup), {"sha256": sha256, "files": files, "size": size})
    assert problems == ["file 3001.dat.gz of the backup is missing"]


def test_private_json_is_0600_and_atomic(tmp_path):
    target = tmp_path / "m.json"
    write_private_json(str(target), {"a": 1})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert json.loads(target.read_text()) == {"a": 1}
    assert not (tmp_path / "m.json.partial").exists()


def test_read_manifest_by_backup_or_manifest_path(tmp_path):
    path, data = written_backup(tmp_path)
    write_private_json(str(path) + ".json", data)
    for src in (str(path), str(path) + ".json"):
        found, backup_path, manifest_path = read_manifest(src)
        assert found == data and backup_path == str(path) and manifest_path == str(path) + ".json"


@pytest.mark.parametrize(
    "content, message",
    [(None, "no manifest"), ("{not json", "not valid JSON"), ('{"kind": "other"}', "not a pg_backup manifest")],
)
def test_read_manifest_errors(tmp_path, content, message):
    if content is not None:
        (tmp_path / "x.dump.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_manifest(str(tmp_path / "x.dump"))


def test_list_manifests_only_ours_for_the_database(tmp_path):
    write_private_json(str(tmp_path / "a.dump.json"), {"kind": MANIFEST_KIND, "database": "erp", "name": "a.dump"})
    write_private_json(str(tmp_path / "b.dump.json"), {"kind": MANIFEST_KIND, "database": "crm", "name": "b.dump"})
    write_private_json(str(tmp_path / "c.json"), {"kind": "something else", "database": "erp"})
    (tmp_path / "broken.json").write_text("{")
    assert [item[1]["name"] for item in list_manifests(str(tmp_path), "erp")] == ["a.dump"]


def test_flush_to_disk_takes_files_and_directories(tmp_path):
    (tmp_path / "erp.dir").mkdir()
    (tmp_path / "erp.dir" / "toc.dat").write_bytes(b"toc")
    (tmp_path / "erp.dump").write_bytes(b"archive")
    flush_to_disk(str(tmp_path / "erp.dir"))
    flush_to_disk(str(tmp_path / "erp.dump"))
