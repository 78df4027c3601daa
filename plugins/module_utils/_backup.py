# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Backup files and their manifests: names, checksums, atomic writes, verification, retention, leftovers."""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import stat

MANIFEST_KIND = "safedeploy.migrations.pg_backup"
MANIFEST_VERSION = 1
FORMAT_SUFFIX = {"custom": ".dump", "directory": ".dir"}
_CHUNK = 1024 * 1024
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# the UTC timestamp of backup_name, to the microsecond
_NAME_TIMESTAMP = r"\d{8}T\d{12}Z"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_JSON_TYPES = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def safe_file_name(database: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database)


def backup_name(database: str, created_at: datetime.datetime, backup_format: str) -> str:
    """`<db>_<UTC timestamp>.dump|.dir`; characters unsafe in file names become '_'."""
    return "%s_%s%s" % (safe_file_name(database), created_at.strftime("%Y%m%dT%H%M%S%fZ"), FORMAT_SUFFIX[backup_format])


def backup_name_pattern(database: str) -> str:
    """A regular expression matching exactly the names backup_name gives the backups of a database."""
    suffixes = "|".join(re.escape(suffix) for suffix in sorted(FORMAT_SUFFIX.values()))
    return "%s_%s(?:%s)" % (re.escape(safe_file_name(database)), _NAME_TIMESTAMP, suffixes)


def is_own_leftover(file_name: str, database: str) -> bool:
    """A partial file that a pg_backup run of the database writes: `.<backup>.partial` or `<backup>.json.partial`."""
    backup = backup_name_pattern(database)
    return re.fullmatch(r"\.%s\.partial|%s\.json\.partial" % (backup, backup), file_name) is not None


def is_plain_file_name(name) -> bool:
    """A name of an entry in the directory itself: no separator, not '.' nor '..'."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


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


def refuse_existing(path: str) -> None:
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "refusing to write through an existing file or link", path)


def create_private_file(path: str) -> int:
    """A new 0600 file, opened for writing: never an existing file, never through a link planted at its name."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        refuse_existing(path)
        raise


def create_private_directory(path: str) -> None:
    """A new 0700 directory; mkdir never follows a link planted at its name."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        refuse_existing(path)
        raise


def write_private_partial(path: str, data: dict) -> str:
    """Write JSON to a new 0600 `<path>.partial`, flushed to disk, and return that name; nothing is left on failure."""
    temporary = path + ".partial"
    fd = create_private_file(temporary)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        remove_path(temporary)
        raise
    return temporary


def write_private_json(path: str, data: dict) -> None:
    """Write JSON with mode 0600 under a temporary name, then rename it into place."""
    os.replace(write_private_partial(path, data), path)


def publish_backup(partial: str, path: str, manifest: dict) -> None:
    """Give a flushed backup and its manifest their final names together: both are published, or neither.

    The manifest is written first, under its partial name: the step that needs disk space comes before any rename.
    On failure the caller still owns `partial`; whatever this function created or renamed is removed.
    """
    manifest_path = manifest_path_for(path)
    manifest_partial = write_private_partial(manifest_path, manifest)
    created = [manifest_partial]
    try:
        os.rename(partial, path)
        created.append(path)
        os.rename(manifest_partial, manifest_path)
        created.append(manifest_path)
        fsync_path(os.path.dirname(path) or ".")
    except BaseException:
        for item in created:
            remove_path(item)
        raise


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


def json_type(value) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "an object")


def kind_problem(manifest) -> str | None:
    """Why a parsed JSON file is not a pg_backup manifest at all."""
    if not isinstance(manifest, dict):
        return "is not a pg_backup manifest: it holds %s, not an object" % json_type(manifest)
    if manifest.get("kind") != MANIFEST_KIND:
        return "is not a pg_backup manifest: its kind is %s, not %s" % (json.dumps(manifest.get("kind")), MANIFEST_KIND)
    return None


def restore_problem(manifest) -> str | None:
    """Why a manifest cannot describe a backup to restore; None when its fields have the shapes pg_backup writes."""
    problem = kind_problem(manifest)
    if problem:
        return problem
    if not is_plain_file_name(manifest.get("name")):
        return "names no backup beside it: its name is %s, not a file name" % json.dumps(manifest.get("name"))
    if not isinstance(manifest.get("database"), str) or not manifest["database"]:
        return "names no database: its database is %s" % json.dumps(manifest.get("database"))
    if manifest.get("format") not in FORMAT_SUFFIX:
        return "has format %s, not custom or directory" % json.dumps(manifest.get("format"))
    if not isinstance(manifest.get("files") or {}, dict):
        return "lists its files as %s, not as an object" % json_type(manifest["files"])
    return None


def retention_problem(file_name: str, manifest, database: str) -> str | None:
    """Why retention must leave a manifest file (and what it names) alone; None when pg_backup wrote both for this
    database, so pruning removes exactly `<name>` and `<name>.json` in the same directory."""
    problem = kind_problem(manifest)
    if problem:
        return problem
    if manifest.get("database") != database:
        return "is a manifest of database %s, not %s" % (json.dumps(manifest.get("database")), database)
    name = manifest.get("name")
    if not is_plain_file_name(name):
        return "names %s, not a file in the backup directory" % json.dumps(name)
    if re.fullmatch(backup_name_pattern(database), name) is None:
        return "names %s, not a name pg_backup gives a backup of %s" % (json.dumps(name), database)
    if file_name != manifest_path_for(name):
        return "is not named after the backup it names (%s)" % name
    if not is_timestamp(manifest.get("created_at")):
        return "has no valid created_at: %s" % json.dumps(manifest.get("created_at"))
    return None


def is_timestamp(text) -> bool:
    try:
        return isinstance(text, str) and bool(datetime.datetime.strptime(text, _TIMESTAMP_FORMAT))
    except ValueError:
        return False


def load_json_file(path: str) -> tuple[object, str | None]:
    """(content, None), or (None, why it cannot be read); a link or a directory is never opened."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None, "is not a regular file (a link, a directory or a device)"
        with open(path) as handle:
            return json.load(handle), None
    except ValueError as exc:
        return None, "is not valid JSON: %s" % exc
    except OSError as exc:
        return None, "cannot be read: %s" % exc.strerror


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
    problem = restore_problem(manifest)
    if problem:
        raise ValueError("manifest %s %s" % (manifest_path, problem))
    backup_path = os.path.join(os.path.dirname(manifest_path), manifest["name"])
    return manifest, backup_path, manifest_path


