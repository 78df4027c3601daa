# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""One step of a module that does the work of several of the collection's modules in one run."""

from __future__ import annotations

TOOLS_CONNECTION = ("login_host", "login_port")


def client_tool_params(params: dict, options: dict) -> dict:
    """A client tool step's options (a composite's `backup` or `restore`) on top of the module's: the step's
    login_host and login_port, where set, are the server as the tools see it (inside the postgres container)."""
    step = {name: value for name, value in options.items() if name not in TOOLS_CONNECTION}
    tools = {name: options[name] for name in TOOLS_CONNECTION if options.get(name) is not None}
    return dict(params, **step, **tools)


class StepFailed(Exception):
    """A step that its composite module can survive failed; result is what it would have failed the module with."""

    def __init__(self, result: dict):
        super().__init__(result.get("msg"))
        self.result = result


class ModulePart:
    """What the collection's module classes (DeployLedger, DeployLock, BackupManager) need of their module, for one
    step of a composite module: the step's own options, and the module's check mode, diff, warnings and commands.

    A failure of the step fails the whole module with what the steps before it returned (`done`), so that a caller's
    rescue still sees, for example, the ledger entry a later step could not finish.
    """

    def __init__(self, module, params: dict, done: dict, raise_failure: bool = False):
        self._module = module
        self.params = params
        self.done = done
        # the composite module decides: for example a lock that cannot be given back after the outcome is recorded
        self.raise_failure = raise_failure

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def fail_json(self, **result) -> None:
        if self.raise_failure:
            raise StepFailed(result)
        # what the steps before wrote stays written, whatever this step says of its own work
        changed = bool(self.done.get("changed") or result.get("changed"))
        self._module.fail_json(**dict(self.done, **dict(result, changed=changed)))
