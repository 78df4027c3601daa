# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
import errno
import json
import os
import stat

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils import _backup
from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import (
    MANIFEST_KIND,
    backup_name,
    checksum_backup,
    checksum_problems,
    create_private_directory,
    create_private_file,
    dest_problem,
    flush_to_disk,
    is_own_leftover,
    list_leftovers,
    list_manifests,
    lock_directory,
    parse_duration,
    partial_path_for,
    publish_backup,
    read_manifest,
    restore_problem,
    retention_problem,
    select_pruned,
    share_lock,
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
    manifest = {"kind": MANIFEST_KIND, "name": path.name, "database": "erp", "format": "custom"}
    return path, dict(manifest, sha256=sha256, files=files, size=size)


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


def test_flush_to_disk_takes_files_and_directories(tmp_path):
    (tmp_path / "erp.dir").mkdir()
    (tmp_path / "erp.dir" / "toc.dat").write_bytes(b"toc")
    (tmp_path / "erp.dump").write_bytes(b"archive")
    flush_to_disk(str(tmp_path / "erp.dir"))
    flush_to_disk(str(tmp_path / "erp.dump"))


OURS = "erp_20261123T120000000000Z.dump"


def ours(**overrides):
    manifest = {"kind": MANIFEST_KIND, "database": "erp", "name": OURS, "created_at": "2026-11-23T12:00:00.000000Z"}
    manifest.update(overrides)
    return manifest


@pytest.mark.parametrize(
    "file_name, database, expected",
    [
        (".erp_20261123T120000000000Z.dump.partial", "erp", True),
        (".erp_20261123T120000000000Z.dir.partial", "erp", True),
        ("erp_20261123T120000000000Z.dump.json.partial", "erp", True),
        (".erp_max_20261123T120000000000Z.dump.partial", "erp max", True),
        (".erp_20261123T120000000000Z.dump.partial", "crm", False),
        (".erp_x_20261123T120000000000Z.dump.partial", "erp", False),
        (".erp_2026112T120000000000Z.dump.partial", "erp", False),
        ("erp_20261123T120000000000Z.dump.partial", "erp", False),
        (".erp_20261123T120000000000Z.dump.json.partial", "erp", False),
        (".erp_20261123T120000000000Z.sql.partial", "erp", False),
        (".erp_20261123T120000000000Z.dump.partial.keep", "erp", False),
        ("erp_20261123T120000000000Z.dump", "erp", False),
        (".erp.v2_20261123T120000000000Z.dump.partial", "erp.v2", True),
        (".erpXv2_20261123T120000000000Z.dump.partial", "erp.v2", False),
    ],
)
def test_is_own_leftover(file_name, database, expected):
    assert is_own_leftover(file_name, database) is expected


def test_list_leftovers_takes_only_the_database_s_own(tmp_path):
    for name in (".erp_20261123T120000000000Z.dump.partial", "erp_20261123T120000000000Z.dump.json.partial"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".erp_20261123T120000000000Z.dir.partial").mkdir()
    for name in (".crm_20261123T120000000000Z.dump.partial", "notes.partial", OURS):
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(path) for path in list_leftovers(str(tmp_path), "erp")] == [
        ".erp_20261123T120000000000Z.dir.partial",
        ".erp_20261123T120000000000Z.dump.partial",
        "erp_20261123T120000000000Z.dump.json.partial",
    ]


@pytest.mark.parametrize(
    "file_name, manifest, problem",
    [
        (OURS + ".json", ours(), None),
        ("erp_20261123T120000000000Z.dir.json", ours(name="erp_20261123T120000000000Z.dir"), None),
        (OURS + ".json", [1, 2], "it holds a list, not an object"),
        (OURS + ".json", "a string", "it holds a string, not an object"),
        (OURS + ".json", None, "it holds null, not an object"),
        (OURS + ".json", {"database": "erp", "name": OURS}, "its kind is null"),
        (OURS + ".json", ours(database=None), "database null, not erp"),
        (OURS + ".json", ours(name=None), "names null, not a file"),
        ("victim.json", ours(name="../victimdir"), 'names "../victimdir", not a file'),
        ("etc.json", ours(name="/etc/important"), 'names "/etc/important", not a file'),
        ("dot.json", ours(name=".."), 'names "..", not a file'),
        ("x.json", ours(name="notes.txt"), 'names "notes.txt", not a name pg_backup gives a backup of erp'),
        ("x.json", ours(name="crm_20261123T120000000000Z.dump"), "not a name pg_backup gives a backup of erp"),
        ("other.json", ours(), "is not named after the backup it names"),
        (OURS + ".json", ours(created_at="yesterday"), 'no valid created_at: "yesterday"'),
        (OURS + ".json", ours(created_at=None), "no valid created_at: null"),
        (OURS + ".json", ours(created_at=""), 'no valid created_at: ""'),
        (OURS + ".json", ours(created_at=5), "no valid created_at: 5"),
    ],
)
def test_retention_problem(file_name, manifest, problem):
    found = retention_problem(file_name, manifest, "erp")
    assert found is None if problem is None else problem in found


def write_json(path, content):
    path.write_text(json.dumps(content))


