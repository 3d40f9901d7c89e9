"""Accuracy, cheating, local and global interpretability against the expert count, one line per router family:
the figure of the expert-count sweep (after the axes of Elazar & Taylor 2022, 'Implicit Mixture of
Interpretable Experts', whose abstract is all we have). The x axis is labelled with the expert counts run.

A router family is a configuration name without its expert count (``softmax[gate=mlp,experts=64,routing=hard]``
-> ``softmax[gate=mlp,routing=hard]``); each point is the mean over the family's ``ok`` runs at that expert
count, NaNs left out (a collapsed run has no cheating index). Reads runs.csv rows (``bench.table.runs``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from bench.table import pictures
from bench.uncertainty import BAR_WORDS, summarize

from moe.pictures.plots import save_png

PANELS = (  # (column, axis label, log y)
    ("accuracy", "test accuracy (higher is better)", False),
    ("cheating_score", "cheating score (lower is better)", False),
    ("local_fidelity", "local: routed expert = mixture (higher)", False),
    ("used_expert_parameters", "global: parameters to read (lower)", True),
)
_EXPERTS = re.compile(r"(?<=[\[,])experts=\d+(,|(?=\]))")


def family(name: str) -> str:
    """The configuration name without its ``experts=N`` (``linear[experts=10]`` -> ``linear``)."""
    out = _EXPERTS.sub("", name).replace(",]", "]")
    return out[:-2] if out.endswith("[]") else out


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, experts): the mean of each panel's column over the ``ok`` runs, ``n`` runs, and the
    error bar of ``bench.uncertainty`` (``<column>_below``, ``_above``, ``_ci``: an interval from 3 runs on, else
    the range)."""
    ok = runs[runs["status"] == "ok"].copy()
    ok["family"] = ok["name"].map(family)
    columns = [c for c, _, _ in PANELS if c in ok.columns]
    rows = []
    for (fam, e), g in ok.groupby(["family", "experts"], sort=True):
        row = {"family": fam, "experts": e, "n": len(g)}
        for c in columns:
            st = summarize(pd.to_numeric(g[c], errors="coerce").tolist(), c)
            row[c] = st.mean
            row[f"{c}_below"], row[f"{c}_above"], row[f"{c}_ci"] = st.bar()
        rows.append(row)
    return pd.DataFrame(rows)


def expert_count_data(runs: pd.DataFrame, title: str = "") -> dict[str, Any]:
    """What vs_experts.png shows, as plain data (``bench.table.pictures.expert_count_figure`` draws it): per panel its
    label, its scale and, per router family with a value there (sorted by name), the points and their error bars
    (intervals in the line's colour, ranges thin and grey); the expert counts run, the title and the note."""
    table = curves(runs)
    counts = sorted(table["experts"].dropna().unique()) if "experts" in table.columns else []
    panels = []
    for column, label, log_y in PANELS:
        lines = []
        if column in table.columns:
            for name, rows in table.groupby("family", sort=True):
                rows = rows.sort_values("experts")
                if rows[column].notna().any():
                    bars = []
                    for ci in (True, False):
                        at = rows[rows[f"{column}_ci"] == ci]
                        bars.append([ci, at["experts"].tolist(), at[column].tolist(), at[f"{column}_below"].tolist(),
                                     at[f"{column}_above"].tolist()])
                    lines.append([str(name), rows["experts"].tolist(), rows[column].tolist(), bars])
        panels.append({"label": label, "lines": lines,
                       "log_y": bool(log_y and column in table.columns and (table[column] > 0).any())})
    return {"panels": panels, "counts": [c.item() if hasattr(c, "item") else c for c in counts],
            "title": title or "against the number of experts (mean over seeds)",
            "note": f"Points: means over seeds; {BAR_WORDS}."}


def expert_count_job(runs: pd.DataFrame, title: str = "") -> tuple[str, tuple]:
    """vs_experts.png as a figure job (``bench.table.drawing``): drawn by a worker, kept by content."""
    return "vs_experts", (expert_count_data(runs, title),)


def expert_count_figure(runs: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Four panels (accuracy, cheating index, local fidelity, readable parameters of the experts in use) against
    the expert count (log scale), one line per router family; written as a PNG at ``path``."""
    return save_png(pictures.expert_count_figure(expert_count_data(runs, title)), path)
