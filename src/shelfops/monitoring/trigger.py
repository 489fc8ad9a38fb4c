"""Retraining triggers: start the local training pipeline, or send a GitHub repository_dispatch.

Local profile: :func:`local_retrain_command` is ``shelfops --home HOME pipeline run --local``
(the Kubeflow pipeline run with ``kfp.local``), started by :func:`run_local_retrain`.

Cluster profile: :func:`build_dispatch_request` builds the ``POST /repos/{owner}/{repo}/dispatches``
request that ``.github/workflows/retrain.yml`` listens to (``repository_dispatch`` of type
``drift-detected`` with ``client_payload.model`` in ``all|recs|demand`` and
``client_payload.reason``); :func:`send_dispatch` sends it with ``urllib`` only when asked.
The token comes from the environment variable named by ``SHELFOPS_MONITOR_GITHUB_TOKEN_ENV``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence

from shelfops.settings import MonitorSettings, Settings

RETRAIN_MODELS = ("all", "recs", "demand")
"""Values ``retrain.yml`` accepts for ``client_payload.model``."""
REASON_LIMIT = 500


def dispatch_model(models: Sequence[str]) -> str:
    """The single ``model`` value for retrain.yml: one model, or ``all`` for several/unknown."""
    known = sorted({m for m in models if m in ("recs", "demand")})
    return known[0] if len(known) == 1 and len(set(models)) == 1 else "all"


def build_dispatch_request(
    monitor: MonitorSettings,
    models: Sequence[str],
    reasons: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> urllib.request.Request:
    """Build the GitHub ``repository_dispatch`` request that starts ``retrain.yml``.

    Args:
        monitor: Repository, API URL, event type and the token's environment variable.
        models: Models that breached.
        reasons: The breaches (joined and truncated into ``client_payload.reason``).
        environ: Environment to read the token from (default: ``os.environ``).

    Returns:
        A ``urllib.request.Request`` (POST, JSON body), not sent.

    Raises:
        ValueError: When the repository or the token is not configured.
    """
    env = os.environ if environ is None else environ
    repo = monitor.github_repository
    if not repo or repo.count("/") != 1:
        raise ValueError(
            "set SHELFOPS_MONITOR_GITHUB_REPOSITORY to owner/name of the repository whose "
            "retrain workflow should run"
        )
    token = env.get(monitor.github_token_env, "")
    if not token:
        raise ValueError(
            f"the environment variable {monitor.github_token_env} holds no token: export a "
            "token allowed to create repository_dispatch events (contents: write)"
        )
    reason = "; ".join(reasons)
    if len(reason) > REASON_LIMIT:
        reason = reason[: REASON_LIMIT - 3] + "..."
    body = {
        "event_type": monitor.dispatch_event_type,
        "client_payload": {"model": dispatch_model(models), "reason": reason or "monitor check"},
    }
    return urllib.request.Request(
        f"{monitor.github_api_url.rstrip('/')}/repos/{repo}/dispatches",
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
            "User-Agent": "shelfops-monitor",
        },
    )


def send_dispatch(request: urllib.request.Request, timeout: float = 10.0) -> int:
    """Send a request from :func:`build_dispatch_request`.

    Returns:
        The HTTP status (GitHub answers 204 No Content on success).

    Raises:
        urllib.error.HTTPError: When GitHub refuses (e.g. 401/404 for a bad token or repo).
    """
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def local_retrain_command(settings: Settings) -> list[str]:
    """The command that runs the training pipeline locally for this home."""
    return [
        sys.executable,
        "-m",
        "shelfops.cli.main",
        "--home",
        str(settings.root),
        "pipeline",
        "run",
        "--local",
    ]


def run_local_retrain(settings: Settings, models: Sequence[str]) -> int:
    """Run the local training pipeline and wait for it.

    Args:
        settings: The settings (the home to retrain).
        models: Models that breached (passed as ``SHELFOPS_RETRAIN_MODEL``, as retrain.yml does).

    Returns:
        The pipeline's exit code.
    """
    env = {**os.environ, "SHELFOPS_RETRAIN_MODEL": dispatch_model(models)}
    return subprocess.run(local_retrain_command(settings), env=env, check=False).returncode
