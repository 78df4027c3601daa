#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_files
short_description: Write a directory's files in one run - each only when its content or mode differs
version_added: 0.1.0
description:
  - Writes the given files into O(path) and reports which ones changed, in one module run instead of a
    M(ansible.builtin.copy) or M(ansible.builtin.template) task per file. The stack role writes a compose stack's files
    with it (the team's compose file, the collection's override, the proxy's configuration, the files the compose file
    needs and the env file), and compares them in check mode to tell whether a deploy has nothing to do.
  - A file is written only when its content or mode differs, through a temporary file in the same directory that is
    renamed over it, so a reader sees the old file or the new one, never a half-written one. O(path), its missing
    parents and the directories the names need are created with O(directory_mode).
  - The content of O(secret_files) never leaves the module - not in the result, not in C(--diff), not in a failure.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the files and reports which would be written, writing nothing.
  diff_mode:
    support: full
    details:
      - The content before and after of each file written, its mode in the headers; a secret file shows only that it
        changed.
options:
  path:
    description: The directory the files go into.
    type: path
    required: true
  files:
    description: Files whose content may be shown in C(--diff).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Path of the file inside O(path), relative and without C(.) or C(..) parts.
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Permissions as an octal string, for example V(0644).
        type: str
        default: "0644"
      encoding:
        description:
          - How O(files[].content) is given - V(text), or V(base64) for a file that is not UTF-8 text (Ansible passes
            module arguments as UTF-8 JSON), for example
            C(lookup('ansible.builtin.file', src, rstrip=false) | b64encode).
        type: str
        choices: [text, base64]
        default: text
  secret_files:
    description: Files that hold secrets, such as an env file with a password; their content is never shown.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Path of the file inside O(path), relative and without C(.) or C(..) parts.
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Permissions as an octal string.
        type: str
        default: "0600"
      encoding:
        description: How O(secret_files[].content) is given, as for O(files[].encoding).
        type: str
        choices: [text, base64]
        default: text
  directory_mode:
    description: Permissions of O(path) and of the directories the names need, when this run creates them.
    type: str
    default: "0750"
  backup:
    description:
      - Keep each file that is replaced beside it (C(<name>.<pid>.<time>~), the old file itself, so a secret keeps its
        mode; where the filesystem has no hard links, a copy created with the file's mode) and return them in
        RV(backups), to put back or remove later.
    type: bool
    default: false
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.template
"""

EXAMPLES = r"""
- name: Write the stack's files
  safedeploy.migrations.stack_files:
    path: /srv/shop
    files:
      - name: compose.yml
        content: "{{ lookup('ansible.builtin.file', 'compose.prod.yml', rstrip=false) }}"
      - name: nginx/default.conf
        content: "{{ lookup('ansible.builtin.template', 'default.conf.j2') }}"
    secret_files:
      - name: .env
        content: "DATABASE_URL={{ database_url }}\n"
  register: shop_files

- name: Tell whether the files on the host are the ones above, changing nothing
  safedeploy.migrations.stack_files:
    path: /srv/shop
    files: "{{ shop_files_wanted }}"
  check_mode: true
  diff: false
  register: shop_files_compared
"""

RETURN = r"""
changed_files:
  description: Names of the files written (that would be written, in check mode), in the order given.
  type: list
  elements: str
  returned: always
  sample: [compose.yml, .env]
backups:
  description: With O(backup), the files replaced, each as C(dest) (the file's path) and C(backup_file).
  type: list
  elements: dict
  returned: always
  sample: [{dest: /srv/shop/compose.yml, backup_file: /srv/shop/compose.yml.4242.2026-12-07@15:31:02~}]
"""

import errno
import os
import shutil
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._stack_files import (
    directories_of,
    file_diff,
    mode_problem,
    needs_write,
    wanted_files,
)


def file_spec(default_mode: str, secret: bool) -> dict:
    """files and secret_files: a secret file's content is no_log, its name and mode are not."""
    return dict(
        type="list",
        elements="dict",
        default=[],
        no_log=False,
        options=dict(
            name=dict(type="str", required=True),
            content=dict(type="str", required=True, no_log=secret),
            mode=dict(type="str", default=default_mode),
            encoding=dict(type="str", choices=["text", "base64"], default="text"),
        ),
    )


def argument_spec() -> dict:
    return dict(
        path=dict(type="path", required=True),
        files=file_spec("0644", secret=False),
        secret_files=file_spec("0600", secret=True),
        directory_mode=dict(type="str", default="0750"),
        backup=dict(type="bool", default=False),
    )


def checked_files(params: dict) -> list:
    """The files to write; ValueError naming every problem of the arguments, before anything is touched."""
    problems = [mode_problem(params["directory_mode"])]
    try:
        wanted = wanted_files(params["files"], params["secret_files"])
    except ValueError as error:
        problems.append(str(error))
    problems = [problem for problem in problems if problem]
    if problems:
        raise ValueError("; ".join(problems))
    return wanted


def read_existing(path: str):
    """The file's content and mode, None when it is missing; a directory or other non-file is an error."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EEXIST, "exists and is not a regular file", path)
    with open(path, "rb") as handle:
        return {"content": handle.read(), "mode": stat.S_IMODE(info.st_mode)}


def missing_parents(base: str) -> list:
    """The directories above base that do not exist, outermost first."""
    missing, parent = [], os.path.dirname(base.rstrip("/"))
    while parent and not os.path.isdir(parent):
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    return missing


def make_directories(base: str, names: list, mode: int) -> None:
    """base with its missing parents, then the directories the names need, each created with mode."""
    inside = [os.path.join(base, directory) for directory in directories_of(names)]
    for target in missing_parents(base) + [base] + inside:
        if not os.path.isdir(target):
            os.mkdir(target)
            # mkdir's mode passes through the umask
            os.chmod(target, mode)


def link_or_copy(path: str, backup: str) -> None:
    """The old file kept as backup: the file itself (a hard link), or where links fail a copy made with its mode."""
    try:
        os.link(path, backup)
    except OSError:
        # created with the file's own mode, so a secret is never readable by others, not even while it is copied
        descriptor = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(descriptor, "wb") as output, open(path, "rb") as source:
            shutil.copyfileobj(source, output)


def write_file(path: str, want: dict, keep_backup: bool, backup_name: str):
    """Replace path by a temporary file renamed over it; the old file stays as the backup when asked for."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(want["content"])
            output.flush()
            os.fsync(output.fileno())
        os.chmod(temporary, want["mode"])
        backup = None
        if keep_backup and os.path.exists(path):
            backup = path + backup_name
            link_or_copy(path, backup)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return backup


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    base = module.params["path"]
    try:
        wanted = checked_files(module.params)
    except ValueError as error:
        module.fail_json(msg="stack_files: %s" % error)
    result = dict(changed=False, changed_files=[], backups=[])
    diffs = []
    try:
        existing = {want["name"]: read_existing(os.path.join(base, want["name"])) for want in wanted}
        to_write = [want for want in wanted if needs_write(want, existing[want["name"]])]
        result["changed_files"] = [want["name"] for want in to_write]
        result["changed"] = bool(to_write) or not os.path.isdir(base)
        diffs = [file_diff(base, want, existing[want["name"]]) for want in to_write]
        if not module.check_mode:
            make_directories(base, [want["name"] for want in wanted], int(module.params["directory_mode"], 8))
            backup_name = ".%d.%s~" % (os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))
            for want in to_write:
                backup = write_file(os.path.join(base, want["name"]), want, module.params["backup"], backup_name)
                if backup:
                    result["backups"].append(dict(dest=os.path.join(base, want["name"]), backup_file=backup))
    except OSError as error:
        # names only: the error of a write is about the file, never its content
        module.fail_json(msg="stack_files: %s: %s" % (error.filename or base, error.strerror or error), **result)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
