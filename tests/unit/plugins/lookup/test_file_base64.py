# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.safedeploy.migrations.plugins.lookup.file_base64 import LookupModule

SECRET = VaultSecret(b"vault password of the test")


def lookup(*terms, variables=None) -> list:
    loader = DataLoader()
    loader.set_vault_secrets([("default", SECRET)])
    return LookupModule(loader=loader).run(list(terms), variables={} if variables is None else variables)


@pytest.mark.parametrize(
    "content",
    [
        b"server { listen 80; }\n",
        # latin-1 text, and bytes that are no text at all
        "caf\u00e9\n".encode("latin-1"),
        b"\xff\xfe\x00\x01\x80binary",
        b"",
        # trailing whitespace is kept, unlike ansible.builtin.file's default rstrip
        b"kept \n\n",
    ],
)
def test_a_file_comes_back_byte_for_byte(tmp_path, content):
    path = tmp_path / "extra"
    path.write_bytes(content)
    assert [base64.b64decode(value) for value in lookup(str(path))] == [content]


def test_a_vault_encrypted_file_comes_back_decrypted(tmp_path):
    content = b"\x00secret key bytes\xff"
    path = tmp_path / "key.der"
    path.write_bytes(VaultLib([("default", SECRET)]).encrypt(content))
    assert base64.b64decode(lookup(str(path))[0]) == content


def test_a_relative_file_is_found_in_the_search_path(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "edge.conf").write_bytes(b"edge\n")
    found = lookup("edge.conf", variables={"ansible_search_path": [str(tmp_path)]})
    assert base64.b64decode(found[0]) == b"edge\n"


def test_each_term_is_one_value_in_order(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    assert lookup(str(tmp_path / "b"), str(tmp_path / "a")) == ["Yg==", "YQ=="]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(AnsibleError, match="file_base64: .*/missing.conf: no such file on the controller"):
        lookup(str(tmp_path / "missing.conf"))


def test_a_directory_is_named(tmp_path):
    with pytest.raises(AnsibleError, match="file_base64: .*: "):
        lookup(str(tmp_path))


def test_a_vault_encrypted_file_without_its_password_is_named(tmp_path):
    path = tmp_path / "key.der"
    path.write_bytes(VaultLib([("default", VaultSecret(b"another password"))]).encrypt(b"x"))
    with pytest.raises(AnsibleError, match="file_base64: .*key.der: .*[Dd]ecrypt"):
        lookup(str(path))
