# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small shop, shaped like a team's own FastAPI + SQLAlchemy + Alembic app (the collection adopts its stack)."""

__version__ = "1.3.0"
