# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: file_base64
author: safedeploy.migrations maintainers (@safedeploy)
short_description: The bytes of files on the controller, base64-encoded
version_added: 0.1.0
description:
  - Finds each file as P(ansible.builtin.file#lookup) does (the role's and the play's C(files) search path, or an
    absolute path), decrypts a vault-encrypted one, and returns its bytes base64-encoded without decoding them as text.
  - A file in any encoding, or no text at all, reaches a module such as M(safedeploy.migrations.stack_files)
    (C(encoding=base64)) byte for byte, where P(ansible.builtin.file#lookup) accepts UTF-8 only (ansible-core 2.19
    escapes other bytes with a deprecation warning; 2.23 refuses them).
options:
  _terms:
    description: The files.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: Write a team's extra file, whatever its bytes
  safedeploy.migrations.stack_files:
    path: /srv/shop
    files:
      - name: edge/favicon.ico
        content: "{{ lookup('safedeploy.migrations.file_base64', 'favicon.ico') }}"
        encoding: base64
"""

RETURN = r"""
_raw:
  description: The base64 of each file's bytes, in the order of the terms.
  type: list
  elements: str
"""

import base64

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [base64.b64encode(self.file_bytes(term, variables)).decode("ascii") for term in terms]

    def file_bytes(self, term, variables) -> bytes:
        path = self.find_file_in_search_path(variables, "files", term, ignore_missing=True)
        if not path:
            raise AnsibleError("file_base64: %s: no such file on the controller" % term)
        try:
            # a vault-encrypted file is decrypted into a temporary file of the loader's
            real = self._loader.get_real_file(path, decrypt=True)
        except AnsibleError as error:
            raise AnsibleError("file_base64: %s: %s" % (term, error.message)) from None
        try:
            with open(real, "rb") as handle:
                return handle.read()
        except OSError as error:
            raise AnsibleError("file_base64: %s: %s" % (term, error.strerror or error)) from None
        finally:
            self._loader.cleanup_tmp_file(real)
