# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.safedeploy.migrations.plugins.module_utils._clean_restore import (
    clean_script,
    clean_statements,
    get_psql_cmd,
    get_script_cmd,
    not_in_backup,
    parse_inventory,
    public_schema_statements,
    quote_identifier,
    toc_names,
)

# `pg_restore --list` of a dump taken before a migration: public owned by erpmax, a ledger schema, an extension
TOC = """;
; Archive created at 2026-12-06 15:01:24 UTC
;     dbname: erpmax
;     TOC Entries: 25
;
; Selected TOC Entries:
;
7; 2615 2200 SCHEMA - public erpmax
3498; 0 0 COMMENT - SCHEMA public erpmax
3499; 0 0 ACL - SCHEMA public erpmax
8; 2615 16388 SCHEMA - safedeploy erpmax
3; 3079 16431 EXTENSION - hstore {no_owner}
3500; 0 0 COMMENT - EXTENSION hstore {no_owner}
947; 1247 16560 TYPE public mood erpmax
219; 1259 16566 TABLE public customers erpmax
218; 1259 16565 SEQUENCE public customers_id_seq erpmax
3502; 0 0 SEQUENCE OWNED BY public customers_id_seq erpmax
217; 1259 16389 TABLE safedeploy deploys erpmax
220; 1259 16390 VIEW public active customers erpmax
221; 1259 16391 MATERIALIZED VIEW public totals erpmax
3489; 0 16566 TABLE DATA public orders erpmax
3503; 0 0 SEQUENCE SET public orders_id_seq erpmax
3504; 0 0 MATERIALIZED VIEW DATA public stale erpmax
;3505; 1259 16392 TABLE public disabled erpmax
""".format(no_owner="")  # an extension has no owner: pg_restore ends its line with a space

INVENTORY_ROWS = [
    ("schema", "public", "", ""),
    ("schema", "safedeploy", "", ""),
    ("schema", "billing", "", ""),
    ("extension", "pgcrypto", "", ""),
    ("extension", "hstore", "", ""),
    ("relation", "public", "customers", "r"),
    ("relation", "public", "customers_id_seq", "S"),
    ("relation", "public", "active customers", "v"),
    ("relation", "public", "totals", "m"),
    ("relation", "public", "alembic_version", "r"),
    ("relation", "safedeploy", "deploys", "r"),
    ("relation", "safedeploy", "revision_checksums", "r"),
    ("relation", "public", "orders", "p"),
    ("relation", "public", "orders_id_seq", "S"),
    ("relation", "public", "stale", "m"),
    ("relation", "public", "disabled", "r"),
    ("relation", "billing", "invoices", "f"),
    ("large objects", "3", "", ""),
    ("server", "150018", "postgres", ""),
]


def test_parse_inventory_sorts_and_reads_the_server():
    inventory = parse_inventory(INVENTORY_ROWS)
    assert inventory["schemas"] == ["billing", "public", "safedeploy"]
    assert inventory["extensions"] == ["hstore", "pgcrypto"]
    assert inventory["relations"][0] == ("billing", "invoices", "f")
    assert inventory["large_objects"] == 3
    assert inventory["server_version_num"] == 150018
    assert inventory["bootstrap_role"] == "postgres"


def test_toc_names_reads_kinds_names_with_spaces_and_skips_data_and_disabled_entries():
    names = toc_names(TOC)
    assert names["SCHEMA"] == {"public", "safedeploy"}
    assert names["EXTENSION"] == {"hstore"}
    assert names["TABLE"] == {"public customers", "safedeploy deploys"}
    assert names["SEQUENCE"] == {"public customers_id_seq"}
    assert names["VIEW"] == {"public active customers"}
    assert names["MATERIALIZED VIEW"] == {"public totals"}


def test_not_in_backup_names_what_the_restore_removes_for_good():
    assert not_in_backup(parse_inventory(INVENTORY_ROWS), TOC) == {
        # public is never listed: the restore recreates it whatever the backup holds
        "schemas": ["billing"],
        "extensions": ["pgcrypto"],
        # data of a table is not the table; a commented-out entry is not restored
        "relations": [
            "billing.invoices",
            "public.alembic_version",
            "public.disabled",
            "public.orders",
            "public.orders_id_seq",
            "public.stale",
            "safedeploy.revision_checksums",
        ],
    }


