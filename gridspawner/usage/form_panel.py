"""The spawn form's usage panel: the user's GPU-hours and what is left of their quotas, and
the estimated cost per hour of the current choice (a small script updates it as choices
change). Appended after the form's own HTML by the spawner, so the form package stays
unaware of usage.

`panel_view` is pure (numbers in, lines out); `render_panel` fills an autoescaped template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .periods import PERIOD_WORDS, PERIODS
from .pricing import Prices
from .quotas import Limits, Standing, fmt_hours

_HERE = Path(__file__).parent
_ENV = Environment(loader=FileSystemLoader(str(_HERE / "templates")), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)
_ENV.globals["panel_js"] = Markup((_HERE / "static" / "form_panel.js").read_text("utf-8"))
_TEMPLATE = _ENV.get_template("form_panel.html.j2")


@dataclass(frozen=True)
class PanelView:
    lines: tuple[str, ...]
    #: a limit is reached: GPU servers cannot start now
    exhausted: bool
    #: for the script (tojson): prices, or None when the admin set none
    prices: dict | None


def _hours_line(subject: str, period: str, used: float, limit: float | None) -> tuple[str, bool]:
    words = PERIOD_WORDS[period]
    if limit is None:
        return f"{subject} used {fmt_hours(used)} GPU-hours {words}.", False
    left = max(0.0, limit - used)
    return (f"{subject} used {fmt_hours(used)} of {fmt_hours(limit)} GPU-hours {words}: "
            f"{fmt_hours(left)} left.", used >= limit)


def panel_view(limits: Limits, mine: Standing, pools: Mapping[str, Limits], theirs: Mapping[str, Standing],
               prices: Prices, memory_classes: Iterable[int], gpu_types: Mapping[str, Mapping[str, str]]) -> PanelView:
    """What the panel says for a user with ``limits`` (own) and ``pools`` (group-wide), who
    used ``mine`` (and their groups ``theirs``)."""
    lines: list[str] = []
    exhausted = False
    limited = [p for p in PERIODS if p in limits.gpu_hours]
    for p in limited or ["month"]:
        line, out = _hours_line("You have", p, mine.gpu_hours.get(p, 0.0), limits.gpu_hours.get(p))
        lines.append(line)
        exhausted |= out
    if limits.gpus_at_once is not None:
        lines.append(f"GPUs at once: {mine.gpus_running} in your running servers, at most {limits.gpus_at_once}.")
        exhausted |= mine.gpus_running >= limits.gpus_at_once
    for group, pool in pools.items():
        standing = theirs.get(group, Standing({}, 0, group))
        for p in PERIODS:
            if p in pool.gpu_hours:
                line, out = _hours_line(f"The group {group} has", p, standing.gpu_hours.get(p, 0.0), pool.gpu_hours[p])
                lines.append(line)
                exhausted |= out
        if pool.gpus_at_once is not None:
            lines.append(f"GPUs at once for the group {group}: {standing.gpus_running} in use, "
                         f"at most {pool.gpus_at_once}.")
            exhausted |= standing.gpus_running >= pool.gpus_at_once
    script = prices.script_data(memory_classes, gpu_types) if prices.configured else None
    return PanelView(tuple(lines), exhausted, script)


def render_panel(view: PanelView, usage_url: str = "") -> str:
    """The panel's HTML (``usage_url``: the user's usage page, when the service runs)."""
    return _TEMPLATE.render(view=view, usage_url=usage_url)
