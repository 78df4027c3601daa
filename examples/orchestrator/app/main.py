# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The web app, served by `uvicorn app.main:app`: health, customers and provisioning jobs."""

from __future__ import annotations

import datetime
from typing import Any

import psycopg
from psycopg import errors, sql
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.database_url import DatabaseUrlError
from app.db import connect_async, current_revisions
from app.release import APP_VERSION, NEVER_HEALTHY, NEVER_HEALTHY_REASON, READS_LEGACY_CODE, USES_JOB_PRIORITY

APPLICATION_NAME = "orchestrator-app"
CUSTOMER_COLUMNS = ["id", "name", "email", "created_at"] + (["legacy_code"] if READS_LEGACY_CODE else [])
JOB_COLUMNS = ["id", "customer_id", "kind", "status", "result", "created_at", "finished_at"] + (
    ["priority"] if USES_JOB_PRIORITY else []
)
SMALLINT_RANGE = range(-32768, 32768)


def _columns(columns: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def select_by_id(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE id = %s").format(_columns(columns), sql.Identifier(table))


def insert_returning(table: str, values: dict[str, Any], returning: list[str]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(table),
        _columns(list(values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
        _columns(returning),
    )


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime.datetime) else value for key, value in row.items()}


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


def required_text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(400, "%s must be a non-empty string" % field)
    return value.strip()


def optional_int(body: dict[str, Any], field: str, allowed: range) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    # bool is an int in Python, not in JSON
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise HTTPException(400, "%s must be an integer from %d to %d" % (field, allowed.start, allowed.stop - 1))
    return value


async def fetch_one(query: sql.Composed, params: tuple | list) -> dict[str, Any] | None:
    async with await connect_async(APPLICATION_NAME) as connection:
        cursor = await connection.execute(query, params)
        return await cursor.fetchone()


async def health(request: Request) -> JSONResponse:
    try:
        async with await connect_async(APPLICATION_NAME) as connection:
            revisions = await current_revisions(connection)
    except (psycopg.Error, DatabaseUrlError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "reason": reason, "app_version": APP_VERSION},
            status_code=503,
        )
    answer = {
        "status": "ok",
        "database": "ok",
        "revision": ",".join(revisions) or None,
        "revisions": revisions,
        "app_version": APP_VERSION,
    }
    if NEVER_HEALTHY:
        return JSONResponse({**answer, "status": "unhealthy", "reason": NEVER_HEALTHY_REASON}, status_code=503)
    return JSONResponse(answer)


async def create_customer(request: Request) -> JSONResponse:
    body = await json_object(request)
    values: dict[str, Any] = {"name": required_text(body, "name"), "email": required_text(body, "email")}
    if READS_LEGACY_CODE:
        values["legacy_code"] = body.get("legacy_code")
    try:
        row = await fetch_one(insert_returning("customers", values, CUSTOMER_COLUMNS), list(values.values()))
    except errors.UniqueViolation:
        raise HTTPException(409, "a customer with email %s already exists" % values["email"]) from None
    return JSONResponse(jsonable(row or {}), status_code=201)


async def row_by_id(table: str, columns, what: str, row_id: int) -> JSONResponse:
    row = await fetch_one(select_by_id(table, columns), (row_id,))
    if row is None:
        raise HTTPException(404, "%s %d not found" % (what, row_id))
    return JSONResponse(jsonable(row))


async def get_customer(request: Request) -> JSONResponse:
    return await row_by_id("customers", CUSTOMER_COLUMNS, "customer", request.path_params["customer_id"])


async def create_job(request: Request) -> JSONResponse:
    body = await json_object(request)
    customer_id = optional_int(body, "customer_id", range(1, 2**63))
    if customer_id is None:
        raise HTTPException(400, "customer_id is required")
    values: dict[str, Any] = {"customer_id": customer_id, "kind": body.get("kind") or "provision"}
    if not isinstance(values["kind"], str):
        raise HTTPException(400, "kind must be a string")
    if USES_JOB_PRIORITY:
        values["priority"] = optional_int(body, "priority", SMALLINT_RANGE) or 0
    try:
        row = await fetch_one(insert_returning("jobs", values, JOB_COLUMNS), list(values.values()))
    except errors.ForeignKeyViolation:
        raise HTTPException(404, "customer %d not found" % customer_id) from None
    return JSONResponse(jsonable(row or {}), status_code=201)


async def get_job(request: Request) -> JSONResponse:
    return await row_by_id("jobs", JOB_COLUMNS, "job", request.path_params["job_id"])


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": error.detail}, status_code=error.status_code)


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": "database unavailable", "reason": type(error).__name__}, status_code=503)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/customers", create_customer, methods=["POST"]),
        Route("/customers/{customer_id:int}", get_customer),
        Route("/jobs", create_job, methods=["POST"]),
        Route("/jobs/{job_id:int}", get_job),
    ],
    exception_handlers={
        HTTPException: http_error,
        psycopg.OperationalError: database_unavailable,
        DatabaseUrlError: database_unavailable,
    },
)
