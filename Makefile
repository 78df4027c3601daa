# One-command setup and test entry points; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
PYTHON_VERSION := 3.11
# pytest-xdist workers for the e2e modules that run side by side (make e2e E2E_WORKERS=1 runs them one by one)
E2E_WORKERS ?= 3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
COLLECTIONS_ROOT := $(CURDIR)/.build/collections
COLLECTION_DIR := $(COLLECTIONS_ROOT)/ansible_collections/safedeploy/migrations
# ansible-test resolves its working directory, so it gets a copy rather than the symlink
TEST_TREE := $(CURDIR)/.build/ansible-test/ansible_collections/safedeploy/migrations
# the cluster lives at the harness default, since ansible-test passes no environment through
PG_CLUSTER := tests/integration/targets/setup_postgresql/files/pg_cluster.py
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS_ROOT)
export PATH := $(BIN):$(PATH)

.PHONY: help setup test-tree docker-host test-packages sanity units integration e2e lint test demo demo-down bench changelog clean

help:
	@echo "make setup        virtualenv $(VENV), the collection visible to Ansible and ansible-test"
	@echo "make test         setup + sanity + unit + integration + e2e + lint (what CI runs)"
	@echo "make demo         deploy the example application on this machine (inventories/local)"
	@echo "make demo-down    remove the demo: its containers, volumes, network and .build/demo"
	@echo "make bench        benchmarks under tests/bench (not part of make test)"

$(VENV)/.installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

$(COLLECTION_DIR):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

setup: $(VENV)/.installed $(COLLECTION_DIR)
	$(BIN)/python scripts/ansible_test_offline.py

docker-host:
	scripts/docker_host.sh
	scripts/build_images.sh

test-packages:
	scripts/test_packages.sh

# ansible-test wants to run from inside ansible_collections/<namespace>/<name>
test-tree: setup
	rm -rf $(TEST_TREE) && mkdir -p $(TEST_TREE)
	git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C $(TEST_TREE) -xf -
	# its own git index, or ansible-test asks the outer repository, which ignores .build
	cd $(TEST_TREE) && git init -q && git add -A

sanity: test-tree
	cd $(TEST_TREE) && $(BIN)/ansible-test sanity --color no --python $(PYTHON_VERSION) --requirements

units: setup
	cd $(COLLECTION_DIR) && PYTHONPATH=$(COLLECTIONS_ROOT) $(BIN)/python -m pytest -q tests/unit

integration: test-tree docker-host test-packages
	cd $(TEST_TREE) && trap '$(BIN)/python $(CURDIR)/$(PG_CLUSTER) stop' EXIT && \
	  $(BIN)/ansible-test integration --color no --local --allow-destructive --python $(PYTHON_VERSION) $(TARGETS)

lint: setup
	$(BIN)/ruff check plugins tests scripts examples
	$(BIN)/ruff format --check plugins tests scripts examples
	$(BIN)/ansible-lint
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs $(COLLECTION_DIR)

# three pytest-xdist workers, one test module each (the modules share nothing but the images, built under a lock;
# they mostly wait on containers, so three fit two cores); the modules marked `exclusive` measure timing or load and
# run afterwards, alone. --durations: the slowest tests, to keep the suite short; every test's time is kept in
# .build/e2e-*.xml (scripts/e2e_times.py sums them per module). Exit 5: nothing selected, a failure under CI=true
# (as is a skipped test, tests/e2e/conftest.py). First, whatever an
# interrupted run left on the engine goes (scripts/clean_test_stacks.sh): it would restart and run beside the suite.
e2e: setup docker-host test-packages
	scripts/clean_test_stacks.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(E2E_WORKERS) --dist loadfile -m "not exclusive" --durations=20 tests/e2e \
	  --junitxml .build/e2e-shared.xml $(PYTEST_ARGS) \
	  || { [ $$? -eq 5 ] && [ "$${CI:-}" != true ]; }
	$(BIN)/python -m pytest -q -p no:cacheprovider -m exclusive tests/e2e --junitxml .build/e2e-exclusive.xml $(PYTEST_ARGS) \
	  || { [ $$? -eq 5 ] && [ "$${CI:-}" != true ]; }

test: sanity units integration e2e lint

# the image is built from the example app's source, which needs its wheelhouse (containers cannot reach PyPI)
demo: setup docker-host
	install -d -m 0700 .build/demo
	PYTHON=$(BIN)/python examples/orchestrator/build_wheelhouse.sh >/dev/null
	$(BIN)/ansible-playbook -i inventories/local playbooks/deploy.yml
	$(BIN)/ansible-playbook -i inventories/local playbooks/status.yml

# The demo's compose project as inventories/local names it, and every file the demo wrote (stack, backups, reports,
# promotion evidence, the generated password). Removed by the project's label, so it does not depend on the shape of
# the stack's compose files; the password goes last, once nothing that uses it is left.
DEMO_PROJECT := orchestrator-local
DEMO_DIR := .build/demo
demo-down:
	scripts/demo_down.sh $(DEMO_PROJECT) $(DEMO_DIR)

# every benchmark writes its figures to .build/bench; report.py then writes docs/benchmarks.md and its plots
BENCH_RESULTS := .build/bench
bench: setup docker-host
	mkdir -p $(BENCH_RESULTS)
	$(BIN)/python tests/bench/bench_backup.py --json $(BENCH_RESULTS)/backup.json
	$(BIN)/python tests/bench/bench_lock_stall.py --json $(BENCH_RESULTS)/lock_stall.json
	$(BIN)/python tests/bench/bench_alembic_migrate.py --json $(BENCH_RESULTS)/alembic_migrate.json
	$(BIN)/python tests/bench/bench_zero_downtime.py --json $(BENCH_RESULTS)/zero_downtime.json
	$(BIN)/python tests/bench/bench_deploy_overhead.py --json $(BENCH_RESULTS)/deploy_overhead.json
	$(BIN)/python tests/bench/bench_backup_curve.py --json $(BENCH_RESULTS)/backup_curve.json
	$(BIN)/python tests/bench/bench_plan_curve.py --json $(BENCH_RESULTS)/plan_curve.json
	$(BIN)/python tests/bench/bench_data_checks.py --json $(BENCH_RESULTS)/data_checks.json
	$(BIN)/python tests/bench/bench_lock_info_curve.py --json $(BENCH_RESULTS)/lock_info_curve.json
	$(BIN)/python tests/bench/bench_app_hosts_curve.py --json $(BENCH_RESULTS)/app_hosts_curve.json
	$(BIN)/python tests/bench/report.py --results $(BENCH_RESULTS) --output docs/benchmarks.md

changelog: setup
	$(BIN)/antsibull-changelog release

clean:
	rm -rf .build tests/output
