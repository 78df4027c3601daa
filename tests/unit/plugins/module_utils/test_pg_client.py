# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import (
    SERVICE_NAME,
    PgClient,
    service_file_problem,
    service_file_text,
)

# stands in for pg_dump: prints its argv, the secrets of its environment and the service file it was handed
FAKE_TOOL = """#!%s
import json, os, sys
service_file = os.environ.get("PGSERVICEFILE")
print(json.dumps({
    "argv": sys.argv,
    "password": os.environ.get("PGPASSWORD"),
    "service": os.environ.get("PGSERVICE"),
    "service_file": open(service_file).read() if service_file else None,
    "service_file_mode": oct(os.stat(service_file).st_mode & 0o777) if service_file else None,
}))
"""


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, **params):
        self.params = dict(
            login_user="erpmax",
            login_password="login-secret",
            login_host="db.internal",
            login_unix_socket="",
            login_port=5432,
            login_db="erp",
            ssl_mode="prefer",
            ca_cert=None,
            connect_params={},
        )
        self.params.update(params)

    def fail_json(self, msg, **_kwargs):
        raise Failed(msg)

    def get_bin_path(self, tool):
        return "/usr/bin/" + tool


@pytest.fixture
def fake_bin(tmp_path):
    tool = tmp_path / "pg_dump"
    tool.write_text(FAKE_TOOL % sys.executable)
    tool.chmod(0o755)
    return str(tmp_path)


def test_sslpassword_reaches_the_tool_in_a_private_service_file_never_in_argv(fake_bin, monkeypatch):
    monkeypatch.delenv("PGSERVICE", raising=False)
    module = FakeModule(connect_params={"sslpassword": "key passphrase", "sslkey": "/etc/app.key"})
    client = PgClient(module, bin_dir=fake_bin)
    seen = json.loads(client.run("dump", "pg_dump", ["--dbname", client.conninfo("erp")]))
    assert seen["password"] == "login-secret"
    assert seen["service"] == SERVICE_NAME
    assert seen["service_file"] == "[safedeploy]\nsslpassword=key passphrase\n"
    assert seen["service_file_mode"] == oct(stat.S_IRUSR | stat.S_IWUSR)
    assert "sslkey=/etc/app.key" in seen["argv"][-1]
    for text in (json.dumps(seen["argv"]), json.dumps(client.commands)):
        assert "key passphrase" not in text and "login-secret" not in text


def test_password_of_connect_params_reaches_the_tool(fake_bin):
    module = FakeModule(login_password=None, connect_params={"password": "params-secret"})
    client = PgClient(module, bin_dir=fake_bin)
    seen = json.loads(client.run("dump", "pg_dump", ["--dbname", client.conninfo("erp")]))
    assert seen["password"] == "params-secret" and seen["service_file"] is None
    assert "params-secret" not in json.dumps(client.commands)


def test_in_a_container_the_password_is_named_not_given():
    client = PgClient(FakeModule(connect_params={"password": "params-secret"}), container="erp-postgres-1")
    argv = client.tool_argv("pg_dump", ["--dbname", client.conninfo("erp")])
    assert argv[:5] == ["/usr/bin/docker", "exec", "-e", "PGPASSWORD", "erp-postgres-1"]
    assert "secret" not in json.dumps(argv)


def test_in_a_container_an_sslpassword_is_refused_naming_it():
    client = PgClient(FakeModule(connect_params={"sslpassword": "key passphrase"}), container="erp-postgres-1")
    with pytest.raises(Failed, match="connect_params sslpassword cannot reach the client tools in container") as exc:
        client.tool_argv("pg_dump", [])
    assert "key passphrase" not in str(exc.value)


@pytest.mark.parametrize(
    "secrets, container, service, problem",
    [
        ({"sslpassword": "s3cr3t"}, None, None, None),
        ({"sslpassword": " leading blank kept by libpq"}, None, None, None),
        (
            {"sslpassword": "s3cr3t"},
            "db",
            None,
            "connect_params sslpassword cannot reach the client tools in container db",
        ),
        ({"sslpassword": "s3cr3t"}, None, "erp", "so the libpq service erp"),
        ({"sslpassword": "two\nlines"}, None, None, "connect_params sslpassword cannot be handed to the client tools"),
        ({"sslpassword": "s3cr3t "}, None, None, "no trailing white space"),
        ({"sslpassword": "x" * 988}, None, None, None),
        ({"sslpassword": "x" * 989}, None, None, "at most 1000 characters"),
        ({"oauth_client_secret": "0auth", "sslpassword": "s3cr3t"}, "db", None, "oauth_client_secret, sslpassword"),
    ],
)
def test_service_file_problem(secrets, container, service, problem):
    found = service_file_problem(secrets, container, service)
    assert found is None if problem is None else problem in found
    for value in secrets.values():
        assert found is None or value.strip() not in found


def test_service_file_text():
    assert service_file_text({"sslpassword": "a=b #c", "oauth_client_secret": "o"}) == (
        "[safedeploy]\noauth_client_secret=o\nsslpassword=a=b #c\n"
    )


def test_the_service_file_is_gone_when_the_module_exits(fake_bin, tmp_path):
    # a module exits through sys.exit (exit_json / fail_json); atexit then removes the file
    script = (
        "import json, sys\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.safedeploy.migrations.plugins.module_utils._pg_client import PgClient\n"
        "from test_pg_client import FakeModule\n"
        "client = PgClient(FakeModule(connect_params={'sslpassword': 'p'}), bin_dir=%r)\n"
        "print(json.dumps(client.environment()['PGSERVICEFILE']))\n"
        "sys.exit(0)\n"
    ) % (sys.path + [os.path.dirname(__file__)], fake_bin)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert not os.path.exists(json.loads(result.stdout))
