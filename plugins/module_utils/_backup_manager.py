# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""A verified backup of one database: checks, dump, verification, manifest, publication and retention. The module
pg_backup and the composite deploy_start run it."""

from __future__ import annotations

import os
import time

from ansible_collections.safedeploy.migrations.plugins.module_utils._backup import (
    backup_name,
    dest_problem,
    flush_to_disk,
    free_bytes,
    list_leftovers,
    list_manifests,
    lock_directory,
    manifest_path_for,
    parse_duration,
    partial_path_for,
    publish_backup,
    remove_path,
    restrict_permissions,
    select_pruned,
    share_lock,
    utc_now,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._dump_archive import (
    ArchiveWriter,
    archive_header,
    build_manifest,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import ClientToolError, PgClient
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import sql

APPLICATION_NAME = "safedeploy.pg_backup"


def backup_argument_spec() -> dict:
    """pg_backup's options besides the connection; deploy_start takes them as its backup option's suboptions."""
    return dict(
        dest=dict(type="path", required=True),
        format=dict(type="str", choices=["custom", "directory"], default="custom"),
        jobs=dict(type="int", default=1),
        compress=dict(type="int"),
        exclude_table_data=dict(type="list", elements="str", default=["safedeploy.deploy_locks"]),
        container=dict(type="str"),
        bin_dir=dict(type="path"),
        labels=dict(type="dict", default={}),
        keep_last=dict(type="int"),
        max_age=dict(type="str"),
        required_space_ratio=dict(type="float", default=1.0),
    )


class BackupManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.database = self.params["login_db"]
        self.client = PgClient(module, self.params["container"], self.params["bin_dir"], APPLICATION_NAME)
        self.result = dict(changed=False, pruned=[], retention_skipped=[], removed_partials=[])
        self.result.update(commands=self.client.commands, queries=self.client.queries)
        # held until the module ends, even killed, so no other run takes this one's partial files for leftovers
        self.dest_lock = None

    def run(self) -> dict:
        max_age = self.validate()
        self.result["removed_partials"] = self.remove_leftovers()
        if self.client.container:
            self.client.check_container_running()
        database_size = self.read_database_size()
        self.result["database_size"] = database_size
        self.check_free_space(database_size)

        created_at = utc_now()
        path = os.path.join(self.params["dest"], backup_name(self.database, created_at, self.params["format"]))
        self.result.update(changed=True, backup_path=path, manifest_path=manifest_path_for(path))
        to_prune = self.prunable(max_age, created_at, keep_name=os.path.basename(path))
        if self.module.check_mode:
            self.result["pruned"] = [manifest["path"] for manifest in to_prune]
            return self.result

        manifest = self.write_backup(path, created_at)
        self.result.update(sha256=manifest["sha256"], size=manifest["size"], manifest=manifest)
        self.result["pruned"] = self.prune(to_prune)
        return self.result

    def validate(self) -> int | None:
        self.check_dest()
        if self.params["required_space_ratio"] < 0:
            self.module.fail_json(msg="required_space_ratio must be 0 (no free space check) or more")
        if self.params["jobs"] < 1 or (self.params["jobs"] > 1 and self.params["format"] != "directory"):
            self.module.fail_json(msg="jobs must be 1, or more than 1 with format: directory")
        if self.params["compress"] is not None and not 0 <= self.params["compress"] <= 9:
            self.module.fail_json(msg="compress must be between 0 and 9")
        if self.params["keep_last"] is not None and self.params["keep_last"] < 1:
            self.module.fail_json(msg="keep_last must be at least 1")
        try:
            return parse_duration(self.params["max_age"]) if self.params["max_age"] is not None else None
        except ValueError as exc:
            self.module.fail_json(msg="max_age: %s" % exc)

    def check_dest(self) -> None:
        dest = self.params["dest"]
        if not os.path.isdir(dest):
            self.module.fail_json(msg="backup destination %s does not exist or is not a directory" % dest)
        details = os.stat(dest)
        problem = dest_problem(dest, details.st_mode, details.st_uid, os.geteuid())
        if problem:
            self.module.fail_json(msg=problem)
        if not os.access(dest, os.R_OK | os.W_OK | os.X_OK):
            self.module.fail_json(msg="backup destination %s is not readable and writable" % dest)

    def remove_leftovers(self) -> list[str]:
        """The partial files killed runs left; looked for only while no other run writes in dest."""
        dest = self.params["dest"]
        self.dest_lock, alone = lock_directory(dest)
        if self.dest_lock is None:
            self.module.warn("cannot lock %s: partial files that killed runs left there are not removed" % dest)
        if not alone:
            return []
        leftovers = list_leftovers(dest, self.database)
        if not self.module.check_mode:
            for path in leftovers:
                remove_path(path)
        share_lock(self.dest_lock)
        return leftovers

    def read_database_size(self) -> int:
        query = sql.SQL("SELECT pg_database_size(current_database())")
        try:
            return int(self.client.rows(self.database, query)[0][0])
        except ClientToolError as exc:
            self.fail("cannot read the size of database %s" % self.database, exc)

    def check_free_space(self, database_size: int) -> None:
        required = int(database_size * self.params["required_space_ratio"])
        available = free_bytes(self.params["dest"])
        if required > available:
            self.module.fail_json(
                msg="not enough free space in %s for a backup of %s: about %d bytes needed (%s x database size), "
                "%d available; free space or lower required_space_ratio"
                % (self.params["dest"], self.database, required, self.params["required_space_ratio"], available),
                **self.result,
            )

    def prunable(self, max_age: int | None, now, keep_name: str) -> list[dict]:
        if self.params["keep_last"] is None and max_age is None:
            return []
        manifests, left_alone = list_manifests(self.params["dest"], self.database)
        for item in left_alone:
            self.module.warn("retention left %s alone: it %s" % (item["path"], item["reason"]))
        self.result["retention_skipped"] = left_alone
        # the backup being written counts towards keep_last
        keep_last = self.params["keep_last"] - 1 if self.params["keep_last"] else None
        pruned = select_pruned(manifests, keep_last, max_age, now, keep_names=(keep_name,))
        for manifest_path, manifest in pruned:
            manifest["path"] = os.path.join(os.path.dirname(manifest_path), manifest["name"])
            manifest["manifest_path"] = manifest_path
        return [manifest for _path, manifest in pruned]

    def write_backup(self, path: str, created_at) -> dict:
        partial = partial_path_for(path)
        scratch = self.client.scratch_path(os.path.basename(partial)) if self.uses_container_scratch() else None
        started = time.monotonic()
        writer = ArchiveWriter(self.client, self.params, self.client.conninfo(self.database), partial, scratch)
        try:
            toc, (sha256, files, size) = writer.write()
            restrict_permissions(partial)
            manifest = build_manifest(
                name=os.path.basename(path),
                database=self.database,
                params=self.params,
                header=archive_header(toc),
                sha256=sha256,
                files=files,
                size=size,
                created_at=created_at,
                duration=time.monotonic() - started,
            )
            flush_to_disk(partial)
            publish_backup(partial, path, manifest)
            return manifest
        except ClientToolError as exc:
            self.remove_partial(writer)
            self.fail("backup of database %s failed" % self.database, exc)
        except OSError as exc:
            self.remove_partial(writer)
            self.result["changed"] = False
            self.module.fail_json(msg="backup of database %s failed: %s" % (self.database, exc), **self.result)
        finally:
            if scratch:
                self.remove_scratch(scratch)

    def remove_partial(self, writer: ArchiveWriter) -> None:
        # a partial that was there before this run is not its own to remove
        if writer.partial_created:
            remove_path(writer.partial)

    def uses_container_scratch(self) -> bool:
        # a directory archive cannot go through a pipe, so it is written inside the container and copied out
        return bool(self.client.container) and self.params["format"] == "directory"

    def remove_scratch(self, scratch: str) -> None:
        try:
            self.client.docker("remove scratch copy", ["exec", self.client.container, "rm", "-rf", scratch])
        except ClientToolError:
            self.module.warn("could not remove %s inside container %s" % (scratch, self.client.container))

    def prune(self, to_prune: list[dict]) -> list[str]:
        for manifest in to_prune:
            remove_path(manifest["path"])
            remove_path(manifest["manifest_path"])
        return [manifest["path"] for manifest in to_prune]

    def fail(self, operation: str, exc: ClientToolError) -> None:
        # whatever failed, no backup was published
        self.result["changed"] = False
        self.module.fail_json(
            msg="%s: %s" % (operation, exc), cmd=exc.argv, rc=exc.rc, stderr=exc.stderr, **self.result
        )
