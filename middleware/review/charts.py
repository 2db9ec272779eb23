"""Inline SVG charts for the report, drawn by matplotlib's SVG backend.

matplotlib because it is the most used and most actively released Python plotting library,
its SVG backend needs no browser, no JavaScript and no network, and with
``svg.fonttype = "none"`` its labels stay text: a printed PDF is searchable and
``pdftotext`` reads it. Each series is a ``<g id="series-...">`` group (matplotlib writes an
artist's ``gid`` as the group id), which the tests count. Figures are built with
``matplotlib.figure.Figure`` (no pyplot global state), so charts can be drawn from any thread.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConsentGateError

OUTCOME_COLOURS = {"accept": "#2e7d32", "reject": "#c62828", "custom": "#f9a825",
                   "withdraw": "#757575"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "consent-gate", "font.size": 9,
       "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False}
_HEAD = re.compile(r"^.*?(<svg\b)", re.S)


def series_id(name: str) -> str:
    return "series-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _tag(bars: Any, name: str) -> None:
    """Give each bar of a series the id ``series-NAME-I``: SVG ids must be unique."""
    for i, patch in enumerate(bars.patches):
        patch.set_gid(f"{series_id(name)}-{i}")


def _svg(fig: Any, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = _HEAD.sub(r"\1", buf.getvalue(), count=1)  # drop the XML prolog and DOCTYPE
    return text.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', 1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ConsentGateError("consent-gate report draws its charts with matplotlib: "
                               "pip install 'consent-gate[report]'") from None

    logging.getLogger("matplotlib").setLevel(logging.WARNING)

    params: Any = matplotlib.rcParams  # typed with literal keys only
    params.update(_RC)
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _legend(ax: Any, n: int, *, above: bool = False) -> None:
    """Outside the plot, so it keeps the full width on a narrow screen or a page: below a
    day chart (under its dates), above a share chart (whose axis label is at the bottom)."""
    if above:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(n, 4), frameon=False)
    else:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(n, 4), frameon=False)


def _day_ticks(ax: Any, days: Sequence[str]) -> None:
    step = max(1, len(days) // 10)
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks, [days[i][5:] for i in ticks])
    ax.set_xlim(-0.6, len(days) - 0.4)


def stacked_days(days: Sequence[str], series: Mapping[str, Sequence[int]], title: str,
                 colours: Mapping[str, str] | None = None, ylabel: str = "") -> str:
    """Stacked bars, one bar per day and one coloured segment per series."""
    fig, ax = _figure(7.2, 3.2)
    bottom = [0] * len(days)
    x = list(range(len(days)))
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        bars = ax.bar(x, values, bottom=bottom, color=colour, label=name, width=0.8)
        _tag(bars, name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _day_ticks(ax, days)
    ax.set_ylabel(ylabel)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if series:
        _legend(ax, len(series))
    return _svg(fig, title)


def share_bars(rows: Mapping[str, Mapping[str, float]], order: Sequence[str], title: str,
               colours: Mapping[str, str]) -> str:
    """One horizontal 100 % bar per row (a banner version, a jurisdiction), split by outcome."""
    fig, ax = _figure(7.2, 1.1 + 0.38 * max(len(rows), 1))
    labels = list(rows)
    y = list(range(len(labels)))
    left = [0.0] * len(labels)
    for name in order:
        values = [rows[label].get(name, 0.0) * 100 for label in labels]
        bars = ax.barh(y, values, left=left, color=colours[name], label=name, height=0.7)
        _tag(bars, name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of decisions")
    _legend(ax, len(order), above=True)
    return _svg(fig, title)
