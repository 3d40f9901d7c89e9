"""Pictures of a run record (``moe.pictures.run_report``) and of a sweep's runs (``bench.report``): per-epoch curves,
the gate's regions on a 2-D plane, the experts' weights and the prototypes as images.

Each function draws on a bare Figure (Agg canvas, no pyplot state) and returns PNG bytes; ``save_png``
(``moe.pictures.plots``) writes atomically. Inputs are what records hold: ``history`` (one dict per epoch) and
``views`` (``moe.records.model_views``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from moe.pictures.plots import emptied, png_bytes
from moe.records.view_codes import MAX_EXPERTS, decode, top_indices

__all__ = ["png_bytes", "curves_figure", "gate_regions_figure", "expert_weights_figure", "prototypes_figure",
           "record_figures"]

ACCURACY_KEYS = ("train_accuracy", "val_accuracy", "validation_accuracy", "test_accuracy")
LOSS_KEYS = ("train_loss", "val_loss", "validation_loss")


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(h.get("epoch", i + 1), h[key]) for i, h in enumerate(history)
           if isinstance(h.get(key), (int, float)) and not isinstance(h.get(key), bool) and math.isfinite(h[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def busiest(shares: np.ndarray, n: int = 10) -> list[int]:
    """Every expert of shares [epochs, E] when E <= MAX_EXPERTS, else the n with the largest mean share over the
    epochs (ties to the lower index), in index order: thousands of lines and legend entries are unreadable."""
    E = shares.shape[1]
    return list(range(E)) if E <= MAX_EXPERTS else sorted(top_indices(shares.mean(0), n))


def curves_figure(runs: Sequence[tuple[str, list[dict[str, Any]]]], title: str | None = None,
                  reuse: Figure | None = None) -> Figure:
    """Three panels over epochs: accuracy (train solid, validation/test dashed), loss, each expert's share of
    the training samples (its top-weight samples). ``runs``: (label, history) per run, e.g. one per seed.
    ``reuse``: a Figure this function drew before, drawn on again (:func:`moe.pictures.plots.emptied`: the same
    pixels as a new one, without making its three Axes and their ticks again)."""
    margins = dict(left=0.055, right=0.99, bottom=0.14, top=0.84 if title else 0.9, wspace=0.2)
    if reuse is None:
        fig = Figure(figsize=(12, 3.6), dpi=90)  # fixed margins: a constrained layout took half of the drawing time
        fig.subplots_adjust(**margins)
        acc_ax, loss_ax, share_ax = fig.subplots(1, 3)
    else:
        fig = reuse
        acc_ax, loss_ax, share_ax = emptied(fig)
        fig.subplots_adjust(**margins)
    styles = {"train_accuracy": "-", "train_loss": "-"}
    drawn: list[int] = []
    others = " (fainter: other seeds)" if len(runs) > 1 else ""
    share_title = f"expert shares{others}"
    for i, (label, history) in enumerate(runs):
        colour = f"C{i % 10}"
        for ax, keys in ((acc_ax, ACCURACY_KEYS), (loss_ax, LOSS_KEYS)):
            for key in keys:
                xs, ys = _series(history, key)
                if xs:
                    ax.plot(xs, ys, styles.get(key, "--"), color=colour, lw=1.2,
                            label=f"{label}: {key.replace('_', ' ')}" if label else key.replace("_", " "))
        shares = [(h.get("epoch", j + 1), h["expert_share"]) for j, h in enumerate(history) if h.get("expert_share")]
        if shares:
            arr = np.array([s for _, s in shares], dtype=float)  # [epochs, E]
            drawn = drawn or busiest(arr)  # the first run's busiest experts, the same ones for every run
            for e in drawn:
                share_ax.plot([ep for ep, _ in shares], arr[:, e], color=f"C{e % 10}", lw=1, alpha=0.9 if i == 0 else 0.45,
                              label=f"expert {e}" if i == 0 else None)
            if len(drawn) < arr.shape[1]:
                share_title = f"shares of the {len(drawn)} busiest of {arr.shape[1]} experts{others}"
    for ax, name in ((acc_ax, "accuracy"), (loss_ax, "loss"), (share_ax, "share of training samples")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, frameon=False, ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1)
    share_ax.set_ylim(0, 1)
    acc_ax.set_title("accuracy (higher is better)")
    loss_ax.set_title("training loss (lower is better)")
    share_ax.set_title(share_title)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def gate_regions_figure(view: dict[str, Any], class_names: Sequence[str] | None = None,
                        title: str | None = None, reuse: Figure | None = None) -> Figure:
    """The gate's top-weight expert over the 2-D plane (background colours) with the test points on top
    (marker colour: class). ``reuse``: a Figure this function drew before, drawn on again (as in
    :func:`curves_figure`)."""
    grid = np.asarray(view["expert"])
    n_experts = max(int(grid.max()) + 1, 1)
    fig = Figure(figsize=(6.4, 5), dpi=90, layout="constrained") if reuse is None else reuse
    ax = fig.add_subplot() if reuse is None else emptied(fig)[0]
    pastel = [tuple(0.55 + 0.45 * c for c in rgb) for rgb in _tab(n_experts)]
    cmap = ListedColormap([(1, 1, 1)] + pastel)  # -1 (no expert): white
    x0, x1 = view["x_range"]
    y0, y1 = view["y_range"]
    ax.imshow(grid + 1, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=0, vmax=n_experts,
              interpolation="nearest", aspect="auto")
    for e in range(n_experts):
        ax.scatter([], [], marker="s", color=pastel[e], label=f"expert {e}")
    pts = view.get("points") or {}
    labels = np.asarray(pts.get("label", []))
    for c in sorted(set(labels.tolist())):
        m = labels == c
        name = class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"
        ax.scatter(np.asarray(pts["x"])[m], np.asarray(pts["y"])[m], s=9, color=f"C{c % 10}", edgecolors="black",
                   linewidths=0.3, marker="os^vD<>ph*"[c // 10 % 10], label=str(name))
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title or "gate regions (background: top-weight expert; points: test samples by class)", fontsize=8)
    return fig


def _tab(n: int) -> list[tuple[float, float, float]]:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [tuple(cmap(i % cmap.N)[:3]) for i in range(n)]


def shown(view: dict[str, Any]) -> tuple[np.ndarray, list[int], str]:
    """An image view's arrays, the expert index of each, and a title note when only some experts are drawn: the
    view's own selection (``moe.records.model_views``: the MAX_EXPERTS busiest) or, for a record written before it, the first
    MAX_EXPERTS (a figure of thousands of panels is neither readable nor quick to draw)."""
    a = decode(view)
    labels = list(view.get("experts") or range(len(a)))
    total = view.get("of", len(a))
    if len(a) > MAX_EXPERTS:
        a, labels = a[:MAX_EXPERTS], labels[:MAX_EXPERTS]
        return a, labels, f"\n(the first {MAX_EXPERTS} of {total} experts)"
    if total > len(a):
        return a, labels, f"\n(the {len(a)} busiest of {total} experts, by test samples)"
    return a, labels, ""


def expert_weights_figure(view: dict[str, Any], class_names: Sequence[str] | None = None,
                          title: str | None = None) -> Figure:
    """Linear experts' weights as images: one row per expert, one column per class (red +, blue -)."""
    w, labels, note = shown(view)  # [E', C, H, W]
    n_e, n_c = w.shape[:2]
    fig = Figure(figsize=(min(1.0 * n_c + 1, 16), min(1.0 * n_e + 0.8, 20)), dpi=80, layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_e, n_c, squeeze=False))
    for e in range(n_e):
        lim = float(np.abs(w[e]).max()) or 1.0
        for c in range(n_c):
            ax = axes[e, c]
            ax.imshow(w[e, c], cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if e == 0:
                ax.set_title(str(class_names[c]) if class_names is not None and c < len(class_names) else f"class {c}", fontsize=7)
            if c == 0:
                ax.set_ylabel(f"expert {labels[e]}", fontsize=7)
    fig.suptitle((title or "linear experts' weights per class (red: evidence for, blue: against)") + note, fontsize=8)
    return fig


def prototypes_figure(view: dict[str, Any], title: str | None = None) -> Figure:
    """The prototype router's prototypes mu_e as images, one per expert."""
    p, labels, note = shown(view)  # [E', H, W]
    n = len(p)
    cols = min(n, 10)
    rows = -(-n // cols)
    fig = Figure(figsize=(1.1 * cols + 0.4, 1.2 * rows + 0.5), dpi=80, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            ax.imshow(p[i], cmap="gray", interpolation="nearest")
            ax.set_title(f"expert {labels[i]}", fontsize=7)
        else:
            ax.set_axis_off()
    fig.suptitle((title or "prototypes of the prototype router") + note, fontsize=8)
    return fig


def record_figures(record: dict[str, Any], title: str | None = None) -> dict[str, Figure]:
    """Every picture a record supports, by name: curves, gate_regions, expert_weights, prototypes."""
    names = (record.get("dataset") or {}).get("class_names")
    views = record.get("views") or {}
    out: dict[str, Figure] = {}
    if record.get("history"):
        out["curves"] = curves_figure([("", record["history"])], title)
    if views.get("gate_regions"):
        out["gate_regions"] = gate_regions_figure(views["gate_regions"], names, title)
    if views.get("expert_weights"):
        out["expert_weights"] = expert_weights_figure(views["expert_weights"], names, title)
    if views.get("prototypes"):
        out["prototypes"] = prototypes_figure(views["prototypes"], title)
    return out
