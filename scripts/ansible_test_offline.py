# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lets `ansible-test sanity` build its virtualenvs without reaching the host its pip bootstrap comes from.

ansible-test looks for ~/.ansible/test/cache/get_pip_<version>.py before downloading it; we place a stand-in
there that bootstraps pip with ensurepip and then installs what ansible-test asked for from the package index.
"""

from __future__ import annotations

import os
import pathlib
import re

import ansible_test

STAND_IN = '''\
"""Stand-in for get-pip.py written by safedeploy.migrations: ensurepip, then pip install the arguments."""
import os
import subprocess
import sys

# ensurepip sets PIP_CONFIG_FILE=/dev/null in its own process, which would drop this machine's index and CA settings
environment = dict(os.environ)
import ensurepip  # noqa: E402

ensurepip.bootstrap(upgrade=True)
arguments = [argument for argument in sys.argv[1:] if argument not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + arguments, env=environment)
'''


def pip_version() -> str:
    source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    if not match:
        raise SystemExit("ansible_test_offline: cannot find the pip version ansible-test bootstraps")
    return match.group(1)


def main() -> None:
    cache = pathlib.Path(os.path.expanduser("~/.ansible/test/cache"))
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / ("get_pip_%s.py" % pip_version().replace(".", "_"))
    if not target.exists() or target.read_text() != STAND_IN:
        target.write_text(STAND_IN)


if __name__ == "__main__":
    main()
