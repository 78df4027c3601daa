# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The web app, served by `uvicorn storefront.main:app --host 0.0.0.0 --port 9000`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Optional

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from storefront.db import REPORT_KEY, cache, database_answers, engine, redis_answers
from storefront.release import features
from storefront.settings import settings

FEATURES = features(settings.app_version)
ORDER_COLUMNS = "id, product_id, quantity, total_cents, created_at, emailed_at IS NOT NULL AS emailed" + (
    ", customer_email" if FEATURES.customer_email else ""
)

app = FastAPI(title="storefront", version=settings.app_version)


class OrderIn(BaseModel):
    product_id: int
    quantity: int = Field(default=1, ge=1, le=100)
    customer_email: Optional[str] = Field(default=None, max_length=320)


def receipt(order_id: int) -> str:
    """What the customer quotes to support; SECRET_KEY makes it unguessable."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"order:%d" % order_id, hashlib.sha256).hexdigest()[:24]


@app.get("/health")
def health() -> JSONResponse:
    failing = [name for name, answers in (("database", database_answers), ("redis", redis_answers)) if not answers()]
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ok"})


@app.get("/version")
def version() -> dict[str, str]:
    return {"version": settings.app_version}


@app.get("/products")
def list_products() -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, sku, name, price_cents FROM products ORDER BY id"))
        return [dict(row) for row in rows.mappings()]


@app.post("/orders", status_code=201)
def create_order(order: OrderIn) -> dict[str, Any]:
    values = {"product_id": order.product_id, "quantity": order.quantity}
    if FEATURES.customer_email:
        values["customer_email"] = order.customer_email
    columns = ", ".join(values)
    statement = text(
        "INSERT INTO orders (%s, total_cents) SELECT %s, price_cents * :quantity FROM products WHERE id = :product_id "
        "RETURNING %s" % (columns, ", ".join(":" + name for name in values), ORDER_COLUMNS)
    )
    with engine.begin() as connection:
        row = connection.execute(statement, values).mappings().first()
    if row is None:
        raise HTTPException(status_code=404, detail="no product %d" % order.product_id)
    return dict(row, receipt=receipt(row["id"]))


@app.get("/orders/{order_id}")
def get_order(order_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        statement = text("SELECT %s FROM orders WHERE id = :id" % ORDER_COLUMNS)
        row = connection.execute(statement, {"id": order_id}).mappings().first()
    if row is None:
        raise HTTPException(status_code=404, detail="no order %d" % order_id)
    return dict(row)


@app.get("/stats")
def stats(authorization: str = Header(default="")) -> dict[str, str]:
    """The reports worker's latest figures; for the team's dashboards, behind API_TOKEN."""
    expected = "Bearer " + settings.api_token.get_secret_value()
    if not secrets.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="a valid API token is required")
    return cache.hgetall(REPORT_KEY)
