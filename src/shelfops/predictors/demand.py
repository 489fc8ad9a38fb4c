"""The one demand Predictor that training, evaluation and serving share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shelfops.features.definitions import DEMAND_SERVICE
from shelfops.models.demand import DemandModel
from shelfops.predictors.base import RegistryPredictor


class DemandPredictor(RegistryPredictor[DemandModel]):
    """Loads a demand model and forecasts from ``demand_v1`` rows."""

    service = DEMAND_SERVICE
    default_tag = "shelfops_demand:latest"
    model_type = DemandModel

    @property
    def horizon(self) -> int:
        """Forecast horizon in weeks."""
        return self.model.config.horizon

    @property
    def features(self) -> list[str]:
        """The FeatureService feature names the model was trained on."""
        return list(self.model.encoder.features)

    def predict(
        self, rows: pd.DataFrame | list[dict[str, Any]], origin: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Forecast the next ``horizon`` weeks for each row.

        Args:
            rows: ``demand_v1`` rows with ``stock_code`` (offline frame or online dicts).
            origin: Forecast origin (a Monday) when rows carry no ``event_timestamp``; defaults
                to the Monday of the current week.

        Returns:
            ``stock_code, origin, step, week_start, forecast, p10, p50, p90`` per week, in units.
        """
        df = pd.DataFrame(rows).copy()
        if "event_timestamp" not in df:
            o = origin if origin is not None else pd.Timestamp.now(tz="UTC").normalize()
            o = pd.Timestamp(o)
            o = o.tz_localize("UTC") if o.tzinfo is None else o
            df["event_timestamp"] = o - pd.Timedelta(days=o.weekday())
        return self.model.predict(df)

    def forecast(
        self, columns: Mapping[str, Sequence[Any]], origin: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forecast online rows from one origin, as arrays (the request path: no pandas).

        Args:
            columns: ``demand_v1`` columns from the online store, one value per product.
            origin: Forecast origin (a Monday).

        Returns:
            ``(forecasts, source)``: ``(products, horizon, 4)`` point, P10, P50, P90 in units,
            and what produced each product's forecast (``model``, a baseline or a combination).
        """
        o = pd.Timestamp(origin)
        o = o.tz_convert(None) if o.tzinfo is not None else o
        n = len(next(iter(columns.values()), []))
        cols: dict[str, Any] = {
            **columns,
            "event_timestamp": np.full(n, o.to_datetime64(), "datetime64[ns]"),
        }
        return self.model.forecast(cols)
