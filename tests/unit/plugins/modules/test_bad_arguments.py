# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module against bad values for each of its options: a clear error, no secret in the output, nothing left.

The cases are generated from the argument spec each module's main() builds: for every option (and sub-option) the
values that its type should refuse or that a careless module would mishandle (wrong types, empty, 100 kB, path
traversal, an injected newline, `$` expansions, negative and zero numbers, unknown choices), one value at a time on
top of a valid minimal set of arguments. The database is 127.0.0.1 on a port where nothing listens and the runner a
command that does not exist, so a run that gets past validation fails quickly on the connection or the command.
Each module runs as `python -m` would run it (forked_module_runner.py), in a sandbox that is its cwd, HOME and
TMPDIR, and must print one JSON result and leave the sandbox as it found it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "ansible_collections.safedeploy.migrations.plugins.modules"
MODULES = (
    "alembic_info",
    "alembic_migrate",
    "compose_images_info",
    "deploy_finish",
    "deploy_ledger",
    "deploy_ledger_info",
    "deploy_lock",
    "deploy_restore",
    "deploy_start",
    "migration_plan_info",
    "pg_backup",
    "pg_lock_info",
    "pg_preflight",
    "pg_restore",
    "stack_files",
)
# modules that talk to docker or the file system, not to PostgreSQL: no login options
WITHOUT_DATABASE = ("compose_images_info", "stack_files")
RUNNER = Path(__file__).with_name("forked_module_runner.py")
WORKERS = 2
CASE_TIMEOUT = 30.0