def test_not_in_backup_of_a_target_equal_to_the_backup_is_empty():
    rows = [
        ("schema", "public", "", ""),
        ("schema", "safedeploy", "", ""),
        ("extension", "hstore", "", ""),
        ("relation", "public", "customers", "r"),
        ("relation", "safedeploy", "deploys", "r"),
        ("server", "150018", "postgres", ""),
    ]
    assert not_in_backup(parse_inventory(rows), TOC) == {"schemas": [], "extensions": [], "relations": []}


@pytest.mark.parametrize(
    ("version", "bootstrap", "expected"),
    [
        (
            150018,
            "postgres",
            [
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner",
                "GRANT USAGE ON SCHEMA public TO PUBLIC",
                "COMMENT ON SCHEMA public IS 'standard public schema'",
            ],
        ),
        (
            160004,
            "postgres",
            [
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner",
                "GRANT USAGE ON SCHEMA public TO PUBLIC",
                "COMMENT ON SCHEMA public IS 'standard public schema'",
            ],
        ),
        (
            140011,
            'root "admin"',
            [
                'CREATE SCHEMA public AUTHORIZATION "root ""admin"""',
                "GRANT ALL ON SCHEMA public TO PUBLIC",
                "COMMENT ON SCHEMA public IS 'standard public schema'",
            ],
        ),
    ],
)
def test_public_schema_as_initdb_makes_it(version, bootstrap, expected):
    assert public_schema_statements(version, bootstrap) == expected


def test_clean_statements_drop_extensions_before_schemas_then_recreate_public():
    assert clean_statements(parse_inventory(INVENTORY_ROWS)) == [
        'DROP EXTENSION IF EXISTS "hstore", "pgcrypto" CASCADE',
        'DROP SCHEMA IF EXISTS "billing", "public", "safedeploy" CASCADE',
        "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata",
        "CREATE SCHEMA public AUTHORIZATION pg_database_owner",
        "GRANT USAGE ON SCHEMA public TO PUBLIC",
        "COMMENT ON SCHEMA public IS 'standard public schema'",
    ]


def test_clean_statements_of_a_database_without_public_still_create_it():
    inventory = parse_inventory([("large objects", "0", "", ""), ("server", "150018", "postgres", "")])
    assert clean_statements(inventory) == public_schema_statements(150018, "postgres")


def test_quote_identifier_doubles_quotes():
    assert quote_identifier('we"ird; DROP') == '"we""ird; DROP"'


def test_clean_script_opens_the_transaction_the_archive_commits():
    script = clean_script(['DROP SCHEMA IF EXISTS "x" CASCADE']).decode()
    lines = script.splitlines()
    assert lines[0] == "BEGIN;"
    assert lines[-1] == 'DROP SCHEMA IF EXISTS "x" CASCADE;'
    assert "COMMIT" not in script
    assert "SET lock_timeout = 0;" in lines


@pytest.mark.parametrize(
    ("no_owner", "archive", "expected"),
    [
        (False, "/b/x.dump", ["--file=-", "--single-transaction", "--clean", "--if-exists", "/b/x.dump"]),
        (True, None, ["--file=-", "--single-transaction", "--clean", "--if-exists", "--no-owner"]),
    ],
)
def test_get_script_cmd(no_owner, archive, expected):
    assert get_script_cmd({"no_owner": no_owner}, archive) == expected


def test_get_psql_cmd_stops_at_the_first_error_and_never_prompts():
    argv = get_psql_cmd("host=db dbname=erpmax")
    assert argv[-1] == "--dbname=host=db dbname=erpmax"
    assert "ON_ERROR_STOP=1" in argv and "-w" in argv and "-X" in argv
    # the transaction is the script's: psql's own --single-transaction would commit a script cut short
    assert "--single-transaction" not in argv and "-1" not in argv
