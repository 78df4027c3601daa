#!/usr/bin/python
# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_images_info
short_description: The images a compose project's services run, and which of them the host has
version_added: 0.1.0
description:
  - Resolves the project's files as C(docker compose config) does (with O(env) given in place of the env files' values,
    for example the release to deploy), and looks up each image the services name on the host
    (C(docker image inspect)), in one module run. The stack role reads a release's images with it before it builds or
    pulls the missing ones with M(community.docker.docker_image).
  - The resolved configuration holds the app's environment, secrets included; only the services' names and images
    leave the module.
  - With O(services) (the stack role's C(stack_services)) it also returns the stack's shape
    (P(safedeploy.migrations.compose_shape#filter)), and fails with a sentence when a service named there is not in
    the files.
author: safedeploy.migrations maintainers (@safedeploy)
extends_documentation_fragment:
  - safedeploy.migrations._attributes
  - safedeploy.migrations._attributes.info_module
options:
  project_src:
    description: The project directory; relative O(files) are read from it.
    type: path
    required: true
  project_name:
    description: The compose project's name; compose's default (the directory's name) when not given.
    type: str
  files:
    description: The compose files, in the order compose merges them; compose's defaults when empty.
    type: list
    elements: str
    default: []
  env_files:
    description: The env files compose reads for interpolation.
    type: list
    elements: path
    default: []
  env:
    description: Variables compose sees in place of the env files' values, for example the release to deploy.
    type: dict
    default: {}
  services:
    description:
      - The stack's services by role, as the stack role's C(stack_services) (C(database), C(migration), C(app),
        C(workers)); returns RV(shape).
    type: dict
  database:
    description: Whether O(services)' database service must be in the files (the stack runs its own postgres).
    type: bool
    default: true
  proxy:
    description: A proxy service of the team's files that must be in them too (C(none) and C(safedeploy) name none).
    type: str
    default: ''
  fail_unreadable:
    description:
      - Fail when compose cannot read the files. With V(false) the module returns RV(resolved=false) and the reason in
        RV(unresolved) instead; the deploy's check mode does so, since it writes no files and those on the host may
        belong to another release.
    type: bool
    default: true
requirements:
  - The docker CLI with Compose v2 on the host.
"""

EXAMPLES = r"""
- name: Find the images of 1.2.0 and which the host has
  safedeploy.migrations.compose_images_info:
    project_src: /srv/shop
    project_name: shop
    files: [docker-compose.prod.yml]
    env_files: [/srv/shop/.env]
    env:
      APP_VERSION: 1.2.0
  register: shop_images

- name: Pull the images the host does not have
  community.docker.docker_image:
    name: "{{ item }}"
    source: pull
  loop: "{{ shop_images.missing }}"
"""

RETURN = r"""
resolved:
  description: Whether compose read the files; V(false) only with O(fail_unreadable=false).
  type: bool
  returned: always
  sample: true
unresolved:
  description: Why compose could not read the files, when RV(resolved) is V(false).
  type: str
  returned: when compose could not read the files
  sample: "docker compose cannot read the files in /srv/shop (docker-compose.prod.yml): service app has no image"
images:
  description: Each service of the files and the image it runs (an empty string for a service that only builds).
  type: dict
  returned: always
  sample: {"app": "shop:1.2.0", "postgres": "postgres:16", "worker": "shop:1.2.0"}
present:
  description: Each image of RV(images) the host has, and its id.
  type: dict
  returned: always
  sample: {"postgres:16": "sha256:4f1c..."}
missing:
  description: The images of RV(images) the host does not have, each once, sorted.
  type: list
  elements: str
  returned: always
  sample: ["shop:1.2.0"]
shape:
  description: The stack as P(safedeploy.migrations.compose_shape#filter) describes it.
  type: dict
  returned: when O(services) is given and compose read the files
  sample:
    services: [app, migration, postgres, worker]
    images: {"app": "shop:1.2.0", "migration": "shop:1.2.0", "postgres": "postgres:16", "worker": "shop:1.2.0"}
    others: []
    kept_up: []
    release_services: [app, worker]
    release_images: ["shop:1.2.0"]
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.safedeploy.migrations.plugins.module_utils._compose_images import (
    ComposeError,
    compose_shape,
    config_argv,
    inspected,
    service_images,
    unreadable_message,
    wanted_images,
)


def argument_spec() -> dict:
    return dict(
        project_src=dict(type="path", required=True),
        project_name=dict(type="str"),
        files=dict(type="list", elements="str", default=[]),
        env_files=dict(type="list", elements="path", default=[]),
        env=dict(type="dict", default={}),
        services=dict(type="dict"),
        database=dict(type="bool", default=True),
        proxy=dict(type="str", default=""),
        fail_unreadable=dict(type="bool", default=True),
    )


def resolved_config(module: AnsibleModule, docker: str) -> tuple[dict | None, str]:
    """(compose's resolved configuration, None) or (None, why compose cannot read the files)."""
    params = module.params
    argv = config_argv(docker, params["project_src"], params["project_name"], params["files"], params["env_files"])
    environ = {name: str(value) for name, value in params["env"].items()}
    # the files and names reach docker as given: run_command would expand a $VAR or ~ in them
    rc, stdout, stderr = module.run_command(
        argv, cwd=params["project_src"], environ_update=environ, expand_user_and_vars=False
    )
    if rc == 0:
        return json.loads(stdout), ""
    return None, unreadable_message(params["project_src"], params["files"], params["env_files"], stderr)


def images_on_host(module: AnsibleModule, docker: str, config: dict) -> dict:
    """The release's images, which of them the host has (by id) and which it lacks, and the stack's shape if asked."""
    params = module.params
    images = service_images(config)
    result = dict(changed=False, resolved=True, images=images, present={}, missing=[])
    if params["services"] is not None:
        result["shape"] = compose_shape(config, params["services"], database=params["database"], proxy=params["proxy"])
    for image in wanted_images(images):
        inspect = [docker, "image", "inspect", "--format", "{{.Id}}", image]
        image_id = inspected(image, *module.run_command(inspect, expand_user_and_vars=False))
        if image_id:
            result["present"][image] = image_id
        else:
            result["missing"].append(image)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    docker = module.get_bin_path("docker", required=True)
    config, unreadable = resolved_config(module, docker)
    if config is None and module.params["fail_unreadable"]:
        module.fail_json(msg=unreadable)
    if config is None:
        module.exit_json(changed=False, resolved=False, unresolved=unreadable, images={}, present={}, missing=[])
    try:
        module.exit_json(**images_on_host(module, docker, config))
    except ComposeError as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
