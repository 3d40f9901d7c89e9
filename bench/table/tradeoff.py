"""tradeoff.png: test accuracy against NMI and against the cheating index, one point per configuration.

Points are configuration means with the error bars of ``bench.uncertainty`` (the 95% bootstrap interval of the
mean from 3 runs on; below that the range of the runs, drawn thin and grey; the figure says so), coloured by router; the Pareto front of
each panel (from ``bench.table.pareto.pareto``) is drawn as a step line. Drawn on a bare Figure with the Agg
canvas (no pyplot state), written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench.table.configurations import row_summary
from bench.uncertainty import BAR_WORDS
from moe.scoring.scores import DIRECTIONS
from moe.pictures.plots import save_png

PANELS = ("nmi", "cheating_index")


def tradeoff_plot(summ: pd.DataFrame, front: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Two panels, x = score (NMI, cheating index), y = accuracy; returns the path of the PNG."""
    fig = Figure(figsize=(11, 4.9), dpi=100, layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # room for the line under the panels
    axes = fig.subplots(1, len(PANELS))
    routers = list(dict.fromkeys(summ["router"]))
    colours = {r: f"C{i % 10}" for i, r in enumerate(routers)}
    for ax, score in zip(axes, PANELS):
        _panel(ax, summ, front, score, colours)
    handles = [ax.scatter([], [], color=colours[r], label=r) for r in routers for ax in axes[:1]]
    fig.legend(handles=handles, loc="outside right upper", title="router", frameon=False)
    fig.suptitle(f"Accuracy-interpretability trade-off{f': {title}' if title else ''}")
    fig.text(0.01, 0.005, f"Points: configuration means over seeds; {BAR_WORDS}.", fontsize=7, color="0.3",
             ha="left", va="bottom", wrap=True)
    return save_png(fig, path)


def _panel(ax, summ: pd.DataFrame, front: pd.DataFrame, score: str, colours: dict[str, str]) -> None:
    arrow = {"higher": "higher is better", "lower": "lower is better"}.get(DIRECTIONS.get(score, ""), "")
    ax.set_xlabel(f"{score} ({arrow})" if arrow else score)
    ax.set_ylabel("test accuracy (higher is better)")
    ax.grid(alpha=0.3)
    if f"{score}_mean" not in summ.columns or summ[f"{score}_mean"].isna().all():
        ax.text(0.5, 0.5, f"no {score} values", transform=ax.transAxes, ha="center", va="center")
        return
    for _, r in summ.iterrows():
        x, y = r[f"{score}_mean"], r["accuracy_mean"]
        if math.isnan(x) or math.isnan(y):
            continue
        bars = [row_summary(r, c).bar() for c in (score, "accuracy")]
        for (below, above, ci), axis in zip(bars, ("x", "y")):
            if below or above:
                err = [[below], [above]]
                ax.errorbar(x, y, **{f"{axis}err": err}, fmt="none", ecolor=colours[r["router"]] if ci else "0.6",
                            elinewidth=0.9 if ci else 0.6, capsize=2 if ci else 0, alpha=0.8)
        ax.plot(x, y, "o", color=colours[r["router"]], ms=5, alpha=0.85)
    members = front[front["score"] == score].sort_values("value") if not front.empty else front
    if len(members):
        ax.step(members["value"], members["accuracy"], where="post" if DIRECTIONS.get(score) == "lower" else "pre",
                color="black", lw=1, alpha=0.7, label="Pareto front")
        ax.scatter(members["value"], members["accuracy"], facecolors="none", edgecolors="black", s=80, lw=1)
        ax.legend(loc="lower left", frameon=False, fontsize=8)
    ax.set_title(f"accuracy vs {score}")
