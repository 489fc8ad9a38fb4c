"""Fixtures for the offline Kubernetes tests: the helm binary, chart rendering, JSON schemas.

The helm binary is the one `make validate-k8s` (scripts/validate-k8s.sh) caches under .tools/;
the Makefile runs it before pytest. A missing tool or schema fails the test, never skips it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shelfops.rollout.inferenceservice import first_revisions

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "shelfops"
RELEASE = "shelfops"
NAMESPACE = "shelfops"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)

Docs = list[dict[str, Any]]


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy a CRD schema so that objects with declared properties reject unknown fields.

    CRD schemas leave additionalProperties open and the API server prunes unknown fields
    silently, so a typo such as ``canaryTraficPercent`` would vanish; scripts/validate-k8s.sh
    applies the same closing rule.
    """
    schema = copy.deepcopy(schema)
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary cached by `make validate-k8s`."""
    binary = ROOT / ".tools" / "bin" / "helm"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"helm not found at {binary}: run `make validate-k8s` "
            "(bash scripts/validate-k8s.sh) first; it downloads and caches the tools",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def run_helm(helm: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run helm with arguments, capturing output (never raises on a non-zero exit)."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(helm), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
        )

    return run


@pytest.fixture(scope="session")
def render(
    run_helm: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., Docs]:
    """Render the chart with extra values files (in order) and return its documents."""
    cache: dict[tuple[str, ...], Docs] = {}

    def _render(*values_files: Path) -> Docs:
        key = tuple(str(p) for p in values_files)
        if key not in cache:
            args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
            for path in values_files:
                args += ["-f", path]
            result = run_helm(*args)
            assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
            cache[key] = [d for d in yaml.safe_load_all(result.stdout) if d]
        return copy.deepcopy(cache[key])

    return _render


@pytest.fixture(scope="session")
def scenario_docs(render: Callable[..., Docs]) -> dict[str, Docs]:
    """Rendered documents for the default values and every ci/*-values.yaml scenario."""
    docs = {"default": render()}
    for name in SCENARIOS:
        docs[name] = render(CHART / "ci" / f"{name}-values.yaml")
    return docs


def inference_inputs(docs: Docs) -> dict[str, Any] | None:
    """The rendered inference-inputs ConfigMap of a release (None when inference is off)."""
    found = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{RELEASE}-inference"
    ]
    assert len(found) <= 1, "more than one inference-inputs ConfigMap"
    return found[0] if found else None


@pytest.fixture(scope="session")
def engine_docs(scenario_docs: dict[str, Docs]) -> dict[str, Docs]:
    """Per scenario: the InferenceServices the rollout engine builds from the rendered inputs.

    What a fresh install's first ``shelfops rollout deploy`` creates (the chart renders none).
    """
    out = {}
    for name, docs in scenario_docs.items():
        configmap = inference_inputs(docs)
        out[name] = first_revisions(configmap) if configmap else []
    return out


def _scenario_values(name: str) -> dict[str, Any]:
    """The values a scenario renders with: chart defaults deep-merged with its ci file."""

    def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if name != "default":
        values = merge(values, yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text()))
    return values


@pytest.fixture(scope="session")
def scenario_values() -> Callable[[str], dict[str, Any]]:
    """Function: scenario name ("default" or a ci/ file stem) -> its merged values."""
    return _scenario_values


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """The shared JSON schemas (SHELFOPS_SCHEMAS_DIR, default ../shared/schemas)."""
    path = Path(os.environ.get("SHELFOPS_SCHEMAS_DIR", "../shared/schemas"))
    path = path if path.is_absolute() else ROOT / path
    if not path.is_dir():
        pytest.fail(f"schema directory {path} not found (set SHELFOPS_SCHEMAS_DIR)", pytrace=False)
    return path


def _validator(schemas_dir: Path, filename: str) -> jsonschema.Draft7Validator:
    path = schemas_dir / filename
    if not path.is_file():
        pytest.fail(f"schema {path} is missing: a missing schema is a failure", pytrace=False)
    return jsonschema.Draft7Validator(closed_schema(json.loads(path.read_text())))


@pytest.fixture(scope="session")
def isvc_validator(schemas_dir: Path) -> jsonschema.Draft7Validator:
    """Validator for KServe InferenceService v1beta1 (unknown fields rejected)."""
    return _validator(schemas_dir, "kserve-inferenceservice-v1beta1.json")


@pytest.fixture(scope="session")
def rule_validator(schemas_dir: Path) -> jsonschema.Draft7Validator:
    """Validator for prometheus-operator PrometheusRule v1 (unknown fields rejected)."""
    return _validator(schemas_dir, "prometheus-operator-prometheusrule-v1.json")


def _schema_errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.fixture(scope="session")
def schema_errors() -> Callable[[jsonschema.Draft7Validator, dict[str, Any]], list[str]]:
    """Function: (validator, document) -> readable schema errors (empty when valid)."""
    return _schema_errors


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test that takes ``scenario`` over default values and every ci/ file."""
    if "scenario" in metafunc.fixturenames:
        metafunc.parametrize("scenario", ["default", *SCENARIOS])


@pytest.fixture(scope="session")
def chart_meta() -> dict[str, Any]:
    """Chart.yaml of helm/shelfops."""
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    """Path of the chart."""
    return CHART


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Path of the repository."""
    return ROOT
