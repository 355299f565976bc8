"""Small SVG plots for the suite report: histograms, a scatter, reliability diagrams.

Each function returns one self-contained ``<svg>`` element as a string (no scripts, no external
fonts or files), so the HTML report opens offline and renders the same in any browser.

>>> svg = histogram_svg([0.1, 0.2, 0.9], title="token_f1")
>>> svg.startswith("<svg") and svg.count("<rect class='bar'") == 10
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 320, 220
MARGIN = {"left": 44, "right": 12, "top": 26, "bottom": 36}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


class _Frame:
    """Maps data coordinates in [x0, x1] x [y0, y1] onto the plot area of one SVG."""

    def __init__(
        self, x0: float, x1: float, y0: float, y1: float, width: int = WIDTH, height: int = HEIGHT
    ) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1.0
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1.0
        self.width, self.height = width, height
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.w = width - MARGIN["left"] - MARGIN["right"]
        self.h = height - MARGIN["top"] - MARGIN["bottom"]

    def x(self, value: float) -> float:
        return round(self.left + (value - self.x0) / (self.x1 - self.x0) * self.w, 2)

    def y(self, value: float) -> float:
        return round(self.top + self.h - (value - self.y0) / (self.y1 - self.y0) * self.h, 2)


def _open(frame: _Frame, title: str, x_label: str, y_label: str) -> list[str]:
    f = frame
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{f.width}' height='{f.height}' "
        f"viewBox='0 0 {f.width} {f.height}' role='img' aria-label='{escape(title, True)}' "
        "font-family='sans-serif' font-size='10'>",
        f"<title>{escape(title)}</title>",
        f"<rect x='0' y='0' width='{f.width}' height='{f.height}' fill='white'/>",
        f"<text x='{f.width / 2}' y='14' text-anchor='middle' font-size='12' "
        f"font-weight='bold'>{escape(title)}</text>",
        f"<rect x='{f.left}' y='{f.top}' width='{f.w}' height='{f.h}' fill='none' stroke='#999'/>",
    ]
    for i in range(5):
        xv = f.x0 + (f.x1 - f.x0) * i / 4
        yv = f.y0 + (f.y1 - f.y0) * i / 4
        parts.append(
            f"<text x='{f.x(xv)}' y='{f.top + f.h + 12}' text-anchor='middle'>{_tick(xv)}</text>"
        )
        parts.append(
            f"<text x='{f.left - 4}' y='{f.y(yv) + 3}' text-anchor='end'>{_tick(yv)}</text>"
        )
    parts.append(
        f"<text x='{f.left + f.w / 2}' y='{f.height - 6}' text-anchor='middle'>"
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f"<text x='10' y='{f.top + f.h / 2}' text-anchor='middle' "
        f"transform='rotate(-90 10 {f.top + f.h / 2})'>{escape(y_label)}</text>"
    )
    return parts


def _tick(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def _empty(parts: list[str], frame: _Frame, note: str) -> str:
    parts.append(
        f"<text x='{frame.left + frame.w / 2}' y='{frame.top + frame.h / 2}' "
        f"text-anchor='middle' fill='#666'>{escape(note)}</text></svg>"
    )
    return "".join(parts)


def histogram_svg(
    values: Sequence[float],
    *,
    title: str,
    bins: int = 10,
    lo: float = 0.0,
    hi: float = 1.0,
    colour: str = COLOURS[0],
) -> str:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (values outside are clipped
    into the end bins)."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins)))] += 1
    top = max(counts, default=0)
    frame = _Frame(lo, hi, 0.0, float(4 * math.ceil(top / 4) or 4))  # whole-number ticks
    parts = _open(frame, title, "value", "items")
    if not values:
        return _empty(parts, frame, "no values")
    step = (hi - lo) / bins
    for i, count in enumerate(counts):
        x, x_end = frame.x(lo + i * step), frame.x(lo + (i + 1) * step)
        y = frame.y(count)
        parts.append(
            f"<rect class='bar' x='{x}' y='{y}' width='{round(x_end - x - 1, 2)}' "
            f"height='{round(frame.y(0) - y, 2)}' fill='{colour}'>"
            f"<title>[{lo + i * step:.2f}, {lo + (i + 1) * step:.2f}): {count}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    names: Sequence[str] = (),
) -> str:
    """One dot per (x, y) over [0, 1]², with the diagonal y = x; ``names`` label the dots'
    tooltips (query ids). Dots on the same spot are drawn once, larger, with the count."""
    frame = _Frame(0.0, 1.0, 0.0, 1.0, height=WIDTH)
    parts = _open(frame, title, x_label, y_label)
    parts.append(
        f"<line x1='{frame.x(0)}' y1='{frame.y(0)}' x2='{frame.x(1)}' y2='{frame.y(1)}' "
        "stroke='#bbb' stroke-dasharray='4 3'/>"
    )
    if not points:
        return _empty(parts, frame, "no items scored by both")
    spots: dict[tuple[float, float], list[str]] = {}
    for i, (x, y) in enumerate(points):
        spots.setdefault((round(x, 3), round(y, 3)), []).append(names[i] if i < len(names) else "")
    for (x, y), ids in spots.items():
        radius = min(9.0, 2.5 + 1.5 * (len(ids) - 1) ** 0.5)
        tip = f"{x_label} {x:.3f}, {y_label} {y:.3f}: {len(ids)} item(s) {' '.join(ids)[:200]}"
        parts.append(
            f"<circle class='dot' cx='{frame.x(x)}' cy='{frame.y(y)}' r='{radius:.1f}' "
            f"fill='{COLOURS[0]}' fill-opacity='0.6'><title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def reliability_bins(
    scored: Sequence[tuple[float, int]], bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean score, share of label 1, count) for each non-empty score bin over [0, 1].

    >>> reliability_bins([(0.05, 0), (0.1, 1), (0.95, 1)], bins=2)
    [(0.075, 0.5, 2), (0.95, 1.0, 1)]
    """
    groups: dict[int, list[tuple[float, int]]] = {}
    for score, label in scored:
        groups.setdefault(min(bins - 1, max(0, int(score * bins))), []).append((score, label))
    return [
        (
            round(sum(s for s, _ in g) / len(g), 6),
            round(sum(lab for _, lab in g) / len(g), 6),
            len(g),
        )
        for _, g in sorted(groups.items())
    ]


