"""The demand server: online ``demand_v1`` features, the shared Predictor, P10/P50/P90 per week.

A product's forecast changes only when its features do (a materialization, weekly) or when the
origin moves to the next Monday, so the server computes the forecast of every product that sold
in the last 13 weeks in bulk, off the request path: at load and every
``SHELFOPS_SERVING_FORECAST_REFRESH_S`` (300 s; 0 turns the snapshot off), with the same
Predictor and the same online features a request would read. A request for those products is a
lookup; any other product (or every product, before the first snapshot or after the origin
moved on) is read from the online store and forecast on the request path. The products come
from the offline feature table when the server can read it (a pod without the home's features
serves every product on the request path).

If the online store is slower than the timeout or unreachable, the snapshot keeps answering with
the model, and the other products get the best baseline recorded at training (the model's
success gate names it), computed from the last features this server saw for each product. The
response says ``degraded``; a product nothing is known about gets ``status: no_data`` instead of
a guess. The request does not fail.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shelfops.features.build import newest_product_rows
from shelfops.features.definitions import DEMAND_SERVICE, PRODUCT_VIEW
from shelfops.features.store import FeatureRepo
from shelfops.models.baselines import DEMAND_BASELINES, baseline_from_features
from shelfops.monitoring.store import demand_outputs
from shelfops.predictors.demand import DemandPredictor
from shelfops.serving.base import BadRequest, ModelServer
from shelfops.serving.online import OnlineReader
from shelfops.serving.schemas import (
    ForecastRequest,
    ForecastResponse,
    ProductForecast,
    WeekForecast,
)

log = logging.getLogger(__name__)

Z80 = 1.2816
"""Standard normal quantile of 0.9: the fallback's P10/P90 are a Poisson-like band around it."""


SNAPSHOT_CHUNK = 500
"""Products per bulk read and model call of a snapshot refresh. Requests take turns with the
refresh between chunks: on The Complete Journey a chunk holds the model for at most 18 ms
(70 ms with 2,000), and the whole refresh costs the same."""

SNAPSHOT_TIMEOUT_S = 30.0
"""A snapshot chunk is a bulk read off the request path: it may take longer than a request."""


@dataclass(frozen=True)
class ForecastSnapshot:
    """Forecasts of many products from one origin, computed in bulk off the request path."""

    origin: pd.Timestamp
    row: dict[str, int]
    """Stock code -> its row of ``cube``."""
    cube: np.ndarray
    """``(products, horizon, 3)``: P10, P50, P90 in units per week."""
    source: list[str]
    """What produced each product's forecast (``model``, a baseline or a combination)."""
    seconds: float
    """Wall time the refresh took."""


def this_monday() -> pd.Timestamp:
    """Monday 00:00 UTC of the current week (the forecast origin)."""
    today = pd.Timestamp.now(tz="UTC").normalize()
    return today - pd.Timedelta(days=today.weekday())


