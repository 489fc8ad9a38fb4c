"""An in-process fake of the Kubernetes API for KServe InferenceServices, at the HTTP level.

It serves ``/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices[/{name}]`` with
create (POST), get (GET), merge-patch (PATCH), replace (PUT, resourceVersion checked) and delete,
the calls ``kserve.KServeClient`` makes through the kubernetes client, and serves reads of the
ConfigMaps in ``configmaps`` (``/api/v1/namespaces/{ns}/configmaps/{name}``: the chart's
rendered inference inputs, which the KServe backend builds every object from). Every object
written is validated against the closed InferenceService schema; errors are kept in
``schema_errors``.

Status is simulated the way KServe reports it: each distinct predictor spec is a revision;
a revision becomes ready unless its image is in ``never_ready``; with ``canaryTrafficPercent``
the latest revision gets that share (tag ``latest``) and the previously rolled-out one the rest
(tag ``prev``); without it the latest ready revision takes 100% and becomes the rolled-out one.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema

PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices"
    r"(?:/(?P<name>[^/?]+))?(?:\?.*)?$"
)
CONFIGMAP_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/?]+)")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKServeAPI:
    """The fake API server; start() returns its base URL."""

    def __init__(self, validator: jsonschema.Draft7Validator) -> None:
        self.validator = validator
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.schema_errors: list[str] = []
        self.never_ready: set[str] = set()
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._version = 0
        self.server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                configmap = CONFIGMAP_PATH.match(self.path)
                if configmap and method == "GET":
                    with fake._lock:
                        found = fake.configmaps.get((configmap["ns"], configmap["name"]))
                    if found is None:
                        self._send(
                            404, _status(404, "NotFound", f"configmaps {configmap['name']!r}")
                        )
                    else:
                        self._send(200, copy.deepcopy(found))
                    return
                match = PATH.match(self.path)
                if not match:
                    self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                    return
                body = self._body() if method in {"POST", "PUT", "PATCH"} else None
                with fake._lock:
                    status, out = fake.handle(
                        method,
                        match["ns"],
                        match["name"],
                        body,
                        self.headers.get("Content-Type", ""),
                    )
                self._send(status, out)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # -- API -----------------------------------------------------------------------------------
    def _validate(self, method: str, obj: Any) -> None:
        for error in self.validator.iter_errors(obj):
            where = "/".join(map(str, error.absolute_path))
            self.schema_errors.append(f"{method} {where}: {error.message}")

    def handle(
        self, method: str, ns: str, name: str | None, body: Any, content_type: str
    ) -> tuple[int, Any]:
        self.requests.append(
            {
                "method": method,
                "name": name,
                "content_type": content_type,
                "body": copy.deepcopy(body),
            }
        )
        if method in {"POST", "PUT", "PATCH"}:
            self._validate(method, body)  # every object the client sends, as sent
        if method == "POST":
            key = (ns, body["metadata"]["name"])
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f"{key[1]} already exists")
            obj = copy.deepcopy(body)
            obj["metadata"].update({"namespace": ns, "generation": 1, "uid": f"uid-{key[1]}"})
            return 201, self._store(key, obj)
        key = (ns, name or "")
        if key not in self.objects:
            return 404, _status(404, "NotFound", f"inferenceservices {name!r} not found")
        current = self.objects[key]
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "DELETE":
            del self.objects[key]
            return 200, _status(200, "Success", "deleted")
        if method == "PATCH":
            if "merge-patch" not in content_type:
                return 415, _status(415, "UnsupportedMediaType", content_type)
            obj = merge_patch(current, body)
        else:  # PUT
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", "resourceVersion mismatch")
            obj = copy.deepcopy(body)
            obj["status"] = current.get("status")
        self._validate(method + " (stored)", {k: v for k, v in obj.items() if k != "status"})
        meta = obj["metadata"]
        meta["namespace"], meta["uid"] = ns, current["metadata"]["uid"]
        meta["generation"] = current["metadata"]["generation"] + (
            1 if obj["spec"] != current["spec"] else 0
        )
        return 200, self._store(key, obj)

    def _store(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        obj["status"] = self._status_of(key, obj)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _status_of(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        """KServe's status for the object: revisions, readiness, traffic with tags."""
        ns, name = key
        predictor = {
            k: v for k, v in obj["spec"]["predictor"].items() if k != "canaryTrafficPercent"
        }
        revisions = self.revisions.setdefault(key, [])
        if not revisions or revisions[-1]["spec"] != predictor:
            image = predictor["containers"][0]["image"]
            revisions.append(
                {
                    "name": f"{name}-predictor-{len(revisions) + 1:05d}",
                    "spec": copy.deepcopy(predictor),
                    "ready": image not in self.never_ready,
                }
            )
        latest = revisions[-1]
        old = (obj.get("status") or {}).get("components", {}).get("predictor", {})
        rolled_out = old.get("latestRolledoutRevision")
        percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
        latest_ready = next((r["name"] for r in reversed(revisions) if r["ready"]), None)
        host = f"{name}-predictor.{ns}.example.com"
        traffic: list[dict[str, Any]]
        if percent is not None and rolled_out and rolled_out != latest["name"]:
            traffic = [
                {
                    "revisionName": latest["name"],
                    "percent": percent,
                    "tag": "latest",
                    "latestRevision": True,
                    "url": f"http://latest-{host}",
                },
                {
                    "revisionName": rolled_out,
                    "percent": 100 - percent,
                    "tag": "prev",
                    "latestRevision": False,
                    "url": f"http://prev-{host}",
                },
            ]
            previous = old.get("previousRolledoutRevision")
        else:
            serving = latest["name"] if latest["ready"] else (rolled_out or latest_ready)
            traffic = [
                {
                    "revisionName": serving,
                    "percent": 100,
                    "tag": "latest",
                    "latestRevision": serving == latest["name"],
                    "url": f"http://latest-{host}",
                }
            ]
            previous = rolled_out if serving != rolled_out else old.get("previousRolledoutRevision")
            rolled_out = serving
        ready = latest["ready"]
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "url": f"http://{name}.{ns}.example.com",
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest["name"],
                    "latestReadyRevision": latest_ready,
                    "latestRolledoutRevision": rolled_out,
                    "previousRolledoutRevision": previous,
                    "traffic": traffic,
                    "url": f"http://{host}",
                }
            },
        }

    def served_images(self, ns: str, name: str) -> dict[str, int]:
        """Image -> traffic percent right now (from the simulated status)."""
        key = (ns, name)
        status = self.objects[key]["status"]["components"]["predictor"]
        by_name = {r["name"]: r["spec"]["containers"][0]["image"] for r in self.revisions[key]}
        return {by_name[t["revisionName"]]: t["percent"] for t in status["traffic"]}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
