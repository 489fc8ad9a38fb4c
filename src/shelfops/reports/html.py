"""HTML reports with PNG plots (matplotlib Agg) for training and backtest runs.

A report shows the metrics beside every baseline, actual vs P10/P50/P90 for the top products,
example recommendations with their reasons, a "hidden gems" list and category-to-category
purchase affinities that merchandising teams can read.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.evaluation.metrics import (
    DEMAND_METRICS,
    DISCOVER_LIST_METRICS,
    RECS_METRICS,
    format_metric,
)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: Any) -> str:
    return html.escape(format_metric(v))


def _metrics_table(task: dict[str, Any], keys: Sequence[str]) -> str:
    rows = [("model", task["model"]), *list(task["baselines"].items())]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td><b>{html.escape(n)}</b></td>"
        + "".join(f"<td>{_fmt(m.get(k))}</td>" for k in keys)
        + "</tr>"
        for n, m in rows
    )
    return f"<table><tr><th>forecaster</th>{head}</tr>{body}</table>"


def _discover_paragraph(r: dict[str, Any]) -> str:
    """The model's discover list (no regulars) against popularity's explore recall, if scored."""
    m = r.get("model") or {}
    if m.get("recall@10_new_discover_list") is None:
        return ""
    pop = ((r.get("baselines") or {}).get("popularity") or {}).get("recall@10_new")
    return (
        "<p>Discover list (a second list without the customer's regulars): Recall@10 "
        f"{_fmt(m.get('recall@10_discover_list'))}, NDCG@10 {_fmt(m.get('ndcg@10_discover_list'))}"
        f", explore recall {_fmt(m.get('recall@10_new_discover_list'))} against popularity's "
        f"{_fmt(pop)}.</p>"
    )


def _served_table(served: dict[str, Any]) -> str:
    """Served against offline metrics and what each merchandising rule removed."""
    metrics = "".join(
        f"<tr><td><b>{k}</b></td><td>{_fmt(served['offline'].get(k))}</td>"
        f"<td>{_fmt(served['served'].get(k))}</td></tr>"
        for k in ("recall@10", "ndcg@10", "hr@10", *DISCOVER_LIST_METRICS)
        if k in served["offline"] and k in served["served"]
    )
    rules = (
        "".join(
            f"<tr><td>{html.escape(rule)}</td><td>{v['removed']:,}</td><td>{v['emptied']:,}</td></tr>"
            for rule, v in served.get("rules", {}).items()
        )
        or "<tr><td>(none removed anything)</td><td>0</td><td>0</td></tr>"
    )
    return (
        f"<h3>Served path (cutoff {html.escape(str(served['cutoff']))})</h3>"
        f"<p>Every evaluated customer replayed through the recommendation server as of the cutoff "
        f"(online store, consent, catalogue, rules, top-up): {served['customers']:,} customers, "
        f"{served['personalized']:,} personalized, {served['with_personal_items']:,} with "
        f"personal items; served Recall@10 is {served['recall_gap']:+.1%} below offline.</p>"
        f"<table><tr><th>metric</th><th>offline model</th><th>served</th></tr>{metrics}</table>"
        f"<table><tr><th>rule</th><th>personal candidates removed</th>"
        f"<th>personal lists emptied</th></tr>{rules}</table>"
    )


def _bar(task: dict[str, Any], key: str, title: str, path: Path) -> None:
    plt = _plt()
    names = ["model", *task["baselines"]]
    vals = [task["model"].get(key)] + [b.get(key) for b in task["baselines"].values()]
    vals = [float(v) if v is not None else 0.0 for v in vals]
    fig, ax = plt.subplots(figsize=(6, 3))
    colors = ["#2b7a78"] + ["#9aa5b1"] * (len(names) - 1)
    ax.bar(names, vals, color=colors)
    ax.set_title(title)
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _forecast_plots(
    forecasts: pd.DataFrame, panel_hist: pd.DataFrame | None, out: Path, top: int = 6
) -> str | None:
    if forecasts is None or forecasts.empty:
        return None
    plt = _plt()
    vol = forecasts.groupby("stock_code")["p50"].sum().sort_values(ascending=False)
    codes = list(vol.index[:top])
    fig, axes = plt.subplots(len(codes), 1, figsize=(7, 2.0 * len(codes)), squeeze=False)
    for ax, code in zip(axes[:, 0], codes, strict=True):
        f = forecasts[forecasts["stock_code"] == code].sort_values("week_start")
        ax.fill_between(f["week_start"], f["p10"], f["p90"], alpha=0.25, label="P10-P90")
        ax.plot(f["week_start"], f["p50"], label="P50")
        if "actual" in f and f["actual"].notna().any():
            ax.plot(f["week_start"], f["actual"], "k.", label="actual")
        ax.set_title(str(code), fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out.name


def hidden_gems(stats: Any, n: int = 10) -> pd.DataFrame:
    """Rarely bought items that their buyers come back for (high repeat rate, low popularity).

    Args:
        stats: The recommender's :class:`~shelfops.models.recs.ItemStats`.
        n: List length.

    Returns:
        ``stock_code, description, category, repeat_rate, invoices_52w``.
    """
    df = pd.DataFrame(
        {
            "stock_code": stats.items,
            "description": stats.description,
            "category": stats.category,
            "repeat_rate": stats.repeat_rate,
            "invoices_52w": stats.pop52,
            "recommendable": stats.recommendable,
        }
    )
    df = df[df["recommendable"] & (df["invoices_52w"] >= 3)]
    if df.empty:
        return df
    rare = df["invoices_52w"] <= df["invoices_52w"].quantile(0.5)
    return (
        df[rare].sort_values("repeat_rate", ascending=False).head(n).drop(columns="recommendable")
    )


def category_pairs(
    transactions: pd.DataFrame, products: pd.DataFrame, max_categories: int = 25
) -> pd.DataFrame:
    """How often baskets with category X also hold category Y, against chance (both directions).

    When the products table has no categories, the last word of the description stands in
    (``... T-LIGHT HOLDER`` -> ``HOLDER``), which is what merchandisers group by anyway.

    Args:
        transactions: Clean transactions (the window to measure over).
        products: Clean products.
        max_categories: Only the most frequent categories (by baskets) are paired.

    Returns:
        ``category_a, category_b, baskets, p_b_given_a, lift`` for every ordered pair of
        different categories seen in one basket; ``baskets`` counts baskets holding both,
        ``p_b_given_a`` is the share of baskets with A that also hold B, and ``lift`` is that
        share over B's share of all baskets (1 = independence).
    """
    cols = ["category_a", "category_b", "baskets", "p_b_given_a", "lift"]
    tx = transactions
    if "is_product" in tx:
        tx = tx[tx["is_product"].astype(bool) & ~tx["is_cancellation"].astype(bool)]
    prod = (
        products.assign(stock_code=products["stock_code"].astype(str))
        .drop_duplicates("stock_code")
        .set_index("stock_code")
    )
    cat = prod["category"].astype("string").fillna("Unknown")
    if (cat == "Unknown").mean() > 0.5:
        desc = prod["description"].astype("string").fillna("").str.strip()
        cat = desc.str.split().str[-1].fillna("OTHER").str.title()
    lines = pd.DataFrame(
        {
            "invoice": tx["invoice"].astype(str).to_numpy(),
            "cat": tx["stock_code"].astype(str).map(cat).fillna("Other").to_numpy(),
        }
    )
    lines = lines.drop_duplicates()
    n_inv = lines["invoice"].nunique()
    if n_inv == 0:
        return pd.DataFrame(columns=cols)
    counts = lines["cat"].value_counts()
    keep = set(counts.index[:max_categories])
    lines = lines[lines["cat"].isin(keep)]
    pairs = lines.merge(lines, on="invoice")
    pairs = pairs[pairs["cat_x"] != pairs["cat_y"]]
    together = pairs.groupby(["cat_x", "cat_y"]).size().rename("baskets").reset_index()
    p = counts / n_inv
    together["p_b_given_a"] = together["baskets"] / together["cat_x"].map(counts).to_numpy()
    together["lift"] = together["p_b_given_a"] / together["cat_y"].map(p).to_numpy()
    return together.rename(columns={"cat_x": "category_a", "cat_y": "category_b"})[cols]


def category_affinity(
    transactions: pd.DataFrame, products: pd.DataFrame, top: int = 12
) -> pd.DataFrame:
    """Category pairs bought together more often than chance (lift over independence).

    Args:
        transactions: Clean transactions.
        products: Clean products.
        top: Number of pairs.

    Returns:
        ``category_a, category_b, baskets, lift`` (each unordered pair once, at least 5
        baskets, highest lift first); see :func:`category_pairs`.
    """
    pairs = category_pairs(transactions, products)
    pairs = pairs[(pairs["category_a"] < pairs["category_b"]) & (pairs["baskets"] >= 5)]
    pairs = pairs.sort_values("lift", ascending=False)
    return pairs.head(top)[["category_a", "category_b", "baskets", "lift"]]


def _frame_html(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "<p><i>nothing to show</i></p>"
    return df.to_html(index=False, float_format=lambda x: f"{x:.3f}", escape=True, border=0)


def write_report(
    out_dir: Path,
    title: str,
    result: dict[str, Any],
    *,
    forecasts: pd.DataFrame | None = None,
    recs_model: Any = None,
    recs: dict[str, list[Any]] | None = None,
    transactions: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    rows: pd.DataFrame | None = None,
    examples: int = 5,
) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``.

    Args:
        out_dir: Report folder (created).
        title: Page title.
        result: The backtest/training result (``demand`` and ``recommendations`` entries).
        forecasts: Model forecasts with ``actual`` where known.
        recs_model: The trained recommender (for hidden gems).
        recs: Model recommendations per customer.
        transactions: Clean transactions (for category affinities).
        products: Clean products.
        rows: Feature rows of the evaluated customers (for their history in examples).
        examples: Customers shown with their recommendations.

    Returns:
        The path of ``index.html``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>cutoff {_fmt(result.get('cutoff'))}, data end {_fmt(result.get('data_end'))}, "
        f"wall time {_fmt(result.get('wall_time_s'))} s</p>",
    ]
    d = result.get("demand")
    if d:
        _bar(d, "wrmsse", "Demand WRMSSE (lower is better)", out_dir / "demand_wrmsse.png")
        parts += [
            "<h2>Demand forecast</h2>",
            f"<p>{_fmt(d.get('products_evaluated'))} products, "
            f"{_fmt(d.get('weeks_evaluated'))} weeks.</p>",
            _metrics_table(d, DEMAND_METRICS),
            '<img src="demand_wrmsse.png">',
        ]
        combination = d.get("combination") or {}
        parts.append(
            "<p>Segments forecast by a combination of the network and baselines, or by a baseline "
            "alone (weights fitted on validation): "
            + (
                ", ".join(
                    f"{html.escape(k)} products: "
                    + html.escape(" + ".join(f"{w:.1f} {n}" for n, w in v.items()))
                    for k, v in combination.items()
                )
                if combination
                else "none, the network alone everywhere"
            )
            + ".</p>"
        )
        if forecasts is not None:
            name = _forecast_plots(forecasts, None, out_dir / "demand_top_products.png")
            if name:
                parts += ["<h3>Actual vs P10/P50/P90, top products</h3>", f'<img src="{name}">']
    r = result.get("recommendations")
    if r:
        _bar(r, "recall@10", "Recall@10 (higher is better)", out_dir / "recs_recall.png")
        parts += [
            "<h2>Recommendations</h2>",
            f"<p>{_fmt(r.get('customers_evaluated'))} customers, catalogue of "
            f"{_fmt(r.get('catalogue_size'))} items.</p>",
            _metrics_table(r, RECS_METRICS),
            _discover_paragraph(r),
            '<img src="recs_recall.png">',
        ]
        if r.get("served"):
            parts.append(_served_table(r["served"]))
    if recs:
        parts.append("<h3>Example recommendations with reasons</h3>")
        for cid in sorted(recs)[:examples]:
            items = "".join(
                f"<li>{html.escape(x.description or x.stock_code)} ({html.escape(x.stock_code)})"
                f" — <i>{html.escape(x.reason)}</i></li>"
                for x in recs[cid]
            )
            parts.append(f"<p><b>customer {html.escape(cid)}</b></p><ol>{items}</ol>\n")
    if recs_model is not None:
        parts += [
            "<h3>Hidden gems</h3><p>Rarely bought, but most buyers come back for them.</p>",
            _frame_html(hidden_gems(recs_model.stats)),
        ]
    if transactions is not None and products is not None:
        parts += [
            "<h3>Category affinities</h3><p>Pairs bought together more often than chance "
            "(lift &gt; 1).</p>",
            _frame_html(category_affinity(transactions, products)),
        ]
    style = (
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}"
        "table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd}"
        "</style>"
    )
    page = (
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}"
        f"</head><body>{''.join(parts)}</body></html>"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def forget_customer_in_report(path: Path, customer_id: str) -> int:
    """Remove a customer's example recommendations from a report this module wrote.

    Args:
        path: An HTML report.
        customer_id: The customer to remove.

    Returns:
        How many example blocks were removed.
    """
    text = path.read_text(encoding="utf-8")
    block = re.compile(
        rf"<p><b>customer {re.escape(html.escape(customer_id))}</b></p><ol>.*?</ol>\n?", re.S
    )
    kept, removed = block.subn("", text)
    if removed:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(kept, encoding="utf-8")
        tmp.replace(path)
    return removed
