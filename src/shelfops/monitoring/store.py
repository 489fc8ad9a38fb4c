"""Prediction and feedback logs: parquet part files under ``<home>/monitoring``.

The services call :class:`PredictionLogger` on the request path: ``log()`` only samples and
appends a record to an in-memory buffer under a lock; a background thread writes the buffer to a
new parquet part file every ``flush_records`` records or ``flush_seconds`` seconds, and
``close()`` writes what is left. Feedback (what customers did with recommendations, and actual
sales arriving for forecasts) is validated by :data:`FeedbackEvent` and written by
:class:`FeedbackStore`.

Every file carries the customer id in a ``customer_id`` column and nothing else about the
person, so ``shelfops privacy forget`` (which rewrites every parquet file under the home that has
that column) removes a customer's logged predictions and feedback too.

Layout::

    <home>/monitoring/predictions/<model>/part-<utc time>-<random>.parquet
    <home>/monitoring/feedback/part-<utc time>-<random>.parquet
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator

from shelfops.data.parquet import write_parquet_us
from shelfops.settings import MonitorSettings, Settings

_LOG = logging.getLogger(__name__)

FEATURE_PREFIX = "f."
"""Column prefix of a logged model input."""
OUTPUT_PREFIX = "o."
"""Column prefix of a numeric summary of the logged outputs."""
BASE_COLUMNS = (
    "ts",
    "model",
    "model_version",
    "request_id",
    "customer_id",
    "degraded",
    "latency_ms",
    "outputs",
)


def monitoring_dir(settings: Settings) -> Path:
    """Folder of every monitoring file under the ShelfOps home."""
    return settings.root / "monitoring"


def predictions_dir(settings: Settings) -> Path:
    """Folder of the prediction log (one sub-folder per model)."""
    return monitoring_dir(settings) / "predictions"


def feedback_dir(settings: Settings) -> Path:
    """Folder of the feedback log."""
    return monitoring_dir(settings) / "feedback"


def _part_name() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if not cleaned.strip("._"):
        raise ValueError(f"model name {name!r} has no usable characters")
    return cleaned


def _scalar(value: Any) -> float | str | None:
    """A loggable scalar: numbers and booleans as float, strings as-is, anything else dropped."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:  # numpy scalars
        return float(value)
    except (TypeError, ValueError):
        return None


def output_summary(outputs: Mapping[str, Any]) -> dict[str, float]:
    """Numeric summaries of a prediction's outputs, the values prediction drift is measured on.

    A numeric value ``k`` gives ``k``; a list of numbers gives ``k.mean``; a list of records
    (e.g. forecasts or recommended items) gives ``k.<field>`` as the mean of each numeric field.

    Args:
        outputs: The outputs as logged.

    Returns:
        Summary name -> value (non-finite values are left out).
    """
    out: dict[str, float] = {}
    for key, value in outputs.items():
        if isinstance(value, bool | int | float):
            out[key] = float(value)
        elif isinstance(value, list) and value:
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                out[f"{key}.mean"] = float(sum(value) / len(value))
            elif all(isinstance(v, Mapping) for v in value):
                fields: dict[str, list[float]] = {}
                for item in value:
                    for f, v in item.items():
                        if isinstance(v, int | float) and not isinstance(v, bool):
                            fields.setdefault(f, []).append(float(v))
                for f, vs in fields.items():
                    out[f"{key}.{f}"] = sum(vs) / len(vs)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def demand_outputs(forecasts: pd.DataFrame) -> dict[str, Any]:
    """The outputs to log for one demand request, from ``DemandPredictor.predict``.

    Args:
        forecasts: ``stock_code, week_start, p10, p50, p90`` rows (extra columns are ignored).

    Returns:
        ``{"forecasts": [{"stock_code", "week_start", "p10", "p50", "p90"}, ...]}``.
    """
    cols = ["stock_code", "week_start", "p10", "p50", "p90"]
    frame = forecasts[cols].copy()
    frame["week_start"] = pd.to_datetime(frame["week_start"]).dt.strftime("%Y-%m-%d")
    frame["stock_code"] = frame["stock_code"].astype(str)
    return {"forecasts": frame.to_dict(orient="records")}