def is_other_database(manifest, database: str) -> bool:
    """A well-formed manifest of another database: another run's to prune, nothing to warn about."""
    return (
        isinstance(manifest, dict)
        and manifest.get("kind") == MANIFEST_KIND
        and isinstance(manifest.get("database"), str)
        and manifest["database"] != database
    )


def list_manifests(directory: str, database: str) -> tuple[list[tuple[str, dict]], list[dict]]:
    """The manifests retention may act on for one database, as (manifest path, manifest), and the files it must leave
    alone, as {path, reason}; hidden files and the manifests of other databases are neither."""
    found = []
    left_alone = []
    for file_name in sorted(os.listdir(directory)):
        if not file_name.endswith(".json") or file_name.startswith("."):
            continue
        path = os.path.join(directory, file_name)
        manifest, problem = load_json_file(path)
        if problem is None and is_other_database(manifest, database):
            continue
        problem = problem or retention_problem(file_name, manifest, database)
        if problem is None and os.path.islink(os.path.join(directory, manifest["name"])):
            problem = "names %s, which is a link" % manifest["name"]
        if problem:
            left_alone.append({"path": path, "reason": problem})
        else:
            found.append((path, manifest))
    return found, left_alone


def list_leftovers(directory: str, database: str) -> list[str]:
    """The partial files that killed or failed runs of pg_backup left for the database, by their exact names."""
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if is_own_leftover(name, database)]


def dest_problem(path: str, mode: int, owner_uid: int, user_uid: int) -> str | None:
    """Why a backup directory is unsafe: someone else could plant links or replace backups in it."""
    if owner_uid != user_uid:
        return (
            "backup destination %s is owned by %s, not by %s who runs pg_backup, so its owner could plant links or "
            "replace backups there; chown it to %s or back up as its owner"
            % (path, user_label(owner_uid), user_label(user_uid), user_label(user_uid))
        )
    if stat.S_IMODE(mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            "backup destination %s has mode %04o, so its group or others could plant links or replace backups "
            "there; run chmod go-w %s" % (path, stat.S_IMODE(mode), path)
        )
    return None


def user_label(uid: int) -> str:
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def lock_directory(directory: str) -> tuple[int | None, bool]:
    """(descriptor, alone): a lock on the directory that lasts as long as the descriptor, so as long as the run.

    Alone (no other run holds one), the lock is exclusive until share_lock(); otherwise it is shared. A directory that
    cannot be locked (a file system without flock, such as some NFS) gives (None, False).
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return None, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, True
    except BlockingIOError:
        share_lock(fd)
        return fd, False
    except OSError:
        os.close(fd)
        return None, False


def share_lock(fd: int) -> None:
    """Let other runs in: they may write beside this one, but they cannot take its partial files for leftovers."""
    fcntl.flock(fd, fcntl.LOCK_SH)


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
    return moment.strftime(_TIMESTAMP_FORMAT)


def parse_timestamp(text: str | None) -> datetime.datetime:
    if not text:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.strptime(text, _TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)


def free_bytes(directory: str) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize
