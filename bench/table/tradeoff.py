"""tradeoff.png: test accuracy against NMI and against the cheating index, one point per configuration.

Points are configuration means with the error bars of ``bench.uncertainty`` (the 95% bootstrap interval of the
mean from 3 runs on; below that the range of the runs, drawn thin and grey; the figure says so), coloured by router; the Pareto front of
each panel (from ``bench.table.pareto.pareto``) is drawn as a step line. Drawn on a bare Figure with the Agg
canvas (no pyplot state), written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.table.configurations import row_summary
from bench.table.pictures import tradeoff_figure
from bench.uncertainty import BAR_WORDS
from moe.scoring.scores import DIRECTIONS
from moe.pictures.plots import save_png

PANELS = ("nmi", "cheating_index")


def tradeoff_plot(summ: pd.DataFrame, front: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Two panels, x = score (NMI, cheating index), y = accuracy; returns the path of the PNG."""
    return save_png(tradeoff_figure(tradeoff_data(summ, front, title)), path)


def tradeoff_data(summ: pd.DataFrame, front: pd.DataFrame, title: str | None = None) -> dict[str, Any]:
    """What tradeoff.png shows, as plain data (``bench.table.pictures.tradeoff_figure`` draws it): the routers and
    their colours, and per panel its labels, each configuration's mean point with its error bars (the rule of
    ``bench.uncertainty``: the interval, else the range drawn thin and grey) and the Pareto front."""
    routers = [str(r) for r in dict.fromkeys(summ["router"])]
    return {"routers": routers, "colours": {r: f"C{i % 10}" for i, r in enumerate(routers)},
            "panels": [_panel(summ, front, score) for score in PANELS],
            "title": f"Accuracy-interpretability trade-off{f': {title}' if title else ''}",
            "note": f"Points: configuration means over seeds; {BAR_WORDS}."}


def _panel(summ: pd.DataFrame, front: pd.DataFrame, score: str) -> dict[str, Any]:
    arrow = {"higher": "higher is better", "lower": "lower is better"}.get(DIRECTIONS.get(score, ""), "")
    panel = {"score": score, "xlabel": f"{score} ({arrow})" if arrow else score, "points": [], "front": None,
             "empty": f"{score}_mean" not in summ.columns or bool(summ[f"{score}_mean"].isna().all())}
    if panel["empty"]:
        return panel
    for _, r in summ.iterrows():
        x, y = r[f"{score}_mean"], r["accuracy_mean"]
        if math.isnan(x) or math.isnan(y):
            continue
        bars = []
        for c in (score, "accuracy"):
            below, above, ci = row_summary(r, c).bar()
            bars.append([float(below), float(above), bool(ci)])
        panel["points"].append([float(x), float(y), str(r["router"]), bars])
    members = front[front["score"] == score].sort_values("value") if not front.empty else front
    if len(members):
        panel["front"] = {"values": [float(v) for v in members["value"]], "accuracy": [float(v) for v in members["accuracy"]],
                          "where": "post" if DIRECTIONS.get(score) == "lower" else "pre"}
    return panel
