# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils import _query_redaction
from ansible_collections.safedeploy.migrations.plugins.module_utils._query_redaction import (
    HIDDEN_QUERY,
    redact_query,
)

R = "'<redacted>'"


@pytest.mark.parametrize(
    "query, redacted",
    [
        ("ALTER ROLE app PASSWORD 's3cret'", "ALTER ROLE app PASSWORD " + R),
        ("create role app login encrypted password 's3cret' valid until 'infinity'", None),
        ("CREATE USER app WITH PASSWORD E'it''s\\'s3cret'", "CREATE USER app WITH PASSWORD " + R),
        ("ALTER USER app PASSWORD $$s3cret$$", "ALTER USER app PASSWORD " + R),
        ("ALTER USER app PASSWORD $tag$s3cret'$$$tag$", "ALTER USER app PASSWORD " + R),
        ("ALTER USER app PASSWORD U&'s3cr\\0065t'", "ALTER USER app PASSWORD " + R),
        ("ALTER USER app PASSWORD N's3cret'", "ALTER USER app PASSWORD N" + R),
        ("ALTER ROLE \"Password\" PASSWORD 's3cret'", 'ALTER ROLE "Password" PASSWORD ' + R),
        ("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL"),
        (
            "CREATE USER MAPPING FOR app SERVER erp OPTIONS (user 'app', password 's3cret')",
            "CREATE USER MAPPING FOR app SERVER erp OPTIONS (user 'app', password " + R + ")",
        ),
        ("ALTER USER MAPPING FOR app SERVER erp OPTIONS (SET password 's3cret')", None),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=db user=app' PUBLICATION p", None),
        ("SELECT dblink_connect('dbname=erp user=app')", "SELECT dblink_connect(" + R + ")"),
        ("SELECT pgp_sym_encrypt(note, 's3cret'), upper('kept') FROM t", None),
        ("SELECT x.pgp_sym_decrypt(note, (SELECT 's3cret')) FROM t WHERE a = 'kept'", None),
        ("SELECT crypt('s3cret', gen_salt('bf'))", "SELECT crypt(" + R + ", gen_salt(" + R + "))"),
        ("SELECT set_config('app.key', 's3cret', false)", "SELECT set_config(" + R + ", " + R + ", false)"),
        ("SELECT * FROM t WHERE conninfo = 'host=db password=s3cret'", None),
        ("SELECT 'postgresql://app:s3cret@db/erp'", "SELECT " + R),
        ("SELECT pg_sleep(5) /* PASSWORD 's3cret' */", "SELECT pg_sleep(5) /* <redacted> */"),
        ("SELECT 1 -- the secret is s3cret", "SELECT 1 /* <redacted> */"),
        ("SELECT 1 /* route=/orders */", "SELECT 1 /* route=/orders */"),
        ("UPDATE orders SET status = 'paid' WHERE id = $1", "UPDATE orders SET status = 'paid' WHERE id = $1"),
        ("SELECT 'é', 'ü' FROM t WHERE password = 's3cret'", "SELECT 'é', 'ü' FROM t WHERE password = " + R),
        ("ALTER ROLE app PASSWORD 's3cr", HIDDEN_QUERY),
        ("SELECT 'unterminated", HIDDEN_QUERY),
        ("", ""),
        (None, None),
    ],
)
def test_redact_query(query, redacted):
    result = redact_query(query)
    if redacted is not None or query is None:
        assert result == redacted
    assert "s3cret" not in (result or "") and "s3cr" not in (result or "")
    # the literals that carry no secret stay, for whoever reads who blocks whom
    assert ("kept" in (result or "")) is ("kept" in (query or "") and result != HIDDEN_QUERY)


@pytest.mark.parametrize(
    "query, hidden",
    [("ALTER ROLE app PASSWORD 's3cret'", True), ("SELECT pgp_sym_encrypt(a, b)", True), ("SELECT 1", False)],
)
def test_without_pglast_a_hint_of_a_secret_hides_the_text(monkeypatch, query, hidden):
    monkeypatch.setattr(_query_redaction, "scan", None)
    assert (redact_query(query) == HIDDEN_QUERY) is hidden
