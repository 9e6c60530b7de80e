"""A small bar chart of GPU-hours per period, as inline SVG built here (no script, no
external library): pure. Each bar has a <title> (its label and value) for pointers and
screen readers; the table beside it carries the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 640, height: int = 140, unit: str = "GPU-hours") -> Markup:
    """An SVG of ``bars`` (oldest first); every text escaped."""
    if not bars:
        return Markup("")
    top = max((b.value for b in bars), default=0.0) or 1.0
    gap = 2
    step = width / len(bars)
    bar_w = max(1.0, step - gap)
    plot_h = height - 18
    parts = [f'<svg class="gs-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="none" aria-label="{escape(title)}">']
    for i, b in enumerate(bars):
        h = plot_h * (b.value / top) if b.value > 0 else 0.0
        x, y = i * step, plot_h - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.0):.1f}">'
                     f'<title>{escape(b.label)}: {b.value:,.2f} {escape(unit)}</title></rect>')
    first, last = escape(bars[0].label), escape(bars[-1].label)
    parts.append(f'<text x="0" y="{height - 4}" class="gs-axis">{first}</text>')
    parts.append(f'<text x="{width}" y="{height - 4}" text-anchor="end" class="gs-axis">{last}</text>')
    parts.append(f'<text x="{width}" y="12" text-anchor="end" class="gs-axis">max {top:,.2f} {escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
