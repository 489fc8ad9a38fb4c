"""Next-basket recommender: a learned re-ranker over repeat, co-purchase and popular candidates.

Inputs per customer are the rows of the ``recs_v1`` FeatureService (their top items with counts
and last-purchase times, visit frequency, spend, discount affinity, favourite category). Item-side
knowledge (recent popularity and its trend, recent first purchases, how often an item's buyers
come back for it and after how many days, co-purchase neighbours, categories, what is
discontinued) is computed from the clean purchase lines before the training cutoff and travels
inside the model artefact, so serving needs nothing else.

Scoring happens in two stages, the same in training, evaluation and serving:

1. candidates: the customer's own items, the items most often bought with them (item-to-item
   co-purchase), the recently popular items and the items most often bought for the first time
   lately; never a discontinued item;
2. a PyTorch scorer: an MLP over pair features (:data:`PAIR_FEATURES`: own count, recency
   against the customer's repurchase interval and against the item's repurchase cycle, visits
   since bought, whether it was in the latest basket, share of visits, popularity, trend and
   first purchases, item repeat rate, co-purchase with the whole history and with the latest
   basket, the customer's share of purchases in the item's category) plus
   ``dot(customer embedding, item embedding)`` where the customer embedding is the
   count-weighted mean of their items' embeddings, plus a learned item bias.

Training uses several cutoffs before the evaluation cutoff; the target of each is the item set of
the customer's first invoice after it; the loss is a listwise softmax over the candidates, so an
item new to the customer outranks their own items when its features say it is likelier.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch import nn

from shelfops.data.consent import PERSONALIZATION_OPT_OUT, personalization_allowed
from shelfops.features.build import TOP_ITEMS
from shelfops.models import candidates
from shelfops.models.candidates import N_PAIR_FEATURES, PAIR_FEATURES, SECONDS_PER_DAY
from shelfops.models.code_index import CodeIndex
from shelfops.models.demand import set_determinism
from shelfops.models.training import EarlyStopping

_PRIOR_CYCLE_DAYS = 28.0
"""Inter-purchase days an item is assumed to have before its repeat buyers say otherwise."""

Columns: TypeAlias = Mapping[str, Sequence[Any]]
"""Feature rows as columns (name to one value per customer), as the online store returns them."""
Rows: TypeAlias = pd.DataFrame | Columns | Sequence[Mapping[str, Any]]
"""What scoring accepts: an offline frame, columns, or one dict per customer (online rows)."""


def as_columns(rows: Rows) -> dict[str, list[Any]]:
    """Feature rows as plain columns, so scoring needs no pandas on the request path.

    Args:
        rows: A frame, a mapping of columns, or a sequence of row dicts.

    Returns:
        ``{feature: [value per customer]}``.
    """
    if isinstance(rows, pd.DataFrame):
        return {str(c): rows[c].tolist() for c in rows.columns}
    if isinstance(rows, Mapping):
        return {str(k): list(v) for k, v in rows.items()}
    names = dict.fromkeys(k for r in rows for k in r)
    return {k: [r.get(k) for r in rows] for k in names}


def _length(cols: Columns) -> int:
    return len(next(iter(cols.values()), []))


@dataclass
class RecsConfig:
    """Hyper-parameters and feature roles of the recommender."""

    items_feature: str = "top_items"
    counts_feature: str = "top_item_counts"
    last_ts_feature: str = "top_item_last_ts"
    favourite_feature: str = "favourite_category"
    neighbours: int = 30
    co_candidates: int = 40
    popular_candidates: int = 40
    trial_candidates: int = 20
    embedding_dim: int = 32
    hidden: int = 64
    epochs: int = 25
    patience: int = 4
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    train_cutoffs: int = 12
    cutoff_spacing_weeks: int = 2
    cooccurrence_weeks: int = 52
    max_basket_lines: int = 60
    min_item_baskets: int = 3
    seed: int = 7

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecsConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


# ------------------------------------------------------------------------------------------------
# Item-side statistics (learned from purchase lines before a cutoff)
# ------------------------------------------------------------------------------------------------
def purchase_lines(transactions: pd.DataFrame) -> pd.DataFrame:
    """Product sale lines (no cancellations, no postage) with string codes.

    Args:
        transactions: Clean transactions (``is_product``, ``is_cancellation`` columns).

    Returns:
        ``invoice, customer_id, stock_code, invoice_date`` (customer id may be missing).
    """
    tx = transactions
    if "is_product" in tx:
        tx = tx[tx["is_product"].astype(bool) & ~tx["is_cancellation"].astype(bool)]
    out = pd.DataFrame(
        {
            "invoice": tx["invoice"].astype(str).to_numpy(),
            "customer_id": tx["customer_id"].astype("string").to_numpy(),
            "stock_code": tx["stock_code"].astype(str).to_numpy(),
            "invoice_date": pd.to_datetime(tx["invoice_date"]).to_numpy(),
        }
    )
    out["customer_id"] = out["customer_id"].replace("", pd.NA)
    return out


@dataclass
class ItemStats:
    """What the model knows about each item as of a cutoff."""

    items: list[str]
    pop4: np.ndarray
    pop13: np.ndarray
    pop52: np.ndarray
    repeat_rate: np.ndarray
    age_weeks: np.ndarray
    nbr_idx: np.ndarray  # (n_items, K) neighbour indices, -1 padded
    nbr_val: np.ndarray  # (n_items, K) P(neighbour | item)
    category: list[str]
    description: list[str]
    recommendable: np.ndarray  # bool
    cutoff: str = ""
    cycle_days: np.ndarray | None = None  # typical days between a repeat buyer's purchases
    trial4: np.ndarray | None = None  # customers who bought the item first in the last 4 weeks

    @cached_property
    def index(self) -> dict[str, int]:
        """Item code to row (built once: statistics do not change after they are computed)."""
        return {c: i for i, c in enumerate(self.items)}

    @cached_property
    def code_index(self) -> CodeIndex:
        """:attr:`index` for many codes at once (a compiled table: a batch's histories)."""
        return CodeIndex(self.items)

    @cached_property
    def _popular(self) -> np.ndarray:
        order = np.lexsort((-self.pop52, -self.pop4))
        return order[self.recommendable[order]]

    @cached_property
    def pair_item_features(self) -> np.ndarray:
        """The item-only pair features of every item row, ``(n_items, 5)`` float32, built once.

        Recent and yearly popularity share, trend, repeat rate and age, in the order and with
        the arithmetic :func:`build_candidates` writes them (features 6 to 10).
        """
        total13 = max(float(self.pop13.sum()), 1.0)
        columns = (
            np.log((self.pop4 + 1.0) / total13),
            np.log((self.pop52 + 1.0) / total13),
            np.log((self.pop4 + 1.0) / (self.pop13 / 3.25 + 1.0)),
            np.log(self.repeat_rate),
            np.log1p(self.age_weeks) / 3.0,
        )
        return np.stack([np.asarray(c, np.float32) for c in columns], axis=1)

    @cached_property
    def kernel_inputs(self) -> dict[str, np.ndarray]:
        """The item arrays the compiled candidate builder reads, in its dtypes (built once)."""
        return {
            "nbr_idx": np.ascontiguousarray(self.nbr_idx, np.int64),
            "nbr_val": np.ascontiguousarray(self.nbr_val, np.float32),
            "recommendable": np.ascontiguousarray(self.recommendable, np.bool_),
            "cycle": np.ascontiguousarray(self.cycle, np.float64),
            "trial_feature": np.log((self.trials + 1.0) / max(float(self.pop13.sum()), 1.0)).astype(
                np.float32
            ),
        }

    def candidate_pool(self, popular: int, trials: int) -> np.ndarray:
        """The non-personal candidates: the ``popular`` most popular, then ``trials`` most tried."""
        pools = self.__dict__.setdefault("_candidate_pools", {})
        pool = pools.get((popular, trials))
        if pool is None:
            pool = pools[(popular, trials)] = np.concatenate(
                [self.popular_order()[:popular], self.trial_order[:trials]]
            ).astype(np.int64)
        return pool

    @cached_property
    def category_codes(self) -> tuple[dict[str, int], np.ndarray]:
        """Category name to code, and each item's code (``Unknown`` is -1: it never matches)."""
        codes: dict[str, int] = {}
        for c in self.category:
            if c != "Unknown":
                codes.setdefault(c, len(codes))
        return codes, np.array([codes.get(c, -1) for c in self.category], np.int64)

    @cached_property
    def cycle(self) -> np.ndarray:
        """Days between purchases of an item's repeat buyers (the prior when unknown)."""
        if self.cycle_days is None:
            return np.full(len(self.items), _PRIOR_CYCLE_DAYS, np.float32)
        return self.cycle_days

    @cached_property
    def trials(self) -> np.ndarray:
        """Customers whose first purchase of the item fell in the last 4 weeks."""
        return np.zeros(len(self.items), np.float32) if self.trial4 is None else self.trial4

    @cached_property
    def trial_order(self) -> np.ndarray:
        """Recommendable item rows by recent first purchases (then 4-week popularity)."""
        order = np.lexsort((-self.pop4, -self.trials))
        return order[self.recommendable[order] & (self.trials[order] > 0)]

    @cached_property
    def popular_reasons(self) -> list[str]:
        """Each item's reason as a popularity pick ("trending in X" or "popular in X")."""
        out = []
        for j, cat in enumerate(self.category):
            where = f"in {cat}" if cat and cat != "Unknown" else "in the shop"
            trend = float(np.log((self.pop4[j] + 1) / (self.pop13[j] / 3.25 + 1)))
            out.append(
                f"trending {where} this month" if trend > 0.2 else f"popular {where} this month"
            )
        return out

    @cached_property
    def item_reasons(self) -> tuple[list[str], list[str]]:
        """Per item, worded once: its reason without a personal signal, and as a pull's source.

        The reason is "a hidden gem" for an item most triers buy again, else its popularity
        reason; as the source of a co-purchase pull it reads "often bought with <its name>".
        """
        fallback = [
            "a hidden gem: most people who try it buy it again"
            if float(self.repeat_rate[j]) > 0.3
            else self.popular_reasons[j]
            for j in range(len(self.items))
        ]
        often = [
            f"often bought with {(self.description[j] or self.items[j]).title()}"
            for j in range(len(self.items))
        ]
        return fallback, often

    def popular_order(self) -> np.ndarray:
        """Recommendable item rows by recent popularity (4 weeks, then 52 weeks)."""
        return self._popular

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "items": self.items,
            "pop4": self.pop4.tolist(),
            "pop13": self.pop13.tolist(),
            "pop52": self.pop52.tolist(),
            "repeat_rate": self.repeat_rate.tolist(),
            "age_weeks": self.age_weeks.tolist(),
            "nbr_idx": self.nbr_idx.tolist(),
            "nbr_val": self.nbr_val.tolist(),
            "category": self.category,
            "description": self.description,
            "recommendable": self.recommendable.tolist(),
            "cutoff": self.cutoff,
            "cycle_days": self.cycle.tolist(),
            "trial4": self.trials.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemStats:
        """Inverse of :meth:`to_dict`."""
        return cls(
            items=list(d["items"]),
            pop4=np.asarray(d["pop4"], np.float32),
            pop13=np.asarray(d["pop13"], np.float32),
            pop52=np.asarray(d["pop52"], np.float32),
            repeat_rate=np.asarray(d["repeat_rate"], np.float32),
            age_weeks=np.asarray(d["age_weeks"], np.float32),
            nbr_idx=np.asarray(d["nbr_idx"], np.int64).reshape(len(d["items"]), -1),
            nbr_val=np.asarray(d["nbr_val"], np.float32).reshape(len(d["items"]), -1),
            category=list(d["category"]),
            description=list(d["description"]),
            recommendable=np.asarray(d["recommendable"], bool),
            cutoff=str(d.get("cutoff", "")),
            cycle_days=np.asarray(d["cycle_days"], np.float32) if "cycle_days" in d else None,
            trial4=np.asarray(d["trial4"], np.float32) if "trial4" in d else None,
        )


def item_stats(
    lines: pd.DataFrame,
    products: pd.DataFrame,
    cutoff: pd.Timestamp,
    items: Sequence[str],
    config: RecsConfig,
) -> ItemStats:
    """Compute item statistics from purchase lines strictly before ``cutoff``.

    Args:
        lines: Output of :func:`purchase_lines`.
        products: Clean products (``stock_code``, ``description``, ``category``,
            ``discontinue_date``).
        cutoff: Only earlier lines are read; items discontinued before it are not recommendable.
        items: The item vocabulary (fixed across training cutoffs).
        config: Neighbour counts and windows.

    Returns:
        The statistics.
    """
    index = pd.Index(list(items))
    n = len(index)
    past = lines[lines["invoice_date"] < cutoff]
    idx = index.get_indexer(past["stock_code"])
    past = past.assign(item=idx)[idx >= 0]
    age = (cutoff - past["invoice_date"]).dt.days.to_numpy()

    def invoices_within(days: int) -> np.ndarray:
        sub = past[age < days].drop_duplicates(["invoice", "item"])
        return np.bincount(sub["item"].to_numpy(), minlength=n).astype(np.float32)

    pop4, pop13, pop52 = invoices_within(28), invoices_within(91), invoices_within(364)
    known = past[past["customer_id"].notna()]
    per = known.groupby(["item", "customer_id"], observed=True)["invoice"].nunique()
    buyers = np.bincount(per.index.get_level_values(0), minlength=n).astype(np.float32)
    repeaters = np.bincount(per[per >= 2].index.get_level_values(0), minlength=n).astype(np.float32)
    repeat_rate = (repeaters + 0.2) / (buyers + 2.0)  # shrunk towards ~0.1
    span = known.groupby(["item", "customer_id"], observed=True)["invoice_date"].agg(["min", "max"])
    span_days = ((span["max"] - span["min"]).dt.total_seconds() / SECONDS_PER_DAY).to_numpy()
    item_of = span.index.get_level_values(0).to_numpy()
    gaps = np.bincount(item_of, weights=span_days, minlength=n)
    repeats = np.bincount(item_of, weights=np.maximum(per.to_numpy() - 1, 0), minlength=n)
    # shrunk towards the prior with the weight of two repeat purchases
    cycle = (gaps + 2 * _PRIOR_CYCLE_DAYS) / (repeats + 2.0)
    recent_first = ((cutoff - span["min"]).dt.total_seconds() / SECONDS_PER_DAY).to_numpy() < 28
    trial4 = np.bincount(item_of[recent_first], minlength=n).astype(np.float32)
    first = past.groupby("item")["invoice_date"].min()
    age_weeks = np.zeros(n, np.float32)
    age_weeks[first.index.to_numpy()] = (cutoff - first).dt.days.to_numpy() / 7.0
    nbr_idx, nbr_val = _neighbours(past[age < 7 * config.cooccurrence_weeks], n, config)
    prod = (
        products.assign(stock_code=products["stock_code"].astype(str))
        .drop_duplicates("stock_code")
        .set_index("stock_code")
        .reindex(index)
    )
    disc = pd.to_datetime(prod["discontinue_date"]) if "discontinue_date" in prod else None
    recommendable = np.ones(n, bool)
    if disc is not None:
        recommendable &= ~(disc.notna() & (disc < cutoff)).to_numpy()
    recommendable &= pop52 > 0  # nothing unsold for a year
    category = (
        prod["category"].astype("string").fillna("Unknown").astype(str).tolist()
        if "category" in prod
        else ["Unknown"] * n
    )
    description = (
        prod["description"].astype("string").fillna("").astype(str).tolist()
        if "description" in prod
        else [""] * n
    )
    return ItemStats(
        items=list(index),
        pop4=pop4,
        pop13=pop13,
        pop52=pop52,
        repeat_rate=repeat_rate.astype(np.float32),
        age_weeks=age_weeks,
        nbr_idx=nbr_idx,
        nbr_val=nbr_val,
        category=category,
        description=description,
        recommendable=recommendable,
        cutoff=str(cutoff.date()),
        cycle_days=cycle.astype(np.float32),
        trial4=trial4,
    )


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values in a sorted array."""
    first = np.empty(len(sorted_keys), bool)
    first[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return np.flatnonzero(first)


#: Items whose co-purchases are computed at once (bounds the memory of :func:`_neighbours`).
_NEIGHBOUR_BLOCK = 2048


def _neighbours(past: pd.DataFrame, n: int, config: RecsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Top co-purchased items per item: smoothed ``P(j in basket | i in basket)`` over invoices.

    Only items in at least ``config.min_item_baskets`` multi-item baskets take part (rarer items
    get no neighbours and are nobody's neighbour): the co-occurrence matrix stays sparse
    (float32, CSR) and is never densified, so memory follows the number of co-purchased pairs,
    not the square of the catalogue.
    """
    k = config.neighbours
    nbr_idx = np.full((n, k), -1, np.int64)
    nbr_val = np.zeros((n, k), np.float32)
    baskets = past.drop_duplicates(["invoice", "item"])
    sizes = baskets.groupby("invoice")["item"].transform("size")
    baskets = baskets[(sizes >= 2) & (sizes <= config.max_basket_lines)]
    item = baskets["item"].to_numpy()
    support = np.bincount(item, minlength=n)
    baskets = baskets[support[item] >= config.min_item_baskets]
    if baskets.empty:
        return nbr_idx, nbr_val
    inv = pd.factorize(baskets["invoice"])[0]
    item = baskets["item"].to_numpy()
    x = sparse.csr_matrix(
        (np.ones(len(item), np.float32), (inv, item)), shape=(int(inv.max()) + 1, n)
    )
    xt = x.T.tocsr()  # items x invoices
    counts = np.bincount(item, minlength=n).astype(np.float32)
    rows = np.flatnonzero(counts > 0)
    # A block of items at a time: memory follows the block's co-purchased pairs.
    for lo in range(0, len(rows), _NEIGHBOUR_BLOCK):
        block = rows[lo : lo + _NEIGHBOUR_BLOCK]
        co = xt[block] @ x
        co.sort_indices()  # co-purchased items in order within each item's row
        co = co.tocoo()
        i, j = block[co.row], co.col
        off = i != j
        i, j = i[off], j[off]
        prob = co.data[off] / (counts[i] + 3.0)  # smoothed P(j | i), float32 and positive
        # Per item, most likely first (ties: lower row), as lexsort((j, -prob, i)) orders them
        # at a fraction of its cost: one stable sort of an int64 key, the item above the
        # descending probability's bits (a positive float32's bits order as its value); the
        # entries arrive by (item, row), which settles the ties.
        key = (i.astype(np.int64) << 32) | (0xFFFFFFFF - prob.view(np.uint32).astype(np.int64))
        order = np.argsort(key, kind="stable")
        i, j, prob = i[order], j[order], prob[order]
        starts = _run_starts(i)
        rank = np.arange(len(i)) - np.repeat(starts, np.diff(np.r_[starts, len(i)]))
        top = rank < k
        nbr_idx[i[top], rank[top]] = j[top]
        nbr_val[i[top], rank[top]] = prob[top]
    return nbr_idx, nbr_val


# ------------------------------------------------------------------------------------------------
# Candidates and pair features
# ------------------------------------------------------------------------------------------------


@dataclass
class CandidateBatch:
    """Candidates and features for a set of customers (padded to the same length)."""

    customer_ids: list[str]
    items: torch.Tensor  # (B, C) item rows, -1 padded
    mask: torch.Tensor  # (B, C) bool
    feats: torch.Tensor  # (B, C, F)
    hist_items: torch.Tensor  # (B, T) item rows, -1 padded
    hist_w: torch.Tensor  # (B, T)
    co_source: torch.Tensor  # (B, C) history item row that drives the co-purchase score, or -1


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, float) and np.isnan(v):
        return []
    if isinstance(v, list):  # the online read's lists (read, never changed, by callers)
        return v
    if isinstance(v, np.ndarray):  # an offline frame's cell: Python scalars convert faster
        return list(v.tolist())
    return list(v)


