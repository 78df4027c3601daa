# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.safedeploy.migrations.plugins.filter.schema_dump import (
    FilterModule,
    normalize_schema_dump,
    schema_diff,
)

# the head of a PostgreSQL 15.18 `pg_dump --schema-only`; the \restrict key is new in every dump
DUMP = """--
-- PostgreSQL database dump
--

\\restrict gv2VdGkoKlhRr01uKiL6h9lFgEWuN8FQFs2NKJ71ybEyM0qbGXbxUbGvKIeD2Fl

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET default_table_access_method = heap;

--
-- Name: customers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.customers (
    id bigint NOT NULL,
    email text NOT NULL
);

CREATE INDEX ix_customers_email ON public.customers USING btree (email);

--
-- PostgreSQL database dump complete
--

\\unrestrict gv2VdGkoKlhRr01uKiL6h9lFgEWuN8FQFs2NKJ71ybEyM0qbGXbxUbGvKIeD2Fl
"""

STATEMENTS = [
    "CREATE TABLE public.customers (",
    "    id bigint NOT NULL,",
    "    email text NOT NULL",
    ");",
    "CREATE INDEX ix_customers_email ON public.customers USING btree (email);",
]


def another_dump_of_the_same_schema() -> str:
    return (
        DUMP.replace("gv2VdGkoKlhRr01uKiL6h9lFgEWuN8FQFs2NKJ71ybEyM0qbGXbxUbGvKIeD2Fl", "Zq0m9hYxkdPp1")
        .replace("15.18 (Debian 15.18-0+deb12u1)", "15.19")
        .replace("SET lock_timeout = 0;\n", "")
    )


@pytest.mark.parametrize("dump", [DUMP, DUMP.splitlines(), DUMP.replace("\n", "\r\n")])
def test_normalize_keeps_only_the_schema_statements(dump):
    assert normalize_schema_dump(dump) == STATEMENTS


def test_normalize_refuses_other_input():
    with pytest.raises(AnsibleFilterError, match="string or a list"):
        normalize_schema_dump(None)


def test_two_dumps_of_one_schema_have_no_diff():
    assert schema_diff(DUMP, another_dump_of_the_same_schema()) == []


def test_a_schema_change_shows_in_the_diff_with_both_names():
    changed = DUMP.replace("    email text NOT NULL\n", "    email text NOT NULL,\n    legacy_code text\n")
    assert schema_diff(DUMP, changed, "fresh", "round trip") == [
        "--- fresh",
        "+++ round trip",
        "@@ -2,3 +2,4 @@",
        "     id bigint NOT NULL,",
        "-    email text NOT NULL",
        "+    email text NOT NULL,",
        "+    legacy_code text",
        " );",
    ]


def test_a_left_over_object_shows_as_an_added_line():
    left_over = DUMP.replace(");\n", ");\n\nCREATE INDEX ix_left_over ON public.customers USING btree (id);\n", 1)
    diff = schema_diff(DUMP, left_over)
    assert "+CREATE INDEX ix_left_over ON public.customers USING btree (id);" in diff


def test_a_long_diff_is_cut_and_says_how_much_is_left_out():
    after = "\n".join("CREATE TABLE public.t%d (id int);" % n for n in range(100))
    diff = schema_diff(DUMP, after, max_lines=10)
    assert len(diff) == 11
    assert diff[-1] == "... %d more diff lines" % (2 + 1 + len(STATEMENTS) + 100 - 10)


@pytest.mark.parametrize("max_lines", [0, -1, "10"])
def test_max_lines_must_be_a_positive_integer(max_lines):
    with pytest.raises(AnsibleFilterError, match="max_lines"):
        schema_diff(DUMP, DUMP, max_lines=max_lines)


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"normalize_schema_dump", "schema_diff"}


def test_column_order_counts_unless_ignored():
    reordered = DUMP.replace(
        "    id bigint NOT NULL,\n    email text NOT NULL\n", "    email text NOT NULL,\n    id bigint NOT NULL\n"
    )
    assert schema_diff(DUMP, reordered) != []
    assert schema_diff(DUMP, reordered, ignore_column_order=True) == []
    assert normalize_schema_dump(reordered, ignore_column_order=True) == [
        "CREATE TABLE public.customers (",
        "    email text NOT NULL",
        "    id bigint NOT NULL",
        ");",
        "CREATE INDEX ix_customers_email ON public.customers USING btree (email);",
    ]


def test_ignoring_column_order_still_sees_a_changed_column():
    changed = DUMP.replace("    email text NOT NULL\n", "    email character varying(200) NOT NULL\n")
    assert "+    email character varying(200) NOT NULL" in schema_diff(DUMP, changed, ignore_column_order=True)


def test_normalizing_twice_changes_nothing():
    once = normalize_schema_dump(DUMP, ignore_column_order=True)
    assert normalize_schema_dump(once, ignore_column_order=True) == once
