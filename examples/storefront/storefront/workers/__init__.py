# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Background workers, each started as `python -m storefront.workers.<name>`."""
