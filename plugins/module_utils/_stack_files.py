# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stack's files as the controller wants them against what the host has: which to write, and a diff that never
shows a secret file. Pure functions; plugins/modules/stack_files.py does the reading and writing."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re

OCTAL_MODE = re.compile(r"0?[0-7]{3}")


def name_problem(name) -> str | None:
    """Why a file name cannot be written inside the stack directory, or None."""
    if not isinstance(name, str) or not name or "\0" in name:
        return "a file name must be a non-empty string"
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "." in parts or "" in parts:
        return "%s must be a relative path inside the directory, without . or .. parts" % _quoted(name)
    return None


def mode_problem(mode) -> str | None:
    """Why a mode is not an octal permission such as 0644, or None."""
    if not isinstance(mode, str) or not OCTAL_MODE.fullmatch(mode):
        return "mode %s must be octal permissions such as 0644" % _quoted(mode)
    return None


def wanted_files(files: list, secret_files: list) -> list:
    """Both lists as one of {name, content (bytes), mode (int), secret}; ValueError naming every problem."""
    wanted, problems, seen = [], [], set()
    for secret, entries in ((False, files), (True, secret_files)):
        for entry in entries:
            name, mode = entry["name"], entry["mode"]
            problem = name_problem(name) or mode_problem(mode)
            if problem is None and name in seen:
                problem = "%s is named twice" % _quoted(name)
            if problem:
                problems.append(problem)
                continue
            seen.add(name)
            content = _content(entry)
            if content is None:
                problems.append("the content of %s is not base64" % _quoted(name))
                continue
            wanted.append({"name": name, "content": content, "mode": int(mode, 8), "secret": secret})
    if problems:
        raise ValueError("; ".join(problems))
    return wanted


def _content(entry: dict):
    """The file's bytes: text as UTF-8, or base64 decoded (a file that is not text); None for bad base64."""
    if entry.get("encoding", "text") == "text":
        return entry["content"].encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(entry["content"], validate=True)
    except (binascii.Error, ValueError):
        return None


def needs_write(want: dict, have) -> bool:
    """Whether a wanted file differs from the host's (content, mode), have being None for a missing file."""
    return have is None or have["content"] != want["content"] or have["mode"] != want["mode"]


def directories_of(names: list) -> list:
    """The directories inside the stack directory that the names need, parents first."""
    needed = set()
    for name in names:
        parent = posixpath.dirname(name)
        while parent:
            needed.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(needed, key=lambda path: (path.count("/"), path))


def file_diff(base: str, want: dict, have) -> dict:
    """--diff's entry for one file, its mode in the headers; a secret file shows only that it changed."""
    path = posixpath.join(base, want["name"])
    return {
        "before_header": "%s (mode %s)" % (path, _octal(have["mode"])) if have else "%s (absent)" % path,
        "after_header": "%s (mode %s)" % (path, _octal(want["mode"])),
        "before": _shown(have, want["secret"], "(secret content)\n"),
        "after": _shown(want, want["secret"], _secret_after(want, have)),
    }


def _secret_after(want: dict, have) -> str:
    return "(secret content, changed)\n" if have and have["content"] != want["content"] else "(secret content)\n"


def _shown(entry, secret: bool, secret_text: str) -> str:
    if entry is None:
        return ""
    if secret:
        return secret_text
    try:
        return entry["content"].decode("utf-8")
    except UnicodeDecodeError:
        return "(%d bytes that are not UTF-8 text)\n" % len(entry["content"])


def _octal(mode: int) -> str:
    return "%04o" % mode


def _quoted(value) -> str:
    return '"%s"' % value if isinstance(value, str) else repr(value)