def test_list_manifests_leaves_untrusted_files_alone(tmp_path):
    write_json(tmp_path / (OURS + ".json"), ours())
    write_json(tmp_path / "crm_20261123T120000000000Z.dump.json", ours(database="crm", name="x"))
    write_json(tmp_path / "list.json", [1, 2])
    write_json(tmp_path / "string.json", "text")
    write_json(tmp_path / "nokind.json", {"database": "erp"})
    write_json(tmp_path / "victim.json", ours(name="../victimdir"))
    write_json(tmp_path / "nameless.json", ours(name=None))
    write_json(tmp_path / "late.json", ours(created_at="soon"))
    (tmp_path / "broken.json").write_text("{")
    write_json(tmp_path / ".hidden.json", [1])
    linked = "erp_20261122T120000000000Z.dump"
    (tmp_path / linked).symlink_to("/etc/hostname")
    write_json(tmp_path / (linked + ".json"), ours(name=linked))
    (tmp_path / "linked_manifest.json").symlink_to(tmp_path / (OURS + ".json"))
    found, left_alone = list_manifests(str(tmp_path), "erp")
    assert [item[1]["name"] for item in found] == [OURS]
    reasons = {os.path.basename(item["path"]): item["reason"] for item in left_alone}
    assert sorted(reasons) == [
        "broken.json",
        linked + ".json",
        "late.json",
        "linked_manifest.json",
        "list.json",
        "nameless.json",
        "nokind.json",
        "string.json",
        "victim.json",
    ]
    assert reasons["broken.json"].startswith("is not valid JSON")
    assert reasons[linked + ".json"] == "names %s, which is a link" % linked
    assert reasons["linked_manifest.json"].startswith("is not a regular file")


@pytest.mark.parametrize(
    "manifest, problem",
    [
        (ours(format="custom"), None),
        (ours(format="directory", files={"toc.dat": "x"}), None),
        ([1, 2], "it holds a list, not an object"),
        ("text", "it holds a string, not an object"),
        ({"name": OURS}, "its kind is null"),
        (ours(format="custom", name=None), "names no backup beside it: its name is null"),
        (ours(format="custom", name="../erp.dump"), 'its name is "../erp.dump", not a file name'),
        (ours(format="custom", database=None), "names no database"),
        (ours(format="custom", database=""), "names no database"),
        (ours(format="sql"), 'has format "sql", not custom or directory'),
        (ours(format="custom", files=[1]), "lists its files as a list"),
    ],
)
def test_restore_problem(manifest, problem):
    found = restore_problem(manifest)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "x.dump.json is not a pg_backup manifest: it holds a list, not an object"),
        ('{"kind": "%s", "database": "erp", "format": "custom"}' % MANIFEST_KIND, "x.dump.json names no backup"),
        ('"just text"', "it holds a string"),
    ],
)
def test_read_manifest_names_the_manifest_and_what_is_wrong(tmp_path, content, message):
    (tmp_path / "x.dump.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_manifest(str(tmp_path / "x.dump"))


@pytest.mark.parametrize(
    "mode, owner, problem",
    [
        (0o40700, 0, None),
        (0o40755, 0, None),
        (0o40750, 0, None),
        (0o40770, 0, "has mode 0770"),
        (0o40777, 0, "has mode 0777"),
        (0o41777, 0, "has mode 1777"),
        (0o40702, 0, "has mode 0702"),
        (0o40700, 65534, "is owned by"),
    ],
)
def test_dest_problem(mode, owner, problem):
    found = dest_problem("/b", mode, owner, 0)
    assert found is None if problem is None else problem in found


def test_dest_problem_names_the_fix():
    assert dest_problem("/b", 0o40777, 0, 0).endswith("run chmod go-w /b")
    assert "not by root (uid 0) who runs pg_backup" in dest_problem("/b", 0o40700, 1234567, 0)


def test_private_json_never_writes_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "m.json.partial").symlink_to(victim)
    with pytest.raises(FileExistsError, match="refusing to write through an existing file or link"):
        write_private_json(str(tmp_path / "m.json"), {"a": 1})
    assert victim.read_text() == "precious"
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("create", [create_private_file, create_private_directory])
@pytest.mark.parametrize("planted", ["file", "link", "dangling link"])
def test_partials_are_created_new(tmp_path, create, planted):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    partial = tmp_path / ".erp.dump.partial"
    if planted == "file":
        partial.write_text("old")
    else:
        partial.symlink_to(victim if planted == "link" else tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        create(str(partial))
    assert victim.read_text() == "precious"
    assert not (tmp_path / "nowhere").exists()


def backup_ready_to_publish(tmp_path):
    partial = tmp_path / (".%s.partial" % OURS)
    partial.write_bytes(b"archive")
    return partial, tmp_path / OURS


def test_publish_backup_gives_both_their_names(tmp_path):
    partial, path = backup_ready_to_publish(tmp_path)
    publish_backup(str(partial), str(path), ours())
    assert sorted(os.listdir(tmp_path)) == [OURS, OURS + ".json"]
    assert json.loads((tmp_path / (OURS + ".json")).read_text()) == ours()


def fail_on_call(number, real):
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == number:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    return failing


@pytest.mark.parametrize(
    "function, call, left",
    [("fsync", 1, "partial"), ("rename", 1, "partial"), ("rename", 2, None)],
    ids=["disk full while the manifest is written", "backup rename fails", "manifest rename fails"],
)
def test_publish_backup_publishes_neither_on_failure(tmp_path, monkeypatch, function, call, left):
    partial, path = backup_ready_to_publish(tmp_path)
    monkeypatch.setattr(_backup.os, function, fail_on_call(call, getattr(os, function)))
    with pytest.raises(OSError, match="No space left"):
        publish_backup(str(partial), str(path), ours())
    # the dump's partial, when it was not renamed, stays the caller's to remove; nothing else is left
    assert os.listdir(tmp_path) == ([partial.name] if left else [])


def test_lock_directory_tells_whether_another_run_writes_there(tmp_path):
    first, alone = lock_directory(str(tmp_path))
    assert alone
    share_lock(first)
    second, alone_too = lock_directory(str(tmp_path))
    assert not alone_too
    os.close(first)
    os.close(second)
    third, alone_again = lock_directory(str(tmp_path))
    assert alone_again
    os.close(third)
