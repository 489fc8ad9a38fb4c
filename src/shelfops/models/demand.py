"""Global PyTorch demand forecaster: one model across products, weekly buckets, quantile outputs.

Inputs are the rows of the ``demand_v1`` FeatureService (one per product and forecast origin, the
origin being the feature row's ``event_timestamp``). The feature list is whatever the service
declares; the config only names *roles* (which array is the weekly history, which feature is the
series level used for scaling). Every series is scaled by its own recent level, so one network
serves products selling 0.2 or 200 units a week.

Outputs per product and horizon week: P10, P50, P90 (pinball loss) and a point forecast (the
conditional mean, squared loss, which is what RMSSE/WRMSSE reward). The network starts from a
learned per-horizon blend of moving averages, last week and last year's same weeks, and adds a
residual from an MLP over the history, price and markdown features and the calendar of each target
week.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from shelfops.models.training import EarlyStopping

Rows: TypeAlias = pd.DataFrame | Mapping[str, Sequence[Any]]
"""``demand_v1`` rows: an offline frame, or columns (name to one value per row) from the store."""

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
_EPS = 1e-3
_CLIP = 25.0  # scaled targets above this many times the series level are clipped for the loss
_WEEK = pd.Timedelta(days=7)


@dataclass
class DemandConfig:
    """Hyper-parameters and feature roles of the demand model."""

    horizon: int = 13
    history_feature: str = "units_history_52w"
    scale_feature: str = "units_mean_13w"
    weight_feature: str | None = "revenue_13w"
    relative_prefix: str = "units_"
    hidden: int = 96
    context: int = 64
    epochs: int = 40
    patience: int = 5
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-5
    max_train_rows: int = 150_000
    #: Loss of the point forecast: Tweedie deviance with this power (1: Poisson; between 1
    #: and 2: compound Poisson-gamma, for intermittent counts); 0: squared error. Squared error
    #: is the default: on a 1,000-household slice of The Complete Journey, power 1.5 scored a
    #: worse validation WRMSSE in every demand segment (docs/evaluation.md).
    tweedie_power: float = 0.0
    #: Rows are weighted by revenue (``weight_feature``) to this power, relative to the mean and
    #: clipped to ``[1 / weight_clip, weight_clip]``: WRMSSE weighs products by revenue.
    weight_power: float = 0.5
    weight_clip: float = 10.0
    seed: int = 7
    #: Training origins need this many weeks of data before them: earlier origins see a
    #: history cut short by the start of the data (zeros that are not sales) and a level over
    #: fewer weeks, unlike any origin the model later forecasts from.
    min_history_weeks: int = 13
    #: Early stopping on the validation WRMSSE (the metric the gate judges) rather than the loss.
    early_stop_wrmsse: bool = True
    #: The weights validated and kept are a moving average over about this many epochs of
    #: steps (decay ``1 - 1 / steps``; 0: off).
    ema_epochs: float = 1.0
    holiday_weeks: tuple[int, ...] = field(default=(46, 47, 48, 49, 50, 51, 52))
    #: Per-target-week inputs known ahead (arrays starting at the origin's week).
    ahead_features: tuple[str, ...] = ("display_stores_ahead", "mailer_stores_ahead")
    #: Baselines the network is combined with per segment, with weights fitted on the
    #: validation window (a forecast combination; empty: the network alone everywhere).
    combine_with: tuple[str, ...] = ("ma4", "ma13")
    #: Grid step of the combination weights.
    combine_step: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        d = asdict(self)
        d["holiday_weeks"] = list(self.holiday_weeks)
        d["ahead_features"] = list(self.ahead_features)
        d["combine_with"] = list(self.combine_with)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemandConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["holiday_weeks"] = tuple(d.get("holiday_weeks", ()))
        d["ahead_features"] = tuple(d.get("ahead_features", ()))
        d["combine_with"] = tuple(d.get("combine_with", ()))
        return cls(**d)


def set_determinism(seed: int, threads: int = 1) -> None:
    """Seed torch and NumPy, set intra-op threads and deterministic kernels (CPU only).

    One thread by default: these networks are small, and on a shared 2-core machine two
    intra-op threads made a training step about 4x slower than one (they spin waiting for
    each other; ``benchmarks/bench_backtest.py`` figures in docs/benchmarks.md).

    Args:
        seed: The seed.
        threads: Intra-op threads.
    """
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


# ------------------------------------------------------------------------------------------------
# Encoding of FeatureService rows
# ------------------------------------------------------------------------------------------------
def _array_column(values: Sequence[Any], length: int | None = None) -> np.ndarray:
    """Right-aligned ``(rows, length)`` float32 matrix of an array feature (missing values 0).

    Each row keeps its last ``length`` values (default: the longest row); shorter rows are
    left-padded with zeros. Works on Arrow list columns and on columns of Python or NumPy
    sequences without a Python loop over the values.
    """
    n_rows = len(values)
    if isinstance(getattr(values, "dtype", None), pd.ArrowDtype):
        arr = pa.array(values)
        lens = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    else:
        seqs = [() if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
        lens = np.fromiter(map(len, seqs), np.int64, count=n_rows)
        n = length or int(lens.max(initial=0))
        if n_rows and n and (lens == n).all():  # every row full length: one conversion
            return np.nan_to_num(np.asarray(seqs, np.float32).reshape(n_rows, n))
        flat = (
            np.concatenate([np.asarray(v, np.float32).ravel() for v in seqs])
            if lens.sum()
            else np.zeros(0, np.float32)
        )
    n = length or int(lens.max(initial=0))
    out = np.zeros((n_rows, n), dtype=np.float32)
    if not len(flat) or not n:
        return out
    row = np.repeat(np.arange(n_rows), lens)
    pos = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
    col = n - lens[row] + pos
    keep = col >= 0
    out[row[keep], col[keep]] = np.nan_to_num(flat[keep])
    return out


def _numeric(values: Sequence[Any]) -> np.ndarray:
    """A numeric feature column as float64; missing or non-numeric values are 0.

    A frame column goes through ``pd.to_numeric``; online columns (lists of numbers and None)
    convert directly, without pandas.
    """
    if not isinstance(values, pd.Series):
        try:
            out = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            out = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(
                np.float64
            )
        return np.where(np.isnan(out), 0.0, out)
    return pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)


def _numeric_or_nan(values: Sequence[Any]) -> np.ndarray:
    """A numeric column as float64 with missing or non-numeric values as NaN."""
    if not isinstance(values, pd.Series):
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            values = pd.Series(list(values), dtype=object)
    return np.asarray(pd.to_numeric(values, errors="coerce"), float)


def _origins(values: Sequence[Any]) -> np.ndarray:
    """Forecast origins as naive UTC ``datetime64[ns]`` (an array of them passes through)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[ns]")
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None).to_numpy()


