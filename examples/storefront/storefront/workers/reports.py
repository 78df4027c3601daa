# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sales figures: publishes the order count and revenue to redis; from 1.2.0 also keeps today's row of daily_sales.

Run as `python -m storefront.workers.reports`.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from storefront.db import REPORT_KEY, cache, engine
from storefront.release import features
from storefront.settings import settings
from storefront.workers.loop import run_every_tick

FEATURES = features(settings.app_version)
TOTALS = text("SELECT count(*) AS orders, coalesce(sum(total_cents), 0)::bigint AS revenue_cents FROM orders")
TODAY = text(
    "INSERT INTO daily_sales (day, orders, revenue_cents, updated_at)"
    " SELECT current_date, count(*), coalesce(sum(total_cents), 0), now() FROM orders WHERE created_at >= current_date"
    " ON CONFLICT (day) DO UPDATE SET orders = excluded.orders, revenue_cents = excluded.revenue_cents,"
    " updated_at = excluded.updated_at"
)


def publish_report() -> str:
    with engine.begin() as connection:
        totals = connection.execute(TOTALS).mappings().one()
        if FEATURES.daily_sales:
            connection.execute(TODAY)
    cache.hset(REPORT_KEY, mapping={**totals, "updated_at": "%.3f" % time.time()})
    return ""


if __name__ == "__main__":
    run_every_tick("storefront.workers.reports", publish_report)
