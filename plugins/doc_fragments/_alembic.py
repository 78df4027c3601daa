# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private fragment of the collection; it may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  runner:
    description:
      - The command that starts the application's own alembic, as a list, not empty; the module appends the
        subcommand.
      - A local command, for example V([/opt/app/venv/bin/alembic, -c, /opt/app/alembic.ini]), or a compose one-shot,
        for example V([docker, compose, -p, erpmax, -f, /srv/erpmax/compose.yml, run, --rm, -T, -e, PGOPTIONS,
        migration, alembic]), so the alembic version and the scripts that run are the ones in the app image.
      - A compose runner must pass E(PGOPTIONS) into the container (C(-e PGOPTIONS)), so that the C(lock_timeout) and
        C(statement_timeout) that M(safedeploy.migrations.alembic_migrate) sets reach alembic's connection.
    type: list
    elements: str
    required: true
  runner_env:
    description:
      - Extra environment for the runner, for example the release a compose runner interpolates into its image tag.
      - Hidden (no_log) where it could hold a secret. The values of entries named like one (containing C(PASS),
        C(SECRET), C(TOKEN), C(KEY), C(CREDENTIAL), C(AUTH), C(DSN), C(URL), C(URI), C(COOKIE), C(PRIVATE) or
        C(CERT)) or holding a password (a C(user:password@) URL, a C(password=) conninfo) are masked in the task's
        output and invocation; the others, such as the release, stay readable. A secret belongs in
        O(runner_secret_env).
    type: dict
    default: {}
  runner_secret_env:
    description:
      - Extra environment for the runner that holds secrets, for example a C(DATABASE_URL) with a password that the
        application's C(env.py) reads. Passed like O(runner_env) (which it overrides), never shown or returned.
    type: dict
    default: {}
  chdir:
    description:
      - Directory to run the runner in, for example the one holding C(alembic.ini).
    type: path
  version_table:
    description:
      - Name of alembic's version table (C(version_table) in C(env.py)).
    type: str
    default: alembic_version
  version_table_schema:
    description:
      - Schema of alembic's version table; the search path finds it when not set.
    type: str
  state_schema:
    description:
      - Schema of the collection's own tables in the application database (script checksums of applied revisions).
    type: str
    default: safedeploy
  script_location:
    description:
      - Directory on the managed host that holds the revision scripts, used to checksum them when alembic reports
        paths that only exist elsewhere (inside a container). Files are matched by name.
    type: path
"""