def customer_history(
    rows: Columns,
    stats: ItemStats,
    config: RecsConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer histories from ``recs_v1`` rows as padded item rows, counts and last times.

    Args:
        rows: FeatureService rows.
        stats: Item statistics (for the item index).
        config: Feature roles.

    Returns:
        ``(items, counts, last_ts)``, each (N, T); items -1 padded.
    """
    n = _length(rows)
    items_col = [_as_list(v) for v in rows[config.items_feature]] if n else []
    t = max((len(v) for v in items_col), default=1) or 1
    items = np.full((n, t), -1, np.int64)
    counts = np.zeros((n, t), np.float32)
    last = np.zeros((n, t), np.float64)
    # flattened: the lists concatenated, then one lookup pass and one scatter per array
    lengths: list[int] = []
    codes: list[Any] = []
    cnts: list[Any] = []
    lasts: list[Any] = []
    for its, cs, ls in zip(
        items_col, rows[config.counts_feature], rows[config.last_ts_feature], strict=True
    ):
        cs, ls = _as_list(cs), _as_list(ls)
        m = min(len(its), len(cs), len(ls))  # zip's length, as before
        lengths.append(m)
        codes += its[:m]
        cnts += cs[:m]
        lasts += ls[:m]
    js = stats.code_index.rows(codes)
    ok = js >= 0
    per_row = np.asarray(lengths, np.int64)
    rr = np.repeat(np.arange(n), per_row)
    cc = np.arange(len(codes)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    rr, cc = rr[ok], cc[ok]
    items[rr, cc] = js[ok]
    counts[rr, cc] = np.asarray(cnts, np.float64)[ok]  # float64 to float32, as each cell was
    last[rr, cc] = np.asarray(lasts, np.float64)[ok]
    return items, counts, last


def _num(rows: Columns, name: str) -> np.ndarray:
    """A numeric column; missing and non-numeric values are 0."""
    values = rows.get(name)
    if values is None:
        return np.zeros(_length(rows), np.float64)
    try:  # numbers and None (NaN): one conversion
        out = np.array(values, np.float64)
    except (TypeError, ValueError):
        out = np.empty(0)
    if out.shape != (len(values),):  # something else in the column: value by value
        out = np.empty(len(values), np.float64)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                out[i] = np.nan
    out[np.isnan(out)] = 0.0
    return out


def _text(v: Any) -> str:
    """A text value; missing (None, NaN, pd.NA) is empty."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


def build_candidates(
    rows: Rows, stats: ItemStats, config: RecsConfig, now: np.ndarray
) -> CandidateBatch:
    """Candidate items and pair features for each customer row.

    The rows are parsed here; the array work (co-purchase scores, candidate lists, the
    :data:`PAIR_FEATURES` of every candidate) is one compiled pass per customer
    (:func:`shelfops.models.candidates.candidate_arrays`).

    Args:
        rows: ``recs_v1`` rows (one per customer).
        stats: Item statistics as of the cutoff.
        config: Candidate counts and feature roles.
        now: Epoch seconds of each row's scoring time (the cutoff).

    Returns:
        The padded batch.
    """
    rows = as_columns(rows)
    n_items = len(stats.items)
    hist, counts, last = customer_history(rows, stats, config)
    n = hist.shape[0]
    cat_codes, item_cat = stats.category_codes  # Unknown is -1 (and matches Unknown here)
    # favourite category matches the item's (never on Unknown), compared as integer codes
    fav = np.array(
        [cat_codes.get(_text(v), -2) for v in rows[config.favourite_feature]]
        if config.favourite_feature in rows
        else [-2] * n,
        np.int64,
    )
    kernel = stats.kernel_inputs
    items, feats, co_src, w = candidates.compiled()(
        hist,
        counts,
        last,
        np.ascontiguousarray(now, np.float64),
        _num(rows, "last_purchase_ts"),
        np.maximum(_num(rows, "invoices_total"), 1.0),
        _num(rows, "invoices_90d"),
        fav,
        _num(rows, "discount_affinity"),
        kernel["nbr_idx"],
        kernel["nbr_val"],
        kernel["recommendable"],
        stats.candidate_pool(config.popular_candidates, config.trial_candidates),
        kernel["cycle"],
        item_cat,
        stats.pair_item_features,
        kernel["trial_feature"],
        min(config.co_candidates, n_items),
        TOP_ITEMS,
    )
    return CandidateBatch(
        customer_ids=[str(c) for c in rows["customer_id"]],
        items=torch.from_numpy(items),
        mask=torch.from_numpy(items >= 0),
        feats=torch.from_numpy(feats),
        hist_items=torch.from_numpy(hist),
        hist_w=torch.from_numpy(w),
        co_source=torch.from_numpy(co_src),
    )


# ------------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------------
NUMPY_SCORING_MAX_CELLS = 512
"""Candidate cells (customers x candidates) up to which :meth:`RecsModel.score_batch` uses numpy."""


def _gelu(x: np.ndarray) -> np.ndarray:
    """The network's own exact GELU (``nn.GELU()``'s kernel) on an array, without a copy.

    Half the time of the same formula with ``scipy.special.erf`` on a request's candidates.
    """
    return torch.nn.functional.gelu(torch.from_numpy(np.ascontiguousarray(x))).numpy()


WORKSPACE_MAX_ROWS = 64 * 128
"""Largest MLP input (candidate cells) whose hidden layers use the process's reused scratch."""


class _Workspace:
    """Scratch for the MLP's hidden layers at inference, reused from batch to batch.

    A served batch of 64 customers has about 6,000 candidate cells: each hidden layer's output
    is 1.5 MB, which a fresh allocation pays for in page faults and cold cache on every batch
    (about 0.45 ms of a 13 ms batch, measured interleaved in one process). One per process, used
    by one thread at a time (servers score one batch at a time); a thread that finds it in use
    allocates as before.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffers: dict[int, torch.Tensor] = {}

    def take(self, layer: int, rows: int, cols: int) -> torch.Tensor:
        """A (rows, cols) float32 scratch tensor for ``layer`` (its contents are garbage)."""
        need = rows * cols
        buf = self.buffers.get(layer)
        if buf is None or buf.numel() < need:
            buf = self.buffers[layer] = torch.empty(need)
        return buf[:need].view(rows, cols)

    def mlp(self, mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor | None:
        """``mlp(x)`` without autograd, hidden layers written here; None when in use or too big.

        Linear layers and exact GELUs write into the scratch (the same kernels as the layers);
        the last layer's output, and any other kind of layer, is a new tensor, so the result
        outlives the next call.
        """
        if len(x) > WORKSPACE_MAX_ROWS or not self.lock.acquire(blocking=False):
            return None
        try:
            last = len(mlp) - 1
            for i, layer in enumerate(mlp):
                if i < last and isinstance(layer, nn.Linear) and layer.bias is not None:
                    out = self.take(i, len(x), layer.out_features)
                    x = torch.addmm(layer.bias, x, layer.weight.t(), out=out)
                elif i < last and isinstance(layer, nn.GELU) and layer.approximate == "none":
                    x = torch.ops.aten.gelu.out(x, out=self.take(i, *x.shape))
                else:
                    x = layer(x)
            return x
        finally:
            self.lock.release()


_WORKSPACE = _Workspace()


class RecsNet(nn.Module):
    """Pair-feature MLP + customer/item embedding affinity + item bias."""

    def __init__(self, n_items: int, n_feats: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.item_in = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.item_out = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.bias = nn.Embedding(n_items + 1, 1, padding_idx=n_items)
        nn.init.normal_(self.item_in.weight, std=0.05)
        nn.init.normal_(self.item_out.weight, std=0.05)
        nn.init.zeros_(self.bias.weight)
        self.mlp = nn.Sequential(
            nn.Linear(n_feats, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )
        self.n_items = n_items

    def forward(
        self,
        items: torch.Tensor,
        feats: torch.Tensor,
        hist: torch.Tensor,
        hist_w: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores (B, C) for candidate item rows (-1 padded).

        With ``mask`` (B, C), only the real candidates go through the MLP (the padding of a
        ragged batch is about a seventh of its cells) and padded cells score ``-inf``.
        """
        pad = self.n_items
        it = torch.where(items >= 0, items, torch.full_like(items, pad))
        hi = torch.where(hist >= 0, hist, torch.full_like(hist, pad))
        wsum = hist_w.sum(dim=1, keepdim=True).clamp(min=1e-6)
        cust = (self.item_in(hi) * (hist_w / wsum)[..., None]).sum(dim=1)  # (B, D)
        dot = torch.einsum("bd,bcd->bc", cust, self.item_out(it))
        if mask is None:
            pair = self.mlp(feats).squeeze(-1)
        else:
            real = feats[mask]
            pair = torch.full(items.shape, float("-inf"), dtype=dot.dtype)
            # a served batch: the hidden layers in the process's reused scratch
            out = None if torch.is_grad_enabled() else _WORKSPACE.mlp(self.mlp, real)
            pair[mask] = (self.mlp(real) if out is None else out).squeeze(-1)
        return pair + dot + self.bias(it).squeeze(-1)


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
@dataclass
class Ranked:
    """The best scored candidates of a batch of customers, best first (:meth:`RecsModel.rank`)."""

    customer_ids: list[str]
    items: np.ndarray
    """(B, k) item rows, -1 where a customer had fewer candidates."""
    scores: np.ndarray
    """(B, k) float32 scores, ``-inf`` where there is no candidate."""
    column: np.ndarray
    """(B, k) each item's column in ``arrays`` (for its reason)."""
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]
    """The candidate batch's items, pair features and co-purchase sources, as numpy."""


