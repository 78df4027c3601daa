# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The promotion gate: copies of inventories/staging and inventories/production on this machine.

Each copy keeps the repository's group_vars (the environment name, the password lookup, the strategy, production's
promotion gate...) and adds one file that points the stack at this machine (over SSH: test_faults_ssh.py).

production's group_vars require staging first (`deploy_requires_promotion_from: staging`). One staging and two
production stacks serve the whole module, in file order; each test points them at an evidence store of its own, so
what a production run sees is only what the test put there: a staging run's file, or its set_stats artifact handed
on as an extra variable the way an AWX workflow does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compose_stack import docker_works
from deploy_stack import RepositoryInventory

pytest_plugins = ("compose_stack", "deploy_stack")

# custom stats in the JSON report: what AWX would keep as the job's artifacts
SHOW_ARTIFACTS = {"ANSIBLE_SHOW_CUSTOM_STATS": "true"}


def changed(playbook) -> int:
    return sum(host["changed"] for host in playbook.report["stats"].values())


def artifact(playbook) -> dict:
    return playbook.report["global_custom_stats"]["safedeploy_promotion"]


def put_evidence(store: Path, evidence: dict) -> Path:
    """The file a run with this store would have written."""
    path = store / evidence["environment"] / ("%s.json" % evidence["app_version"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(evidence))
    return path


def snapshot(target) -> tuple:
    return target.containers(), target.ledger(), target.revision()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, release_images):
    if not docker_works():
        pytest.skip("docker with Compose v2 does not answer; run `make docker-host` first")
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        release_images(version)
    root = tmp_path_factory.mktemp("promotion")
    made = {
        "staging": RepositoryInventory(root / "staging", "staging"),
        "production": RepositoryInventory(root / "production", "production"),
        "production_at_1_1_0": RepositoryInventory(root / "production-b", "production"),
    }
    try:
        yield made
    finally:
        for target in made.values():
            target.down()


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "promotion"


@pytest.fixture(scope="module")
def staging_deploy(stacks, tmp_path_factory) -> tuple:
    """staging's deploy of 1.2.0 from an empty database, once per module whichever test asks first:
    (its playbook, the promotion store it wrote its evidence to)."""
    staging_store = tmp_path_factory.mktemp("staging-store")
    stacks["staging"].use_promotion_store(staging_store)
    playbook = stacks["staging"].deploy("1.2.0", env=SHOW_ARTIFACTS)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    return playbook, staging_store


@pytest.fixture
def staging_evidence(staging_deploy) -> dict:
    """The evidence staging wrote for 1.2.0."""
    return json.loads((staging_deploy[1] / "staging" / "1.2.0.json").read_text())


@pytest.fixture
def production(stacks, store):
    stacks["production"].use_promotion_store(store)
    return stacks["production"]


@pytest.fixture
def production_at_1_1_0(stacks, store):
    stacks["production_at_1_1_0"].use_promotion_store(store)
    return stacks["production_at_1_1_0"]


def test_production_refuses_a_release_without_staging_evidence(production, store):
    for check in (True, False):
        playbook = production.deploy("1.2.0", check=check)
        assert playbook.rc != 0
        msg = playbook.task("Refuse a release without evidence from staging")["msg"]
        assert "production refuses 1.2.0: no evidence that 1.2.0 succeeded on staging" in msg
        assert (
            str(store / "staging" / "1.2.0.json") in msg
            and "-e deploy_promotion_override=true deploys it anyway" in msg
        )
    # refused before anything was built, rendered or started: no files, no containers, no database, no ledger
    assert production.containers() == {}
    assert not production.stack_dir.exists()


def test_staging_evidence_lets_production_deploy_the_same_release(stacks, staging_deploy, production):
    playbook, store = staging_deploy
    staging = stacks["staging"]
    # one store for both, as the inventories of one repository share it
    production.use_promotion_store(store)
    evidence_file = store / "staging" / "1.2.0.json"
    assert evidence_file.stat().st_mode & 0o777 == 0o600
    assert evidence_file.parent.stat().st_mode & 0o777 == 0o700
    evidence = json.loads(evidence_file.read_text())
    assert artifact(playbook) == evidence
    entry = staging.ledger()[-1]
    assert (evidence["environment"], evidence["app_version"], evidence["outcome"], evidence["ledger_id"]) == (
        "staging",
        "1.2.0",
        "succeeded",
        entry["id"],
    )
    # staging requires no promotion itself
    assert evidence["promotion"] == "not_required"
    assert (evidence["plan_hash"], evidence["revision_from"], evidence["revision_to"]) == (
        entry["plan_hash"],
        None,
        "0003_jobs_queue_index",
    )
    durations = evidence["durations"]
    details = entry["details"]
    assert set(details) == {"durations", "app_images", "target_revision", "running_beside"}
    assert details["durations"] == durations and details["target_revision"] == "head"
    # the services beside the release that compose keeps up and that ran, which a later no-op finds stopped
    assert details["running_beside"] == {"localhost": ["safedeploy-proxy"]}
    # each app host's image id, which the quick look of a later no-op compares
    # host -> service -> the image id its containers run
    assert list(details["app_images"]) == ["localhost"] and sorted(details["app_images"]["localhost"]) == [
        "app",
        "worker",
    ]
    assert all(image.startswith("sha256:") for image in details["app_images"]["localhost"].values())
    assert set(durations) == {"plan", "backup", "migration", "roll", "total"}
    assert durations["plan"] > 0 and durations["migration"] > 0 and durations["roll"] > 0
    assert durations["plan"] + durations["backup"] + durations["migration"] + durations["roll"] <= durations["total"]

    # production differs from staging only by its inventory; its password stays out of a -vvv run
    playbook = production.deploy("1.2.0", env={"ANSIBLE_VERBOSITY": "3"})
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert production.password not in playbook.stdout + playbook.stderr
    assert "promotion from staging: promoted" in playbook.task("Report the promotion gate's verdict")["msg"]
    for target, environment in ((staging, "staging"), (production, "production")):
        status, health = target.health()
        assert (status, health["app_version"], health["revision"]) == (200, "1.2.0", "0003_jobs_queue_index")
        assert [(row["environment"], row["outcome"]) for row in target.ledger()] == [(environment, "succeeded")]
    assert staging.project != production.project and staging.containers().keys() == production.containers().keys()
    entry = production.ledger()[-1]
    assert entry["plan_hash"] == evidence["plan_hash"]
    promotion = entry["details"]["promotion"]
    assert (promotion["status"], promotion["evidence_ledger_id"], promotion["source"]) == (
        "promoted",
        evidence["ledger_id"],
        str(evidence_file),
    )
    assert json.loads((store / "production" / "1.2.0.json").read_text())["promotion"] == "promoted"


