#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Hold the deploy lock of an environment in the application database
version_added: 0.1.0
description:
  - One deploy at a time per environment, across controllers, AWX jobs and people. The lock is a row of
    O(state_schema)C(.deploy_locks) naming its O(owner), who holds it, the release and the phase; a session-level
    advisory lock would not outlive one module run, and a deploy spans many.
  - V(acquired) takes the lock, waiting up to O(wait) seconds while another deploy holds it. A holder silent for more
    than O(lease) seconds (no heartbeat) with none of its long steps connected to the database (the migration, a
    backup, a restore, a pre-flight) is dead, for example a killed C(ansible-playbook); its lock is taken over and
    returned as RV(taken_over), so the caller can close the holder's ledger entry.
  - V(held) is the heartbeat, with the current O(phase) and the ledger's O(deploy_id); it fails when the lock is no
    longer this owner's, since another deploy judged it dead and took over.
  - V(released) deletes the row if it is this owner's.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._state_schema
  - safedeploy.migrations._postgres
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.actiongroup_postgres
attributes:
  check_mode:
    support: full
    details: Reads the lock and writes nothing. V(acquired) does not wait and returns the other holder as RV(lock).
  diff_mode:
    support: none
options:
  state:
    description: Take, refresh or give back the lock.
    type: str
    required: true
    choices: [acquired, held, released]
  environment:
    description: The environment the lock is for, for example V(staging); not empty.
    type: str
    required: true
  owner:
    description:
      - An id unique to this deploy run, not empty; every state of one run passes the same. Required with
        O(state=held) and O(state=released).
      - V(acquired) without it names the run itself and returns the id as RV(owner), for the later calls.
    type: str
  holder:
    description: Who deploys, for the messages of the deploys that wait, for example V(awx job 12 by alice).
    type: str
  app_version:
    description: The release being deployed.
    type: str
  phase:
    description: What the deploy does now, for example V(backup), V(migration) or V(roll).
    type: str
  deploy_id:
    description: The ledger row of this deploy, once there is one, a positive id. With O(state=held).
    type: int
  wait:
    description: Seconds V(acquired) waits for another holder to finish before it fails naming it.
    type: int
    default: 0
  lease:
    description:
      - Seconds without a heartbeat after which a holder with no long step connected is dead. Longer than the
        longest gap between two heartbeats of a live deploy.
      - At least V(10). Every heartbeat is a task of its own, so a live deploy is silent for seconds between two
        even when it does nothing slow; a shorter lease lets a second deploy judge it dead and take its lock, and with
        V(0) two deploys that start together both acquire it.
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: Take the deploy lock of staging
  safedeploy.migrations.deploy_lock:
    state: acquired
    environment: staging
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}"
    app_version: 1.4.0
    phase: plan
    wait: 300
    login_db: shop
  register: lock

- name: Heartbeat before the migration
  safedeploy.migrations.deploy_lock:
    state: held
    environment: staging
    owner: "{{ lock.owner }}"
    phase: migration
    deploy_id: 42
    login_db: shop

- name: Give the lock back
  safedeploy.migrations.deploy_lock:
    state: released
    environment: staging
    owner: "{{ lock.owner }}"
    login_db: shop
"""

RETURN = r"""
owner:
  description: The id of this run, O(owner) or the one V(acquired) named it with; pass it to the later calls.
  type: str
  returned: always
  sample: 3f9c2a7b1d04e6a85c1f
acquired:
  description: Whether this owner holds the lock now. False in check mode.
  type: bool
  returned: always
  sample: true
lock:
  description: The lock row after the call; in check mode the row as it is, possibly another holder's; null if none.
  type: dict
  returned: always
  contains: &row
    environment: {description: The environment., type: str, returned: always, sample: staging}
    holder: {description: Who deploys., type: str, returned: always, sample: awx job 12 by alice}
    app_version: {description: The release being deployed., type: str, returned: always, sample: 1.4.0}
    deploy_id: {description: "The ledger row of the deploy, once known.", type: int, returned: always, sample: 42}
    phase: {description: The phase of the last heartbeat., type: str, returned: always, sample: migration}
    acquired_at:
      description: When it was taken, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2024-05-01T10:15:03.120000+00:00"
    heartbeat_at:
      description: The last heartbeat, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2024-05-01T10:16:00.500000+00:00"
    silent_seconds:
      description: Seconds since the last heartbeat, on the database server's clock.
      type: float
      returned: always
      sample: 2.5
waited_for:
  description: The other holder V(acquired) waited for (as last seen), or null when the lock was free.
  type: dict
  returned: always
  contains: *row
taken_over:
  description: The dead holder whose lock V(acquired) took over, or null.
  type: dict
  returned: always
  contains: *row
waited_seconds:
  description: Seconds V(acquired) waited.
  type: float
  returned: always
  sample: 12.4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock import (
    APPLICATION_NAME,
    new_owner,
    option_problems,
)
from ansible_collections.safedeploy.migrations.plugins.module_utils._deploy_lock_session import DeployLock
from ansible_collections.safedeploy.migrations.plugins.module_utils._no_log import show_public_values
from ansible_collections.safedeploy.migrations.plugins.module_utils._postgres import (
    connect,
    postgres_common_argument_spec,
)


def main() -> None:
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        state=dict(type="str", required=True, choices=["acquired", "held", "released"]),
        environment=dict(type="str", required=True),
        owner=dict(type="str"),
        holder=dict(type="str"),
        app_version=dict(type="str"),
        phase=dict(type="str"),
        deploy_id=dict(type="int"),
        wait=dict(type="int", default=0),
        lease=dict(type="int", default=600),
        state_schema=dict(type="str", default="safedeploy"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "held", ["owner"]), ("state", "released", ["owner"])],
        supports_check_mode=True,
    )
    show_public_values(module)
    if module.params["state"] == "acquired" and module.params["owner"] is None:
        module.params["owner"] = new_owner()
    problems = option_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    connection = connect(module, autocommit=False, application_name=APPLICATION_NAME)
    try:
        result = getattr(DeployLock(module, connection), module.params["state"])()
    finally:
        connection.close()
    module.exit_json(owner=module.params["owner"], **result)


if __name__ == "__main__":
    main()
