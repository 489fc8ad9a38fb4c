"""values.yaml and values.schema.json: strict, documented, and enforced by helm."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.k8s

# Each case is a values override that must be rejected; the id says what it breaks.
BROKEN_VALUES: dict[str, dict[str, Any]] = {
    # Canary traffic belongs to the rollout engine alone: the chart refuses to set it.
    "canary-percent-in-values": {"models": {"recs": {"canaryTrafficPercent": 10}}},
    "unknown-key-typo": {"featureServer": {"replica": 2}},
    "unknown-top-level-key": {"redisUrl": "redis://x:6379"},
    "external-redis-without-url": {"redis": {"mode": "external", "external": {"url": ""}}},
    "redis-url-with-credentials": {
        "redis": {"mode": "external", "external": {"url": "redis://user:hunter2@cache:6379/0"}}
    },
    "bad-redis-mode": {"redis": {"mode": "sentinel"}},
    "image-without-tag-or-digest": {
        "models": {"demand": {"image": {"repository": "ghcr.io/x/demand", "tag": "", "digest": ""}}}
    },
    "bad-digest": {"toolsImage": {"digest": "sha256:abc"}},
    "resources-without-limits": {
        "models": {
            "recs": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": None}}
        }
    },
    "bad-cron-schedule": {"materialize": {"schedule": "every hour"}},
    "bad-pull-policy": {"image": {"pullPolicy": "Sometimes"}},
    "threshold-out-of-range": {
        "monitoring": {"prometheusRule": {"thresholds": {"accuracyMin": 80}}}
    },
    "bad-model-name": {"models": {"Recs_V2": {"enabled": True}}},
    "env-value-not-a-string": {"models": {"recs": {"env": {"SHELFOPS_X": 1}}}},
}


@pytest.mark.parametrize("case", sorted(BROKEN_VALUES))
def test_schema_violation_fails_lint_and_template(
    case: str,
    tmp_path: Path,
    chart_dir: Path,
    run_helm: Callable[..., Any],
) -> None:
    """A values file that violates values.schema.json makes helm lint --strict and template fail."""
    values = tmp_path / f"{case}.yaml"
    values.write_text(yaml.safe_dump(BROKEN_VALUES[case]))
    lint = run_helm("lint", "--strict", chart_dir, "-f", values)
    assert lint.returncode != 0, f"helm lint accepted {case}:\n{lint.stdout}"
    template = run_helm("template", "shelfops", chart_dir, "-f", values)
    assert template.returncode != 0, f"helm template accepted {case}"
    assert "schema" in (template.stderr + lint.stdout + lint.stderr).lower()


def test_min_replicas_above_max_fails(
    tmp_path: Path, chart_dir: Path, run_helm: Callable[..., Any]
) -> None:
    """minReplicas > maxReplicas (a cross-field rule the schema cannot express) fails rendering."""
    values = tmp_path / "replicas.yaml"
    values.write_text(yaml.safe_dump({"models": {"recs": {"minReplicas": 5, "maxReplicas": 2}}}))
    result = run_helm("template", "shelfops", chart_dir, "-f", values)
    assert result.returncode != 0
    assert "minReplicas (5) must not exceed maxReplicas (2)" in result.stderr


def test_default_and_scenarios_lint_clean(
    chart_dir: Path, run_helm: Callable[..., Any], scenario: str
) -> None:
    """helm lint --strict passes for the default values and every ci/ scenario."""
    args: list[Any] = ["lint", "--strict", chart_dir]
    if scenario != "default":
        args += ["-f", chart_dir / "ci" / f"{scenario}-values.yaml"]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_scenarios_exist(chart_dir: Path) -> None:
    """The local-kind and production scenarios are present under ci/."""
    names = {p.name for p in (chart_dir / "ci").glob("*-values.yaml")}
    assert {"local-kind-values.yaml", "production-values.yaml"} <= names


def test_values_file_has_schema_modeline(chart_dir: Path) -> None:
    """values.yaml and each scenario start with the yaml-language-server schema modeline."""
    assert (chart_dir / "values.yaml").read_text().splitlines()[0] == (
        "# yaml-language-server: $schema=values.schema.json"
    )
    for path in (chart_dir / "ci").glob("*-values.yaml"):
        assert path.read_text().splitlines()[0] == (
            "# yaml-language-server: $schema=../values.schema.json"
        ), path.name


def test_every_values_key_is_commented(chart_dir: Path) -> None:
    """Every key in values.yaml has a comment line right above it (resource quantities aside)."""
    lines = (chart_dir / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(\s*)([A-Za-z][\w.-]*):")
    undocumented = []
    parents: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        parents = [(n, k) for n, k in parents if n < indent]
        inside_resources = any(k == "resources" for _, k in parents)
        parents.append((indent, match.group(2)))
        if inside_resources:
            continue  # requests/limits/cpu/memory are Kubernetes' own, documented on "resources"
        previous = lines[i - 1].strip() if i else ""
        if not previous.startswith("#"):
            undocumented.append(f"line {i + 1}: {line.strip()}")
    assert not undocumented, "keys without a comment:\n" + "\n".join(undocumented)


def test_schema_is_strict(chart_dir: Path) -> None:
    """Every object in values.schema.json with declared properties forbids unknown keys."""
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    loose = []
    stack: list[tuple[str, Any]] = [("#", schema)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            if (
                "properties" in node
                and node.get("type") == "object"
                and node.get("additionalProperties") is not False
            ):
                loose.append(where)
            stack.extend((f"{where}/{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}/{i}", v) for i, v in enumerate(node))
    assert not loose, f"objects accepting unknown keys: {loose}"