LOGIN_PASSWORD = "fuzz-login-password-7Q2x"
URL_SECRET = "fuzz-url-secret-9K4m"
HUGE = "A" * 100_000
NEWLINE = "x\nprivileged: true"
BACKUP_NAME = "erp_20250102T030405000000Z.dump"
A_LIST = ["fuzz-list-a", "fuzz-list-b"]
A_DICT = {"fuzz-key": "fuzz-dict-value"}
TRAVERSAL = [("traversal", "../../etc/passwd"), ("absolute", "/etc/passwd")]
PATH_NAMES = ("dest", "src", "chdir", "runner")
PATH_SUFFIXES = ("_path", "_dir", "_location", "_cert")
# one value with secrets for the no_log dict options, under keys that each option documents as secret
SECRETS_DICT = {
    "password": "fuzz-dict-password-5Vn1",
    "sslpassword": "fuzz-dict-sslpassword-8Rt3",
    "API_TOKEN": "fuzz-dict-token-6Qw2",
    "DB": "postgresql://app:fuzz-dict-url-secret-1Zx9@db/erp",
    "RELEASE": "1.2.3",
}
# connect_params and runner_env are no_log but show their other entries (see their docs); any other no_log option is
# secret as a whole
LIBPQ_SECRET_KEYWORDS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
SECRET_ENV_NAME = re.compile(r"pass|secret|token|key|credential|auth|dsn|url|uri|cookie|private|cert", re.IGNORECASE)
SECRET_ENV_VALUE = re.compile(r"pass(word|wd)?\s*=|://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)
SECRET_ENTRY = {
    "connect_params": lambda key, value: key in LIBPQ_SECRET_KEYWORDS,
    "runner_env": lambda key, value: bool(SECRET_ENV_NAME.search(key) or SECRET_ENV_VALUE.search(str(value))),
}
# a sub-option is validated like a top-level one, so a few values per sub-option are enough
SUB_OPTION_LABELS = ("list", "string", "empty", "huge", "newline", "negative", "unknown-choice", "traversal")

BAD_VALUES = {
    "str": [
        ("list", A_LIST),
        ("dict", A_DICT),
        ("empty", ""),
        ("huge", HUGE),
        ("newline", NEWLINE),
        ("dollar-home", "$HOME"),
        ("dollar-brace", "${X}"),
    ],
    "path": [
        ("list", A_LIST),
        ("empty", ""),
        ("huge", HUGE),
        ("newline", NEWLINE),
        ("dollar-home", "$HOME/fuzz"),
        ("dollar-brace", "${X}/fuzz"),
    ],
    "int": [
        ("string", "abc"),
        ("list", [1]),
        ("dict", A_DICT),
        ("empty", ""),
        ("negative", -1),
        ("zero", 0),
        ("huge", 2**63),
    ],
    "float": [
        ("string", "abc"),
        ("list", [1]),
        ("empty", ""),
        ("negative", -1),
        ("zero", 0),
        ("nan", "nan"),
        ("infinite", "inf"),
        ("huge", 1e308),
    ],
    "bool": [
        ("string", "maybe"),
        ("list", A_LIST),
        ("dict", A_DICT),
        ("empty", ""),
        ("number", 2),
        ("dollar-home", "$HOME"),
    ],
    "list": [
        ("dict", A_DICT),
        ("empty", ""),
        ("empty-list", []),
        ("nested", [A_LIST]),
        ("huge", [HUGE]),
        ("newline", [NEWLINE]),
        ("dollar", ["$HOME", "${X}"]),
    ],
    "list-of-dicts": [
        ("string", "x"),
        ("not-dicts", A_LIST),
        ("empty-list", []),
        ("empty-dict", [{}]),
        ("unknown-keys", [A_DICT]),
        ("huge", [{"fuzz-key": HUGE}]),
        ("newline", [{NEWLINE: NEWLINE}]),
    ],
    "dict": [
        ("string", "notadict"),
        ("list", A_LIST),
        ("empty-key", {"": ""}),
        ("newline", {NEWLINE: NEWLINE}),
        ("dollar", {"HOME": "$HOME", "X": "${X}"}),
        ("huge", {"fuzz-key": HUGE}),
        ("nested", {"fuzz-key": {"a": [1]}}),
    ],
    "dict-with-options": [
        ("string", "notadict"),
        ("list", A_LIST),
        ("unknown-key", A_DICT),
    ],
}

# the text of an exception that escaped into msg, rather than a sentence about the operation
EXCEPTION_TEXT = re.compile(
    r"'NoneType' object|object has no attribute|not subscriptable|unsupported operand|not iterable"
    r"|\b(KeyError|AttributeError|TypeError|IndexError|NameError|UnboundLocalError|ZeroDivisionError)\b"
    r"|invalid literal for int\(\)|could not convert string to float|^'[^']*'$"
)


@dataclass(frozen=True)
class Case:
    module: str
    option: str
    label: str
    value: object = None
    no_log: bool = False
    kind: str = "str"
    spec_error: str = ""

    @property
    def id(self) -> str:
        return "%s-%s-%s" % (self.module, self.option, self.label)

    @property
    def leaf_option(self) -> str:
        return self.option.rpartition(".")[2]


class SpecCaptured(Exception):
    pass


def argument_spec(module_name: str) -> dict:
    """The argument_spec main() hands to AnsibleModule."""
    module = importlib.import_module("%s.%s" % (PACKAGE, module_name))

    def capture(**kwargs):
        raise SpecCaptured(kwargs["argument_spec"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "AnsibleModule", capture)
        # it reads the module's arguments, which this import has none of
        patch.setattr(module, "readable_argument_spec", lambda spec: spec, raising=False)
        try:
            module.main()
        except SpecCaptured as captured:
            return captured.args[0]
    raise AssertionError("%s.main() built no AnsibleModule" % module_name)


def is_path_like(name: str, option: dict) -> bool:
    return option.get("type") == "path" or name in PATH_NAMES or name.endswith(PATH_SUFFIXES)


def bad_values(name: str, option: dict) -> list[tuple[str, object]]:
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements") == "dict":
        kind = "list-of-dicts"
    elif kind == "dict" and option.get("options"):
        kind = "dict-with-options"
    values = list(BAD_VALUES[kind])
    if option.get("choices"):
        values.append(("unknown-choice", ["bogus-choice"] if kind == "list" else "bogus-choice"))
    if option.get("no_log") and kind == "dict":
        values.append(("secrets", SECRETS_DICT))
    if is_path_like(name, option):
        values += [(label, [value] if kind == "list" else value) for label, value in TRAVERSAL]
    return values


def module_cases(module_name: str) -> list[Case]:
    try:
        spec = argument_spec(module_name)
    except Exception as exc:  # a module that cannot even build its spec is one failing case, not a collection error
        return [Case(module_name, "argument_spec", "import", spec_error="%s: %s" % (type(exc).__name__, exc))]
    cases = []
    for name, option in spec.items():
        no_log, kind = bool(option.get("no_log")), option.get("type", "str")
        # Ansible expands each element of a list of paths as it expands a path
        kind = "path" if option.get("elements") == "path" else kind
        cases += [Case(module_name, name, label, value, no_log, kind) for label, value in bad_values(name, option)]
        for sub_name, sub_option in (option.get("options") or {}).items():
            sub_no_log, sub_kind = no_log or bool(sub_option.get("no_log")), sub_option.get("type", "str")
            cases += [
                Case(module_name, "%s.%s" % (name, sub_name), label, value, sub_no_log, sub_kind)
                for label, value in bad_values(sub_name, sub_option)
                if label in SUB_OPTION_LABELS
            ]
    return cases


CASES = {module_name: module_cases(module_name) for module_name in MODULES}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def base_arguments(module_name: str, work: Path, port: int) -> dict:
    """A valid minimal set of arguments for the module."""
    arguments = {
        "login_host": "127.0.0.1",
        "login_port": port,
        "login_user": "fuzz",
        "login_password": LOGIN_PASSWORD,
        "login_db": "erp",
    }
    if module_name in WITHOUT_DATABASE:
        arguments = {}
    if module_name in ("alembic_info", "alembic_migrate", "migration_plan_info"):
        arguments.update(
            runner=[str(work / "no-such-alembic"), "-c", "alembic.ini"],
            runner_secret_env={"DATABASE_URL": "postgresql://app:%s@127.0.0.1:%d/erp" % (URL_SECRET, port)},
            chdir=str(work),
        )
    arguments.update(
        {
            "deploy_finish": {"environment": "staging", "owner": "ci-run-1", "deploy_id": 7, "outcome": "failed"},
            "deploy_ledger": {"state": "started", "environment": "staging", "app_version_to": "1.2.3"},
            "deploy_lock": {"state": "acquired", "environment": "staging", "owner": "ci-run-1"},
            "deploy_restore": {
                "environment": "staging",
                "owner": "ci-run-1",
                "restore": {"src": str(work / BACKUP_NAME)},
            },
            "deploy_start": {
                "environment": "staging",
                "owner": "ci-run-1",
                "app_version_to": "1.2.3",
                "backup": {"dest": str(work / "backups")},
            },
            "pg_backup": {"dest": str(work / "backups")},
            "pg_preflight": {"relations": ["public.orders"]},
            "pg_restore": {"src": str(work / BACKUP_NAME)},
            # the compose file does not exist: a run past validation fails on it
            "compose_images_info": {"project_src": str(work), "files": ["compose.yml"]},
            # in check mode, so that a run past validation compares and writes nothing into the sandbox
            "stack_files": {
                "path": str(work / "stack"),
                "files": [{"name": "compose.yml", "content": "services: {}"}],
                "_ansible_check_mode": True,
            },
        }.get(module_name, {})
    )
    return arguments


def write_backup(work: Path) -> None:
    """A backup with a manifest that pg_restore verifies, so that its runs go on to the archive (not a real one)."""
    archive = b"PGDMP" + bytes(64)
    (work / BACKUP_NAME).write_bytes(archive)
    manifest = {
        "kind": "safedeploy.migrations.pg_backup",
        "version": 1,
        "name": BACKUP_NAME,
        "database": "erp",
        "format": "custom",
        "size": len(archive),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "files": {},
    }
    (work / (BACKUP_NAME + ".json")).write_text(json.dumps(manifest))


def with_bad_value(arguments: dict, case: Case) -> dict:
    option, _dot, sub_option = case.option.partition(".")
    arguments = dict(arguments)
    arguments[option] = {sub_option: case.value} if sub_option else case.value
    return arguments


def listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@dataclass
class Run:
    case: Case
    rc: int | None
    timed_out: bool
    stdout: str
    stderr: str
    left_behind: list[str]
    home: str


def prepare(case: Case, case_dir: Path, port: int) -> dict:
    sandbox = case_dir / "sandbox"
    # deep enough that ../../etc/passwd from the cwd stays inside the sandbox
    work = sandbox / "a" / "b" / "work"
    for directory in (sandbox / "home", sandbox / "tmp", sandbox / "remote_tmp", work / "backups"):
        directory.mkdir(parents=True)
    write_backup(work)
    arguments = with_bad_value(base_arguments(case.module, work, port), case)
    # as with pipelining: the module makes its own tmp dir under remote_tmp and removes it at exit
    arguments["_ansible_remote_tmp"] = str(sandbox / "remote_tmp")
    args_path = case_dir / "args.json"
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": arguments}))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(sandbox / "home"),
        "TMPDIR": str(sandbox / "tmp"),
        "LANG": "C.UTF-8",
        # the docker CLI's own config, not the module's doing
        "DOCKER_CONFIG": str(case_dir / "docker-config"),
    }
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return {
        "id": case.id,
        "args": str(args_path),
        "cwd": str(work),
        "env": env,
        "stdout": str(case_dir / "stdout"),
        "stderr": str(case_dir / "stderr"),
    }


def run_module_cases(module_name: str, root: Path, port: int) -> dict[str, Run]:
    cases = [case for case in CASES[module_name] if not case.spec_error]
    requests, before = [], {}
    for index, case in enumerate(cases):
        case_dir = root / str(index)
        requests.append(prepare(case, case_dir, port))
        before[case.id] = listing(case_dir / "sandbox")
    cases_path, results_path = root / "cases.json", root / "results.json"
    cases_path.write_text(json.dumps(requests))
    subprocess.run(
        [sys.executable, str(RUNNER), "%s.%s" % (PACKAGE, module_name), str(cases_path), str(results_path)]
        + [str(WORKERS), str(CASE_TIMEOUT)],
        check=True,
    )
    results = json.loads(results_path.read_text())
    runs = {}
    for index, case in enumerate(cases):
        case_dir = root / str(index)
        result = results[case.id]
        runs[case.id] = Run(
            case=case,
            rc=result["rc"],
            timed_out=result["timed_out"],
            stdout=(case_dir / "stdout").read_text(errors="replace"),
            stderr=(case_dir / "stderr").read_text(errors="replace"),
            left_behind=sorted(listing(case_dir / "sandbox") - before[case.id]),
            home=requests[index]["env"]["HOME"],
        )
        # the 100 kB values make the case directories 100 MB together; what a failure needs is in the Run
        shutil.rmtree(case_dir)
    return runs


@pytest.fixture(scope="session")
def module_runs(tmp_path_factory):
    port = free_port()
    runs: dict[str, dict[str, Run]] = {}

    def runs_of(module_name: str) -> dict[str, Run]:
        if module_name not in runs:
            runs[module_name] = run_module_cases(module_name, tmp_path_factory.mktemp(module_name), port)
        return runs[module_name]

    return runs_of


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(nothing)"


def secret_strings(case: Case) -> list[str]:
    secrets = [LOGIN_PASSWORD, URL_SECRET]
    if not case.no_log:
        return secrets
    is_secret = SECRET_ENTRY.get(case.option)
    if is_secret and isinstance(case.value, dict):
        stack = [value for key, value in case.value.items() if is_secret(key, value)]
    else:
        stack = [case.value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, str) and len(value.strip()) >= 4:
            secrets.append(value)
    return secrets


def bare_exception(msg: str, option: str) -> bool:
    return "Traceback" in msg or (bool(EXCEPTION_TEXT.search(msg)) and option not in msg)


def problems(run: Run) -> list[str]:
    case = run.case
    if run.timed_out:
        return ["no result within %ds" % CASE_TIMEOUT]
    found = []
    output = run.stdout + run.stderr
    for secret in secret_strings(case):
        if secret in output:
            where = "stdout" if secret in run.stdout else "stderr"
            found.append("secret %r in %s" % (secret[:40], where))
    # Ansible expands $HOME in a path option by design; anywhere else the value must reach its use as it was given
    if case.kind != "path" and "$HOME" in json.dumps(case.value) and run.home in output:
        found.append("$HOME expanded to %s" % run.home)
    if run.left_behind:
        found.append("left behind: %s" % ", ".join(run.left_behind[:5]))
    try:
        result = json.loads(run.stdout)
    except ValueError:
        return found + ["no JSON result (rc %s), stderr ends: %s" % (run.rc, last_line(run.stderr))]
    if "Traceback" in run.stderr:
        found.append("traceback on stderr: %s" % last_line(run.stderr))
    if not isinstance(result, dict):
        return found + ["stdout is JSON but not an object: %s" % last_line(run.stdout)]
    if "Traceback" in run.stdout:
        found.append("traceback in the result")
    failed = bool(result.get("failed"))
    if failed == (run.rc == 0):
        found.append("rc %s with failed=%s" % (run.rc, failed))
    if failed:
        msg = result.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            found.append("failed without a msg")
        elif bare_exception(msg, case.leaf_option):
            found.append("msg is an exception, not a sentence: %s" % msg[:300])
    return found


@pytest.mark.parametrize("case", [case for cases in CASES.values() for case in cases], ids=lambda case: case.id)
def test_bad_argument(case: Case, module_runs):
    assert not case.spec_error, "cannot read the argument spec: %s" % case.spec_error
    run = module_runs(case.module)[case.id]
    found = problems(run)
    assert not found, "%s=%s: %s" % (case.option, shortened_repr(case.value), "; ".join(found))


def shortened_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else "%s... (%d chars)" % (text[:20], len(text))
