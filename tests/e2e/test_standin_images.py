# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nginx stand-in (scripts/build_images.sh) behaves like the official image where compose files rely on it."""

from __future__ import annotations

import time
import urllib.request

import pytest
from compose_stack import docker, docker_works, free_port

NGINX = "nginx:stable-bookworm"


def test_nginx_standin_serves_its_default_page_and_a_mounted_config(tmp_path):
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    config = tmp_path / "default.conf"
    config.write_text("server { listen 80; location /ping { return 200 'pong'; } }\n")
    port = free_port()
    mount = "%s:/etc/nginx/conf.d/default.conf:ro" % config
    container = docker("run", "-d", "--rm", "-p", "127.0.0.1:%d:80" % port, "-v", mount, NGINX).strip()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/ping" % port, timeout=2) as response:
                    assert (response.status, response.read()) == (200, b"pong")
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "GET /ping" in docker("logs", container)  # the access log goes to the container's stdout
    finally:
        docker("rm", "--force", container, check=False)
