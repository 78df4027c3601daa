# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which release this process plays: APP_VERSION selects the columns that release's code used.

One code base stands in for every release of releases.yml, so an image built with APP_VERSION=1.2.0 behaves
like the real 1.2.0 did: it still reads customers.legacy_code, which revision 0004 drops. The releases marked
`healthy: false` there are broken on purpose: their app answers /health with 503 forever.
"""

from __future__ import annotations

import os
import re

from app import __version__

APP_VERSION = os.environ.get("APP_VERSION") or __version__
_RELEASE_NUMBERS = re.compile(r"^(\d+(?:\.\d+)*)(?:[-+].*)?$")


def version_key(version: str) -> tuple[int, ...]:
    """(1, 4, 0) from "1.4.0" or "1.4.0-broken": the numeric release part, for ordering."""
    match = _RELEASE_NUMBERS.match(version.strip())
    if not match:
        raise ValueError("not a release version: %r" % version)
    return tuple(int(number) for number in match.group(1).split("."))


def is_release_version(name: str) -> bool:
    return bool(_RELEASE_NUMBERS.match(name))


# jobs.priority arrived in 1.1.0 (revision 0002_job_priority)
USES_JOB_PRIORITY = version_key(APP_VERSION) >= (1, 1, 0)
# customers.legacy_code is read up to 1.2.x; 1.3.0 stopped using it and revision 0004 drops it
READS_LEGACY_CODE = version_key(APP_VERSION) < (1, 3, 0)

# releases.yml marks them `healthy: false`: a deploy's health gate must stop them, so /health never says ok
NEVER_HEALTHY_RELEASES = frozenset({"1.4.0-unhealthy"})
NEVER_HEALTHY = APP_VERSION in NEVER_HEALTHY_RELEASES
NEVER_HEALTHY_REASON = "release %s is broken on purpose: its app never reports healthy" % APP_VERSION
