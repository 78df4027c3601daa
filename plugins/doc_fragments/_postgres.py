# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private fragment of the collection; it may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - The user to connect as.
      - Taken from the E(PGUSER) environment variable when not set.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - The password of O(login_user).
      - Taken from the E(PGPASSWORD) environment variable when not set; libpq's C(~/.pgpass) is honoured too.
      - Never passed on a command line; tools get it through their environment.
    type: str
  login_host:
    description:
      - Host of the PostgreSQL server.
      - Taken from the E(PGHOST) environment variable when not set.
      - Empty means the local Unix socket (see O(login_unix_socket)).
    type: str
    default: ''
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket; used when O(login_host) is empty.
    type: str
    default: ''
    aliases: [unix_socket]
  login_port:
    description:
      - Port of the PostgreSQL server.
      - Taken from the E(PGPORT) environment variable when not set.
    type: int
    default: 5432
    aliases: [port]
  login_db:
    description:
      - The database to connect to; libpq's default (the user name) when not set.
    type: str
    aliases: [db, database]
  ssl_mode:
    description:
      - libpq C(sslmode) of the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the certificate authorities that signed the server certificate (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_params:
    description:
      - Further libpq connection parameters, for example C(connect_timeout) or C(sslcert).
      - C(connect_timeout) defaults to 10 seconds so that an unreachable server fails the task quickly.
      - The keys libpq treats as secret (C(password), C(sslpassword), C(oauth_client_secret), C(scram_client_key),
        C(scram_server_key)) are masked in the task's output and invocation; the other keys stay readable.
        O(login_password) wins over a C(password) here.
      - Secrets never reach a command line. Client tools get the password as E(PGPASSWORD) and the other secrets in a
        service file readable by the connecting user only (E(PGSERVICEFILE)), removed when the module ends. That file
        is on the managed host, so a module that runs the tools in a container refuses those secrets, and a libpq
        C(service) of your own cannot be combined with them.
    type: dict
    default: {}
requirements:
  - psycopg >= 3.1 (the C(psycopg[binary]) package) on the managed host.
notes:
  - The options follow the names of the community.postgresql collection, and all database modules of this collection
    belong to the action group C(safedeploy.migrations.postgres), so C(module_defaults) sets them
    once per play.
"""