@lru_cache(maxsize=512)
def _calendar(origin: np.datetime64, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """ISO week and day-of-year/365.25 of the mid-week of each target week after ``origin``."""
    target = origin + (np.arange(horizon) * 7 + 3).astype("timedelta64[D]")
    t_index = pd.DatetimeIndex(target)
    woy = t_index.isocalendar().week.to_numpy().astype(np.float32)
    doy = t_index.dayofyear.to_numpy().astype(np.float32) / 365.25
    return woy, doy


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class DemandEncoder:
    """Turns ``demand_v1`` rows into tensors; fitted statistics are saved with the model."""

    features: list[str]
    config: DemandConfig
    scalar_features: list[str] = field(default_factory=list)
    history_len: int = 52
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    ahead_features: list[str] = field(default_factory=list)
    #: Training range of each scalar input (before standardisation); inputs are clipped to it.
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    #: Whether the calendar of the target weeks is an input: only when the training labels
    #: cover a whole year, so no target week falls in a part of the year never trained on.
    calendar: bool = True

    def fit(self, df: pd.DataFrame, label_end: pd.Timestamp | None = None) -> DemandEncoder:
        """Learn which features are scalars and their standardisation from training rows.

        Args:
            df: Training rows of the FeatureService.
            label_end: End of the training labels (default: the last origin plus the horizon).

        Returns:
            Self.
        """
        cfg = self.config
        origin = pd.to_datetime(df["event_timestamp"], utc=True).dt.tz_localize(None)
        if len(origin):
            end = label_end if label_end is not None else origin.max() + cfg.horizon * _WEEK
            self.calendar = bool(end - origin.min() >= 52 * _WEEK)
        self.scalar_features = [
            f
            for f in self.features
            if f != cfg.history_feature and f in df and pd.api.types.is_numeric_dtype(df[f])
        ]
        hist = df[cfg.history_feature]
        self.history_len = int(max((len(v) for v in hist if v is not None), default=52))
        self.ahead_features = [f for f in cfg.ahead_features if f in self.features and f in df]
        self.low, self.high = [], []
        raw = self._scalars(df, self._scale(df))
        self.low = [float(x) for x in np.nanmin(raw, axis=0)] if raw.size else []
        self.high = [float(x) for x in np.nanmax(raw, axis=0)] if raw.size else []
        self.mean = [float(x) for x in np.nanmean(raw, axis=0)] if raw.size else []
        self.std = [float(x) + 1e-3 for x in np.nanstd(raw, axis=0)] if raw.size else []
        return self

    def _scale(self, df: Rows, hist: np.ndarray | None = None) -> np.ndarray:
        cfg = self.config
        if hist is None:
            hist = _array_column(df[cfg.history_feature], self.history_len)
        level = _numeric(df[cfg.scale_feature])
        long_run = hist.mean(axis=1)
        return np.maximum(np.maximum(level, 0.5 * long_run), 0.05).astype(np.float32)

    def _scalars(self, df: Rows, scale: np.ndarray) -> np.ndarray:
        cols = []
        for f in self.scalar_features:
            x = _numeric(df[f])
            if f.startswith(self.config.relative_prefix):
                cols.append(np.log1p(np.maximum(x, 0.0) / scale))
            else:
                cols.append(_signed_log(x))
        cols.append(np.log(scale))
        out = np.stack(cols, axis=1).astype(np.float32)
        if self.low and len(self.low) == out.shape[1]:
            out = np.clip(out, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))
        return out

    def transform(self, df: Rows) -> dict[str, torch.Tensor]:
        """Encode rows whose ``event_timestamp`` is the forecast origin.

        Args:
            df: FeatureService rows with ``event_timestamp``: a frame, or columns (online rows;
                origins as a ``datetime64`` array) encoded without pandas.

        Returns:
            Tensors ``hist`` (N, L), ``scalars`` (N, F), ``steps`` (N, H, K), ``base`` (N, H, B)
            and ``scale`` (N,).
        """
        cfg = self.config
        h = cfg.horizon
        raw_hist = _array_column(df[cfg.history_feature], self.history_len)
        scale = self._scale(df, raw_hist)
        hist = raw_hist / scale[:, None]
        scalars = (self._scalars(df, scale) - np.asarray(self.mean, np.float32)) / np.asarray(
            self.std, np.float32
        )
        n = len(scale)
        origin = _origins(df["event_timestamp"])
        # calendar of each target week, computed once per distinct origin
        distinct, which = np.unique(origin, return_inverse=True)
        calendars = [_calendar(o, h) for o in distinct]
        woy = np.stack([c[0] for c in calendars])[which.ravel()].reshape(n, h)
        doy = np.stack([c[1] for c in calendars])[which.ravel()].reshape(n, h)
        holiday = np.isin(woy, np.asarray(cfg.holiday_weeks, dtype=np.float32))
        if not self.calendar:  # part of the year never trained on: no calendar input
            doy = np.zeros_like(doy)
            holiday = np.zeros_like(holiday)
        # Last year's same target week (and neighbours) from the history array.
        L = self.history_len
        ly = np.zeros((n, h), np.float32)
        ly3 = np.zeros((n, h), np.float32)
        for k in range(h):
            idx = L - 52 + k
            if 0 <= idx < L:
                ly[:, k] = hist[:, idx]
                lo, hi = max(idx - 1, 0), min(idx + 2, L)
                ly3[:, k] = hist[:, lo:hi].mean(axis=1)
        # How last year's target weeks compared with last year's weeks around the origin.
        ref = hist[:, max(L - 52 - 6, 0) : max(L - 52, 1)].mean(axis=1, keepdims=True)
        ma4 = hist[:, -4:].mean(axis=1, keepdims=True)
        ma13 = hist[:, -13:].mean(axis=1, keepdims=True)
        season_ratio = (ly3 + 0.1) / (ref + 0.1)
        step_onehot = np.broadcast_to(np.eye(h, dtype=np.float32), (n, h, h))
        # Known-ahead inputs (planned displays, mailers) for each target week.
        ahead = [
            np.log1p(np.maximum(_array_column(df[f], max(h, 1))[:, :h], 0.0))
            if f in df
            else np.zeros((n, h), np.float32)
            for f in self.ahead_features
        ]
        step_feats = np.concatenate(
            [
                np.stack(
                    [
                        np.sin(2 * math.pi * doy),
                        np.cos(2 * math.pi * doy),
                        np.sin(4 * math.pi * doy),
                        np.cos(4 * math.pi * doy),
                        holiday.astype(np.float32),
                        np.log1p(ly),
                        np.log1p(ly3),
                        np.log(season_ratio),
                        *ahead,
                    ],
                    axis=2,
                ),
                step_onehot,
            ],
            axis=2,
        ).astype(np.float32)
        seasonal_ma = np.clip(season_ratio, 0.0, 10.0) * ma4
        base = np.stack(
            [
                np.broadcast_to(ma4, (n, h)),
                np.broadcast_to(ma13, (n, h)),
                np.broadcast_to(hist[:, -1:], (n, h)),
                ly3,
                seasonal_ma,
            ],
            axis=2,
        ).astype(np.float32)
        return {
            "hist": torch.from_numpy(np.log1p(hist).astype(np.float32)),
            "scalars": torch.from_numpy(np.nan_to_num(scalars).astype(np.float32)),
            "steps": torch.from_numpy(step_feats),
            "base": torch.from_numpy(base),
            "scale": torch.from_numpy(scale),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "features": self.features,
            "scalar_features": self.scalar_features,
            "history_len": self.history_len,
            "mean": self.mean,
            "std": self.std,
            "ahead_features": self.ahead_features,
            "low": self.low,
            "high": self.high,
            "calendar": self.calendar,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], config: DemandConfig) -> DemandEncoder:
        """Inverse of :meth:`to_dict`."""
        return cls(
            features=list(d["features"]),
            config=config,
            scalar_features=list(d["scalar_features"]),
            history_len=int(d["history_len"]),
            mean=list(d["mean"]),
            std=list(d["std"]),
            ahead_features=list(d.get("ahead_features", [])),
            low=list(d.get("low", [])),
            high=list(d.get("high", [])),
            calendar=bool(d.get("calendar", True)),
        )


