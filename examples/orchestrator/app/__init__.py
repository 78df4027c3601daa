# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The example orchestrator application that safedeploy.migrations deploys in its demo and tests."""

__version__ = "1.3.0"