def test_a_rerun_with_nothing_to_do_needs_no_evidence(production, store):
    before = snapshot(production)
    playbook = production.deploy("1.2.0")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert changed(playbook) == 0
    assert "nothing to do" in playbook.task("Report nothing to do")["msg"]
    assert snapshot(production) == before
    assert not store.exists()


def test_an_override_deploys_without_evidence_and_is_recorded(production_at_1_1_0, store):
    playbook = production_at_1_1_0.deploy("1.1.0", deploy_promotion_override=True)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert production_at_1_1_0.health()[1]["app_version"] == "1.1.0"
    promotion = production_at_1_1_0.ledger()[-1]["details"]["promotion"]
    assert promotion["status"] == "overridden"
    assert promotion["msg"].startswith("overridden: no evidence that 1.1.0 succeeded on staging")


def test_a_release_whose_plan_differs_from_stagings_is_refused(production_at_1_1_0, store, staging_evidence):
    # staging took 1.2.0 from an empty database; this production is at 1.1.0's revision
    put_evidence(store, staging_evidence)
    before = snapshot(production_at_1_1_0)
    # check mode shows the verdict and refuses as the deploy does
    for check in (True, False):
        playbook = production_at_1_1_0.deploy("1.2.0", check=check)
        assert playbook.rc != 0
        assert "promotion from staging: plan_differs" in playbook.task("Report the promotion gate's verdict")["msg"]
        production_hash = playbook.task("Compute the migration plan")["plan_hash"]
        assert production_hash != staging_evidence["plan_hash"]
        msg = playbook.task("Refuse a release not run with this plan on staging")["msg"]
        assert (
            "production would migrate 0002_job_priority -> 0003_jobs_queue_index with plan hash %s, staging migrated "
            "base -> 0003_jobs_queue_index with plan hash %s" % (production_hash, staging_evidence["plan_hash"])
        ) in msg
        assert snapshot(production_at_1_1_0) == before


def test_an_override_deploys_a_different_plan_and_is_recorded(production_at_1_1_0, store, staging_evidence):
    put_evidence(store, staging_evidence)
    playbook = production_at_1_1_0.deploy("1.2.0", deploy_promotion_override="true")
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert production_at_1_1_0.health()[1]["app_version"] == "1.2.0"
    entry = production_at_1_1_0.ledger()[-1]
    promotion = entry["details"]["promotion"]
    assert promotion["status"] == "overridden" and promotion["msg"].startswith("overridden: the plan differs")
    assert (promotion["plan_hash"], promotion["evidence_plan_hash"]) == (
        entry["plan_hash"],
        staging_evidence["plan_hash"],
    )
    assert json.loads((store / "production" / "1.2.0.json").read_text())["promotion"] == "overridden"


def test_the_awx_artifact_of_the_staging_job_promotes_without_a_store(stacks, tmp_path, staging_evidence):
    staging, production = stacks["staging"], stacks["production"]
    staging.use_promotion_store(tmp_path / "staging-job")
    production.use_promotion_store(tmp_path / "production-job")
    playbook = staging.deploy("1.3.0", env=SHOW_ARTIFACTS)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    staging_artifact = artifact(playbook)
    assert (staging_artifact["environment"], staging_artifact["app_version"]) == ("staging", "1.3.0")

    # the artifact wins over the store: an older release's artifact is refused although the store has the evidence
    put_evidence(production.promotion_store, staging_artifact)
    before = snapshot(production)
    playbook = production.deploy("1.3.0", safedeploy_promotion=staging_evidence)
    assert playbook.rc != 0
    msg = playbook.task("Refuse a release without evidence from staging")["msg"]
    assert "the promotion artifact given to this job (safedeploy_promotion) is for 1.2.0" in msg
    assert snapshot(production) == before

    (production.promotion_store / "staging" / "1.3.0.json").unlink()
    playbook = production.deploy("1.3.0", safedeploy_promotion=staging_artifact, env=SHOW_ARTIFACTS)
    assert playbook.rc == 0, playbook.stdout[-3000:]
    assert production.health()[1]["app_version"] == "1.3.0"
    promotion = production.ledger()[-1]["details"]["promotion"]
    assert (promotion["status"], promotion["evidence_ledger_id"]) == ("promoted", staging_artifact["ledger_id"])
    assert "artifact" in promotion["source"]
    # the production job's own artifact, for a job after it in the workflow
    assert (artifact(playbook)["environment"], artifact(playbook)["promotion"]) == ("production", "promoted")