_OWN = PAIR_FEATURES.index("own")


def regulars(ranked: Ranked, row: int) -> np.ndarray:
    """Item rows of a customer's regulars: the recommendable top items of their feature row.

    What the discover list leaves out (:meth:`RecsModel.rank` with ``discover``): the model
    knows a customer's history only as those top items, so an item bought once long ago may
    still be "new" to it.
    """
    items, feats, _ = ranked.arrays
    return items[row][feats[row, :, _OWN] > 0]


@functools.lru_cache(maxsize=1024)
def _every_visits(n: int) -> str:
    return f"you buy this about every {n} visits"


@functools.lru_cache(maxsize=1024)
def _weeks_ago(n: int) -> str:
    return f"you bought this {n} weeks ago"


class Recommendation:
    """One recommended item; its reason is worded when first read (most candidates never are)."""

    __slots__ = ("_reason", "category", "description", "score", "stock_code")

    def __init__(
        self,
        stock_code: str,
        score: float,
        reason: str | Callable[[], str],
        description: str = "",
        category: str = "Unknown",
    ) -> None:
        """Create the item; ``reason`` is the text or a function that words it."""
        self.stock_code = stock_code
        self.score = score
        self._reason = reason
        self.description = description
        self.category = category

    @property
    def scored(self) -> bool:
        """Whether the model scored this item (a popularity top-up carries ``-inf``)."""
        return math.isfinite(self.score)

    @property
    def reason(self) -> str:
        """The short human reason for this item."""
        if not isinstance(self._reason, str):
            self._reason = self._reason()
        return self._reason

    def __eq__(self, other: object) -> bool:
        """Equal when every field (reasons worded) is equal."""
        if not isinstance(other, Recommendation):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Like a dataclass repr."""
        code, score, reason, description, category = self._fields()
        return (
            f"Recommendation(stock_code={code!r}, score={score!r}, reason={reason!r}, "
            f"description={description!r}, category={category!r})"
        )

    def _fields(self) -> tuple[str, float, str, str, str]:
        return (self.stock_code, self.score, self.reason, self.description, self.category)


@dataclass
class RecsModel:
    """Item statistics + scorer; recommends from ``recs_v1`` rows."""

    config: RecsConfig
    stats: ItemStats
    net: RecsNet
    features: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)

    def _norm(self, feats: torch.Tensor) -> torch.Tensor:
        m, s = self._scale
        return (feats - m) / s

    @cached_property
    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        # mean/std are fixed once the model exists (fit_recs sets them before training starts).
        return (
            torch.tensor(self.mean, dtype=torch.float32),
            torch.tensor(self.std, dtype=torch.float32),
        )

    def score_batch(self, batch: CandidateBatch) -> torch.Tensor:
        """Scores for a candidate batch (padding gets ``-inf``).

        Small batches (one request's customers: at most :data:`NUMPY_SCORING_MAX_CELLS`
        candidate cells) are scored by :meth:`_score_numpy`, the same arithmetic on the same
        weights without ``nn.Module`` dispatch, which costs more than the arithmetic on a few
        dozen candidates (0.24 ms against 0.51 ms for one customer on the quickstart model);
        larger batches (evaluation, V2 batches) run the network, whose kernels win there.
        """
        if batch.mask.numel() <= NUMPY_SCORING_MAX_CELLS:
            return torch.from_numpy(self._score_numpy(batch))
        if self.net.training:
            self.net.eval()
        with torch.no_grad():
            return self.net(
                batch.items, self._norm(batch.feats), batch.hist_items, batch.hist_w, batch.mask
            )

    def _weights(self) -> dict[str, np.ndarray]:
        """NumPy views of the network's parameters, built once per network.

        The views share memory with the parameters, so in-place updates (optimizer steps,
        ``load_state_dict``) show; reading ``state_dict()`` per request cost about a third of
        the scoring. A different network object gets new views.
        """
        cached = self.__dict__.get("_weight_views")
        if cached is None or cached[0] is not self.net:
            views = {name: p.detach().numpy() for name, p in self.net.named_parameters()}
            m, sd = self._scale
            views["_mean"], views["_std"] = m.numpy(), sd.numpy()
            self.__dict__["_weight_views"] = cached = (self.net, views)
        return cached[1]

    def _score_numpy(self, batch: CandidateBatch) -> np.ndarray:
        """:meth:`RecsNet.forward` in numpy on the network's current weights (views, no copy)."""
        w = self._weights()
        pad = self.net.n_items
        items, hist = batch.items.numpy(), batch.hist_items.numpy()
        hist_w = batch.hist_w.numpy()
        it = np.where(items >= 0, items, pad)
        hi = np.where(hist >= 0, hist, pad)
        share = hist_w / np.maximum(hist_w.sum(axis=1, keepdims=True), 1e-6)
        cust = np.einsum("bt,btd->bd", share, w["item_in.weight"][hi])
        dot = np.einsum("bd,bcd->bc", cust, w["item_out.weight"][it])
        x = (batch.feats.numpy() - w["_mean"]) / w["_std"]
        h = _gelu(x @ w["mlp.0.weight"].T + w["mlp.0.bias"])
        h = _gelu(h @ w["mlp.2.weight"].T + w["mlp.2.bias"])
        out = (h @ w["mlp.4.weight"].T + w["mlp.4.bias"])[..., 0] + dot + w["bias.weight"][it, 0]
        return np.where(batch.mask.numpy(), out, -np.inf).astype(np.float32)

    def personal_allowed(self, rows: Rows) -> np.ndarray:
        """Which rows may get personalised results (consent and any history)."""
        cols = as_columns(rows)
        n = _length(cols)
        out = personalization_allowed(cols.get(PERSONALIZATION_OPT_OUT, [None] * n))
        items = cols.get(self.config.items_feature, None)
        if items is not None:
            out &= np.array([len(_as_list(v)) > 0 for v in items], bool)
        return out

    def rank(self, rows: Rows, k: int, now_s: float, discover: bool = False) -> Ranked:
        """The best ``k`` scored candidates of every row, as arrays (no objects, no top-up).

        Every row is scored as personal: callers pass only customers who may be personalised.
        This is the scoring both :meth:`recommend` (objects, top-up) and the recommendation
        server (rules as array masks, objects only for the items it serves) build on.

        Args:
            rows: ``recs_v1`` rows as columns (or anything :func:`as_columns` takes).
            k: Candidates to keep per row.
            now_s: Scoring time, epoch seconds.
            discover: The discover list: the customer's regulars (the top items of their
                feature row) are not candidates, so the best of the rest is ranked: items
                bought with theirs, trending and newly tried items (:func:`regulars`).

        Returns:
            The ranked candidates; a row with fewer than ``k`` candidates is padded with item
            row -1 and score ``-inf``.
        """
        cols = as_columns(rows)
        batch = build_candidates(cols, self.stats, self.config, np.full(_length(cols), now_s))
        scores = self.score_batch(batch).numpy()
        if discover:
            scores = np.where(batch.feats.numpy()[..., _OWN] > 0, np.float32(-np.inf), scores)
        kk = min(k, scores.shape[1])
        # best kk per row, best first (stable: ties keep candidate order)
        top_index = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
        # numpy views once: element reads from tensors cost microseconds each
        arrays = (batch.items.numpy(), batch.feats.numpy(), batch.co_source.numpy())
        at_row = np.arange(len(scores))[:, None]  # take_along_axis's gather, without its checks
        return Ranked(
            customer_ids=batch.customer_ids,
            items=arrays[0][at_row, top_index],
            scores=scores[at_row, top_index],
            column=top_index,
            arrays=arrays,
        )

    def recommend(
        self,
        rows: Rows,
        k: int = 10,
        now: pd.Timestamp | None = None,
        batch_size: int = 512,
        discover: bool = False,
    ) -> dict[str, list[Recommendation]]:
        """Top-``k`` recommendations per customer row, never a discontinued item.

        Customers who opted out of personalization, or have no history (cold start), get the
        non-personal popularity list.

        Args:
            rows: ``recs_v1`` rows with ``customer_id``: an offline frame, or online rows as
                columns or dicts (no pandas on that path).
            k: List length.
            now: Scoring time (default: the model's training cutoff).
            batch_size: Customers per forward pass.
            discover: The discover list (:meth:`rank`): no regulars, in the ranking or the
                popularity top-up.

        Returns:
            ``{customer_id: [Recommendation, ...]}``.
        """
        now_s = self.now_seconds(now)
        popular = self.stats.popular_order()
        out: dict[str, list[Recommendation]] = {}
        cols = as_columns(rows)
        allowed = self.personal_allowed(cols)
        ids = [str(c) for c in cols.get("customer_id", [])]
        for cid, ok in zip(ids, allowed, strict=True):
            if not ok:
                out[cid] = [
                    self._rec(int(j), 0.0, self.popular_reason(int(j))) for j in popular[:k]
                ]
        personal = np.flatnonzero(allowed)
        for s in range(0, len(personal), batch_size):
            take = personal[s : s + batch_size]
            part = {name: [v[i] for i in take] for name, v in cols.items()}
            ranked = self.rank(part, k, now_s, discover)
            top_values = ranked.scores.tolist()
            top_items = ranked.items.tolist()
            top_index_l = ranked.column.tolist()
            for r, cid in enumerate(ranked.customer_ids):
                recs: list[Recommendation] = []
                seen: set[int] = set(regulars(ranked, r).tolist()) if discover else set()
                for sc, ci, j in zip(top_values[r], top_index_l[r], top_items[r], strict=True):
                    if j < 0 or not math.isfinite(sc):
                        continue
                    seen.add(j)
                    # worded only if read: a server shows k of the candidates it asks for
                    recs.append(self._rec(j, sc, partial(self._reason, ranked.arrays, r, ci)))
                for j in popular:  # top up (tiny histories, tiny catalogues)
                    if len(recs) >= k:
                        break
                    if int(j) not in seen:
                        recs.append(self._rec(int(j), float("-inf"), self.popular_reason(int(j))))
                out[cid] = recs
        return out

    def now_seconds(self, now: pd.Timestamp | None = None) -> float:
        """Epoch seconds of a scoring time (default: the model's training cutoff)."""
        now_ts = now if now is not None else pd.Timestamp(self.stats.cutoff or "1970-01-01")
        return float(pd.Timestamp(now_ts).tz_localize(None).value / 1e9)

    def _rec(self, j: int, score: float, reason: str | Callable[[], str]) -> Recommendation:
        return Recommendation(
            stock_code=self.stats.items[j],
            score=score,
            reason=reason,
            description=self.stats.description[j],
            category=self.stats.category[j],
        )

    def popular_reason(self, j: int) -> str:
        """The reason shown with a popularity pick (item row ``j``)."""
        return self.stats.popular_reasons[j]

    def ranked_reasons(
        self, ranked: Ranked, rows: Sequence[int], ranks: Sequence[int]
    ) -> list[str]:
        """The reasons for the ``ranks[n]``-th item of row ``rows[n]`` of a :meth:`rank` answer."""
        r = np.asarray(rows, np.int64)
        return self._reasons(ranked.arrays, r, ranked.column[r, np.asarray(ranks, np.int64)])

    def _reason(self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], r: int, ci: int) -> str:
        """Why item ``ci`` of customer ``r``; ``arrays`` are the batch's items, feats, co_source."""
        return self._reasons(arrays, np.asarray([r]), np.asarray([ci]))[0]

    def _reasons(
        self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], r: np.ndarray, ci: np.ndarray
    ) -> list[str]:
        """Why item ``ci[i]`` of customer ``r[i]``, for each ``i`` (one array pass, then words).

        Own items: bought on most visits, about every N visits, or N weeks ago; else the
        co-purchase source when its pull is strong; else the item's own reason (a repeat-buy
        favourite, or popular / trending).
        """
        items, feats, co_source = arrays
        f = feats[r, ci].astype(np.float64)  # (m, F), each value as float(...) reads it
        x = np.expm1(f[:, [1, 2, 14]]).tolist()  # count, days since, invoices
        own = (f[:, 0] > 0).tolist()
        strong = (f[:, 12] > 0.05).tolist()
        src = co_source[r, ci].tolist()
        rows = items[r, ci].tolist()
        fallback, often = self.stats.item_reasons
        out = []
        for (count, days, inv), mine, pull, s, j in zip(x, own, strong, src, rows, strict=True):
            if mine:
                if count >= 2:
                    every = max(1.0, inv / count)
                    if every <= 1.5:
                        out.append("you buy this on most visits")
                    else:
                        out.append(_every_visits(round(every)))
                else:
                    out.append(_weeks_ago(max(1, round(days / 7))))
            elif s >= 0 and pull:
                out.append(often[s])
            else:
                out.append(fallback[j])
        return out

    def save(self, path: Path) -> None:
        """Write ``config.json``, ``state.json`` (item statistics) and ``weights.pt``.

        Args:
            path: Target folder (created).
        """
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        (path / "state.json").write_text(
            json.dumps(
                {
                    "stats": self.stats.to_dict(),
                    "features": self.features,
                    "mean": self.mean,
                    "std": self.std,
                    "history": self.history,
                }
            )
        )
        torch.save(self.net.state_dict(), path / "weights.pt")

    @classmethod
    def load(cls, path: Path) -> RecsModel:
        """Load a model written by :meth:`save`.

        Args:
            path: The folder.

        Returns:
            The model.
        """
        config = RecsConfig.from_dict(json.loads((path / "config.json").read_text()))
        state = json.loads((path / "state.json").read_text())
        stats = ItemStats.from_dict(state["stats"])
        net = RecsNet(len(stats.items), N_PAIR_FEATURES, config.embedding_dim, config.hidden)
        net.load_state_dict(torch.load(path / "weights.pt", weights_only=True))
        net.eval()
        return cls(
            config=config,
            stats=stats,
            net=net,
            features=list(state["features"]),
            mean=list(state["mean"]),
            std=list(state["std"]),
            history=dict(state.get("history", {})),
        )


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
def first_baskets(
    lines: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, customers: set[str] | None = None
) -> dict[str, set[str]]:
    """Item set of each customer's first invoice in ``[start, end)``.

    Args:
        lines: Purchase lines.
        start: Window start (a cutoff).
        end: Window end (exclusive).
        customers: Restrict to these customers.

    Returns:
        ``{customer_id: {stock_code, ...}}``.
    """
    w = lines[
        (lines["invoice_date"] >= start)
        & (lines["invoice_date"] < end)
        & lines["customer_id"].notna()
    ]
    if customers is not None:
        w = w[w["customer_id"].isin(customers)]
    if w.empty:
        return {}
    first = w.sort_values(["invoice_date", "invoice"]).groupby("customer_id")["invoice"].first()
    w = w[w["invoice"].isin(set(first.to_numpy()))]
    w = w[w["invoice"].to_numpy() == w["customer_id"].map(first).to_numpy()]
    # split by customer with arrays (iterating a groupby built a Series per customer)
    cust = w["customer_id"].astype(str).to_numpy()
    code = w["stock_code"].astype(str).to_numpy()
    order = np.argsort(cust, kind="stable")
    cust, code = cust[order], code[order]
    bounds = [*_run_starts(cust).tolist(), len(cust)]
    return {cust[a]: set(code[a:b].tolist()) for a, b in itertools.pairwise(bounds)}


