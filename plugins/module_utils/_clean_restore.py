# Copyright (c) safedeploy.migrations contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This is a private module_utils of the collection; it may change without notice.

"""A clean restore: what the target holds that the backup does not, and the SQL that empties the target first."""

from __future__ import annotations

# objects below it were made by initdb (plpgsql); pg_dump never dumps them, so a clean restore keeps them
FIRST_NORMAL_OBJECT_ID = 16384
PUBLIC_SCHEMA_COMMENT = "standard public schema"
# pg_restore --list names a relation's kind this way
TOC_RELATION_TYPES = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
    "f": "FOREIGN TABLE",
}
# entries of these kinds start like a relation's; longest first, so they are never read as one
_TOC_DATA_TYPES = {"TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "MATERIALIZED VIEW DATA"}
_TOC_TYPES = sorted(set(TOC_RELATION_TYPES.values()) | {"SCHEMA", "EXTENSION"} | _TOC_DATA_TYPES, key=len, reverse=True)
_USER_SCHEMA = "nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'"

# one query (one round trip, one docker exec): kind, name, detail, detail
INVENTORY_QUERY = (
    "SELECT 'schema', nspname, '', '' FROM pg_catalog.pg_namespace WHERE %(user)s\n"
    "UNION ALL SELECT 'extension', extname, '', '' FROM pg_catalog.pg_extension WHERE oid >= %(first)d\n"
    "UNION ALL SELECT 'relation', nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c\n"
    "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN (%(kinds)s) AND %(user)s\n"
    "UNION ALL SELECT 'large objects', count(*)::text, '', '' FROM pg_catalog.pg_largeobject_metadata\n"
    "UNION ALL SELECT 'server', current_setting('server_version_num'), rolname, '' FROM pg_catalog.pg_roles\n"
    "  WHERE oid = 10"
) % {"user": _USER_SCHEMA, "first": FIRST_NORMAL_OBJECT_ID, "kinds": ", ".join("'%s'" % k for k in TOC_RELATION_TYPES)}


def quote_identifier(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def parse_inventory(rows: list[tuple]) -> dict:
    """The rows of INVENTORY_QUERY as schemas, extensions, relations (schema, name, kind) and the server."""
    inventory = dict(schemas=[], extensions=[], relations=[], large_objects=0, server_version_num=0, bootstrap_role="")
    for kind, name, detail, relkind in rows:
        if kind == "schema":
            inventory["schemas"].append(name)
        elif kind == "extension":
            inventory["extensions"].append(name)
        elif kind == "relation":
            inventory["relations"].append((name, detail, relkind))
        elif kind == "large objects":
            inventory["large_objects"] = int(name)
        elif kind == "server":
            inventory["server_version_num"] = int(name)
            inventory["bootstrap_role"] = detail
    for key in ("schemas", "extensions", "relations"):
        inventory[key].sort()
    return inventory


def toc_names(toc: str) -> dict:
    """'schema name' (or 'name' for schemas and extensions) of each relation, schema and extension of a TOC.

    A line of `pg_restore --list` is `<id>; <catalog> <oid> <TYPE> <schema or -> <name> <owner>`; the owner is the
    last word, so a name with spaces still reads right.
    """
    names: dict = {kind: set() for kind in _TOC_TYPES}
    for line in toc.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        # an owner may be empty (extensions): the line then ends in a space, which must stay
        fields = line.split(";", 1)[1].lstrip().split(" ", 2)
        if len(fields) < 3:
            continue
        entry = fields[2]
        kind = next((kind for kind in _TOC_TYPES if entry.startswith(kind + " ")), None)
        if kind is None:
            continue
        qualified = entry[len(kind) + 1 :]
        if kind in ("SCHEMA", "EXTENSION") and qualified.startswith("- "):
            qualified = qualified[2:]
        names[kind].add(qualified.rsplit(" ", 1)[0])
    return names


def not_in_backup(inventory: dict, toc: str) -> dict:
    """What the target holds and the backup does not: gone for good after a clean restore."""
    names = toc_names(toc)
    relations = [
        "%s.%s" % (schema, name)
        for schema, name, relkind in inventory["relations"]
        if "%s %s" % (schema, name) not in names[TOC_RELATION_TYPES[relkind]]
    ]
    return dict(
        # public is recreated whatever the backup says: pg_dump writes no CREATE for it
        schemas=[name for name in inventory["schemas"] if name != "public" and name not in names["SCHEMA"]],
        extensions=[name for name in inventory["extensions"] if name not in names["EXTENSION"]],
        relations=relations,
    )


def public_schema_statements(server_version_num: int, bootstrap_role: str) -> list[str]:
    """The public schema as initdb makes it, which is what pg_dump writes public's owner, ACL and comment against."""
    if server_version_num >= 150000:
        statements = ["CREATE SCHEMA public AUTHORIZATION pg_database_owner", "GRANT USAGE ON SCHEMA public TO PUBLIC"]
    else:
        # before PostgreSQL 15 the bootstrap superuser owned public and everyone could create in it
        statements = [
            "CREATE SCHEMA public AUTHORIZATION %s" % quote_identifier(bootstrap_role),
            "GRANT ALL ON SCHEMA public TO PUBLIC",
        ]
    return statements + ["COMMENT ON SCHEMA public IS '%s'" % PUBLIC_SCHEMA_COMMENT]


def clean_statements(inventory: dict) -> list[str]:
    """Drop every extension, schema and large object of the target, then recreate an empty public schema."""
    statements = []
    if inventory["extensions"]:
        # extensions first: a schema an extension created cannot be dropped before its extension
        names = ", ".join(quote_identifier(name) for name in inventory["extensions"])
        statements.append("DROP EXTENSION IF EXISTS %s CASCADE" % names)
    if inventory["schemas"]:
        names = ", ".join(quote_identifier(name) for name in inventory["schemas"])
        statements.append("DROP SCHEMA IF EXISTS %s CASCADE" % names)
    if inventory["large_objects"]:
        statements.append("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
    return statements + public_schema_statements(inventory["server_version_num"], inventory["bootstrap_role"])


def clean_script(statements: list[str]) -> bytes:
    """What psql reads before the archive's SQL: the transaction that the archive's final COMMIT ends.

    The archive's own BEGIN only warns inside it; its COMMIT is the last thing pg_restore writes, so a pg_restore
    that stops half-way leaves psql at the end of its input with the transaction open, and it is rolled back.
    """
    session = [
        "BEGIN",
        # as pg_restore's own script sets them; error hides the cascade notices and the second BEGIN's warning
        "SET statement_timeout = 0",
        "SET lock_timeout = 0",
        "SET client_min_messages = error",
        "SELECT pg_catalog.set_config('search_path', '', false)",
    ]
    return "".join("%s;\n" % statement for statement in session + statements).encode()


def get_script_cmd(params: dict, archive: str | None) -> list[str]:
    """pg_restore writing the archive as SQL; --single-transaction keeps BEGIN/COMMIT out of the large objects."""
    args = ["--file=-", "--single-transaction", "--clean", "--if-exists"]
    if params["no_owner"]:
        args.append("--no-owner")
    return args + ([archive] if archive else [])


def get_psql_cmd(conninfo: str) -> list[str]:
    """psql running the script from stdin, stopping at the first error (which ends the transaction unfinished)."""
    return ["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--file=-", "--dbname=%s" % conninfo]
