"""saturation.png: router saturation per epoch as small multiples, one panel per router and in it one line per
configuration (the mean over the seeds of its ``ok`` runs at each epoch), from the records' ``routing_dynamics`` (``moe.scoring.saturation``: the share of the validation
split's top-k expert choices after epoch t that match those after the last epoch, OLMoE's router saturation).

A dashed line marks the 0.9 of ``saturation_epoch``. Every curve ends at 1 (its own last epoch); a configuration
whose seeds ran different numbers of epochs (a scheduler stopped some) averages, at each epoch, the seeds that
have it. Drawn on a bare Figure with the Agg canvas (no pyplot state), written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.figure import Figure

from bench.table import pictures
from moe.pictures.plots import save_png
from moe.scoring.saturation import THRESHOLD



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


def saturation_figure(curves: dict[str, tuple[list[int], list[float], int]], title: str | None = None) -> Figure:
    """Small multiples: one panel per router, one line per configuration of that router over the epochs (a
    sequential colour map within the panel, the rest of the name in its legend), the 0.9 threshold dashed
    (``bench.table.pictures.saturation_figure``)."""
    return pictures.saturation_figure(curves, title, THRESHOLD)


def saturation_job(records: Sequence[dict[str, Any]], title: str | None = None) -> tuple[str, tuple] | None:
    """saturation.png as a figure job (``bench.table.drawing``); None when no ``ok`` record has routing dynamics."""
    curves = saturation_curves(records)
    return ("saturation", (curves, title, THRESHOLD)) if curves else None


def saturation_plot(records: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path | None:
    """Write saturation.png at ``path``; None (nothing written) when no ``ok`` record has routing dynamics."""
    curves = saturation_curves(records)
    return save_png(saturation_figure(curves, title), path) if curves else None