@dataclass
class TrainingSlice:
    """One training cutoff: feature rows, item stats and targets."""

    cutoff: pd.Timestamp
    rows: pd.DataFrame
    stats: ItemStats
    targets: dict[str, set[str]]


def _targets_tensor(
    batch: CandidateBatch, targets: dict[str, set[str]], stats: ItemStats
) -> torch.Tensor:
    index = stats.index
    y = torch.zeros(batch.items.shape, dtype=torch.float32)
    items = batch.items.numpy()
    for r, cid in enumerate(batch.customer_ids):
        tset = {index[i] for i in targets.get(cid, set()) if i in index}
        if tset:
            y[r] = torch.from_numpy(np.isin(items[r], list(tset)).astype(np.float32))
    return y


def _prepare(
    slices: Sequence[TrainingSlice],
    config: RecsConfig,
) -> list[tuple[CandidateBatch, torch.Tensor]]:
    out = []
    for sl in slices:
        rows = sl.rows[sl.rows["customer_id"].astype(str).isin(set(sl.targets))]
        if rows.empty:
            continue
        now = float(sl.cutoff.value / 1e9)
        for s in range(0, len(rows), 2048):
            part = rows.iloc[s : s + 2048]
            batch = build_candidates(part, sl.stats, config, np.full(len(part), now))
            y = _targets_tensor(batch, sl.targets, sl.stats)
            keep = y.sum(dim=1) > 0
            if keep.any():
                idx = torch.nonzero(keep).squeeze(1)
                out.append((_subset(batch, idx), y[idx]))
    return out


