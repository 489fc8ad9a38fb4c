"""The demand server: online ``demand_v1`` features, the shared Predictor, P10/P50/P90 per week.

If the online store is slower than the timeout or unreachable, forecasts come from the best
baseline recorded at training (the model's success gate names it), computed from the last
features this server saw for each product (warmed from the offline feature table when the
server can read it). The response says ``degraded``; a product nothing is known about gets
``status: no_data`` instead of a guess. The request does not fail.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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

    def _warm_up(self) -> None:
        """Forecast one product the server has seen (the model path), if any."""
        code = next(iter(self.last_seen), None)
        if code is not None:
            self.forecast(ForecastRequest(stock_codes=[code], horizon=1), synthetic=True)

    def close(self) -> None:
        """Stop the store threads."""
        if hasattr(self, "online"):
            self.online.close()
        super().close()

    def _warm_from_offline(self) -> None:
        """Seed the fallback with each product's newest offline features, when readable."""
        path = self.settings.features_dir / "product_weekly.parquet"
        if not path.exists():
            return
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # an unreadable cache only weakens the fallback
            log.warning("cannot warm the fallback from %s: %s", path, exc)
            return
        latest = frame.sort_values("event_timestamp").groupby("stock_code").tail(1)
        self.last_seen = {
            str(r["stock_code"]): r
            for r in latest.drop(columns="event_timestamp").to_dict("records")
        }

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
        rows, miss = (None, "online_store_error")
        if self._resolve_refs():
            rows, miss = self.online.read(self._refs, [{"stock_code": c} for c in codes])
        forecasts: list[ProductForecast]
        if rows is not None:
            forecasts = self._model_forecasts(rows, codes, origin, weeks)
        else:
            self.degraded(miss)
            forecasts = [self._baseline_forecast(c, weeks) for c in codes]
        if synthetic:
            if cpu_started is not None:
                self.synthetic_done(cpu_started)
        elif self.hooks:
            self._log(rid, forecasts, rows is None, (time.perf_counter() - started) * 1000.0)
        return ForecastResponse(
            request_id=rid,
            model_version=self.version,
            degraded=rows is None,
            degraded_reason=None if rows is not None else miss,
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

    def _model_forecasts(
        self, rows: dict[str, list[Any]], codes: list[str], origin: pd.Timestamp, weeks: list[str]
    ) -> list[ProductForecast]:
        """Forecast every requested product in one model call, shaped with arrays (no groupby)."""
        known = [i for i, v in enumerate(rows.get("weeks_since_first_sale", [])) if v is not None]
        columns = {k: [v[i] for i in known] for k, v in rows.items()}
        with self._lock:
            for i in range(len(known)):
                self.last_seen[str(columns["stock_code"][i])] = {
                    k: v[i] for k, v in columns.items()
                }
        by_code: dict[str, list[dict[str, Any]]] = {}
        source_of: dict[str, str] = {}
        if known:
            with self.compute:
                out, source = self.predictor.forecast(columns, origin)
            h = len(weeks)
            cube = out[:, :h, 1:4].astype(np.float64)  # P10, P50, P90 per product and week
            width = (cube[:, :, 2] - cube[:, :, 0]) / np.maximum(cube[:, :, 1], 1.0)
            confidence = self.metrics.prediction_confidence.labels(self.name, self.version)
            for value in (1.0 / (1.0 + width)).mean(axis=1).tolist():  # one per product
                confidence.observe(value)
            for code, product, src in zip(
                columns["stock_code"], cube.tolist(), source.tolist(), strict=True
            ):
                source_of[str(code)] = str(src)  # model, a baseline or a combination
                by_code[str(code)] = [
                    {"week_start": w, "p10": a, "p50": b, "p90": c}
                    for w, (a, b, c) in zip(weeks, product, strict=True)
                ]
        return [
            # one validation of plain values per product: faster than building week objects
            ProductForecast.model_validate(
                {"stock_code": c, "status": "ok", "source": source_of[c], "weeks": by_code[c]}
            )
            if c in by_code
            else ProductForecast(stock_code=c, status="no_data", source="none", weeks=[])
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