def recs_outputs(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The outputs to log for one recommendation list, from ``RecsPredictor.predict``.

    Args:
        items: One customer's list (``stock_code``, ``score`` and display fields).

    Returns:
        ``{"items": [{"stock_code", "score"}, ...]}`` (display text is not logged).
    """
    return {
        "items": [
            {"stock_code": str(i["stock_code"]), "score": i.get("score")}
            if i.get("score") is not None
            else {"stock_code": str(i["stock_code"])}
            for i in items
        ]
    }


class PredictionLogger:
    """Samples predictions into a buffer and flushes it to parquet part files in the background.

    Thread-safe; one instance per process and model is the intended use. ``log()`` costs a
    random draw, a dict and a list append under a lock; parquet writing happens on a daemon
    thread (or in ``flush()``/``close()``).
    """

    def __init__(
        self,
        settings: Settings,
        sample_rate: float | None = None,
        *,
        monitor: MonitorSettings | None = None,
        flush_records: int | None = None,
        flush_seconds: float | None = None,
        seed: int | None = None,
        max_buffer: int = 100_000,
    ) -> None:
        """Create a logger writing under ``settings.root``.

        Args:
            settings: The settings (the home decides where files go).
            sample_rate: Share of requests logged, 0 to 1 (default: ``monitor.sample_rate``).
            monitor: Monitoring settings (default: read from the environment).
            flush_records: Flush every N buffered records (default from ``monitor``).
            flush_seconds: Flush at least this often (default from ``monitor``).
            seed: Seed of the sampling draw (default: ``settings.seed``).
            max_buffer: Most records held in memory; beyond it new records are dropped (and
                counted in ``dropped``) rather than letting a stalled disk grow the process.

        Raises:
            ValueError: If the sample rate is outside 0 to 1.
        """
        mon = monitor or MonitorSettings()
        rate = mon.sample_rate if sample_rate is None else float(sample_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {rate}")
        self.settings = settings
        self.sample_rate = rate
        self.flush_records = int(flush_records or mon.flush_records)
        self.flush_seconds = float(flush_seconds or mon.flush_seconds)
        self._rng = random.Random(settings.seed if seed is None else seed)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.max_buffer = max_buffer
        self.dropped = 0
        self.failed_writes = 0
        self.written_files: list[Path] = []

    def _ensure_thread(self) -> None:
        with self._write_lock:  # two first calls at once must not start two writers
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="shelfops-prediction-logger", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if not self._closed:
                try:
                    self.flush()
                except Exception:  # a full or read-only disk must not kill the writer
                    self.failed_writes += 1
                    _LOG.exception("cannot write the prediction log under %s", self.settings.root)

    def log(
        self,
        model: str,
        model_version: str,
        request_id: str,
        customer_id: str | None,
        features: Mapping[str, Any],
        outputs: Mapping[str, Any],
        degraded: bool,
        latency_ms: float,
        *,
        ts: dt.datetime | None = None,
    ) -> bool:
        """Log one prediction if it is sampled.

        Args:
            model: Model name (``recs`` or ``demand``).
            model_version: Version of the model that answered.
            request_id: The request's id (feedback refers to it).
            customer_id: The customer the prediction is for, if any (the only personal field).
            features: The model inputs read from the feature store, flat numeric/string values
                (lists and nested values are not logged).
            outputs: What the model returned, JSON-able (see :func:`demand_outputs` and
                :func:`recs_outputs`).
            degraded: Whether a fallback answered instead of the model.
            latency_ms: Time to answer, in milliseconds.
            ts: Prediction time (default: now); for simulations and backfills.

        Returns:
            True if the record was kept (sampled, and the buffer had room).

        Raises:
            RuntimeError: If the logger was closed.
        """
        if self._closed:
            raise RuntimeError("this PredictionLogger is closed; create a new one")
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return False
        record = {
            "ts": time.time() if ts is None else _epoch(ts),
            "model": model,
            "model_version": model_version,
            "request_id": request_id,
            "customer_id": customer_id,
            "degraded": degraded,
            "latency_ms": latency_ms,
            "features": features,
            "outputs": outputs,
        }
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                return False
            self._buffer.append(record)
            full = len(self._buffer) >= self.flush_records
        if self._thread is None:
            self._ensure_thread()
        if full:
            self._wake.set()
        return True

    def flush(self) -> list[Path]:
        """Write the buffered records to new part files (one per model).

        Returns:
            The files written (none when the buffer was empty).
        """
        with self._lock:
            records, self._buffer = self._buffer, []
        if not records:
            return []
        with self._write_lock:
            written = [
                _write_predictions(predictions_dir(self.settings) / _safe_name(model), recs)
                for model, recs in _group(records).items()
            ]
            self.written_files.extend(written)
        return written

    def close(self) -> list[Path]:
        """Stop the background thread and write what is left.

        Returns:
            The files written by this final flush.
        """
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.flush()

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r["model"]), []).append(r)
    return groups


def _epoch(value: dt.datetime) -> float:
    """Seconds since the epoch; naive times are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _timestamp(value: Any) -> pd.Timestamp:
    """A UTC timestamp at microsecond precision (what the parquet files hold)."""
    if isinstance(value, int | float):
        ts = pd.Timestamp(value, unit="s", tz="UTC")
    else:
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.floor("us")


def prediction_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Turn logged records into the prediction-log table (one row each).

    Args:
        records: Records as :meth:`PredictionLogger.log` buffers them.

    Returns:
        The base columns, ``f.<feature>`` per scalar input and ``o.<summary>`` per output
        summary (see :func:`output_summary`).
    """
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {
            "ts": r["ts"] if isinstance(r["ts"], float) else _timestamp(r["ts"]).timestamp(),
            "model": str(r["model"]),
            "model_version": str(r["model_version"]),
            "request_id": str(r["request_id"]),
            "customer_id": None if r.get("customer_id") is None else str(r["customer_id"]),
            "degraded": bool(r["degraded"]),
            "latency_ms": float(r["latency_ms"]),
            "outputs": json.dumps(r["outputs"], default=str, separators=(",", ":")),
        }
        for k, v in (r.get("features") or {}).items():
            s = _scalar(v)
            if s is not None:
                row[FEATURE_PREFIX + str(k)] = s
        for k, v in output_summary(r.get("outputs") or {}).items():
            row[OUTPUT_PREFIX + k] = v
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if col.startswith(FEATURE_PREFIX) and frame[col].map(lambda x: isinstance(x, str)).any():
            frame[col] = frame[col].map(lambda x: None if x is None or x != x else str(x))
            frame[col] = frame[col].astype("string")
    frame["customer_id"] = frame["customer_id"].astype("string")
    micros = np.round(frame["ts"].to_numpy(dtype="float64") * 1e6).astype("int64")
    frame["ts"] = pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[us, UTC]")
    return frame


def _write_predictions(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _part_name()
    tmp = folder / f".{path.name}.tmp"
    write_parquet_us(prediction_frame(records), tmp)
    tmp.replace(path)
    return path


def _read_parts(folder: Path) -> pd.DataFrame:
    parts = [pd.read_parquet(p) for p in sorted(folder.rglob("part-*.parquet"))]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True, sort=False)


def read_predictions(
    settings: Settings,
    model: str | None = None,
    since: dt.datetime | pd.Timestamp | None = None,
    until: dt.datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Read the prediction log.

    Args:
        settings: The settings.
        model: Only this model (default: every model).
        since: Only predictions at or after this time.
        until: Only predictions before this time.

    Returns:
        The log sorted by time (empty when nothing was logged).
    """
    folder = predictions_dir(settings)
    if model is not None:
        folder = folder / _safe_name(model)
    frame = _read_parts(folder)
    if frame.empty:
        return frame
    if since is not None:
        frame = frame[frame["ts"] >= _timestamp(since)]
    if until is not None:
        frame = frame[frame["ts"] < _timestamp(until)]
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


# --- feedback ---------------------------------------------------------------------------------


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""Feedback before this (or in the future) is a client bug, rejected with a 422."""


class RecommendationFeedback(BaseModel):
    """What a customer did with a recommended item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["recommendation"] = "recommendation"
    request_id: str = Field(min_length=1, description="The recommendation request's id.")
    customer_id: str = Field(min_length=1, description="The customer who acted.")
    stock_code: str = Field(min_length=1, description="The item acted on.")
    action: Literal["viewed", "added_to_cart", "bought"] = Field(description="What they did.")
    timestamp: dt.datetime = Field(description="When (ISO 8601; naive times are taken as UTC).")

    @field_validator("timestamp")
    @classmethod
    def _plausible_time(cls, value: dt.datetime) -> dt.datetime:
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if not EARLIEST <= aware <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
            raise ValueError(f"timestamp {value.isoformat()} is before 1970 or in the future")
        return value


class ForecastActual(BaseModel):
    """Units actually sold of a product in a week, arriving after its forecast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["actual"] = "actual"
    stock_code: str = Field(min_length=1, description="The product.")
    week_start: dt.date = Field(description="Monday that starts the week (weeks run Mon-Sun).")
    units: float = Field(ge=0, description="Net units sold in that week.")

    @field_validator("week_start")
    @classmethod
    def _monday(cls, value: dt.date) -> dt.date:
        if value.weekday() != 0:
            raise ValueError(f"week_start {value} is not a Monday; weeks run Monday to Sunday")
        if not EARLIEST.date() <= value <= dt.date.today() + dt.timedelta(days=7):
            raise ValueError(f"week_start {value} is before 1970 or has not started yet")
        return value


def _feedback_kind(value: Any) -> str:
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", ""))
    if isinstance(value, Mapping):
        if "kind" in value:
            return str(value["kind"])
        return "recommendation" if "action" in value else "actual"
    return ""


FeedbackEvent = Annotated[
    Annotated[RecommendationFeedback, Tag("recommendation")]
    | Annotated[ForecastActual, Tag("actual")],
    Discriminator(_feedback_kind),
]
"""One feedback event: a :class:`RecommendationFeedback` or a :class:`ForecastActual`.

``kind`` may be omitted: an event with ``action`` is a recommendation outcome, otherwise an
actual. Use it as a FastAPI body type (``list[FeedbackEvent]``) or parse with
:func:`parse_feedback`.
"""

_FEEDBACK_LIST: TypeAdapter[list[FeedbackEvent]] = TypeAdapter(list[FeedbackEvent])

FEEDBACK_COLUMNS = (
    "kind",
    "request_id",
    "customer_id",
    "stock_code",
    "action",
    "timestamp",
    "week_start",
    "units",
    "received_at",
)


def parse_feedback(payload: Any) -> list[RecommendationFeedback | ForecastActual]:
    """Validate a list of feedback events (raises ``pydantic.ValidationError`` when invalid)."""
    return _FEEDBACK_LIST.validate_python(payload)


class FeedbackStore:
    """Writes and reads the feedback log."""

    def __init__(self, settings: Settings) -> None:
        """Create a store under ``settings.root``."""
        self.settings = settings
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """Where the part files go."""
        return feedback_dir(self.settings)

    def record(self, events: Sequence[RecommendationFeedback | ForecastActual]) -> int:
        """Write events to a new parquet part file.

        Args:
            events: Validated events (see :func:`parse_feedback`).

        Returns:
            How many events were written.
        """
        if not events:
            return 0
        now = _timestamp(pd.Timestamp.now(tz="UTC"))
        rows = []
        for e in events:
            if isinstance(e, RecommendationFeedback):
                rows.append(
                    {
                        "kind": e.kind,
                        "request_id": e.request_id,
                        "customer_id": e.customer_id,
                        "stock_code": e.stock_code,
                        "action": e.action,
                        "timestamp": _timestamp(e.timestamp),
                        "week_start": pd.NaT,
                        "units": float("nan"),
                        "received_at": now,
                    }
                )
            else:
                rows.append(
                    {
                        "kind": e.kind,
                        "request_id": None,
                        "customer_id": None,
                        "stock_code": e.stock_code,
                        "action": None,
                        "timestamp": pd.NaT,
                        "week_start": pd.Timestamp(e.week_start, tz="UTC"),
                        "units": float(e.units),
                        "received_at": now,
                    }
                )
        frame = pd.DataFrame(rows, columns=list(FEEDBACK_COLUMNS))
        for col in ("kind", "request_id", "customer_id", "stock_code", "action"):
            frame[col] = frame[col].astype("string")
        for col in ("timestamp", "week_start", "received_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / _part_name()
            tmp = self.folder / f".{path.name}.tmp"
            write_parquet_us(frame, tmp)
            tmp.replace(path)
        return len(rows)

    def read(self, kind: Literal["recommendation", "actual"] | None = None) -> pd.DataFrame:
        """Read the feedback log.

        Args:
            kind: Only this kind of event (default: both).

        Returns:
            Columns as :data:`FEEDBACK_COLUMNS` (empty when nothing was recorded).
        """
        frame = _read_parts(self.folder)
        if frame.empty:
            return pd.DataFrame(columns=list(FEEDBACK_COLUMNS))
        if kind is not None:
            frame = frame[frame["kind"] == kind]
        return frame.reset_index(drop=True)
