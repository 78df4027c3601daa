# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PgBouncer instances for tests, one per pool mode, in front of the ephemeral cluster of pg_cluster.py.

The cluster is named by PGHOST, PGPORT, PGUSER and PGPASSWORD. `start` stops whatever instance an earlier
run left in the state directory, starts one PgBouncer per pool mode on a free loopback port with scram-sha-256
client authentication, and prints their ports as JSON. `stop` ends them and removes the state directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time

# the cluster harness of the setup_postgresql target already knows how to pick ports and drop root
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "setup_postgresql", "files"))
from pg_cluster import free_port, run_as_server, server_account  # noqa: E402  # pylint: disable=wrong-import-position

DEFAULT_STATE_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "safedeploy-test-pgbouncer")
POOL_MODES = ("transaction", "session")
WAIT_SECONDS = 15

CONFIG = """\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {directory}/userlist.txt
pool_mode = {pool_mode}
; two server connections or more, so a client can be handed another backend than last time
default_pool_size = 4
min_pool_size = 0
max_client_conn = 50
; LIFO reuse of server connections, the default, spelled out because the pooler detection relies on it
server_round_robin = 0
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if not found:
        sys.exit("pgbouncer_pools: no pgbouncer binary found (install the pgbouncer package)")
    return found


def upstream() -> dict:
    missing = [name for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD") if not os.environ.get(name)]
    if missing:
        sys.exit("pgbouncer_pools: %s must name the cluster" % ", ".join(missing))
    return {name: os.environ[name] for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD")}


def is_pgbouncer(pid: int) -> bool:
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip() == "pgbouncer"
    except OSError:
        return False


def read_pid(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, "pgbouncer.pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def write_private(path: str, text: str, account) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    if account:
        os.chown(path, account.pw_uid, account.pw_gid)


def wait_for_port(port: int, directory: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    log = ""
    if os.path.exists(os.path.join(directory, "pgbouncer.log")):
        with open(os.path.join(directory, "pgbouncer.log")) as handle:
            log = handle.read()
    sys.exit("pgbouncer_pools: PgBouncer did not listen on 127.0.0.1:%d within %d s: %s" % (port, WAIT_SECONDS, log))


def start_instance(state_dir: str, pool_mode: str, cluster: dict, account) -> dict:
    directory = os.path.join(state_dir, pool_mode)
    os.mkdir(directory, 0o700)
    if account:
        os.chown(directory, account.pw_uid, account.pw_gid)
    port = free_port()
    config = CONFIG.format(
        upstream_host=cluster["PGHOST"],
        upstream_port=cluster["PGPORT"],
        port=port,
        directory=directory,
        pool_mode=pool_mode,
    )
    write_private(os.path.join(directory, "pgbouncer.ini"), config, account)
    password = cluster["PGPASSWORD"].replace('"', '""')
    write_private(os.path.join(directory, "userlist.txt"), '"%s" "%s"\n' % (cluster["PGUSER"], password), account)

    result = run_as_server([pgbouncer_binary(), "-d", "-q", os.path.join(directory, "pgbouncer.ini")], account)
    if result.returncode != 0:
        sys.exit(
            "pgbouncer_pools: pgbouncer (%s) failed (rc=%s): %s%s"
            % (pool_mode, result.returncode, result.stdout, result.stderr)
        )
    wait_for_port(port, directory)
    return {"host": "127.0.0.1", "port": port, "pool_mode": pool_mode, "pid": read_pid(directory)}


def start(state_dir: str) -> dict:
    cluster = upstream()
    stop(state_dir)
    account = server_account()
    os.makedirs(state_dir, mode=0o700)
    if account:
        os.chown(state_dir, account.pw_uid, account.pw_gid)
    info = {mode: start_instance(state_dir, mode, cluster, account) for mode in POOL_MODES}
    info["state_dir"] = state_dir
    return info


def stop_instance(directory: str) -> None:
    pid = read_pid(directory)
    if pid is None or not is_pgbouncer(pid):
        return
    # SIGTERM is PgBouncer's immediate shutdown; SIGINT would wait for clients
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + WAIT_SECONDS
    while is_pgbouncer(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_pgbouncer(pid):
        os.kill(pid, signal.SIGKILL)


def stop(state_dir: str) -> None:
    for mode in POOL_MODES:
        stop_instance(os.path.join(state_dir, mode))
    shutil.rmtree(state_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state-dir", default=os.environ.get("SAFEDEPLOY_TEST_PGBOUNCER_DIR", DEFAULT_STATE_DIR))
    args = parser.parse_args()
    if args.action == "start":
        print(json.dumps(start(args.state_dir)))
    else:
        stop(args.state_dir)


if __name__ == "__main__":
    main()
