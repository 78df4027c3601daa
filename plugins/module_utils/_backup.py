# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Backup files and their manifests: names, checksums, atomic writes, verification, retention."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil

MANIFEST_KIND = "safedeploy.migrations.pg_backup"
MANIFEST_VERSION = 1
FORMAT_SUFFIX = {"custom": ".dump", "directory": ".dir"}
_CHUNK = 1024 * 1024
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def backup_name(database: str, created_at: datetime.datetime, backup_format: str) -> str:
    """`<db>_<UTC timestamp>.dump|.dir`; characters unsafe in file names become '_'."""
    safe_database = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    return "%s_%s%s" % (safe_database, created_at.strftime("%Y%m%dT%H%M%S%fZ"), FORMAT_SUFFIX[backup_format])


def manifest_path_for(backup_path: str) -> str:
    return backup_path.rstrip("/") + ".json"


def partial_path_for(backup_path: str) -> str:
    """Hidden name in the same directory, so publishing is one atomic rename."""
    directory, name = os.path.split(backup_path)
    return os.path.join(directory, ".%s.partial" % name)


def parse_duration(value) -> int:
    """Seconds in '90', '45m', '12h', '7d' or '2w'."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+)\s*([smhdw]?)", text)
    if not match:
        raise ValueError("%r is not a duration such as 3600, 90m, 12h, 7d or 2w" % (value,))
    return int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_backup(path: str) -> tuple[str, dict, int]:
    """(sha256, per-file sha256 for directory backups, total size in bytes)."""
    if not os.path.isdir(path):
        return sha256_file(path), {}, os.path.getsize(path)
    files = {}
    size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            files[os.path.relpath(full, path)] = sha256_file(full)
            size += os.path.getsize(full)
    return tree_digest(files), files, size


def tree_digest(files: dict) -> str:
    """One digest over a directory backup: its sorted file names with their digests."""
    digest = hashlib.sha256()
    for relpath in sorted(files):
        digest.update(("%s\0%s\n" % (relpath, files[relpath])).encode())
    return digest.hexdigest()


def checksum_problems(path: str, manifest: dict) -> list[str]:
    """What is wrong with a backup compared with its manifest; empty when it is intact."""
    if not os.path.exists(path):
        return ["backup %s does not exist" % path]
    expected_files = manifest.get("files") or {}
    if expected_files:
        if not os.path.isdir(path):
            return ["backup %s should be a directory" % path]
        problems = []
        for relpath, expected in sorted(expected_files.items()):
            full = os.path.join(path, relpath)
            if not os.path.isfile(full):
                problems.append("file %s of the backup is missing" % relpath)
            elif sha256_file(full) != expected:
                problems.append("file %s of the backup does not match its sha256" % relpath)
        return problems
    size = os.path.getsize(path)
    if size != manifest.get("size"):
        return [
            "backup %s has %d bytes, the manifest says %s (truncated or replaced)" % (path, size, manifest.get("size"))
        ]
    if sha256_file(path) != manifest.get("sha256"):
        return ["backup %s does not match the sha256 in its manifest (corrupted)" % path]
    return []


def write_private_json(path: str, data: dict) -> None:
    """Write JSON with mode 0600 under a temporary name, then rename it into place."""
    temporary = path + ".partial"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def restrict_permissions(path: str) -> None:
    """Backups hold all the data: owner-only files (0600) and directories (0700)."""
    if os.path.isdir(path):
        os.chmod(path, 0o700)
        for root, dirs, names in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o700)
            for name in names:
                os.chmod(os.path.join(root, name), 0o600)
    else:
        os.chmod(path, 0o600)


def flush_to_disk(path: str) -> None:
    """fsync a backup's files and directories: it must survive a crash of the host that runs the DDL next."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(root, name) for root, _dirs, names in os.walk(path) for name in names] + [path]
    for item in paths:
        fsync_path(item)


def fsync_path(path: str) -> None:
    """fsync one file, or one directory's entries (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def read_manifest(src: str) -> tuple[dict, str, str]:
    """(manifest, backup path, manifest path) for a backup path or its manifest path."""
    manifest_path = src if src.endswith(".json") else manifest_path_for(src)
    if not os.path.isfile(manifest_path):
        raise ValueError("no manifest %s: only verified backups written by pg_backup can be restored" % manifest_path)
    with open(manifest_path) as handle:
        try:
            manifest = json.load(handle)
        except ValueError as exc:
            raise ValueError("manifest %s is not valid JSON: %s" % (manifest_path, exc)) from exc
    if manifest.get("kind") != MANIFEST_KIND:
        raise ValueError("%s is not a pg_backup manifest" % manifest_path)
    backup_path = os.path.join(os.path.dirname(manifest_path), manifest["name"])
    return manifest, backup_path, manifest_path


def list_manifests(directory: str, database: str) -> list[tuple[str, dict]]:
    """(manifest path, manifest) of every pg_backup manifest in a directory for one database."""
    found = []
    for name in os.listdir(directory):
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            continue
        if manifest.get("kind") == MANIFEST_KIND and manifest.get("database") == database:
            found.append((path, manifest))
    return found


def select_pruned(
    manifests: list[tuple[str, dict]],
    keep_last: int | None,
    max_age: int | None,
    now: datetime.datetime,
    keep_names: tuple = (),
) -> list[tuple[str, dict]]:
    """Manifests to prune: beyond the newest keep_last and older than max_age (both when both are set).

    A backup named in keep_names (the one just written) is never pruned.
    """
    if keep_last is None and max_age is None:
        return []
    newest_first = sorted(manifests, key=lambda item: item[1].get("created_at", ""), reverse=True)
    pruned = []
    for position, (path, manifest) in enumerate(newest_first):
        if manifest.get("name") in keep_names:
            continue
        beyond_count = keep_last is not None and position >= keep_last
        age = (now - parse_timestamp(manifest.get("created_at"))).total_seconds()
        too_old = max_age is not None and age > max_age
        if (keep_last is None or beyond_count) and (max_age is None or too_old):
            pruned.append((path, manifest))
    return pruned


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str | None) -> datetime.datetime:
    if not text:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def free_bytes(directory: str) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize
