"""Charts as SVG text for Jupyter's rich display: no plotting library needed.

>>> svg = line_chart([("ops/s", [1, 2, 4], [100.0, 190.0, 210.0])], x_label="workers", y_label="ops/s")
>>> svg.startswith("<svg") and svg.count("<circle") == 3
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

__all__ = ["bar_chart", "line_chart"]

WIDTH, HEIGHT = 520, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 64
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        return [10.0**e for e in range(first, last + 1)]
    if high == low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / 4))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= 6:
            step *= factor
            break
    start = math.floor(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 2)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.1e}"


class _Axes:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], log_x: bool, log_y: bool) -> None:
        self.log_x, self.log_y = log_x, log_y
        xs = [x for x in xs if not log_x or x > 0]
        ys = [y for y in ys if not log_y or y > 0] or [1.0]
        low_y = min(ys) if log_y else min(0.0, min(ys))
        self.x_ticks = _ticks(min(xs), max(xs), log_x)
        self.y_ticks = _ticks(low_y, max(ys), log_y)
        self.x0, self.x1 = (min(xs), max(xs)) if not log_x else (self.x_ticks[0], self.x_ticks[-1])
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        if self.y1 == self.y0:
            self.y1 = self.y0 + 1

    def _scale(self, v: float, low: float, high: float, log: bool) -> float:
        if log:
            v, low, high = math.log10(max(v, 1e-300)), math.log10(low), math.log10(high)
        return (v - low) / (high - low)

    def x(self, v: float) -> float:
        return LEFT + self._scale(v, self.x0, self.x1, self.log_x) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - self._scale(v, self.y0, self.y1, self.log_y) * (HEIGHT - TOP - BOTTOM)


def _frame(axes: _Axes | None, x_label: str, y_label: str, x_ticks: bool = True) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    if axes is not None:
        for t in axes.y_ticks:
            y = axes.y(t)
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>')
        if x_ticks:
            for t in axes.x_ticks:
                if axes.x0 <= t <= axes.x1:
                    x = axes.x(t)
                    parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" '
                                 f'text-anchor="middle">{_label(t)}</text>')
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    return [
        f'<rect x="{LEFT + 8 + 110 * i}" y="{HEIGHT - BOTTOM + 24}" width="10" height="10" '
        f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{LEFT + 22 + 110 * i}" '
        f'y="{HEIGHT - BOTTOM + 33}">{html.escape(name)}</text>'
        for i, name in enumerate(names)
    ]


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    log_y: bool = False,
    mark_x: float | None = None,
) -> str:
    """Lines with points, one per ``(name, xs, ys)``; ``mark_x`` draws a dashed vertical line
    (a knee, say). Points that a log axis cannot show are left out."""
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy]
    if not xs:
        return ""
    axes = _Axes(xs, ys, log_x, log_y)
    parts = _frame(axes, x_label, y_label)
    for i, (_, sx, sy) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = [(axes.x(x), axes.y(y)) for x, y in zip(sx, sy)
                  if (not log_x or x > 0) and (not log_y or y > 0)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points)
    if mark_x is not None:
        x = axes.x(mark_x)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                     'stroke="#555" stroke-dasharray="4 3"/>')
    parts.extend(_legend([name for name, _, _ in series]))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    y_label: str,
) -> str:
    """Grouped bars: for each category, one bar per ``(name, values)`` series."""
    values = [v for _, vs in series for v in vs]
    if not categories or not values:
        return ""
    axes = _Axes([0.0, 1.0], [0.0, *values], False, False)
    parts = _frame(axes, "", y_label, x_ticks=False)
    group = (WIDTH - LEFT - RIGHT) / len(categories)
    bar = group * 0.8 / len(series)
    for c, name in enumerate(categories):
        for s, (_, vs) in enumerate(series):
            x = LEFT + c * group + group * 0.1 + s * bar
            top = axes.y(vs[c])
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                         f'height="{HEIGHT - BOTTOM - top:.1f}" fill="{COLOURS[s % len(COLOURS)]}"/>')
        parts.append(f'<text x="{LEFT + (c + 0.5) * group:.1f}" y="{HEIGHT - BOTTOM + 14}" '
                     f'text-anchor="middle">{html.escape(name)}</text>')
    parts.extend(_legend([name for name, _ in series]))
    parts.append("</svg>")
    return "".join(parts)
