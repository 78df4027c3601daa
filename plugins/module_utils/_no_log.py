# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""Which values of the no_log dict options connect_params and runner_env are secrets; the others stay visible.

Ansible hides every value of a no_log option wherever it occurs in the output, as a substring too: a connect_timeout
of 5 would mask every 5 of a result (a backup path, a revision id), so only the secrets may stay in the mask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible.module_utils.basic import _load_params
from ansible.module_utils.common.validation import check_type_dict

# libpq's secret keywords (PQconninfoOption.dispchar "*"), and the SCRAM keys that stand in for the password
LIBPQ_SECRET_KEYWORDS = frozenset(
    ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
)
# an environment variable named like one of these holds a secret
_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth|dsn|url|uri|cookie|private|cert", re.IGNORECASE)
# a value that carries a password: a libpq conninfo or a URL with user:password@
_SECRET_VALUE = re.compile(r"pass(word|wd)?\s*=|://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def public_connect_params(connect_params: dict) -> dict:
    """The connect_params that are not secrets, libpq's own judgement."""
    return {key: value for key, value in connect_params.items() if key not in LIBPQ_SECRET_KEYWORDS}


def public_runner_env(runner_env: dict) -> dict:
    """The runner_env entries that are not secrets: neither named like one nor carrying a password."""
    return {
        name: value
        for name, value in runner_env.items()
        if not _SECRET_NAME.search(name) and not _SECRET_VALUE.search(str(value))
    }


PUBLIC_PARTS = {"connect_params": public_connect_params, "runner_env": public_runner_env}


def masked_strings(value) -> set:
    """The strings Ansible hides for a no_log value (as its _return_datastructure_name does)."""
    if isinstance(value, (str, bytes)):
        return {value if isinstance(value, str) else value.decode(errors="replace")} if value else set()
    if isinstance(value, dict):
        return set().union(*(masked_strings(item) for item in value.values()))
    if isinstance(value, (list, tuple, set)):
        return set().union(*(masked_strings(item) for item in value))
    if value is None or isinstance(value, bool):
        return set()
    return {str(value)}


def visible_values(argument_spec: dict, params: dict) -> set:
    """Strings no_log hides that are no secret: the public part of connect_params and runner_env, unless the same
    string is also a secret somewhere else."""
    public, secret = set(), set()
    for name, spec in argument_spec.items():
        value = params.get(name)
        if not spec.get("no_log") or not value:
            continue
        shown = PUBLIC_PARTS[name](value) if name in PUBLIC_PARTS and isinstance(value, dict) else {}
        public |= masked_strings(shown)
        secret |= masked_strings({key: item for key, item in value.items() if key not in shown} if shown else value)
    return public - secret


def show_public_values(module) -> None:
    """Unmask the values of connect_params and runner_env that are not secrets; call once the module is built."""
    if hasattr(module, "no_log_values") and hasattr(module, "argument_spec"):
        module.no_log_values.difference_update(visible_values(module.argument_spec, module.params))


def unreadable_suboptions(argument_spec: dict, params: dict) -> list[str]:
    """The options with sub-options given something Ansible cannot read as a dictionary."""
    unreadable = []
    for name, spec in argument_spec.items():
        value = params.get(name)
        if spec.get("options") is None or value is None or isinstance(value, Mapping):
            continue
        if isinstance(value, str):
            try:
                check_type_dict(value)
                continue
            except TypeError:
                pass
        unreadable.append(name)
    return unreadable


def readable_argument_spec(argument_spec: dict) -> dict:
    """The spec to build AnsibleModule with. Ansible's check of an option with sub-options that holds no dictionary
    fails before it has collected the no_log values, and its failure prints every argument, passwords included; such
    an option loses its sub-options here, so Ansible refuses the value as a plain type error, everything masked."""
    params = _load_params()
    # ansible-test's introspection of the argument spec loads no arguments
    if not isinstance(params, dict):
        return argument_spec
    unreadable = unreadable_suboptions(argument_spec, params)
    return {
        name: {key: value for key, value in spec.items() if key != "options"} if name in unreadable else spec
        for name, spec in argument_spec.items()
    }
