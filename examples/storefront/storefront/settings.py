# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The app's settings, read from the environment (compose's env_file: .env.production).

Imported by the web app, the workers and migrations/env.py alike: `from storefront.settings import settings`.
A missing or empty required variable stops the process at import with SettingsError naming it, never its value.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings

from storefront import __version__
from storefront.release import version_key


class SettingsError(RuntimeError):
    pass


class Settings(BaseSettings):
    # SQLAlchemy URL with the password in it, e.g. postgresql+psycopg://storefront:PASSWORD@postgres:5432/storefront
    database_url: str = Field(repr=False)
    redis_url: str
    secret_key: SecretStr
    api_token: SecretStr
    app_version: str = __version__
    worker_interval: float = 1.0

    @field_validator("database_url", "redis_url", "secret_key", "api_token", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("app_version")
    @classmethod
    def _release_version(cls, value: str) -> str:
        try:
            version_key(value)
        except ValueError:
            raise ValueError("is not a release version like 1.2.0: %r" % value) from None
        return value


def describe(error: ValidationError) -> str:
    """One line naming each bad variable; pydantic's own message would echo every value read, secrets too."""
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        name = "_".join(str(part) for part in item["loc"]).upper()
        if item["type"] == "missing":
            problems.append("%s is not set" % name)
        elif item["type"] == "value_error":
            problems.append("%s %s" % (name, item["msg"].split(", ", 1)[-1]))  # ours, after pydantic's "Value error, "
        else:
            problems.append("%s: %s" % (name, item["msg"]))
    return "storefront settings: %s (set them in the environment, e.g. .env.production)" % "; ".join(problems)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe(error)) from None


settings = load_settings()