# ------------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------------
class DemandNet(nn.Module):
    """Context encoder over history and scalars, per-horizon head over calendar features.

    Output channels per horizon step: point (mean), P10, P50, P90, all in scaled units.
    """

    def __init__(
        self,
        history_len: int,
        n_scalars: int,
        n_step: int,
        n_base: int,
        horizon: int,
        hidden: int,
        context: int,
    ) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(history_len + n_scalars, hidden),
            nn.GELU(),
            nn.Linear(hidden, context),
            nn.GELU(),
        )
        self.head = nn.Sequential(
            nn.Linear(context + n_step, hidden),
            nn.GELU(),
            nn.Linear(hidden, 4),
        )
        # Learned blend of simple forecasts, per horizon step, for the point and the median.
        self.blend = nn.Parameter(torch.zeros(horizon, 2, n_base))
        with torch.no_grad():
            self.blend[:, :, 0] = 2.0  # start near the 4-week moving average

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return (N, H, 4) scaled outputs: point, P10, P50, P90 (monotone quantiles)."""
        ctx = self.encoder(torch.cat([x["hist"], x["scalars"]], dim=1))
        n, h, _ = x["steps"].shape
        z = torch.cat([ctx[:, None, :].expand(n, h, ctx.shape[1]), x["steps"]], dim=2)
        raw = self.head(z)
        w = torch.softmax(self.blend, dim=2)  # (H, 2, B)
        blended = torch.einsum("nhb,hkb->nhk", x["base"], w)  # (N, H, 2)
        point = torch.relu(blended[..., 0] * torch.exp(raw[..., 0].clamp(-3, 3)))
        p50 = torch.relu(blended[..., 1] * torch.exp(raw[..., 1].clamp(-3, 3)) + 0.0)
        lo = p50 - torch.nn.functional.softplus(raw[..., 2])
        hi = p50 + torch.nn.functional.softplus(raw[..., 3])
        return torch.stack([point, lo, p50, hi], dim=2)


def _point_loss(mu: torch.Tensor, y: torch.Tensor, power: float) -> torch.Tensor:
    """Per-cell loss of the point forecast: squared error, or Tweedie deviance for ``power``.

    The Tweedie negative log-likelihood (``1 < power < 2``: a compound Poisson-gamma, i.e. a
    count that is often zero) is minimised by the conditional mean, like squared error, but it
    does not let a few large weeks of intermittent products dominate the fit.
    """
    if power <= 0:
        return (mu - y) ** 2 * 0.5
    mu = mu.clamp(min=1e-3)
    if power == 1.0:
        return mu - y * torch.log(mu)
    return -y * mu.pow(1 - power) / (1 - power) + mu.pow(2 - power) / (2 - power)


def _loss(
    out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, w: torch.Tensor, power: float = 0.0
) -> torch.Tensor:
    y = y.clamp(max=_CLIP)
    per = _point_loss(out[..., 0], y, power)
    for i, q in enumerate(QUANTILES):
        d = y - out[..., i + 1]
        per = per + torch.maximum(q * d, (q - 1) * d)
    per = per * mask * w[:, None]
    return per.sum() / (mask * w[:, None]).sum().clamp(min=1.0)


# ------------------------------------------------------------------------------------------------
# Labels and training
# ------------------------------------------------------------------------------------------------
def label_matrix(
    rows: pd.DataFrame, wide: pd.DataFrame, horizon: int, label_end: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray]:
    """Targets for each feature row: units of the ``horizon`` weeks from its origin.

    Args:
        rows: Rows with ``stock_code`` and ``event_timestamp`` (the origin).
        wide: Products x weeks panel (NaN before a product's first sale).
        horizon: Weeks to forecast.
        label_end: Weeks starting on or after it are masked (not yet observed).

    Returns:
        ``(y, mask)``, both (N, horizon) float32.
    """
    weeks = pd.DatetimeIndex(wide.columns)
    pos = {w: i for i, w in enumerate(weeks)}
    values = wide.to_numpy(dtype=np.float32)
    row_idx = wide.index.get_indexer(rows["stock_code"].astype(str))
    origin = pd.to_datetime(rows["event_timestamp"], utc=True).dt.tz_localize(None)
    start = np.array([pos.get(t, -1) for t in origin.dt.normalize()])
    n = len(rows)
    y = np.zeros((n, horizon), np.float32)
    mask = np.zeros((n, horizon), np.float32)
    n_weeks = values.shape[1]
    end_col = int(np.searchsorted(weeks.to_numpy(), np.datetime64(label_end)))
    for k in range(horizon):
        col = start + k
        ok = (row_idx >= 0) & (start >= 0) & (col < min(n_weeks, end_col))
        v = np.full(n, np.nan, np.float32)
        v[ok] = values[row_idx[ok], col[ok]]
        good = ok & ~np.isnan(v)
        y[good, k] = v[good]
        mask[good, k] = 1.0
    return y, mask


#: Segments a product falls into at an origin, read from its ``demand_v1`` row.
SEGMENTS: tuple[str, ...] = ("new", "smooth", "intermittent", "sparse")
#: Weeks of history below which a product is ``new``.
NEW_PRODUCT_WEEKS = 13


def demand_segments(rows: Rows) -> np.ndarray:
    """The demand pattern of each row, from inputs the FeatureService serves.

    ``new``: fewer than :data:`NEW_PRODUCT_WEEKS` weeks since the first sale; otherwise by the
    share of zero weeks in the last 13: ``smooth`` (< 25%), ``intermittent`` (< 75%),
    ``sparse`` (the rest). The same rule runs in training, evaluation and serving.

    Args:
        rows: ``demand_v1`` rows.

    Returns:
        One segment name per row.
    """
    age, zeros = rows.get("weeks_since_first_sale"), rows.get("zero_share_13w")
    n = len(rows) if isinstance(rows, pd.DataFrame) else len(next(iter(rows.values()), []))
    age_v = _numeric_or_nan(age) if age is not None else np.zeros(n)
    zero_v = _numeric_or_nan(zeros) if zeros is not None else np.zeros(n)
    return np.where(
        np.nan_to_num(age_v) < NEW_PRODUCT_WEEKS,
        "new",
        np.where(zero_v < 0.25, "smooth", np.where(zero_v < 0.75, "intermittent", "sparse")),
    )


def source_name(weights: Mapping[str, float]) -> str:
    """What a forecast row says produced it: ``model``, a baseline's name, or a combination.

    Args:
        weights: Combination weights (``model`` or a baseline name to its weight).

    Returns:
        The names with a positive weight joined by ``+``, the network first (``model+ma13``).
    """
    names = sorted((k for k, w in weights.items() if w > 0), key=lambda k: (k != "model", k))
    return "+".join(names) or "model"


@dataclass
class DemandModel:
    """A fitted encoder + network; predicts P10/P50/P90 and a point forecast.

    ``combination`` maps a segment (:func:`demand_segments`) to the weights of a forecast
    combination of the network and the baselines fitted on validation (weights sum to 1; a
    weight of 1 on a baseline is a fallback to it, a segment not listed is the network alone).
    Every forecast row says what produced it (``source``: ``model``, a baseline's name or a
    combination such as ``model+ma13``).
    """

    config: DemandConfig
    encoder: DemandEncoder
    net: DemandNet
    history: dict[str, Any] = field(default_factory=dict)
    combination: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def fallback(self) -> dict[str, str]:
        """Segments forecast by one baseline alone (the network lost there on validation)."""
        return {
            seg: name
            for seg, w in self.combination.items()
            if "model" not in (name := source_name(w)) and "+" not in name
        }

    def predict(self, rows: pd.DataFrame, batch_size: int = 4096) -> pd.DataFrame:
        """Forecast from FeatureService rows (the origin is each row's ``event_timestamp``).

        Args:
            rows: ``demand_v1`` rows with ``stock_code`` and ``event_timestamp``.
            batch_size: Rows per forward pass.

        Returns:
            Long frame: ``stock_code``, ``origin``, ``step``, ``week_start``, ``forecast``,
            ``p10``, ``p50``, ``p90`` in units, ``segment`` and ``source`` (see the class).
        """
        h = self.config.horizon
        outs = [
            self._network(rows.iloc[s : s + batch_size]) for s in range(0, len(rows), batch_size)
        ]
        out = np.concatenate(outs) if outs else np.zeros((0, h, 4), np.float32)
        out, segments, source = self._combined(rows, out)
        origin = pd.to_datetime(rows["event_timestamp"], utc=True).dt.tz_localize(None).to_numpy()
        steps = np.arange(h)
        return pd.DataFrame(
            {
                "stock_code": np.repeat(rows["stock_code"].astype(str).to_numpy(), h),
                "origin": np.repeat(origin, h),
                "step": np.tile(steps, len(rows)),
                "week_start": (
                    np.repeat(origin, h) + np.tile((steps * 7).astype("timedelta64[D]"), len(rows))
                ),
                "forecast": out[..., 0].ravel(),
                "p10": out[..., 1].ravel(),
                "p50": out[..., 2].ravel(),
                "p90": out[..., 3].ravel(),
                "segment": np.repeat(segments, h),
                "source": np.repeat(source, h),
            }
        )

    def forecast(self, cols: Mapping[str, Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for a request's online rows, as arrays and without pandas.

        Args:
            cols: ``demand_v1`` columns (one value per product) with ``event_timestamp`` as a
                ``datetime64`` array of origins.

        Returns:
            ``(forecasts, source)``: ``(rows, horizon, 4)`` point, P10, P50, P90 in units, and
            what produced each row (see the class).
        """
        out, _, source = self._combined(cols, self._network(cols))
        return out, source

    def _network(self, rows: Rows) -> np.ndarray:
        """The network's ``(rows, horizon, 4)`` forecasts in units (non-negative)."""
        self.net.eval()
        with torch.no_grad():
            x = self.encoder.transform(rows)
            out = (self.net(x) * x["scale"][:, None, None]).numpy()
        return np.maximum(out, 0.0)

    def _combined(self, rows: Rows, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each segment's combination of the network and the baselines, where one is set.

        The point forecast and the median are the weighted sums (the network's point and median
        as its member); P10 and P90 widen to include the new median.
        """
        segments = demand_segments(rows)
        source = np.full(len(out), "model", dtype=object)
        if self.combination and len(out):
            from shelfops.models.baselines import baselines_from_columns

            h = out.shape[1]
            for segment, weights in self.combination.items():
                name = source_name(weights)
                idx = np.flatnonzero(segments == segment)
                if not len(idx) or name == "model":
                    continue
                part = (
                    rows.iloc[idx]
                    if isinstance(rows, pd.DataFrame)
                    else {k: [v[i] for i in idx.tolist()] for k, v in rows.items()}
                )
                point = np.zeros((len(idx), h), np.float64)
                median = np.zeros((len(idx), h), np.float64)
                for member, w in weights.items():
                    if w <= 0:
                        continue
                    if member == "model":
                        point += w * out[idx, :, 0]
                        median += w * out[idx, :, 2]
                    else:
                        f = baselines_from_columns(member, part, h)
                        point += w * f
                        median += w * f
                out[idx, :, 0] = point
                out[idx, :, 2] = median
                out[idx, :, 1] = np.minimum(out[idx, :, 1], median)
                out[idx, :, 3] = np.maximum(out[idx, :, 3], median)
                source[idx] = name
        return out, segments, source

    def save(self, path: Path) -> None:
        """Write ``config.json``, ``encoder.json``, ``combination.json`` and ``weights.pt``.

        Args:
            path: Target folder (created).
        """
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        (path / "encoder.json").write_text(json.dumps(self.encoder.to_dict()))
        (path / "history.json").write_text(json.dumps(self.history))
        (path / "combination.json").write_text(json.dumps(self.combination))
        torch.save(self.net.state_dict(), path / "weights.pt")

    @classmethod
    def load(cls, path: Path) -> DemandModel:
        """Load a model written by :meth:`save`.

        Args:
            path: The folder.

        Returns:
            The model, in eval mode.
        """
        config = DemandConfig.from_dict(json.loads((path / "config.json").read_text()))
        enc = DemandEncoder.from_dict(json.loads((path / "encoder.json").read_text()), config)
        net = _build_net(enc, config)
        net.load_state_dict(torch.load(path / "weights.pt", weights_only=True))
        net.eval()
        hist_path = path / "history.json"
        history = json.loads(hist_path.read_text()) if hist_path.exists() else {}
        combination: dict[str, dict[str, float]] = {}
        if (path / "combination.json").exists():
            combination = json.loads((path / "combination.json").read_text())
        elif (path / "fallback.json").exists():  # saved before combinations: one baseline each
            old = json.loads((path / "fallback.json").read_text())
            combination = {seg: {name: 1.0} for seg, name in old.items()}
        return cls(config=config, encoder=enc, net=net, history=history, combination=combination)


def _build_net(enc: DemandEncoder, cfg: DemandConfig) -> DemandNet:
    n_scalars = len(enc.scalar_features) + 1
    n_step = 8 + len(enc.ahead_features) + cfg.horizon
    return DemandNet(enc.history_len, n_scalars, n_step, 5, cfg.horizon, cfg.hidden, cfg.context)


def _sample_weights(rows: pd.DataFrame, cfg: DemandConfig) -> np.ndarray:
    if cfg.weight_feature and cfg.weight_feature in rows:
        w = pd.to_numeric(rows[cfg.weight_feature], errors="coerce").fillna(0.0).to_numpy()
        w = np.maximum(w, 0.0) ** cfg.weight_power
        m = w.mean()
        if m > 0:
            return np.clip(w / m, 1.0 / cfg.weight_clip, cfg.weight_clip).astype(np.float32)
    return np.ones(len(rows), np.float32)


def recently_sold(rows: pd.DataFrame, cfg: DemandConfig, weeks: int = 13) -> np.ndarray:
    """Which rows' products sold in the ``weeks`` before their origin (the evaluated population).

    Args:
        rows: FeatureService rows.
        cfg: The config naming the history feature.
        weeks: Look-back.

    Returns:
        A boolean mask.
    """
    hist = _array_column(rows[cfg.history_feature])
    return np.asarray(hist[:, -weeks:].sum(axis=1) > 0)


def _ema_average(
    decay: float,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | int], torch.Tensor]:
    """Moving average of weights: the mean of all steps so far until ``1 / (1 - decay)`` steps.

    Without the warm-up the first average would be dominated by the untrained initial weights.
    """

    def average(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        d = min(decay, float(n) / (float(n) + 1.0))
        return avg * d + new * (1.0 - d)

    return average


#: ``(stock_codes, point forecasts (N, H), actuals (N, H), mask (N, H)) -> score``, lower better.
ValidScore = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def fit_demand(
    rows: pd.DataFrame,
    wide: pd.DataFrame,
    features: Sequence[str],
    label_end: pd.Timestamp,
    config: DemandConfig | None = None,
    valid_rows: pd.DataFrame | None = None,
    valid_end: pd.Timestamp | None = None,
    epochs: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    valid_score: ValidScore | None = None,
) -> DemandModel:
    """Train the global demand model on many (product, origin) rows.

    Args:
        rows: ``demand_v1`` training rows (``stock_code``, ``event_timestamp``, features).
        wide: Products x weeks label panel.
        features: The FeatureService's feature names.
        label_end: Training labels use only weeks strictly before it.
        config: Hyper-parameters.
        valid_rows: Optional rows at a validation origin for early stopping.
        valid_end: Label end for the validation rows (the real cutoff).
        epochs: Fixed epoch count (no early stopping); defaults to ``config.epochs``.
        progress: Callback ``(epoch, epochs, loss)``.
        valid_score: Early-stop on this score of the validation point forecasts (lower is
            better; e.g. their WRMSSE) instead of the validation loss.

    Returns:
        The fitted model; ``history`` holds losses and the best epoch.
    """
    cfg = config or DemandConfig()
    set_determinism(cfg.seed)
    started = time.perf_counter()
    rows = rows[recently_sold(rows, cfg)]
    y, mask = label_matrix(rows, wide, cfg.horizon, label_end)
    keep = mask.sum(axis=1) > 0
    rows, y, mask = rows[keep], y[keep], mask[keep]
    if len(rows) > cfg.max_train_rows:
        rng = np.random.default_rng(cfg.seed)
        idx = np.sort(rng.choice(len(rows), size=cfg.max_train_rows, replace=False))
        rows, y, mask = rows.iloc[idx], y[idx], mask[idx]
    if len(rows) == 0:
        raise ValueError("no training rows with labels before the label end")
    enc = DemandEncoder(features=list(features), config=cfg).fit(rows, label_end)
    x = enc.transform(rows)
    ys = torch.from_numpy(y) / x["scale"][:, None]
    ms = torch.from_numpy(mask)
    ws = torch.from_numpy(_sample_weights(rows, cfg))
    vx = vy = vm = vw = None
    if valid_rows is not None and valid_end is not None and len(valid_rows):
        valid_rows = valid_rows[recently_sold(valid_rows, cfg)]
        vyn, vmn = label_matrix(valid_rows, wide, cfg.horizon, valid_end)
        vx = enc.transform(valid_rows)
        vy = torch.from_numpy(vyn) / vx["scale"][:, None]
        vm = torch.from_numpy(vmn)
        vw = torch.from_numpy(_sample_weights(valid_rows, cfg))
        v_codes = valid_rows["stock_code"].astype(str).to_numpy()
    net = _build_net(enc, cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_epochs = epochs or cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)
    stopper = EarlyStopping(cfg.patience, min_delta=1e-5)
    # The weights judged and kept are an exponential moving average of the steps': single
    # steps' weights made the validation WRMSSE jump by 0.1 from one epoch to the next.
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    ema = (
        torch.optim.swa_utils.AveragedModel(
            net, avg_fn=_ema_average(1.0 - 1.0 / max(1.0, cfg.ema_epochs * steps_per_epoch))
        )
        if cfg.ema_epochs > 0
        else None
    )
    losses: list[float] = []
    val_losses: list[float] = []
    for epoch in range(n_epochs):
        net.train()
        perm = torch.randperm(len(rows), generator=gen)
        total, count = 0.0, 0
        for s in range(0, len(rows), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            xb = {k: v[b] for k, v in x.items()}
            loss = _loss(net(xb), ys[b], ms[b], ws[b], cfg.tweedie_power)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
            total += float(loss.detach()) * len(b)
            count += len(b)
        losses.append(total / max(count, 1))
        judged = ema.module if ema is not None else net
        if vx is not None and vy is not None and vm is not None and vw is not None:
            judged.eval()
            with torch.no_grad():
                vout = judged(vx)
                vl = float(_loss(vout, vy, vm, vw, cfg.tweedie_power))
                if valid_score is not None:
                    point = (vout[..., 0] * vx["scale"][:, None]).numpy()
                    vl = valid_score(v_codes, point, vyn, vmn)
            val_losses.append(vl)
            if stopper.step(vl, epoch + 1, judged):
                break
        if progress:
            progress(epoch + 1, n_epochs, losses[-1])
    if ema is not None:
        averaged = ema.module
        assert isinstance(averaged, DemandNet)
        net = averaged
    best_epoch = stopper.restore(net, len(losses))
    net.eval()
    history = {
        "train_loss": losses,
        "valid_loss": val_losses,
        "best_epoch": best_epoch,
        "train_rows": len(rows),
        "seconds": time.perf_counter() - started,
    }
    return DemandModel(config=cfg, encoder=enc, net=net, history=history)
