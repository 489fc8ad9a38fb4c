"""Run and package the BentoML services in ``serving/``: one ``bentoml serve`` per revision.

* :func:`serve_command` gives the argv and environment of one ``bentoml serve`` process for a
  model revision on loopback (``shelfops serve``, the local rollout runtime and tests use it).
* :func:`build_bentos` builds Bentos offline (the shelfops wheel first, then
  ``bentoml build`` of ``serving/<model>/bentofile.yaml``); :func:`export_bento` writes the
  ``.bento`` archive, a complete container build context for the KServe custom container.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from shelfops.serving.runtime import check_model
from shelfops.serving.runtime import model_tag as default_tag
from shelfops.settings import Settings


class PackagingError(RuntimeError):
    """Building or exporting a Bento failed; the message carries the tool's output."""


def project_root() -> Path:
    """The checkout holding ``serving/`` (``SHELFOPS_PROJECT_ROOT`` overrides it).

    Raises:
        PackagingError: No ``serving/`` folder there.
    """
    root = Path(os.environ.get("SHELFOPS_PROJECT_ROOT") or Path(__file__).resolve().parents[3])
    if not (root / "serving").is_dir():
        raise PackagingError(
            f"no serving/ folder under {root}; run from a ShelfOps checkout or set "
            "SHELFOPS_PROJECT_ROOT to one"
        )
    return root


def service_ref(model: str) -> str:
    """The BentoML service import path of a model (``serving.recs.service:RecsService``)."""
    return f"serving.{check_model(model)}.service:{model.capitalize()}Service"


def bento_name(model: str) -> str:
    """The Bento (and image) name of a model."""
    return f"shelfops-{check_model(model)}"


def _env(settings: Settings) -> dict[str, str]:
    env = {
        "BENTOML_HOME": str(settings.bentoml_home),
        "SHELFOPS_HOME": str(settings.root),
        "SHELFOPS_PROFILE": settings.profile,
        "BENTOML_DO_NOT_TRACK": "true",
    }
    if settings.redis_url:
        env["SHELFOPS_REDIS_URL"] = settings.redis_url
    if settings.redis_password is not None:
        env["SHELFOPS_REDIS_PASSWORD"] = settings.redis_password.get_secret_value()
    return env


def serve_command(
    settings: Settings,
    model: str,
    port: int,
    model_tag: str | None = None,
    host: str = "127.0.0.1",
) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment of one ``bentoml serve`` process.

    Args:
        settings: Settings (home, profile) the server inherits.
        model: ``recs`` or ``demand``.
        port: Port to listen on.
        model_tag: Registry tag (default: the newest version).
        host: Interface to bind (loopback by default).

    Returns:
        ``(argv, env)``; run argv with ``os.environ | env`` and cwd :func:`project_root`.
    """
    argv = [
        str(Path(sys.executable).with_name("bentoml")),
        "serve",
        service_ref(model),
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(project_root()),
    ]
    env = _env(settings)
    if model_tag:
        env["SHELFOPS_SERVING_MODEL_TAG"] = model_tag
    return argv, env


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll ``{url}/v2/health/ready`` until it answers 200.

    Args:
        url: Base URL of a model server.
        proc: The server process (its exit ends the wait early).
        timeout_s: Longest wait.

    Returns:
        True once ready; False on timeout or when the process died.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _run(argv: list[str], env: dict[str, str], cwd: Path, what: str) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=os.environ | env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PackagingError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _read_only(root: Path) -> bool:
    """Whether the checkout cannot be written (the tools image: ``/app`` belongs to root)."""
    return not os.access(root, os.W_OK)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on ``dist/`` across processes (tests, benchmarks, pipelines)."""
    if _read_only(root):  # nothing is written there: the image's wheel is only read
        yield
        return
    dist = root / "dist"
    dist.mkdir(exist_ok=True)
    with (dist / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_wheel(root: Path | None = None) -> Path:
    """Build the shelfops wheel into ``dist/`` (no network: no build isolation).

    In a read-only checkout (the tools image, where pipeline steps run as uid 10001) the wheel
    the image was built with, shipped in ``dist/``, is used instead.

    Raises:
        PackagingError: The build failed, or a read-only checkout ships no wheel.
    """
    root = root or project_root()
    dist = root / "dist"
    if _read_only(root):
        shipped = sorted(dist.glob("shelfops-*.whl"))
        if not shipped:
            raise PackagingError(f"{root} is read-only and ships no shelfops wheel in {dist}")
        return shipped[-1]
    dist.mkdir(exist_ok=True)
    for old in dist.glob("shelfops-*.whl"):
        old.unlink()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(root),
        ],
        {},
        root,
        "building the shelfops wheel",
    )
    shutil.rmtree(root / "build", ignore_errors=True)
    wheels = sorted(dist.glob("shelfops-*.whl"))
    if not wheels:
        raise PackagingError(f"pip reported success but wrote no wheel into {dist}")
    return wheels[-1]


def build_bentos(settings: Settings, tags: Mapping[str, str | None]) -> dict[str, str]:
    """Build the Bentos of several models offline, sharing one shelfops wheel.

    Args:
        settings: Settings; the Bentos land in ``settings.bentoml_home``.
        tags: ``{model: registry tag to pack}``; None packs the newest version.

    Returns:
        ``{model: Bento tag}`` (``shelfops-<model>:<version>``).

    Raises:
        PackagingError: The wheel or ``bentoml build`` failed (the message has their output).
    """
    root = project_root()
    built: dict[str, str] = {}
    with _build_lock(root):  # the wheel in dist/ is shared: one build at a time
        build_wheel(root)
        for model, model_tag in tags.items():
            env = _env(settings)
            env["SHELFOPS_SERVING_MODEL_TAG"] = model_tag or default_tag(model)
            out = _run(
                [
                    str(Path(sys.executable).with_name("bentoml")),
                    "build",
                    "-f",
                    str(root / "serving" / check_model(model) / "bentofile.yaml"),
                    "--output",
                    "tag",
                    str(root),
                ],
                env,
                root,
                f"bentoml build of {bento_name(model)}",
            )
            tag = next(
                (
                    line.split("__tag__:", 1)[1].strip()
                    for line in out.splitlines()
                    if "__tag__:" in line
                ),
                out.strip().splitlines()[-1] if out.strip() else "",
            )
            if not tag.startswith(bento_name(model)):
                raise PackagingError(f"bentoml build printed no Bento tag:\n{out[-500:]}")
            built[model] = tag
    return built


def export_bento(settings: Settings, tag: str, target: Path) -> Path:
    """Write a Bento as a ``.bento`` archive: the container build context (models, src, Dockerfile).

    Args:
        settings: Settings (for the BentoML home).
        tag: The Bento tag.
        target: The archive path.

    Returns:
        The written archive.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [str(Path(sys.executable).with_name("bentoml")), "export", tag, str(target)],
        _env(settings),
        project_root(),
        f"bentoml export of {tag}",
    )
    return target
