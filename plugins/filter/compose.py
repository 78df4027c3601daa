# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the stack role writes for docker compose and reads back from it: compose_env_file, compose_literal,
compose_networks, compose_shape, compose_extra_files, database_url_with_db,
stack_services_checked."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.module_utils import _compose_images

# what compose (and a shell) accepts as a variable name; fullmatch, since `$` lets a trailing newline through
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# inside double quotes compose's env file parser unescapes these, and only these, so every value reads back literally
ENV_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("$", "\\$"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def env_value_text(name: str, value) -> str:
    """The text of one value; booleans as YAML writes them, so `DEBUG: false` in an inventory reads back `false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        text = str(value)
        if "\0" in text:
            raise AnsibleFilterError("compose_env_file: the value of %s holds a NUL character" % name)
        return text
    # the value itself may be a secret: only its type is named
    kind = (
        "dict" if isinstance(value, Mapping) else "list" if isinstance(value, (list, tuple)) else type(value).__name__
    )
    raise AnsibleFilterError(
        "compose_env_file: the value of %s is a %s; an env file holds strings and numbers" % (name, kind)
    )


def compose_env_file(values, header: str = "") -> str:
    """An env file that docker compose reads back literally, for interpolation and for `env_file:` alike.

    Every value is double-quoted with backslash escapes, so `$`, quotes, `#`, newlines and spaces survive.
    """
    if not isinstance(values, dict):
        raise AnsibleFilterError("compose_env_file: expects a dict of variable names to values")
    lines = ["# %s" % line for line in header.splitlines()]
    for name in sorted(values):
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            raise AnsibleFilterError(
                "compose_env_file: %s is not a variable name (letters, digits and _, not starting with a digit)"
                % json.dumps(str(name))
            )
        text = env_value_text(name, values[name])
        for plain, escaped in ENV_ESCAPES:
            text = text.replace(plain, escaped)
        lines.append('%s="%s"' % (name, text))
    return "\n".join(lines) + "\n"


def compose_literal(value) -> str:
    """A scalar for a compose file: a JSON string (valid YAML) whose `$` compose does not interpolate."""
    if isinstance(value, (dict, list)):
        raise AnsibleFilterError("compose_literal: expects a string or a number, not a %s" % type(value).__name__)
    return json.dumps(str(value)).replace("$", "$$")


def compose_networks(compose, service: str) -> list:
    """The networks a service of a compose file (parsed YAML) joins; ['default'] when it names none."""
    services = (compose.get("services") if isinstance(compose, dict) else None) or {}
    if service not in services:
        raise AnsibleFilterError(
            "the compose file defines no service %s; it defines: %s" % (service, ", ".join(sorted(services)) or "none")
        )
    networks = (services[service] or {}).get("networks")
    if isinstance(networks, dict):
        return sorted(networks)
    if isinstance(networks, list):
        return [str(network) for network in networks]
    return ["default"]


def named_services(services: dict) -> dict:
    """stack_services checked and flattened: role -> list of names (module_utils/_compose_images.py)."""
    try:
        return _compose_images.named_services(services)
    except _compose_images.ComposeError as error:
        raise AnsibleFilterError(str(error)) from None


def compose_shape(config, services, database: bool = True, proxy: str = "") -> dict:
    """The stack as `docker compose config --format json` resolved it, reduced to what the roles need."""
    try:
        return _compose_images.compose_shape(config, services, database=database, proxy=proxy)
    except _compose_images.ComposeError as error:
        raise AnsibleFilterError(str(error)) from None


def compose_extra_files(items, reserved=()) -> list:
    """stack_compose_extra_files as {src, dest, mode}: a path gets its base name in the stack directory, mode 0644."""
    if not isinstance(items, list):
        raise AnsibleFilterError("stack_compose_extra_files must be a list of paths or {src, dest, mode}")
    files = []
    for item in items:
        entry = item if isinstance(item, dict) else {"src": item}
        src = entry.get("src")
        if not isinstance(src, str) or not src:
            raise AnsibleFilterError("stack_compose_extra_files: %s has no src" % json.dumps(item, default=str))
        dest = entry.get("dest") or src.rstrip("/").rsplit("/", 1)[-1]
        # `./.env` is the env file too
        parts = [part for part in dest.split("/") if part != "."]
        if dest.startswith("/") or ".." in parts or "/".join(parts) in reserved or not parts or not all(parts):
            raise AnsibleFilterError(
                "stack_compose_extra_files: dest %s must be a relative path inside the stack directory, not one of"
                " its own files (%s)" % (json.dumps(dest), ", ".join(reserved))
            )
        files.append({"src": src, "dest": "/".join(parts), "mode": str(entry.get("mode", "0644"))})
    return files


def database_url_with_db(url: str, database: str) -> str:
    """The same database URL aimed at another database of the same server (a scratch copy)."""
    if not isinstance(url, str) or "://" not in url:
        raise AnsibleFilterError("database_url_with_db: expects a URL such as postgresql://user@host:5432/db")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), parts.query, parts.fragment))


class FilterModule:
    def filters(self):
        return {
            "compose_env_file": compose_env_file,
            "compose_extra_files": compose_extra_files,
            "compose_literal": compose_literal,
            "compose_networks": compose_networks,
            "compose_shape": compose_shape,
            "database_url_with_db": database_url_with_db,
            "stack_services_checked": named_services,
        }
