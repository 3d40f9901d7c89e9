"""saturation.png: router saturation per epoch as small multiples, one panel per router and in it one line per
configuration (the mean over the seeds of its ``ok`` runs at each epoch), from the records' ``routing_dynamics`` (``moe.scoring.saturation``: the share of the validation
split's top-k expert choices after epoch t that match those after the last epoch, OLMoE's router saturation).

A dashed line marks the 0.9 of ``saturation_epoch``. Every curve ends at 1 (its own last epoch); a configuration
whose seeds ran different numbers of epochs (a scheduler stopped some) averages, at each epoch, the seeds that
have it. Drawn on a bare Figure with the Agg canvas (no pyplot state), written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from moe.pictures.plots import save_png
from moe.scoring.saturation import THRESHOLD

COLUMNS = 3  # panels a row


def saturation_curves(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[int], list[float], int]]:
    """Configuration name -> (epochs, mean saturation at each epoch over the seeds that have it, number of seeds),
    from the ``ok`` records with routing dynamics, in the records' order."""
    per_config: dict[str, list[list[float | None]]] = {}
    for rec in records:
        curve = (rec.get("routing_dynamics") or {}).get("router_saturation")
        name = (rec.get("bench") or {}).get("name")
        if rec.get("status") == "ok" and curve and name is not None:
            per_config.setdefault(name, []).append(curve)
    out = {}
    for name, curves in per_config.items():
        epochs, means = [], []
        for e in range(max(map(len, curves))):
            values = [c[e] for c in curves if e < len(c) and c[e] is not None]
            if values:
                epochs.append(e + 1)
                means.append(sum(values) / len(values))
        out[name] = (epochs, means, len(curves))
    return out


def _router(name: str) -> str:
    return name.split("[", 1)[0]


def _rest(name: str) -> str:
    """The configuration name without its router (``topk[k=2,experts=4]`` -> ``k=2,experts=4``)."""
    return name.split("[", 1)[1].rstrip("]") if "[" in name else name


def saturation_figure(curves: dict[str, tuple[list[int], list[float], int]], title: str | None = None) -> Figure:
    """Small multiples: one panel per router, one line per configuration of that router over the epochs (a
    sequential colour map within the panel, the rest of the name in its legend), the 0.9 threshold dashed."""
    routers = list(dict.fromkeys(_router(n) for n in curves))
    ncols = min(COLUMNS, len(routers))
    nrows = math.ceil(len(routers) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.1 * nrows + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, router in zip(axes, routers):
        names = [n for n in curves if _router(n) == router]
        colours = colormaps["viridis"](np.linspace(0, 0.85, max(len(names), 2)))
        for colour, name in zip(colours, names):
            epochs, means, n = curves[name]
            ax.plot(epochs, means, "-o", ms=2.5, lw=1.3, color=colour, label=f"{_rest(name)} ({n} seed{'s' * (n != 1)})")
        ax.axhline(THRESHOLD, ls="--", color="0.5", lw=1)
        ax.set_title(router, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False, loc="lower right")
    for ax in axes[len(routers):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("epoch")
    for ax in axes[::ncols]:
        ax.set_ylabel("router saturation")
    fig.suptitle("Router saturation on the validation split: share of top-k expert choices that match the last "
                 f"epoch's, mean over seeds; dashed: {THRESHOLD} (saturation_epoch)" + (f"\n{title}" if title else ""),
                 fontsize=9)
    return fig


def saturation_plot(records: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path | None:
    """Write saturation.png at ``path``; None (nothing written) when no ``ok`` record has routing dynamics."""
    curves = saturation_curves(records)
    return save_png(saturation_figure(curves, title), path) if curves else None
