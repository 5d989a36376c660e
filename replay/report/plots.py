"""The report's plots: matplotlib (Agg) figures rendered to inline SVG text.

Each function takes the report dict and returns one `<svg>` element as a string, or None
when the trace gives nothing to draw. Text stays text (`svg.fonttype = none`, drawn with
the reader's local fonts), so the SVG references no font file, and the XML prolog and
metadata are dropped so the element can sit inside HTML.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "replay",  # stable element ids: the same report gives the same file
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_SIZE = (5.2, 2.9)
#: Fixed margins (figure fractions) for _SIZE: room for the title, tick labels up to
#: seven characters and the axis labels. A tight bounding box would draw every figure
#: twice (0.64 -> 0.40 s for the six plots of a 3 M-event report).
_MARGINS = {"left": 0.14, "right": 0.97, "bottom": 0.17, "top": 0.88}
_POLICY_STYLE = {"free": "o-", "reclaim": "s-", "migrate": "^-"}

_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1))


def _figure(title: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=_SIZE)
    fig.subplots_adjust(**_MARGINS)
    ax.set_title(title, loc="left", fontsize=10)
    return fig, ax


def order_histogram(rep: dict[str, Any]) -> str | None:
    """Requests per order (log scale): where the demand lies."""
    orders = rep["demand"]["orders"]
    if not orders:
        return None
    fig, ax = _figure("Requests per order")
    ax.bar([o["order"] for o in orders], [o["requests"] for o in orders], color="#4477aa")
    ax.set_yscale("log")
    ax.set_xlabel("order")
    ax.set_ylabel("mm_page_alloc requests")
    ax.set_xticks(range(0, max(o["order"] for o in orders) + 1))
    return _svg(fig)


def requests_above(rep: dict[str, Any]) -> str | None:
    """Requests above each candidate N: what memarea would have to serve."""
    rows = rep["candidates"]
    if not rows:
        return None
    fig, ax = _figure("Requests above max order N")
    ns = [r["max_order"] for r in rows]
    ax.plot(ns, [r["requests_above"] for r in rows], "o-", color="#4477aa", label="all")
    ax.plot(ns, [r["atomic_above"] for r in rows], "x--", color="#cc3311",
            label="cannot sleep")
    ax.set_xlabel("max order N")
    ax.set_ylabel("requests")
    ax.set_xticks(ns)
    ax.legend(frameon=False)
    return _svg(fig)


def success_per_policy(rep: dict[str, Any]) -> str | None:
    """Share of requests above N memarea satisfies, one line per policy."""
    rows = rep["candidate_rows"]
    policies = rep["options"]["policies"]
    if not rows:
        return None
    fig, ax = _figure(f"memarea success vs N ({rep['recommendation']['bar']['mode']})")
    ns = [r["max_order"] for r in rows]
    for p in policies:
        ax.plot(ns, [_pct(r.get(f"satisfied_{p}")) for r in rows], _POLICY_STYLE.get(p, "o-"),
                label=p)
    ax.plot(ns, [_pct(r.get("satisfied_lower_bound")) for r in rows], "k.--", lw=0.8,
            label="95% lower bound (judged)")
    bar = 100 * rep["recommendation"]["bar"]["min_satisfied"]
    ax.axhline(bar, color="grey", lw=0.8, ls=":", label="bar")
    shares = [r.get(f"satisfied_{p}") for r in rows for p in policies]
    shares += [r.get("satisfied_lower_bound") for r in rows]
    low = min([100 * s for s in shares if s is not None] + [bar])
    ax.set_ylim(max(0.0, low - (100 - low) * 0.15 - 1), 100.5)
    ax.set_xlabel("max order N")
    ax.set_ylabel("requests above N satisfied (%)")
    ax.set_xticks(ns)
    ax.legend(frameon=False)
    return _svg(fig)


def _pct(share: float | None) -> float:
    return float("nan") if share is None else 100 * share


def cost_distribution(rep: dict[str, Any]) -> str | None:
    """Cumulative distribution of memarea search cost, one line per search."""
    dist = rep["cost_distribution"]
    if not dist["searches"]:
        return None
    fig, ax = _figure(f"memarea cost at N = {dist['max_order']} ({dist['policy']})")
    for s in dist["searches"]:
        ax.step(s["cost"], s["percentile"], where="post", label=f"{s['search']} ({s['unit']})")
    ax.set_xscale("symlog")
    ax.set_xlabel("cost per request")
    ax.set_ylabel("percentile")
    ax.legend(frameon=False)
    return _svg(fig)


def _over_time(rep: dict[str, Any], which: str, key: str, title: str, ylabel: str
               ) -> str | None:
    series = rep["fragmentation"][which]
    if not series:
        return None
    fig, ax = _figure(title)
    for s in series:
        ax.plot(s["t_s"], s[key], label=s["label"], lw=1, drawstyle="steps-post")
    ax.set_xlabel("time since trace start (s)")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def fragindex_over_time(rep: dict[str, Any]) -> str | None:
    """The kernel's unusable free space index over time, observed, per zone and order."""
    return _over_time(rep, "series", "unusable_index",
                      "Unusable free space index over time (observed)",
                      "index (thousandths)")


def largest_free_over_time(rep: dict[str, Any]) -> str | None:
    """The largest contiguous free run over time (per zone), in pages."""
    return _over_time(rep, "largest_free_run", "largest_free_run",
                      "Largest free run over time (observed)", "pages")


def warm_up() -> None:
    """Draw one throw-away figure: the first figure of a process loads matplotlib's font
    cache and renderers, a fixed cost paid here ahead of the report's figures."""
    with plt.rc_context(_STYLE):
        fig, ax = _figure("warm-up")
        ax.bar([0, 1], [1, 10])
        ax.set_yscale("log")
        ax.legend(["warm-up"], frameon=False)
        _svg(fig)


#: Every plot, by key, in reading order.
PLOTS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "order_histogram": order_histogram,
    "requests_above": requests_above,
    "success_per_policy": success_per_policy,
    "cost_distribution": cost_distribution,
    "fragindex_over_time": fragindex_over_time,
    "largest_free_over_time": largest_free_over_time,
}


#: The plots drawn from the sweep's fragmentation series alone (`rep["fragmentation"]`).
SERIES_PLOTS = ("fragindex_over_time", "largest_free_over_time")
#: The plots drawn from the trace's figures alone (`rep["demand"]`, and the demand above
#: each N in `rep["candidates"]`), before the sweep's figures are known.
TRACE_PLOTS = ("order_histogram", "requests_above")


def render_all(rep: dict[str, Any], keys: Iterable[str] = tuple(PLOTS)) -> dict[str, str]:
    """Every plot of `keys` (all by default) the report's figures allow, as SVG text by
    key."""
    with plt.rc_context(_STYLE):
        out = {}
        for key in keys:
            svg = PLOTS[key](rep)
            if svg is not None:
                out[key] = svg
        return out
