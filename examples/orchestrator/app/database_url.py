# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""DATABASE_URL in libpq form (`postgresql://`, for psycopg) or SQLAlchemy form (`postgresql+psycopg://`)."""

from __future__ import annotations

import os
from typing import Mapping

LIBPQ_SCHEME = "postgresql://"
SQLALCHEMY_SCHEME = "postgresql+psycopg://"
ACCEPTED_SCHEMES = (SQLALCHEMY_SCHEME, "postgresql+psycopg2://", LIBPQ_SCHEME, "postgres://")


class DatabaseUrlError(ValueError):
    """DATABASE_URL is missing or is not a PostgreSQL URL."""


def _without_scheme(url: str) -> str:
    for scheme in ACCEPTED_SCHEMES:
        if url.startswith(scheme):
            return url[len(scheme) :]
    # never echo the URL itself: it may carry a password
    raise DatabaseUrlError(
        "DATABASE_URL must start with one of %s, not %r" % (", ".join(ACCEPTED_SCHEMES), url.split(":", 1)[0])
    )


def libpq_url(url: str) -> str:
    """The URL as libpq and psycopg take it."""
    return LIBPQ_SCHEME + _without_scheme(url)


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy takes it, with the psycopg 3 driver."""
    return SQLALCHEMY_SCHEME + _without_scheme(url)


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    url = (os.environ if environ is None else environ).get("DATABASE_URL", "").strip()
    if not url:
        raise DatabaseUrlError(
            "DATABASE_URL is not set (e.g. postgresql://erpmax:PASSWORD@postgres:5432/erpmax_orchestrator)"
        )
    return url
