# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The database engine and the redis client, shared by the web app and the workers."""

from __future__ import annotations

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from storefront.settings import settings

# redis keys: the emails worker's sent messages (newest first), the reports worker's latest figures
OUTBOX_KEY = "storefront:outbox"
REPORT_KEY = "storefront:report"

# pre_ping: a connection the database dropped (restart, failover) is replaced instead of failing a request
engine = create_engine(settings.database_url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
cache = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)


def database_answers() -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def redis_answers() -> bool:
    try:
        return bool(cache.ping())
    except redis.RedisError:
        return False
