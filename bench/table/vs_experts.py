"""Accuracy, cheating, local and global interpretability against the expert count, one line per router family:
the figure of the expert-count sweep (after the axes of Elazar & Taylor 2022, 'Implicit Mixture of
Interpretable Experts', whose abstract is all we have). The x axis is labelled with the expert counts run.

A router family is a configuration name without its expert count (``softmax[gate=mlp,experts=64,routing=hard]``
-> ``softmax[gate=mlp,routing=hard]``); each point is the mean over the family's ``ok`` runs at that expert
count, NaNs left out (a collapsed run has no cheating index). Reads runs.csv rows (``bench.table.runs``).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

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


def expert_count_figure(runs: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Four panels (accuracy, cheating index, local fidelity, readable parameters of the experts in use) against
    the expert count (log scale), one line per router family; written as a PNG at ``path``."""
    table = curves(runs)
    fig = Figure(figsize=(12, 8))
    for i, (column, label, log_y) in enumerate(PANELS):
        ax = fig.add_subplot(2, 2, i + 1)
        if column in table.columns:
            for name, rows in table.groupby("family", sort=True):
                rows = rows.sort_values("experts")
                if rows[column].notna().any():
                    line, = ax.plot(rows["experts"], rows[column], marker="o", label=name)
                    for ci in (True, False):  # intervals in the line's colour, ranges thin and grey
                        at = rows[rows[f"{column}_ci"] == ci]
                        ax.errorbar(at["experts"], at[column], yerr=[at[f"{column}_below"], at[f"{column}_above"]],
                                    fmt="none", ecolor=line.get_color() if ci else "0.6", elinewidth=0.9 if ci else 0.6,
                                    capsize=2 if ci else 0)
        ax.set_xscale("log")
        counts = sorted(table["experts"].dropna().unique()) if "experts" in table.columns else []
        if counts:  # the expert counts themselves, not powers of ten
            ax.set_xticks(counts, [f"{int(e):,}" for e in counts], fontsize=7)
            ax.xaxis.set_minor_locator(NullLocator())
        if log_y and column in table.columns and (table[column] > 0).any():
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:,.0f}")  # counts of parameters, not 6 x 10^1
            ax.yaxis.set_major_formatter(plain), ax.yaxis.set_minor_formatter(plain)
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("experts E")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7)
    fig.suptitle(title or "against the number of experts (mean over seeds)")
    fig.text(0.5, 0.955, f"Points: means over seeds; {BAR_WORDS}.", fontsize=7, color="0.3", ha="center", va="top")
    fig.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(labels) / 3), 1, 0.94))
    return save_png(fig, path)
