# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seconds per e2e test module from the JUnit files `make e2e` writes, slowest first: where to trim the suite."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree


def module_times(paths: list[Path]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        for case in ElementTree.parse(path).iter("testcase"):
            times[case.get("classname", "?").rsplit(".", 1)[-1]].append(float(case.get("time", 0)))
    return times


def main() -> None:
    paths = [Path(argument) for argument in sys.argv[1:]] or sorted(Path(".build").glob("e2e-*.xml"))
    times = module_times(paths)
    for module, seconds in sorted(times.items(), key=lambda item: -sum(item[1])):
        print("%7.1f s  %3d tests  %s" % (sum(seconds), len(seconds), module))
    print("%7.1f s  total test time (setup and teardown included per test)" % sum(map(sum, times.values())))


if __name__ == "__main__":
    main()
