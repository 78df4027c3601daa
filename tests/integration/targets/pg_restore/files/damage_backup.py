# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Damages a copy of a backup the way disks and transfers do; the copy keeps the original's manifest.

`truncate-resealed` also rewrites the copy's manifest to match it: a backup that passes verification and whose
restore fails half-way through its data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys


def copy_with_manifest(backup: str, name: str) -> str:
    target = os.path.join(os.path.dirname(backup), name)
    shutil.copy(backup, target)
    with open(backup + ".json") as handle:
        manifest = json.load(handle)
    manifest["name"] = name
    with open(target + ".json", "w") as handle:
        json.dump(manifest, handle)
    return target


def truncate(backup: str) -> None:
    target = copy_with_manifest(backup, "truncated.dump")
    os.truncate(target, os.path.getsize(target) // 2)


def truncate_resealed(backup: str) -> None:
    target = copy_with_manifest(backup, "resealed.dump")
    # three quarters in: past the table of contents and the schema, inside the rows
    os.truncate(target, os.path.getsize(target) * 3 // 4)
    with open(target + ".json") as handle:
        manifest = json.load(handle)
    with open(target, "rb") as handle:
        manifest.update(size=os.path.getsize(target), sha256=hashlib.sha256(handle.read()).hexdigest())
    with open(target + ".json", "w") as handle:
        json.dump(manifest, handle)


def flip_one_byte(backup: str) -> None:
    target = copy_with_manifest(backup, "flipped.dump")
    with open(target, "r+b") as handle:
        handle.seek(os.path.getsize(target) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


def drop_data_file(backup_directory: str) -> None:
    data_files = sorted(name for name in os.listdir(backup_directory) if name.endswith(".dat.gz"))
    os.unlink(os.path.join(backup_directory, data_files[0]))


if __name__ == "__main__":
    {
        "truncate": truncate,
        "truncate-resealed": truncate_resealed,
        "flip": flip_one_byte,
        "drop-data-file": drop_data_file,
    }[sys.argv[1]](sys.argv[2])