def _subset(b: CandidateBatch, idx: torch.Tensor) -> CandidateBatch:
    ids = [b.customer_ids[int(i)] for i in idx]
    return CandidateBatch(
        ids,
        b.items[idx],
        b.mask[idx],
        b.feats[idx],
        b.hist_items[idx],
        b.hist_w[idx],
        b.co_source[idx],
    )


def _listwise_loss(scores: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    scores = scores.masked_fill(~mask, -1e9)
    logp = torch.log_softmax(scores, dim=1)
    per = -(logp * y).sum(dim=1) / y.sum(dim=1).clamp(min=1.0)
    return per.mean()


def fit_recs(
    train: Sequence[TrainingSlice],
    final_stats: ItemStats,
    features: Sequence[str],
    config: RecsConfig | None = None,
    valid: Sequence[TrainingSlice] = (),
    epochs: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> RecsModel:
    """Train the scorer on next-basket targets from several pre-cutoff training cutoffs.

    Args:
        train: Training slices (rows must exclude opted-out customers).
        final_stats: Item statistics the fitted model will serve with (as of the last cutoff).
        features: The FeatureService's feature names (recorded with the model).
        config: Hyper-parameters.
        valid: Validation slices for early stopping.
        epochs: Fixed epoch count (no early stopping); defaults to ``config.epochs``.
        progress: Callback ``(epoch, epochs, loss)``.

    Returns:
        The fitted model.
    """
    cfg = config or RecsConfig()
    set_determinism(cfg.seed)
    started = time.perf_counter()
    data = _prepare(train, cfg)
    if not data:
        raise ValueError("no training customers with a next basket among their candidates")
    vdata = _prepare(valid, cfg) if valid else []
    all_feats = torch.cat([b.feats[b.mask] for b, _ in data])
    mean = all_feats.mean(dim=0)
    std = all_feats.std(dim=0) + 1e-3
    n_items = len(final_stats.items)
    net = RecsNet(n_items, N_PAIR_FEATURES, cfg.embedding_dim, cfg.hidden)
    model = RecsModel(
        config=cfg,
        stats=final_stats,
        net=net,
        features=list(features),
        mean=mean.tolist(),
        std=std.tolist(),
    )
    # Flatten to per-customer examples for shuffled mini-batches.
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_epochs = epochs or cfg.epochs
    stopper = EarlyStopping(cfg.patience, min_delta=1e-4)
    losses: list[float] = []
    vlosses: list[float] = []
    for epoch in range(n_epochs):
        net.train()
        total, count = 0.0, 0
        order = torch.randperm(len(data), generator=gen).tolist()
        for bi in order:
            batch, y = data[bi]
            perm = torch.randperm(len(y), generator=gen)
            for s in range(0, len(y), cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                sub = _subset(batch, idx)
                scores = net(sub.items, model._norm(sub.feats), sub.hist_items, sub.hist_w)
                loss = _listwise_loss(scores, y[idx], sub.mask)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        losses.append(total / max(count, 1))
        if vdata:
            net.eval()
            with torch.no_grad():
                vl = sum(
                    float(
                        _listwise_loss(
                            net(b.items, model._norm(b.feats), b.hist_items, b.hist_w), y, b.mask
                        )
                    )
                    * len(y)
                    for b, y in vdata
                ) / max(sum(len(y) for _, y in vdata), 1)
            vlosses.append(vl)
            if stopper.step(vl, epoch + 1, net):
                break
        if progress:
            progress(epoch + 1, n_epochs, losses[-1])
    best_epoch = stopper.restore(net, len(losses))
    net.eval()
    model.history = {
        "train_loss": losses,
        "valid_loss": vlosses,
        "best_epoch": best_epoch,
        "train_customers": int(sum(len(y) for _, y in data)),
        "seconds": time.perf_counter() - started,
    }
    return model
