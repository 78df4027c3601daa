# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An ephemeral PostgreSQL cluster for tests: initdb into a directory, pg_ctl on a free loopback port.

Password authentication (scram-sha-256) everywhere, never trust. Used by the setup_postgresql integration
target and by pytest (tests/conftest.py). `start` is idempotent: it reuses a running cluster in the same
state directory and prints its connection details as JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys

DEFAULT_STATE_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "safedeploy-test-pg")
SERVER_USER = "postgres"


def bin_dir() -> str:
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return candidates[-1]
    found = shutil.which("pg_ctl")
    if not found:
        sys.exit("pg_cluster: no PostgreSQL server binaries found (install postgresql or set PG_BINDIR)")
    return os.path.dirname(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_account():
    """initdb refuses to run as root, so root runs the server as the postgres account."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", SERVER_USER], check=True)
        return pwd.getpwnam(SERVER_USER)


def run_as_server(argv: list[str], account) -> subprocess.CompletedProcess:
    def drop_privileges():
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)

    env = dict(os.environ, LC_ALL="C.UTF-8")
    if account:
        env["HOME"] = account.pw_dir
    return subprocess.run(
        argv, preexec_fn=drop_privileges if account else None, env=env, capture_output=True, text=True, check=False
    )


def must(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        sys.exit("pg_cluster: %s failed (rc=%s): %s%s" % (what, result.returncode, result.stdout, result.stderr))


def is_running(state_dir: str) -> bool:
    info_path = os.path.join(state_dir, "cluster.json")
    if not os.path.exists(info_path):
        return False
    result = run_as_server(
        [os.path.join(bin_dir(), "pg_ctl"), "status", "-D", os.path.join(state_dir, "data")], server_account()
    )
    return result.returncode == 0


def start(state_dir: str) -> dict:
    info_path = os.path.join(state_dir, "cluster.json")
    if is_running(state_dir):
        with open(info_path) as handle:
            return json.load(handle)
    stop(state_dir)
    account = server_account()
    os.makedirs(state_dir, mode=0o700)
    password = secrets.token_urlsafe(18)
    pwfile = os.path.join(state_dir, "pwfile")
    with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(password + "\n")
    socket_dir = os.path.join(state_dir, "socket")
    os.mkdir(socket_dir, 0o700)
    if account:
        for path in (state_dir, pwfile, socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
    data_dir = os.path.join(state_dir, "data")
    must(
        run_as_server(
            [
                os.path.join(bin_dir(), "initdb"),
                "-D",
                data_dir,
                "-U",
                "postgres",
                "--pwfile",
                pwfile,
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            account,
        ),
        "initdb",
    )
    os.unlink(pwfile)
    port = free_port()
    options = " ".join(
        [
            "-p %d" % port,
            "-k %s" % socket_dir,
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
    )
    must(
        run_as_server(
            [
                os.path.join(bin_dir(), "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                data_dir,
                "-l",
                os.path.join(state_dir, "server.log"),
                "-o",
                options,
            ],
            account,
        ),
        "pg_ctl start",
    )
    info = {
        "host": "127.0.0.1",
        "port": port,
        "user": "postgres",
        "password": password,
        "socket_dir": socket_dir,
        "data_dir": data_dir,
        "bin_dir": bin_dir(),
        "state_dir": state_dir,
    }
    with open(os.open(info_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        json.dump(info, handle)
    return info


def stop(state_dir: str) -> None:
    data_dir = os.path.join(state_dir, "data")
    if os.path.exists(os.path.join(data_dir, "postmaster.pid")):
        run_as_server([os.path.join(bin_dir(), "pg_ctl"), "stop", "-m", "immediate", "-D", data_dir], server_account())
    shutil.rmtree(state_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", default=os.environ.get("SAFEDEPLOY_TEST_PG_DIR", DEFAULT_STATE_DIR))
    args = parser.parse_args()
    if args.action == "start":
        print(json.dumps(start(args.state_dir)))
    elif args.action == "stop":
        stop(args.state_dir)
    else:
        sys.exit(0 if is_running(args.state_dir) else 1)


if __name__ == "__main__":
    main()
