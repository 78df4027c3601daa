# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stack files' planning: which names and modes are refused, which files need a write, what --diff shows."""

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._stack_files import (
    directories_of,
    file_diff,
    mode_problem,
    name_problem,
    needs_write,
    wanted_files,
)


@pytest.mark.parametrize(
    "name, refused",
    [
        ("compose.yml", False),
        (".env", False),
        ("nginx/conf.d/default.conf", False),
        ("..env", False),
        ("", True),
        (None, True),
        ("/etc/passwd", True),
        ("../outside", True),
        ("nginx/../../outside", True),
        ("./compose.yml", True),
        ("nginx//default.conf", True),
        ("nginx/", True),
        ("a\0b", True),
    ],
)
def test_name_problem(name, refused):
    assert (name_problem(name) is not None) is refused


@pytest.mark.parametrize(
    "mode, refused",
    [
        ("0644", False),
        ("644", False),
        ("0600", False),
        ("0755", False),
        ("0648", True),
        ("rw-r--r--", True),
        ("00644", True),
        (644, True),
        ("", True),
        ("0644\n", True),
    ],
)
def test_mode_problem(mode, refused):
    assert (mode_problem(mode) is not None) is refused


def test_wanted_files_marks_secrets_and_parses_modes():
    wanted = wanted_files(
        [{"name": "compose.yml", "content": "services: {}\n", "mode": "0644"}],
        [{"name": ".env", "content": "PASSWORD=s3cret\n", "mode": "600"}],
    )
    assert wanted == [
        {"name": "compose.yml", "content": b"services: {}\n", "mode": 0o644, "secret": False},
        {"name": ".env", "content": b"PASSWORD=s3cret\n", "mode": 0o600, "secret": True},
    ]


def test_wanted_files_decodes_base64_and_refuses_bad_base64():
    wanted = wanted_files([{"name": "a.bin", "content": "/wA=", "mode": "0644", "encoding": "base64"}], [])
    assert wanted[0]["content"] == b"\xff\x00"
    with pytest.raises(ValueError, match='the content of "b.bin" is not base64'):
        wanted_files([{"name": "b.bin", "content": "x!", "mode": "0644", "encoding": "base64"}], [])


def test_wanted_files_names_every_problem_and_never_the_content():
    with pytest.raises(ValueError) as error:
        wanted_files(
            [
                {"name": "../x", "content": "a", "mode": "0644"},
                {"name": "ok", "content": "b", "mode": "9"},
                {"name": ".env", "content": "c", "mode": "0644"},
            ],
            [{"name": ".env", "content": "PASSWORD=s3cret", "mode": "0600"}],
        )
    message = str(error.value)
    assert '"../x" must be a relative path' in message
    assert 'mode "9" must be octal' in message
    assert '".env" is named twice' in message
    assert "s3cret" not in message


WANT = {"name": "compose.yml", "content": b"a\n", "mode": 0o644, "secret": False}


@pytest.mark.parametrize(
    "have, write",
    [
        (None, True),
        ({"content": b"a\n", "mode": 0o644}, False),
        ({"content": b"b\n", "mode": 0o644}, True),
        ({"content": b"a\n", "mode": 0o600}, True),
        ({"content": b"a", "mode": 0o644}, True),
    ],
)
def test_needs_write(have, write):
    assert needs_write(WANT, have) is write


@pytest.mark.parametrize(
    "names, directories",
    [
        ([], []),
        (["compose.yml", ".env"], []),
        (["nginx/conf.d/default.conf", "nginx/nginx.conf", "init/01.sql"], ["init", "nginx", "nginx/conf.d"]),
    ],
)
def test_directories_of_lists_parents_first(names, directories):
    assert directories_of(names) == directories


@pytest.mark.parametrize(
    "want, have, shown",
    [
        (WANT, None, ("/srv/shop/compose.yml (absent)", "", "/srv/shop/compose.yml (mode 0644)", "a\n")),
        (
            WANT,
            {"content": b"b\n", "mode": 0o600},
            ("/srv/shop/compose.yml (mode 0600)", "b\n", "/srv/shop/compose.yml (mode 0644)", "a\n"),
        ),
        (
            WANT,
            {"content": b"\xff\x00", "mode": 0o644},
            (
                "/srv/shop/compose.yml (mode 0644)",
                "(2 bytes that are not UTF-8 text)\n",
                "/srv/shop/compose.yml (mode 0644)",
                "a\n",
            ),
        ),
        (
            dict(WANT, name=".env", content=b"PASSWORD=new\n", mode=0o600, secret=True),
            {"content": b"PASSWORD=old\n", "mode": 0o600},
            (
                "/srv/shop/.env (mode 0600)",
                "(secret content)\n",
                "/srv/shop/.env (mode 0600)",
                "(secret content, changed)\n",
            ),
        ),
        (
            dict(WANT, name=".env", content=b"PASSWORD=same\n", mode=0o600, secret=True),
            {"content": b"PASSWORD=same\n", "mode": 0o644},
            ("/srv/shop/.env (mode 0644)", "(secret content)\n", "/srv/shop/.env (mode 0600)", "(secret content)\n"),
        ),
        (
            dict(WANT, name=".env", content=b"PASSWORD=new\n", mode=0o600, secret=True),
            None,
            ("/srv/shop/.env (absent)", "", "/srv/shop/.env (mode 0600)", "(secret content)\n"),
        ),
    ],
)
def test_file_diff(want, have, shown):
    diff = file_diff("/srv/shop", want, have)
    assert (diff["before_header"], diff["before"], diff["after_header"], diff["after"]) == shown
    assert "PASSWORD" not in repr(diff) or not want["secret"]
