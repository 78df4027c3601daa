# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A compose stack's services and images as `docker compose config` resolves them, and what the roles need of them.
Pure functions; plugins/modules/compose_images_info.py runs docker, plugins/filter/compose.py offers the same to
templates."""

from __future__ import annotations

import json
import re

# compose's own rule for service names
SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
ROLES = ("database", "migration", "app", "workers")
# docker's answer for an image the host does not have, whatever its version's wording around it
NO_SUCH_IMAGE = re.compile(r"no such image", re.IGNORECASE)


class ComposeError(ValueError):
    """A sentence about the stack's files or services."""


def named_services(services: dict) -> dict:
    """stack_services checked and flattened: role -> list of names."""
    if not isinstance(services, dict):
        raise ComposeError("stack_services must be a dict with database, migration, app and workers")
    unknown = sorted(set(services) - set(ROLES))
    if unknown:
        known = ", ".join(ROLES)
        raise ComposeError("stack_services: unknown key(s) %s; known: %s" % (", ".join(unknown), known))
    named = {}
    for role in ROLES:
        value = services.get(role)
        names = value if isinstance(value, list) else [] if value in (None, "") else [value]
        for name in names:
            if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
                problem = "%s is not a compose service name" % json.dumps(name)
                raise ComposeError("stack_services.%s: %s" % (role, problem))
        named[role] = names
    for role in ("migration", "app"):
        if len(named[role]) == 0:
            raise ComposeError("stack_services.%s must name a service" % role)
    if len(named["migration"]) > 1 or len(named["database"]) > 1:
        raise ComposeError("stack_services.database and stack_services.migration name one service each")
    return named


KEPT_UP_RESTART = ("always", "unless-stopped")


def compose_shape(config, services, database: bool = True, proxy: str = "") -> dict:
    """The stack as `docker compose config --format json` resolved it, reduced to what the roles need.

    Environments are left out: the resolved config holds the app's secrets. Fails with a sentence when a service
    that stack_services (or a team's proxy) names is not in the compose files.
    """
    if not isinstance(config, dict) or not isinstance(config.get("services"), dict):
        raise ComposeError("compose_shape: expects the output of `docker compose config --format json`")
    named = named_services(services)
    defined = config["services"]
    wanted = named["migration"] + named["app"] + named["workers"] + (named["database"] if database else [])
    wanted += [proxy] if proxy not in ("", "none", "safedeploy") else []
    missing = [name for name in wanted if name not in defined]
    if missing:
        raise ComposeError(
            "the compose files define no service %s (stack_services, stack_proxy); they define: %s"
            % (", ".join(missing), ", ".join(sorted(defined)))
        )
    release = named["app"] + named["workers"]
    others = sorted(set(defined) - set(release) - set(named["migration"]) - set(named["database"]))
    return {
        "services": sorted(defined),
        "images": {name: (defined[name] or {}).get("image", "") for name in sorted(defined)},
        # the services a deploy never stops: what the team's file runs beside the app (redis, exporters, a proxy)
        "others": others,
        # those compose restarts whenever they stop (not one-shot jobs): one found stopped was stopped by someone
        "kept_up": [name for name in others if (defined[name] or {}).get("restart") in KEPT_UP_RESTART],
        "release_services": release,
        "release_images": sorted({(defined[name] or {}).get("image", "") for name in release + named["migration"]}),
    }


def config_argv(docker: str, project_src: str, project_name: str | None, files: list, env_files: list) -> list:
    """`docker compose config --format json` of the project, as the roles' compose calls name its files."""
    argv = [docker, "compose", "--project-directory", project_src]
    argv += ["-p", project_name] if project_name else []
    for env_file in env_files:
        argv += ["--env-file", env_file]
    for name in files:
        argv += ["-f", name if name.startswith("/") else project_src.rstrip("/") + "/" + name]
    return argv + ["config", "--format", "json"]


def unreadable_message(project_src: str, files: list, env_files: list, stderr: str) -> str:
    """Why compose cannot read the files, with a hint for the one cause an old compose has."""
    said = re.sub(r"\s+", " ", stderr).strip()
    said = said if len(said) <= 600 else said[:597] + "..."
    hint = " (the files use !reset, which needs Compose v2.24 or newer)" if "reset" in stderr else ""
    return "docker compose cannot read the files in %s (%s): %s%s" % (
        project_src,
        ", ".join(list(files) + list(env_files)),
        said or "no reason given",
        hint,
    )


def service_images(config) -> dict:
    """service -> the image it runs ('' for one that only builds); nothing of the environments, which hold secrets."""
    if not isinstance(config, dict) or not isinstance(config.get("services"), dict):
        raise ComposeError("docker compose config returned no services")
    return {name: (service or {}).get("image", "") or "" for name, service in sorted(config["services"].items())}


def wanted_images(images: dict) -> list:
    """The images to look for on the host: each named once, none for a service without one."""
    return sorted({image for image in images.values() if image})


def inspected(image: str, rc: int, stdout: str, stderr: str) -> str | None:
    """The image id `docker image inspect --format {{.Id}}` printed, None when the host has no such image; any other
    failure (docker down, no permission) is an error that names the image."""
    if rc == 0 and stdout.strip():
        return stdout.strip().splitlines()[0]
    if NO_SUCH_IMAGE.search(stderr):
        return None
    raise ComposeError(
        "docker cannot inspect the image %s: %s" % (json.dumps(image), stderr.strip() or "rc %d, no output" % rc)
    )