class DemandServer(ModelServer):
    """Serves the demand model."""

    name = "demand"

    def _load(self, model_dir: Path) -> None:
        import torch

        torch.set_num_threads(1)
        self.predictor = DemandPredictor.from_path(model_dir)
        self.predictor.tag = self.tag
        self.online = OnlineReader(
            lambda t: FeatureRepo(self.settings, read_timeout_s=t),
            self.serving.online_timeout_ms / 1000.0,
        )
        gate = self.metadata.get("gate", {})
        best = str(gate.get("best_baseline", "ma13"))
        self.fallback = best if best in DEMAND_BASELINES else "ma13"
        self.last_seen: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._refs: list[str] = []
        self._warm_from_offline()
        self.snapshot: ForecastSnapshot | None = None
        self._active = [
            code for code, row in self.last_seen.items() if (row.get("units_mean_13w") or 0) > 0
        ]
        self._stop = threading.Event()
        if self.serving.forecast_refresh_s > 0:
            self.refresh_forecasts()
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="forecast-refresh", daemon=True
            )
            self._refresher.start()

    def _warm_up(self) -> None:
        """Forecast one product the server has seen (the model path), if any."""
        code = next(iter(self.last_seen), None)
        if code is not None:
            self.forecast(ForecastRequest(stock_codes=[code], horizon=1), synthetic=True)

    def close(self) -> None:
        """Stop the snapshot refresher and the store threads."""
        if hasattr(self, "_stop"):
            self._stop.set()
        if hasattr(self, "online"):
            self.online.close()
        super().close()

    def _warm_from_offline(self) -> None:
        """Seed the fallback with each product's newest offline features, when readable."""
        path = self.settings.features_dir / "product_weekly.parquet"
        if not path.exists():
            return
        try:
            latest = newest_product_rows(path)
        except Exception as exc:  # an unreadable cache only weakens the fallback
            log.warning("cannot warm the fallback from %s: %s", path, exc)
            return
        if latest.empty:
            return
        self.last_seen = {
            str(r["stock_code"]): r
            for r in latest.drop(columns="event_timestamp").to_dict("records")
        }

    def refresh_forecasts(self) -> bool:
        """Recompute the snapshot: every active product's forecast from this week's origin.

        Reads the online store and runs the model a chunk of :data:`SNAPSHOT_CHUNK` products at
        a time, so requests take turns with the refresh instead of waiting for all of it.

        Returns:
            True when a new snapshot is in force; on failure the previous one stays.
        """
        if not self._active or not self._resolve_refs():
            return False
        started = time.perf_counter()
        origin = this_monday()
        codes: list[str] = []
        parts: list[np.ndarray] = []
        sources: list[str] = []
        for s in range(0, len(self._active), SNAPSHOT_CHUNK):
            chunk = self._active[s : s + SNAPSHOT_CHUNK]
            rows, reason = self.online.read(
                self._refs, [{"stock_code": c} for c in chunk], timeout_s=SNAPSHOT_TIMEOUT_S
            )
            if rows is None:
                log.warning("forecast snapshot refresh failed (%s); keeping the previous", reason)
                return False
            found, source, cube = self._model_cube(rows, origin)
            codes += found
            sources += source
            parts.append(cube)
        cube = np.concatenate(parts) if parts else np.zeros((0, self.horizon, 3))
        self.snapshot = ForecastSnapshot(
            origin=origin,
            row={code: i for i, code in enumerate(codes)},
            cube=cube,
            source=sources,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "forecast snapshot: %d products from %s in %.1f s",
            len(codes),
            origin.date(),
            self.snapshot.seconds,
        )
        return True

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.serving.forecast_refresh_s):
            try:
                self.refresh_forecasts()
            except Exception:  # the next round tries again; requests use the request path
                log.exception("forecast snapshot refresh failed")

    def _model_cube(
        self, rows: dict[str, list[Any]], origin: pd.Timestamp
    ) -> tuple[list[str], list[str], np.ndarray]:
        """The model's forecasts of the products in online ``rows`` that the store knows.

        One model call under the compute lock, shared by requests and snapshot refreshes.

        Returns:
            Their stock codes, what produced each forecast (``model``, a baseline or a
            combination) and ``(products, horizon, 3)``: P10, P50, P90 in units per week.
        """
        columns = self._known_rows(rows)
        if not columns.get("stock_code"):
            return [], [], np.zeros((0, self.horizon, 3))
        with self.compute:
            out, source = self.predictor.forecast(columns, origin)
        codes = [str(c) for c in columns["stock_code"]]
        return codes, [str(x) for x in source.tolist()], out[:, :, 1:4].astype(np.float64)

    def _known_rows(self, rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The online rows of products the store knows, remembered for the fallback."""
        known = [i for i, v in enumerate(rows.get("weeks_since_first_sale", [])) if v is not None]
        columns = {k: [v[i] for i in known] for k, v in rows.items()}
        with self._lock:
            for i in range(len(known)):
                self.last_seen[str(columns["stock_code"][i])] = {
                    k: v[i] for k, v in columns.items()
                }
        return columns

    def _resolve_refs(self) -> bool:
        if not self._refs:
            try:
                self._refs = self.online.refs(DEMAND_SERVICE)[PRODUCT_VIEW]
            except Exception as exc:
                log.warning("feature registry unavailable (%s); serving the baseline", exc)
                return False
        return True

    @property
    def horizon(self) -> int:
        """The model's horizon in weeks."""
        return self.predictor.horizon

    def forecast(
        self, req: ForecastRequest, request_id: str | None = None, synthetic: bool = False
    ) -> ForecastResponse:
        """Forecast P10/P50/P90 for each product and week.

        Args:
            req: The validated request.
            request_id: The caller's id for this request.
            synthetic: Gate, load-test or warm-up traffic: not logged for monitoring.

        Returns:
            The response; a store outage gives the baseline, never an error.

        Raises:
            BadRequest: Too many products, or a horizon beyond the model's.
        """
        if len(req.stock_codes) > self.serving.max_batch:
            raise BadRequest(
                f"{len(req.stock_codes)} products in one request; the maximum is "
                f"{self.serving.max_batch}: split the batch",
                status=413,
            )
        if req.horizon > self.horizon:
            raise BadRequest(f"horizon {req.horizon} is beyond the model's {self.horizon} weeks")
        started = time.perf_counter()
        # the cost meter leaves synthetic CPU out; measure it only when a meter listens
        cpu_started = time.thread_time() if synthetic and self.synthetic_cpu else None
        self.delay()
        rid = self.request_id(request_id)
        codes = list(dict.fromkeys(req.stock_codes))
        origin = this_monday()
        weeks = [str((origin + pd.Timedelta(weeks=s)).date()) for s in range(req.horizon)]
        snap = self.snapshot
        if snap is not None and snap.origin != origin:
            snap = None  # the week moved on: the request path until the next refresh
        live = [c for c in codes if snap is None or c not in snap.row]
        rows, miss = None, ""
        if live:
            miss = "online_store_error"
            if self._resolve_refs():
                rows, miss = self.online.read(self._refs, [{"stock_code": c} for c in live])
        degraded = bool(live) and rows is None
        if degraded:
            self.degraded(miss)
        forecasts = self._forecasts(codes, snap, rows, live if degraded else [], origin, weeks)
        if synthetic:
            if cpu_started is not None:
                self.synthetic_done(cpu_started)
        elif self.hooks:
            self._log(rid, forecasts, degraded, (time.perf_counter() - started) * 1000.0)
        return ForecastResponse(
            request_id=rid,
            model_version=self.version,
            degraded=degraded,
            degraded_reason=miss if degraded else None,
            forecasts=forecasts,
        )

    def _log(
        self, rid: str, forecasts: list[ProductForecast], degraded: bool, latency_ms: float
    ) -> None:
        """One monitoring record per product: its scalar inputs and its weekly quantiles."""
        weeks = [{"stock_code": f.stock_code, **w.model_dump()} for f in forecasts for w in f.weeks]
        if not weeks:
            return
        by_code: dict[str, list[dict[str, Any]]] = {}
        for record in demand_outputs(pd.DataFrame(weeks))["forecasts"]:
            by_code.setdefault(record["stock_code"], []).append(record)
        with self._lock:
            seen = {code: self.last_seen.get(code, {}) for code in by_code}
        for code, records in by_code.items():
            self.emit(
                {
                    "model": self.name,
                    "model_version": self.version,
                    "request_id": rid,
                    "customer_id": None,
                    "features": {
                        "stock_code": code,
                        **{k: v for k, v in seen[code].items() if np.isscalar(v)},
                    },
                    "outputs": {"forecasts": records},
                    "degraded": degraded,
                    "latency_ms": latency_ms,
                }
            )

    def _forecasts(
        self,
        codes: list[str],
        snap: ForecastSnapshot | None,
        rows: dict[str, list[Any]] | None,
        fallback: list[str],
        origin: pd.Timestamp,
        weeks: list[str],
    ) -> list[ProductForecast]:
        """Each product's forecast: from the snapshot, the model on ``rows``, or the baseline.

        Shaped with arrays, one model call for all the products read on the request path.
        """
        h = len(weeks)
        found: list[str] = []
        sources: list[str] = []
        parts: list[np.ndarray] = []
        if snap is not None:
            cached = [c for c in codes if c in snap.row]
            idx = [snap.row[c] for c in cached]
            found += cached
            sources += [snap.source[i] for i in idx]
            parts.append(snap.cube[idx, :h])
        if rows is not None:
            live, source, cube = self._model_cube(rows, origin)
            found += live
            sources += source
            parts.append(cube[:, :h])
        by_code: dict[str, ProductForecast] = {}
        if found:
            cube = np.concatenate(parts)  # P10, P50, P90 per product and week
            width = (cube[:, :, 2] - cube[:, :, 0]) / np.maximum(cube[:, :, 1], 1.0)
            confidence = self.metrics.prediction_confidence.labels(self.name, self.version)
            for value in (1.0 / (1.0 + width)).mean(axis=1).tolist():  # one per product
                confidence.observe(value)
            for code, product, src in zip(found, cube.tolist(), sources, strict=True):
                # one validation of plain values per product: faster than building week objects
                by_code[code] = ProductForecast.model_validate(
                    {
                        "stock_code": code,
                        "status": "ok",
                        "source": src,  # model, a baseline or a combination
                        "weeks": [
                            {"week_start": w, "p10": a, "p50": b, "p90": c}
                            for w, (a, b, c) in zip(weeks, product, strict=True)
                        ],
                    }
                )
        for code in fallback:
            by_code[code] = self._baseline_forecast(code, weeks)
        return [
            by_code.get(c)
            or ProductForecast(stock_code=c, status="no_data", source="none", weeks=[])
            for c in codes
        ]

    def _baseline_forecast(self, code: str, weeks: list[str]) -> ProductForecast:
        with self._lock:
            row = self.last_seen.get(code)
        if row is None:
            return ProductForecast(stock_code=code, status="no_data", source="none", weeks=[])
        point = baseline_from_features(self.fallback, row, len(weeks))
        band = Z80 * np.sqrt(point)
        return ProductForecast(
            stock_code=code,
            status="ok",
            source=self.fallback,
            weeks=[
                WeekForecast(
                    week_start=w, p10=float(max(p - b, 0.0)), p50=float(p), p90=float(p + b)
                )
                for w, p, b in zip(weeks, point, band, strict=True)
            ],
        )

    def v2_metadata(self) -> dict[str, Any]:
        """V2 model metadata: input ``stock_code`` (and optional ``horizon``), quantile outputs."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [
                {"name": "stock_code", "datatype": "BYTES", "shape": [-1]},
                {"name": "horizon", "datatype": "INT32", "shape": [1]},
            ],
            "outputs": [
                {"name": "week_start", "datatype": "BYTES", "shape": [-1]},
                {"name": "status", "datatype": "BYTES", "shape": [-1]},
                {"name": "p10", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "p50", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "p90", "datatype": "FP32", "shape": [-1, -1]},
            ],
        }
