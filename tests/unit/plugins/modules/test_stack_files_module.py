# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""stack_files' writes on a real directory: the rename, the backup as a link or, where links fail, as a copy."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ansible_collections.safedeploy.migrations.plugins.modules import stack_files

BACKUP = ".4242.2026-12-07@16:00:00~"


def secret(content: bytes) -> dict:
    return {"name": ".env", "content": content, "mode": 0o600, "secret": True}


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"PASSWORD=old\n")
    path.chmod(0o600)
    return path


def test_the_backup_is_the_old_file_itself(env_file):
    before = env_file.stat().st_ino
    backup = stack_files.write_file(str(env_file), secret(b"PASSWORD=new\n"), True, BACKUP)
    assert backup == str(env_file) + BACKUP
    assert os.stat(backup).st_ino == before
    assert env_file.read_bytes() == b"PASSWORD=new\n"
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_where_links_fail_the_backup_is_a_copy_with_the_file_s_mode(env_file, monkeypatch):
    def no_links(_source, _target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(stack_files.os, "link", no_links)
    env_file.chmod(0o640)
    backup = stack_files.write_file(str(env_file), secret(b"PASSWORD=new\n"), True, BACKUP)
    assert Path(backup).read_bytes() == b"PASSWORD=old\n"
    assert os.stat(backup).st_mode & 0o777 == 0o640
    assert env_file.read_bytes() == b"PASSWORD=new\n"


def test_a_failed_write_leaves_the_file_and_no_temporary_file(env_file, monkeypatch):
    def full_disk(_source, _target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stack_files.os, "replace", full_disk)
    with pytest.raises(OSError):
        stack_files.write_file(str(env_file), secret(b"PASSWORD=new\n"), False, BACKUP)
    assert env_file.read_bytes() == b"PASSWORD=old\n"
    assert sorted(os.listdir(env_file.parent)) == [".env"]


def test_missing_parents_are_listed_outermost_first(tmp_path):
    assert stack_files.missing_parents(str(tmp_path / "a" / "b" / "c")) == [
        str(tmp_path / "a"),
        str(tmp_path / "a" / "b"),
    ]
    assert stack_files.missing_parents(str(tmp_path / "c")) == []
