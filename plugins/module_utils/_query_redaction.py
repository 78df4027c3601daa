# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""The query text of other sessions with its secrets redacted, read with pglast's scanner (pure functions)."""

from __future__ import annotations

import re

try:
    from pglast.parser import ParseError, scan
except ImportError:
    scan = None
    ParseError = Exception

REDACTED_LITERAL = "'<redacted>'"
REDACTED_COMMENT = "/* <redacted> */"
# pg_stat_activity cuts a long query inside a literal as readily as elsewhere; what does not scan is hidden whole
HIDDEN_QUERY = "<query text hidden: it does not scan as SQL and may hold a secret>"

STRING_TOKENS = frozenset(("SCONST", "USCONST", "BCONST", "XCONST"))
COMMENT_TOKENS = frozenset(("C_COMMENT", "SQL_COMMENT"))
# `password = '...'` (OPTIONS, SET) and `PASSWORD N'...'`: the word before these counts for the literal after them
SKIPPED_BEFORE_LITERAL = frozenset(("ASCII_61", "NCHAR"))
# the literal after these is a secret: ROLE/USER ... PASSWORD '...', OPTIONS (password '...'), SUBSCRIPTION CONNECTION
SECRET_WORDS = frozenset(("password", "passwd", "passphrase", "secret", "sslpassword", "connection"))
# every literal among the arguments of these is redacted: keys, passwords, connection strings
SECRET_FUNCTIONS = frozenset(
    (
        "crypt",
        "encrypt",
        "encrypt_iv",
        "decrypt",
        "decrypt_iv",
        "hmac",
        "pgp_sym_encrypt",
        "pgp_sym_encrypt_bytea",
        "pgp_sym_decrypt",
        "pgp_sym_decrypt_bytea",
        "pgp_pub_encrypt",
        "pgp_pub_encrypt_bytea",
        "pgp_pub_decrypt",
        "pgp_pub_decrypt_bytea",
        "dblink",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_exec",
        "dblink_send_query",
        "set_config",
    )
)
# a literal that is a libpq conninfo with a password or a URL with user:password@ is a secret wherever it stands
_SECRET_LITERAL = re.compile(r"pass(word|wd)?\s*=|://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)
_SECRET_COMMENT = re.compile(r"pass(word|wd|phrase)?|secret", re.IGNORECASE)
# without pglast, any hint of a secret hides the whole text
_SECRET_HINT = re.compile(r"pass|secret|crypt|hmac|pgp_|dblink|set_config|connection|://", re.IGNORECASE)


def redact_query(text: str | None) -> str | None:
    """The text with the literals that carry a secret replaced; hidden whole when it does not scan."""
    if not text:
        return text
    if scan is None:
        return HIDDEN_QUERY if _SECRET_HINT.search(text) else text
    try:
        tokens = scan(text)
    except ParseError:
        return HIDDEN_QUERY
    spans = [(token.start, token.end + 1, replacement) for token, replacement in secret_tokens(text, tokens)]
    for start, end, replacement in reversed(spans):
        text = text[:start] + replacement + text[end:]
    return text


def word(text: str, token) -> str:
    return text[token.start : token.end + 1].strip('"').lower()


def secret_tokens(text: str, tokens: list) -> list:
    """(token, replacement) of each literal or comment to redact, in order."""
    found = []
    previous = None
    # depth of the parentheses inside a secret function's call; 0 outside of one
    call_depth = 0
    after_function = False
    for token in tokens:
        if token.name in COMMENT_TOKENS:
            if _SECRET_COMMENT.search(text[token.start : token.end + 1]):
                found.append((token, REDACTED_COMMENT))
            continue
        if token.name in STRING_TOKENS:
            literal = text[token.start : token.end + 1]
            after_secret_word = previous is not None and word(text, previous) in SECRET_WORDS
            if call_depth or after_secret_word or _SECRET_LITERAL.search(literal):
                found.append((token, REDACTED_LITERAL))
        call_depth, after_function = track_call(text, token, call_depth, after_function)
        if token.name not in SKIPPED_BEFORE_LITERAL:
            previous = token
    return found


def track_call(text: str, token, depth: int, after_function: bool) -> tuple[int, bool]:
    """(call depth, whether a secret function's name was just read) after the token."""
    if token.name == "ASCII_40":
        return (depth + 1 if depth or after_function else 0), False
    if token.name == "ASCII_41":
        return max(depth - 1, 0), False
    return depth, word(text, token) in SECRET_FUNCTIONS
