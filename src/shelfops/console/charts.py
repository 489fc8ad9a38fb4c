"""Inline SVG charts for the console: lines with an optional band, heatmaps, bars.

Charts are plain SVG strings put into the page: nothing is fetched at run time, they render in
microseconds (matplotlib PNGs took tens of milliseconds each) and the browser scales them.
Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
W, H = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 44


@dataclass(frozen=True)
class Series:
    """One line: values aligned with the chart's x labels (None leaves a gap)."""

    name: str
    values: Sequence[float | None]
    dots: bool = False
    """Draw points instead of a line (actuals)."""


@dataclass(frozen=True)
class Band:
    """A shaded interval (for example P10 to P90)."""

    name: str
    low: Sequence[float | None]
    high: Sequence[float | None]


def _num(v: float | None) -> TypeGuard[float]:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 0.01:
        return f"{v:.2f}"
    return f"{v:.1e}"


def _empty(title: str, message: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} 60" width="{W}" height="60" role="img" '
        f'aria-label="{html.escape(title)}">'
        f'<text x="8" y="20" font-weight="bold">{html.escape(title)}</text>'
        f'<text x="8" y="44" fill="#666">{html.escape(message)}</text></svg>'
    )


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    band: Band | None = None,
    hline: float | None = None,
    hline_label: str = "",
    y_label: str = "",
) -> str:
    """A line chart over categorical x positions.

    Args:
        title: Shown above the plot.
        x_labels: One label per x position (a few are printed).
        series: Lines (or dots) to draw.
        band: A shaded interval drawn beneath the lines.
        hline: A dashed horizontal reference line (a threshold, a budget).
        hline_label: Its label.
        y_label: Unit of the y axis.

    Returns:
        An ``<svg>`` element.
    """
    n = len(x_labels)
    values = [v for s in series for v in s.values if _num(v)]
    if band is not None:
        values += [v for v in (*band.low, *band.high) if _num(v)]
    if hline is not None:
        values.append(hline)
    if n == 0 or not values:
        return _empty(title, "no data for this chart yet")
    lo, hi = min(0.0, min(values)), max(values)
    if hi == lo:
        hi = lo + 1.0
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return PAD_T + ph * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{PAD_L}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD_L}" y1="{PAD_T + ph}" x2="{PAD_L + pw}" y2="{PAD_T + ph}" stroke="#999"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + ph}" stroke="#999"/>',
    ]
    for t in range(5):
        v = lo + (hi - lo) * t / 4
        out.append(
            f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{_fmt(v)}</text>"
            f'<line x1="{PAD_L}" y1="{y(v):.1f}" x2="{PAD_L + pw}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
        )
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        out.append(
            f'<text x="{x(i):.1f}" y="{PAD_T + ph + 14}" text-anchor="middle" font-size="10">'
            f"{html.escape(str(x_labels[i]))}</text>"
        )
    if y_label:
        out.append(
            f'<text x="12" y="{PAD_T + ph / 2}" font-size="10" '
            f'transform="rotate(-90 12 {PAD_T + ph / 2})">{html.escape(y_label)}</text>'
        )
    legend: list[tuple[str, str, str]] = []
    if band is not None:
        pts = [
            (i, float(a), float(b))
            for i, (a, b) in enumerate(zip(band.low, band.high, strict=True))
            if _num(a) and _num(b)
        ]
        if pts:
            upper = " ".join(f"{x(i):.1f},{y(b):.1f}" for i, _, b in pts)
            lower = " ".join(f"{x(i):.1f},{y(a):.1f}" for i, a, _ in reversed(pts))
            out.append(f'<polygon points="{upper} {lower}" fill="#1f77b4" fill-opacity="0.18"/>')
            legend.append((band.name, "#9cc3e5", "band"))
    for k, s in enumerate(series):
        color = PALETTE[k % len(PALETTE)] if not s.dots else "#000"
        legend.append((s.name, color, "dots" if s.dots else "line"))
        if s.dots:
            for i, dot in enumerate(s.values):
                if _num(dot):
                    out.append(f'<circle cx="{x(i):.1f}" cy="{y(dot):.1f}" r="2.6" fill="#000"/>')
            continue
        segment: list[str] = []
        for i, point in enumerate([*s.values, None]):
            if _num(point):
                segment.append(f"{x(i):.1f},{y(point):.1f}")
            elif segment:
                out.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" '
                    'stroke-width="1.8"/>'
                )
                if len(segment) == 1:
                    cx, cy = segment[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
                segment = []
    if hline is not None:
        out.append(
            f'<line x1="{PAD_L}" y1="{y(hline):.1f}" x2="{PAD_L + pw}" y2="{y(hline):.1f}" '
            'stroke="#d62728" stroke-dasharray="5,4"/>'
        )
        if hline_label:
            legend.append((hline_label, "#d62728", "dash"))
    lx = PAD_L
    for name, color, kind in legend:
        ly = H - 10
        if kind == "dots":
            out.append(f'<circle cx="{lx + 6}" cy="{ly - 4}" r="3" fill="{color}"/>')
        elif kind == "band":
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="9" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="4,3"' if kind == "dash" else ""
            out.append(
                f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 14}" y2="{ly - 4}" stroke="{color}" '
                f'stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{lx + 18}" y="{ly}" font-size="11">{html.escape(name)}</text>')
        lx += 30 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def heatmap(
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    center: float = 1.0,
    label: str = "lift",
) -> str:
    """A heatmap: red above ``center``, blue below, blank where unknown.

    Args:
        title: Shown above the grid.
        rows: Row labels.
        cols: Column labels.
        values: ``values[r][c]``.
        center: The neutral value (lift 1 = independence).
        label: What a cell holds (in its tooltip).

    Returns:
        An ``<svg>`` element.
    """
    if not rows or not cols:
        return _empty(title, "not enough data for a heatmap yet")
    cell = max(14, min(34, 560 // max(len(cols), 1)))
    left, top = 150, 120
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    finite = [abs(math.log(v / center)) for row in values for v in row if _num(v) and v and v > 0]
    span = max(finite) if finite else 1.0
    out = [
        f'<svg class="chart heatmap" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for j, c in enumerate(cols):
        cx = left + cell * j + cell / 2
        out.append(
            f'<text x="{cx:.1f}" y="{top - 6}" font-size="10" '
            f'transform="rotate(-55 {cx:.1f} {top - 6})">{html.escape(str(c)[:22])}</text>'
        )
    for i, r in enumerate(rows):
        ry = top + cell * i
        out.append(
            f'<text x="{left - 4}" y="{ry + cell / 2 + 4:.1f}" font-size="10" '
            f'text-anchor="end">{html.escape(str(r)[:24])}</text>'
        )
        for j, v in enumerate(values[i]):
            x0 = left + cell * j
            if not _num(v) or v is None or v <= 0:
                fill, tip = "#f4f4f4", "no baskets together"
            else:
                t = max(-1.0, min(1.0, math.log(v / center) / span))
                shade = int(255 * (1 - abs(t)))
                fill = f"rgb(255,{shade},{shade})" if t > 0 else f"rgb({shade},{shade},255)"
                tip = f"{label} {v:.2f}"
            out.append(
                f'<rect x="{x0}" y="{ry}" width="{cell - 1}" height="{cell - 1}" fill="{fill}">'
                f"<title>{html.escape(str(r))} → {html.escape(str(c))}: {tip}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = "") -> str:
    """Horizontal bars (model against baselines).

    Args:
        title: Shown above the bars.
        labels: One per bar.
        values: Bar lengths (non-negative).
        unit: Appended to the printed values.

    Returns:
        An ``<svg>`` element.
    """
    if not labels:
        return _empty(title, "nothing to compare yet")
    top, row = 26, 22
    height = top + row * len(labels) + 8
    hi = max([v for v in values if _num(v)] + [1e-12])
    out = [
        f'<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (name, v) in enumerate(zip(labels, values, strict=True)):
        y0 = top + row * i
        length = 0.0 if not _num(v) else 420 * max(v, 0.0) / hi
        color = PALETTE[0] if i == 0 else "#aaa"
        out.append(
            f'<text x="196" y="{y0 + 14}" text-anchor="end" font-size="11">'
            f"{html.escape(name)}</text>"
            f'<rect x="200" y="{y0 + 3}" width="{length:.1f}" height="14" fill="{color}"/>'
            f'<text x="{204 + length:.1f}" y="{y0 + 14}" font-size="11">'
            f"{'n/a' if not _num(v) else _fmt(float(v)) + unit}</text>"
        )
    out.append("</svg>")
    return "".join(out)
