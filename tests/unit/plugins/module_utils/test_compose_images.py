# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_images_info's pure parts: the compose call, compose's refusal as a sentence, the services' images without
their environment, and docker's answer for each image."""

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._compose_images import (
    ComposeError,
    config_argv,
    inspected,
    service_images,
    unreadable_message,
    wanted_images,
)

CONFIG = {
    "name": "shop",
    "services": {
        "app": {"image": "shop:1.2.0", "environment": {"SECRET_KEY": "s3cret"}},
        "worker": {"image": "shop:1.2.0"},
        "cache": {"image": "redis:7"},
        "builder": {"build": {"context": "."}},
        "empty": None,
    },
}


@pytest.mark.parametrize(
    "name, files, env_files, expected",
    [
        (
            "shop",
            ["docker-compose.prod.yml", "compose.safedeploy.yml"],
            ["/srv/shop/.env"],
            [
                "--env-file",
                "/srv/shop/.env",
                "-f",
                "/srv/shop/docker-compose.prod.yml",
                "-f",
                "/srv/shop/compose.safedeploy.yml",
            ],
        ),
        (None, ["/etc/shop/compose.yml"], [], ["-f", "/etc/shop/compose.yml"]),
        (None, [], [], []),
    ],
)
def test_the_compose_call_names_the_project_its_env_files_and_its_files_in_order(name, files, env_files, expected):
    argv = config_argv("/usr/bin/docker", "/srv/shop/", name, files, env_files)
    project = ["-p", name] if name else []
    assert argv == ["/usr/bin/docker", "compose", "--project-directory", "/srv/shop/"] + project + expected + [
        "config",
        "--format",
        "json",
    ]


@pytest.mark.parametrize(
    "stderr, expected",
    [
        ("yaml: line 1: did not find expected ','\n", "(a.yml, /s/.env): yaml: line 1: did not find expected ','"),
        ("", "(a.yml, /s/.env): no reason given"),
        ("services.app.image !reset: unknown tag", "which needs Compose v2.24 or newer"),
        ("x" * 1000, "x" * 597 + "..."),
    ],
)
def test_compose_refusing_the_files_is_one_sentence(stderr, expected):
    message = unreadable_message("/s", ["a.yml"], ["/s/.env"], stderr)
    assert message.startswith("docker compose cannot read the files in /s (") and expected in message
    assert "\n" not in message and len(message) < 800


def test_only_the_services_images_leave_the_config():
    images = service_images(CONFIG)
    assert images == {"app": "shop:1.2.0", "builder": "", "cache": "redis:7", "empty": "", "worker": "shop:1.2.0"}
    assert "s3cret" not in repr(images)
    assert wanted_images(images) == ["redis:7", "shop:1.2.0"]


@pytest.mark.parametrize("config", [None, {}, {"services": []}, "services"])
def test_a_config_without_services_is_refused(config):
    with pytest.raises(ComposeError, match="returned no services"):
        service_images(config)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ((0, "sha256:abc\n", ""), "sha256:abc"),
        ((1, "", "Error: No such image: shop:1.2.0\n"), None),
        ((1, "", "Error response from daemon: no such image: shop:1.2.0: No such image\n"), None),
    ],
)
def test_dockers_answer_for_an_image(answer, expected):
    assert inspected("shop:1.2.0", *answer) == expected


@pytest.mark.parametrize(
    "answer, named",
    [
        ((1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"), "Cannot connect"),
        ((1, "", "permission denied while trying to connect\n"), "permission denied"),
        ((0, "", ""), "rc 0, no output"),
        ((125, "", ""), "rc 125, no output"),
    ],
)
def test_any_other_answer_fails_and_names_the_image(answer, named):
    with pytest.raises(ComposeError, match='the image "shop:1.2.0": .*' + named):
        inspected("shop:1.2.0", *answer)
