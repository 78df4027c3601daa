#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: alembic_info
short_description: Report the Alembic revisions of a database against the application's migration scripts
version_added: 0.1.0
author: safedeploy.migrations maintainers (@safedeploy)
description:
  - Reads the current revision(s) directly from the database and the scripts' revision graph with one run of the
    application's own C(alembic history --verbose), then reports heads, pending revisions and drift.
  - Detects a database that is ahead of the code (it records revisions the scripts do not know) and scripts that
    were edited after M(safedeploy.migrations.alembic_migrate) applied them.
extends_documentation_fragment:
  - safedeploy.migrations._postgres
  - safedeploy.migrations._alembic
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
  - safedeploy.migrations._attributes.info_module
options:
  revision:
    description:
      - The target that RV(pending) is computed for; V(head) needs a single head.
    type: str
    default: heads
seealso:
  - module: safedeploy.migrations.alembic_migrate
"""

EXAMPLES = r"""
- name: What would a deploy apply?
  safedeploy.migrations.alembic_info:
    runner: [/opt/erpmax/venv/bin/alembic, -c, /opt/erpmax/alembic.ini]
    login_user: erpmax
    db: erpmax_orchestrator
  register: alembic

- name: Refuse to deploy code older than the database
  ansible.builtin.assert:
    that: not alembic.db_ahead
    fail_msg: "the database is at {{ alembic.current }}, which this release does not know"
"""

RETURN = r"""
current:
  description: Revisions recorded in the database's version table; empty when alembic never ran there.
  returned: always
  type: list
  elements: str
  sample: [0003_index_jobs_status]
heads:
  description: Heads of the scripts' revision graph.
  returned: always
  type: list
  elements: str
  sample: [0004_drop_legacy_code]
multiple_heads:
  description: Whether the scripts have more than one head (a branch that needs a merge revision).
  returned: always
  type: bool
  sample: false
pending:
  description: Revisions to apply to reach O(revision), in order; empty when the database is ahead or diverged.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "0004_drop_legacy_code", "message": "drop customers.legacy_code"}]
up_to_date:
  description: Whether nothing is pending.
  returned: always
  type: bool
  sample: false
db_ahead:
  description: Whether the database records revisions the scripts do not know (code older than the database).
  returned: always
  type: bool
  sample: false
unknown_revisions:
  description: The revisions of RV(current) that the scripts do not know.
  returned: always
  type: list
  elements: str
  sample: []
modified_after_apply:
  description: Revisions whose script changed after it was applied, with both checksums.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "0002_customer_phone", "recorded_sha256": "9f86...", "script_sha256": "2c26...",
            "path": "/app/migrations/versions/0002_customer_phone.py"}]
history:
  description: Every revision of the scripts, newest first, as alembic lists them.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "0002_customer_phone", "down_revisions": ["0001_initial"], "depends_on": [],
            "message": "add phone", "path": "/app/migrations/versions/0002_customer_phone.py", "branch_labels": []}]
commands:
  description: The runner commands run.
  returned: always
  type: list
  elements: list
  sample: [["/opt/erpmax/venv/bin/alembic", "-c", "/opt/erpmax/alembic.ini", "history", "--verbose"]]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_graph import (
    RevisionError,
    resolve_target,
    upgrade_path,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_runner import (
    AlembicRunner,
    RunnerError,
    runner_problem,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._alembic_status import (
    AlembicStatus,
    alembic_argument_spec,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    error_text,
    postgres_common_argument_spec,
    psycopg,
)

APPLICATION_NAME = "safedeploy.alembic_info"


def pending_revisions(status: AlembicStatus, revision: str) -> list[str]:
    if status.unknown:
        return []
    return upgrade_path(status.revisions, status.current, resolve_target(status.revisions, revision))


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(alembic_argument_spec())
    argument_spec.update(revision=dict(type="str", default="heads"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    show_public_values(module)
    if runner_problem(module.params["runner"]):
        module.fail_json(msg=runner_problem(module.params["runner"]))
    runner = AlembicRunner.from_params(module.params)
    connection = connect(module, application_name=APPLICATION_NAME)
    try:
        status = AlembicStatus.read(runner, connection, module.params)
        pending = pending_revisions(status, module.params["revision"])
        modified = status.modified_after_apply(connection, module.params)
    except RunnerError as exc:
        module.fail_json(
            msg=str(exc), cmd=exc.argv, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, commands=runner.commands
        )
    except RevisionError as exc:
        module.fail_json(msg=str(exc), commands=runner.commands)
    except psycopg.Error as exc:
        module.fail_json(msg="reading the alembic state failed: %s" % error_text(exc), commands=runner.commands)
    finally:
        connection.close()
    module.exit_json(
        changed=False,
        current=status.current,
        heads=status.heads,
        multiple_heads=len(status.heads) > 1,
        pending=status.describe(pending),
        up_to_date=not pending and not status.unknown,
        db_ahead=bool(status.unknown),
        unknown_revisions=status.unknown,
        modified_after_apply=modified,
        history=status.history(),
        commands=runner.commands,
    )


if __name__ == "__main__":
    main()
