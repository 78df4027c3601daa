# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the code of a release uses: one source tree plays every release of releases.yml by APP_VERSION.

So an image of 1.0.0 never touches orders.customer_email (1.1.0) or daily_sales (1.2.0), exactly like the real
1.0.0, and keeps working on a database at 1.0.0 or at any later, backward-compatible release. Standard library
only: the image build step and the unit tests import it without the app's dependencies.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_RELEASE_NUMBERS = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


class Features(NamedTuple):
    customer_email: bool  # orders.customer_email and its index, release 1.1.0
    daily_sales: bool  # the daily_sales table the reports worker fills, release 1.2.0


def version_key(version: str) -> tuple[int, int, int]:
    """(1, 1, 0) from "1.1.0" or "1.1.0-broken"."""
    match = _RELEASE_NUMBERS.match(version.strip())
    if not match:
        raise ValueError("APP_VERSION %r is not a release version like 1.2.0" % version)
    major, minor, patch = (int(number) for number in match.groups())
    return major, minor, patch


def features(version: str) -> Features:
    key = version_key(version)
    return Features(customer_email=key >= (1, 1, 0), daily_sales=key >= (1, 2, 0))
