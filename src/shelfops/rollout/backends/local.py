"""Local backend: each revision is a ``bentoml serve`` process, a splitter gives one endpoint.

Everything runs on loopback, detached in its own session so the endpoints outlive the CLI
command. What runs is recorded in ``<home>/rollout/local/runtime-<model>.json`` (pids, start
times, ports, weights); the splitter's routing table is ``routes-<model>.json`` beside it.
Traffic moves by rewriting the routes file and asking the splitter to reload it (an atomic swap);
a revision leaves the table first, then its in-flight requests drain, then it is stopped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shelfops.rollout.backends.base import BackendError, Observation, Revision
from shelfops.rollout.processes import (
    ProcessInfo,
    free_port,
    is_alive,
    port_in_use,
    spawn_detached,
    stop_process,
)
from shelfops.settings import RolloutSettings, Settings

ServeCommand = Callable[[Settings, str, int, str], tuple[list[str], dict[str, str]]]
"""(settings, model, port, model_tag) -> (argv, extra env) of one revision process."""

REGISTRY_NAMES: Mapping[str, str] = {"recs": "shelfops_recs", "demand": "shelfops_demand"}


def _http(method: str, url: str, timeout_s: float = 1.0) -> tuple[int, bytes]:
    """Send a bodyless request; (status, body), or (0, b"") when nothing answers."""
    import httpx

    try:
        resp = httpx.request(method, url, timeout=timeout_s)
    except httpx.HTTPError:
        return 0, b""
    return resp.status_code, resp.content


def default_serve_command(
    settings: Settings, model: str, port: int, model_tag: str
) -> tuple[list[str], dict[str, str]]:
    """The serving package's ``bentoml serve`` command for one model revision.

    Raises:
        BackendError: If the serving package is not available.
    """
    try:
        from shelfops.serving.package import serve_command
    except ImportError as exc:  # pragma: no cover - depends on the serving package
        raise BackendError(
            "shelfops.serving.package is not available, so no model can be served locally; "
            "install ShelfOps with its serving package (make install)"
        ) from exc
    argv, env = serve_command(settings, model, port, model_tag=model_tag)
    return list(argv), dict(env)


def default_resolve(settings: Settings, model: str, version: str) -> str:
    """Resolve ``latest`` / ``shelfops_recs:abc`` / ``abc`` to a stored model version.

    Raises:
        BackendError: If the model store has no such version.
    """
    from shelfops.registry import latest_tag, use_bentoml_home

    name = REGISTRY_NAMES[model]
    use_bentoml_home(settings)
    import bentoml

    if version in {"", "latest"}:
        tag = latest_tag(name)
        if tag is None:
            raise BackendError(
                f"no {name} model in {settings.bentoml_home}; train one with `shelfops train`"
            )
        return tag.split(":", 1)[1]
    if ":" in version:
        stored_name, version = version.split(":", 1)
        if stored_name != name:
            raise BackendError(f"{stored_name}:{version} is not a {model} model ({name})")
    try:
        bentoml.models.get(f"{name}:{version}")
    except bentoml.exceptions.NotFound as exc:
        raise BackendError(
            f"no model {name}:{version} in {settings.bentoml_home}; list versions with "
            f"`BENTOML_HOME={settings.bentoml_home} bentoml models list`"
        ) from exc
    return version


class LocalBackend:
    """Revisions as local ``bentoml serve`` processes behind a traffic splitter.

    Args:
        settings: ShelfOps settings (home, model store).
        config: Rollout settings (ports, timeouts, keep_previous).
        serve_command: Builds a revision's command line (default: the serving package's).
        resolve: Resolves user-typed versions (default: the BentoML model store).
        revision_env: Extra environment for revisions started by this backend (fault drills,
            e.g. ``SHELFOPS_SERVING_INJECT_LATENCY_MS``).
    """

    name = "local"

    def __init__(
        self,
        settings: Settings,
        config: RolloutSettings,
        serve_command: ServeCommand | None = None,
        resolve: Callable[[Settings, str, str], str] | None = None,
        revision_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.serve_command = serve_command or default_serve_command
        self.resolve = resolve or default_resolve
        self.revision_env = dict(revision_env or {})
        self.dir = settings.root / "rollout" / "local"

    @staticmethod
    def _working_dir() -> Path | None:
        """The checkout the BentoML services import from, when the serving package knows it."""
        try:
            from shelfops.serving.package import project_root

            return project_root()
        except Exception:
            return None

    # -- files --------------------------------------------------------------------------------
    def _runtime_path(self, model: str) -> Path:
        return self.dir / f"runtime-{model}.json"

    def routes_path(self, model: str) -> Path:
        """The splitter's routes file of ``model``."""
        return self.dir / f"routes-{model}.json"

    def _load(self, model: str) -> dict[str, Any]:
        path = self._runtime_path(model)
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return {"model": model, "splitter": None, "revisions": {}, "weights": {}}

    def _save(self, model: str, runtime: dict[str, Any]) -> None:
        path = self._runtime_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(runtime, indent=2))
        os.replace(tmp, path)

    def port_of(self, model: str) -> int:
        """The stable endpoint port of ``model``."""
        ports = {"recs": self.config.recs_port, "demand": self.config.demand_port}
        if model not in ports:
            raise BackendError(f"unknown model {model!r}; choose recs or demand")
        return ports[model]

    # -- interface ----------------------------------------------------------------------------
    def resolve_version(self, model: str, version: str) -> str:
        """Resolve ``latest`` or a full tag to the stored version."""
        if model not in REGISTRY_NAMES:
            raise BackendError(f"unknown model {model!r}; choose recs or demand")
        return self.resolve(self.settings, model, version)

    def _alive(self, data: Mapping[str, Any] | None) -> bool:
        return bool(data) and is_alive(ProcessInfo.from_dict(data))  # type: ignore[arg-type]

    def observe(self, model: str) -> Observation:
        """Running revisions, their readiness and weights, and the endpoint."""
        runtime = self._load(model)
        weights: dict[str, int] = runtime.get("weights", {})
        revisions = []
        alive_versions = set()
        for version, info in runtime.get("revisions", {}).items():
            alive = self._alive(info)
            if alive:
                alive_versions.add(version)
            url = f"http://127.0.0.1:{info['port']}"
            ready = alive and _http("GET", f"{url}/v2/health/ready", 0.5)[0] == 200
            revisions.append(Revision(version, url, ready, int(weights.get(version, 0))))
        splitter = runtime.get("splitter")
        endpoint = (
            f"http://127.0.0.1:{splitter['port']}" if splitter and self._alive(splitter) else None
        )
        return Observation(
            model=model,
            endpoint=endpoint,
            stable_version=runtime.get("stable")
            if runtime.get("stable") in alive_versions
            else None,
            canary_version=runtime.get("canary"),
            canary_percent=int(weights.get(runtime.get("canary") or "", 0)),
            revisions=tuple(revisions),
        )

    def _ensure_splitter(self, model: str, runtime: dict[str, Any]) -> None:
        if self._alive(runtime.get("splitter")):
            return
        port = self.port_of(model)
        if port_in_use(port):
            raise BackendError(
                f"port {port} for the {model} endpoint is taken by another program; free it or "
                f"set SHELFOPS_ROLLOUT_{model.upper()}_PORT"
            )
        routes = self.routes_path(model)
        if not routes.is_file():
            self._write_routes(model, runtime, {})
        argv = [
            sys.executable,
            "-m",
            "shelfops.rollout.splitter",
            "--model",
            model,
            "--port",
            str(port),
            "--routes",
            str(routes),
        ]
        info = spawn_detached(
            argv, dict(os.environ), self.dir / "logs" / f"splitter-{model}.log", port
        )
        runtime["splitter"] = info.to_dict()
        self._save(model, runtime)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _http("GET", f"http://127.0.0.1:{port}/_shelfops/health", 0.5)[0] == 200:
                return
            if not is_alive(info):
                break
            time.sleep(0.1)
        raise BackendError(f"the {model} splitter did not start; see {info.log}")

    def _start_revision(self, model: str, version: str, runtime: dict[str, Any]) -> None:
        current = runtime["revisions"].get(version)
        if current and self._alive(current):
            return
        port = free_port()
        tag = f"{REGISTRY_NAMES[model]}:{version}"
        argv, extra = self.serve_command(self.settings, model, port, tag)
        env = {**os.environ, **extra, **self.revision_env}
        log = self.dir / "logs" / f"{model}-{version}.log"
        info = spawn_detached(argv, env, log, port, cwd=self._working_dir())
        runtime["revisions"][version] = info.to_dict()
        self._save(model, runtime)

    def start_canary(self, model: str, version: str, stable: str | None) -> None:
        """Start the splitter (if needed) and ``version`` with 0% of the traffic."""
        runtime = self._load(model)
        self._ensure_splitter(model, runtime)
        self._start_revision(model, version, runtime)
        runtime["canary"] = version if stable else None
        runtime.setdefault("weights", {}).setdefault(version, 0)
        self._save(model, runtime)

    def wait_ready(self, model: str, version: str, timeout_s: float) -> bool:
        """Poll ``/v2/health/ready`` of the revision; False on timeout or if it exits."""
        runtime = self._load(model)
        info = runtime["revisions"].get(version)
        if not info:
            return False
        proc = ProcessInfo.from_dict(info)
        url = f"http://127.0.0.1:{proc.port}/v2/health/ready"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _http("GET", url, 1.0)[0] == 200:
                return True
            if not is_alive(proc):
                return False
            time.sleep(0.2)
        return False

    def _write_routes(
        self, model: str, runtime: dict[str, Any], weights: Mapping[str, int]
    ) -> None:
        routes = [
            {
                "version": v,
                "url": f"http://127.0.0.1:{info['port']}",
                "weight": int(weights.get(v, 0)),
            }
            for v, info in runtime.get("revisions", {}).items()
            if v in weights
        ]
        path = self.routes_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"model": model, "routes": routes}, indent=2))
        os.replace(tmp, path)

    def _apply(self, model: str, runtime: dict[str, Any], weights: dict[str, int]) -> None:
        """Write the routes, have the splitter swap them in, and record the weights."""
        self._ensure_splitter(model, runtime)
        self._write_routes(model, runtime, weights)
        port = runtime["splitter"]["port"]
        status, body = _http("POST", f"http://127.0.0.1:{port}/_shelfops/reload", 5.0)
        if status != 200:
            raise BackendError(f"the {model} splitter refused the new routes: {body[:200]!r}")
        applied = {r["version"]: r["weight"] for r in json.loads(body)["routes"]}
        if {k: v for k, v in applied.items() if v} != {k: v for k, v in weights.items() if v}:
            raise BackendError(f"the {model} splitter applied {applied}, expected {weights}")
        runtime["weights"] = weights
        self._save(model, runtime)

    def _drain_and_stop(self, model: str, runtime: dict[str, Any], version: str) -> None:
        """Wait for the revision's in-flight requests to end, then stop it."""
        info = runtime["revisions"].get(version)
        if not info:
            return
        splitter = runtime.get("splitter")
        if splitter and self._alive(splitter):
            deadline = time.monotonic() + self.config.drain_timeout_s
            url = f"http://127.0.0.1:{splitter['port']}/_shelfops/routes"
            while time.monotonic() < deadline:
                status, body = _http("GET", url, 1.0)
                if status != 200 or not json.loads(body)["inflight"].get(version, 0):
                    break
                time.sleep(0.02)
        stop_process(ProcessInfo.from_dict(info), timeout_s=5.0)
        runtime["revisions"].pop(version, None)
        runtime["weights"].pop(version, None)
        self._save(model, runtime)

    def set_traffic(self, model: str, stable: str | None, canary: str, percent: int) -> None:
        """Send ``percent`` to the canary and the rest to the stable."""
        runtime = self._load(model)
        weights = {v: 0 for v in runtime.get("weights", {}) if v in runtime["revisions"]}
        if stable:
            weights[stable] = 100 - percent
        weights[canary] = percent if stable else 100
        runtime["canary"] = canary if stable and percent < 100 else runtime.get("canary")
        self._apply(model, runtime, weights)

    def promote(self, model: str, version: str, previous: str | None) -> None:
        """All traffic to ``version``; keep ``previous`` warm (weight 0) or stop it."""
        runtime = self._load(model)
        keep = {version}
        if previous and self.config.keep_previous:
            keep.add(previous)
        weights = {v: (100 if v == version else 0) for v in keep if v in runtime["revisions"]}
        self._apply(model, runtime, weights)
        runtime["stable"], runtime["canary"] = version, None
        self._save(model, runtime)
        for old in [v for v in runtime["revisions"] if v not in keep]:
            self._drain_and_stop(model, runtime, old)

    def rollback(self, model: str, to_version: str, drop: str | None) -> None:
        """All traffic to ``to_version`` (started if needed); drain and stop ``drop``."""
        runtime = self._load(model)
        if to_version:
            if not self._alive(runtime["revisions"].get(to_version)):
                self._start_revision(model, to_version, runtime)
                if not self.wait_ready(model, to_version, self.config.ready_timeout_s):
                    raise BackendError(
                        f"{model} {to_version} did not become ready; see "
                        f"{runtime['revisions'][to_version]['log']}"
                    )
            weights = {v: 0 for v in runtime.get("weights", {}) if v in runtime["revisions"]}
            weights.pop(drop or "", None)
            weights[to_version] = 100
            self._apply(model, runtime, weights)
        else:
            weights = {v: w for v, w in runtime.get("weights", {}).items() if v != drop}
            self._apply(model, runtime, weights)
        runtime["stable"] = to_version or None
        runtime["canary"] = None
        self._save(model, runtime)
        if drop:
            self._drain_and_stop(model, runtime, drop)

    def stop(self, model: str) -> list[str]:
        """Stop the splitter and every revision of ``model``; returns what was stopped."""
        runtime = self._load(model)
        stopped = []
        splitter = runtime.get("splitter")
        if splitter and self._alive(splitter):
            stop_process(ProcessInfo.from_dict(splitter))
            stopped.append(f"splitter :{splitter['port']}")
        for version, info in runtime.get("revisions", {}).items():
            if self._alive(info):
                stop_process(ProcessInfo.from_dict(info))
                stopped.append(f"{version} :{info['port']}")
        for path in (self._runtime_path(model), self.routes_path(model)):
            path.unlink(missing_ok=True)
        return stopped
