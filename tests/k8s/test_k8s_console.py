"""The optional console Deployment: off by default, hardened like the rest, tokens from a Secret."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.k8s.conftest import CHART, NAMESPACE, RELEASE, Docs

pytestmark = pytest.mark.k8s


def _named(docs: Docs, kind: str, name: str) -> dict[str, Any] | None:
    return next(
        (d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name),
        None,
    )


def test_console_is_off_by_default(scenario_docs: dict[str, Docs]) -> None:
    """The default values render no console objects."""
    assert not [d for d in scenario_docs["default"] if "console" in d["metadata"]["name"]]


def test_console_pod_is_hardened_and_reads_tokens_from_the_secret(
    scenario_docs: dict[str, Docs],
) -> None:
    """Non-root, read-only root, no token mount, both tokens from secretKeyRef, bound beyond pod."""
    docs = scenario_docs["production"]
    deploy = _named(docs, "Deployment", f"{RELEASE}-console")
    assert deploy is not None
    pod = deploy["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in container["env"]}
    for var, key in (
        ("SHELFOPS_CONSOLE_VIEWER_TOKEN", "viewer-token"),
        ("SHELFOPS_CONSOLE_EDITOR_TOKEN", "editor-token"),
    ):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "shelfops-console-tokens", "key": key}
    assert env["SHELFOPS_CONSOLE_RECS_URL"]["value"] == f"http://recs.{NAMESPACE}.svc.cluster.local"
    assert container["args"][:3] == ["console", "--host", "0.0.0.0"]
    policy = _named(docs, "NetworkPolicy", f"{RELEASE}-console")
    assert policy is not None
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert _named(docs, "ServiceAccount", f"{RELEASE}-console") is not None


def test_console_without_client_namespaces_admits_nobody(
    render: Callable[..., Docs], tmp_path: Path
) -> None:
    """No clientNamespaces: an empty ingress list (deny all), never an empty `from` (allow all)."""
    values = tmp_path / "console.yaml"
    values.write_text("console:\n  enabled: true\n  tokensSecret: t\n  clientNamespaces: []\n")
    policy = _named(render(values), "NetworkPolicy", f"{RELEASE}-console")
    assert policy is not None and policy["spec"]["ingress"] == []


def test_console_enabled_without_a_token_secret_fails_to_render(
    run_helm: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Enabling the console without tokensSecret is a render error naming the value."""
    values = tmp_path / "console.yaml"
    values.write_text("console:\n  enabled: true\n")
    done = run_helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values)
    assert done.returncode != 0 and "tokensSecret" in done.stderr


def test_console_and_sink_use_the_chart_home_claim(scenario_docs: dict[str, Docs]) -> None:
    """Console, payload sink and the tools workloads mount one home claim; no other PVC exists."""
    docs = scenario_docs["production"]
    claims: dict[str, set[str]] = {}
    for doc in docs:
        if doc["kind"] not in {"Deployment", "CronJob"}:
            continue
        spec = doc["spec"]
        pod = (spec.get("jobTemplate", {}).get("spec") or spec)["template"]["spec"]
        mounted = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        if mounted:
            claims[doc["metadata"]["name"]] = mounted
    for component in ("console", "payload-sink", "feature-server", "materialize"):
        assert f"{RELEASE}-{component}" in claims, f"{component} mounts no home claim"
    assert len(set().union(*claims.values())) == 1, claims
    pvcs = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert set(pvcs) <= set().union(*claims.values()), pvcs


def test_console_without_the_home_volume_fails_to_render(
    run_helm: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """The console needs the chart's home volume: without home.persistence it refuses to render."""
    values = tmp_path / "console.yaml"
    values.write_text(
        "console:\n  enabled: true\n  tokensSecret: t\nhome:\n  persistence:\n    enabled: false\n"
    )
    done = run_helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values)
    assert done.returncode != 0 and "home.persistence.enabled" in done.stderr
