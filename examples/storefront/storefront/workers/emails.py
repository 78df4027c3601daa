# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Order confirmations: claims the orders not yet emailed and queues their messages in redis.

Run as `python -m storefront.workers.emails`; several may run at once (SKIP LOCKED).
"""

from __future__ import annotations

import json

from sqlalchemy import text

from storefront.db import OUTBOX_KEY, cache, engine
from storefront.release import features
from storefront.settings import settings
from storefront.workers.loop import run_every_tick

BATCH = 50
OUTBOX_LENGTH = 1000
FEATURES = features(settings.app_version)
CLAIM = text(
    "UPDATE orders SET emailed_at = now() WHERE id IN ("
    " SELECT id FROM orders WHERE emailed_at IS NULL ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED"
    ") RETURNING id, total_cents" + (", customer_email" if FEATURES.customer_email else "")
)


def send_confirmations() -> str:
    with engine.begin() as connection:
        orders = [dict(row) for row in connection.execute(CLAIM, {"batch": BATCH}).mappings()]
        if orders:
            # inside the transaction: when redis fails, the orders stay unclaimed for the next tick
            pipeline = cache.pipeline()
            pipeline.lpush(OUTBOX_KEY, *(json.dumps(order) for order in orders))
            pipeline.ltrim(OUTBOX_KEY, 0, OUTBOX_LENGTH - 1)
            pipeline.execute()
    return "%d confirmation(s) queued" % len(orders) if orders else ""


if __name__ == "__main__":
    run_every_tick("storefront.workers.emails", send_confirmations)
