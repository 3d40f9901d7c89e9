"""tradeoff.png: test accuracy against NMI and against the cheating index, one point per configuration.

Points are configuration means (error bars: std over seeds), coloured by router; the Pareto front of
each panel (from ``bench.table.front.pareto``) is drawn as a step line. Drawn on a bare Figure with the Agg
canvas (no pyplot state), written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from moe.scoring.scores import DIRECTIONS
from moe.pictures.plots import save_png

PANELS = ("nmi", "cheating_index")


def tradeoff_plot(summ: pd.DataFrame, front: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Two panels, x = score (NMI, cheating index), y = accuracy; returns the path of the PNG."""
    fig = Figure(figsize=(11, 4.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    routers = list(dict.fromkeys(summ["router"]))
    colours = {r: f"C{i % 10}" for i, r in enumerate(routers)}
    for ax, score in zip(axes, PANELS):
        _panel(ax, summ, front, score, colours)
    handles = [ax.scatter([], [], color=colours[r], label=r) for r in routers for ax in axes[:1]]
    fig.legend(handles=handles, loc="outside right upper", title="router", frameon=False)
    fig.suptitle(f"Accuracy-interpretability trade-off{f': {title}' if title else ''}")
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
        xerr, yerr = r.get(f"{score}_std"), r.get("accuracy_std")
        ax.errorbar(x, y, xerr=None if pd.isna(xerr) else xerr, yerr=None if pd.isna(yerr) else yerr,
                    fmt="o", color=colours[r["router"]], ms=5, alpha=0.8, elinewidth=0.8)
    members = front[front["score"] == score].sort_values("value") if not front.empty else front
    if len(members):
        ax.step(members["value"], members["accuracy"], where="post" if DIRECTIONS.get(score) == "lower" else "pre",
                color="black", lw=1, alpha=0.7, label="Pareto front")
        ax.scatter(members["value"], members["accuracy"], facecolors="none", edgecolors="black", s=80, lw=1)
        ax.legend(loc="lower left", frameon=False, fontsize=8)
    ax.set_title(f"accuracy vs {score}")