def reliability_svg(
    series: Mapping[str, Sequence[tuple[float, int]]], *, title: str, bins: int = 10
) -> str:
    """A reliability diagram: per series (a judge), the share of label 1 in each score bin
    against the bin's mean score; the diagonal is perfect calibration. Dot area grows with
    the bin's count."""
    frame = _Frame(0.0, 1.0, 0.0, 1.0, height=WIDTH)
    parts = _open(frame, title, "judge score (bin mean)", "share labelled 1")
    parts.append(
        f"<line x1='{frame.x(0)}' y1='{frame.y(0)}' x2='{frame.x(1)}' y2='{frame.y(1)}' "
        "stroke='#bbb' stroke-dasharray='4 3'/>"
    )
    if not any(series.values()):
        return _empty(parts, frame, "no judged items")
    for n, (name, scored) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = reliability_bins(scored, bins)
        path = " ".join(f"{frame.x(s)},{frame.y(p)}" for s, p, _ in points)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}'/>")
        for s, p, count in points:
            parts.append(
                f"<circle class='dot' cx='{frame.x(s)}' cy='{frame.y(p)}' "
                f"r='{min(8.0, 2.0 + count**0.5):.1f}' fill='{colour}'>"
                f"<title>{escape(name)}: score {s:.2f}, {p:.2f} of {count}</title></circle>"
            )
        parts.append(
            f"<text x='{frame.left + 6}' y='{frame.top + 12 + 12 * n}' fill='{colour}'>"
            f"{escape(name)} (n={len(scored)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
