# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The connection triad: argument spec, libpq parameters and the psycopg connect helper."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import LIBPQ_SECRET_KEYWORDS

PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg
    from psycopg import sql  # noqa: F401  # pylint: disable=unused-import
    from psycopg.conninfo import make_conninfo
    from psycopg.rows import dict_row  # noqa: F401  # pylint: disable=unused-import
except ImportError:
    psycopg = None
    sql = None
    dict_row = None
    make_conninfo = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

DEFAULT_CONNECT_TIMEOUT = 10


def postgres_common_argument_spec() -> dict:
    """Connection options shared by every database module of the collection."""
    return dict(
        login_user=dict(type="str", default="postgres", aliases=["login"], fallback=(env_fallback, ["PGUSER"])),
        login_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PGPASSWORD"])),
        login_host=dict(type="str", default="", aliases=["host"], fallback=(env_fallback, ["PGHOST"])),
        login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
        login_port=dict(type="int", default=5432, aliases=["port"], fallback=(env_fallback, ["PGPORT"])),
        login_db=dict(type="str", aliases=["db", "database"]),
        ssl_mode=dict(
            type="str",
            default="prefer",
            choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
        ),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        # no_log for its secrets; show_public_values() unmasks the other keys
        connect_params=dict(type="dict", default={}, no_log=True),
    )


def libpq_params(params: dict, dbname: str | None = None, application_name: str | None = None) -> dict:
    """libpq keywords for the module parameters, without the password or any other secret."""
    keywords = {
        "host": params["login_host"] or params["login_unix_socket"] or None,
        "port": params["login_port"],
        "user": params["login_user"],
        "dbname": dbname or params["login_db"],
        "sslmode": params["ssl_mode"],
        "sslrootcert": params.get("ca_cert"),
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "application_name": application_name,
    }
    keywords.update(params.get("connect_params") or {})
    return {
        key: value
        for key, value in keywords.items()
        if value is not None and value != "" and key not in LIBPQ_SECRET_KEYWORDS
    }


def secret_params(params: dict) -> dict:
    """The secret libpq keywords: those of connect_params, with login_password over its password."""
    secrets = {
        key: str(value)
        for key, value in (params.get("connect_params") or {}).items()
        if key in LIBPQ_SECRET_KEYWORDS and value is not None and value != ""
    }
    if params.get("login_password"):
        secrets["password"] = params["login_password"]
    return secrets


def conninfo_without_secrets(params: dict, dbname: str | None = None, application_name: str | None = None) -> str:
    """A conninfo string safe to put in argv: libpq clients get the secrets through their environment."""
    keywords = libpq_params(params, dbname, application_name)
    return make_conninfo(**{key: str(value) for key, value in keywords.items()})


def ensure_psycopg(module) -> None:
    if psycopg is None:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)


def describe_target(params: dict, dbname: str | None = None) -> str:
    """'db on host:port' for messages; never includes the password."""
    host = params["login_host"] or params["login_unix_socket"] or "local socket"
    # libpq connects to the database named like the user when none is given
    database = dbname or params["login_db"] or params["login_user"]
    return "database %s on %s:%s as %s" % (database, host, params["login_port"], params["login_user"])


def connect(module, dbname: str | None = None, autocommit: bool = True, application_name: str | None = None):
    """Open a psycopg connection or fail the module with a sentence naming the target and the cause."""
    ensure_psycopg(module)
    keywords = dict(libpq_params(module.params, dbname, application_name), **secret_params(module.params))
    try:
        return psycopg.connect(autocommit=autocommit, **keywords)
    # a host name the resolver cannot encode (a label over 63 characters) raises UnicodeError, a ValueError
    except (psycopg.Error, ValueError) as exc:
        module.fail_json(msg="cannot connect to %s: %s" % (describe_target(module.params, dbname), error_text(exc)))


def error_text(exc: Exception) -> str:
    """The server's message without libpq's multi-line decoration."""
    return " ".join(str(exc).split())
