"""The tables' plots from plain data, and what a figure worker process runs.

``tradeoff_figure`` (tradeoff.png), ``saturation_figure`` (saturation.png) and ``expert_count_figure``
(vs_experts.png) draw on a bare Figure from lists and numbers that ``bench.table.tradeoff``, ``bench.table.saturation``
and ``bench.table.vs_experts`` compute from the runs; this module imports only
matplotlib and ``moe.pictures.drawers`` (no pandas, no torch), so that a worker process drawing the figures of a
build (``bench.table.drawing``) starts in a fraction of the time of one importing the tables.

``draw(kind, args)``: the PNG of one job, ``kind`` one of ``moe.pictures.drawers.DRAWERS`` (the drill-down figures)
or of :data:`DRAWERS` here; ``serve``: a worker's loop.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from moe.pictures import drawers

__all__ = ["tradeoff_figure", "saturation_figure", "expert_count_figure", "draw", "serve", "DRAWERS"]


def tradeoff_figure(data: dict[str, Any]) -> Figure:
    """Two panels, x = score (NMI, cheating index), y = accuracy (``bench.table.tradeoff.tradeoff_data``: per panel
    its labels and, per configuration, the mean point with its error bars; the Pareto front)."""
    fig = Figure(figsize=(11, 4.9), dpi=100, layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # room for the line under the panels
    axes = fig.subplots(1, len(data["panels"]))
    colours = data["colours"]
    for ax, panel in zip(axes, data["panels"]):
        _panel(ax, panel, colours)
    handles = [ax.scatter([], [], color=colours[r], label=r) for r in data["routers"] for ax in axes[:1]]
    fig.legend(handles=handles, loc="outside right upper", title="router", frameon=False)
    fig.suptitle(data["title"])
    fig.text(0.01, 0.005, data["note"], fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)
    return fig


def _panel(ax, panel: dict[str, Any], colours: dict[str, str]) -> None:
    ax.set_xlabel(panel["xlabel"])
    ax.set_ylabel("test accuracy (higher is better)")
    ax.grid(alpha=0.3)
    if panel["empty"]:
        ax.text(0.5, 0.5, f"no {panel['score']} values", transform=ax.transAxes, ha="center", va="center")
        return
    for x, y, router, bars in panel["points"]:
        for (below, above, ci), axis in zip(bars, ("x", "y")):
            if below or above:
                ax.errorbar(x, y, **{f"{axis}err": [[below], [above]]}, fmt="none", ecolor=colours[router] if ci else "0.6",
                            elinewidth=0.9 if ci else 0.6, capsize=2 if ci else 0, alpha=0.8)
        ax.plot(x, y, "o", color=colours[router], ms=5, alpha=0.85)
    front = panel["front"]
    if front is not None:
        ax.step(front["values"], front["accuracy"], where=front["where"], color="black", lw=1, alpha=0.7,
                label="Pareto front")
        ax.scatter(front["values"], front["accuracy"], facecolors="none", edgecolors="black", s=80, lw=1)
        ax.legend(loc="lower left", frameon=False, fontsize=8)
    ax.set_title(f"accuracy vs {panel['score']}")


COLUMNS = 3  # saturation.png: panels a row


def _router(name: str) -> str:
    return name.split("[", 1)[0]


def _rest(name: str) -> str:
    """The configuration name without its router (``topk[k=2,experts=4]`` -> ``k=2,experts=4``)."""
    return name.split("[", 1)[1].rstrip("]") if "[" in name else name


def saturation_figure(curves: dict[str, tuple[list[int], list[float], int]], title: str | None, threshold: float) -> Figure:
    """Small multiples: one panel per router, one line per configuration of that router over the epochs (a
    sequential colour map within the panel, the rest of the name in its legend), ``threshold`` dashed
    (``bench.table.saturation``)."""
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
        ax.axhline(threshold, ls="--", color="0.5", lw=1)
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
                 f"epoch's, mean over seeds; dashed: {threshold} (saturation_epoch)" + (f"\n{title}" if title else ""),
                 fontsize=9)
    return fig


def expert_count_figure(data: dict[str, Any]) -> Figure:
    """Four panels (accuracy, cheating index, local fidelity, readable parameters of the experts in use) against
    the expert count (log scale), one line per router family (``bench.table.vs_experts.expert_count_data``)."""
    fig = Figure(figsize=(12, 8))
    counts = data["counts"]
    for i, panel in enumerate(data["panels"]):
        ax = fig.add_subplot(2, 2, i + 1)
        for name, experts, values, bars in panel["lines"]:
            line, = ax.plot(experts, values, marker="o", label=name)
            for ci, x, y, below, above in bars:  # intervals in the line's colour, ranges thin and grey
                ax.errorbar(x, y, yerr=[below, above], fmt="none", ecolor=line.get_color() if ci else "0.6",
                            elinewidth=0.9 if ci else 0.6, capsize=2 if ci else 0)
        ax.set_xscale("log")
        if counts:  # the expert counts themselves, not powers of ten
            ax.set_xticks(counts, [f"{int(e):,}" for e in counts], fontsize=7)
            ax.xaxis.set_minor_locator(NullLocator())
        if panel["log_y"]:
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:,.0f}")  # counts of parameters, not 6 x 10^1
            ax.yaxis.set_major_formatter(plain), ax.yaxis.set_minor_formatter(plain)
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("experts E")
        ax.set_ylabel(panel["label"])
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7)
    fig.suptitle(data["title"])
    fig.text(0.5, 0.955, data["note"], fontsize=7, color="0.3", ha="center", va="top")
    fig.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(labels) / 3), 1, 0.94))
    return fig


# job kind -> the function drawing its Figure from plain data (besides moe.pictures.drawers.DRAWERS)
DRAWERS = {"tradeoff": tradeoff_figure, "saturation": saturation_figure, "vs_experts": expert_count_figure}


def draw(kind: str, args: tuple) -> bytes:
    """The PNG of one job (in whichever process runs it)."""
    if kind in DRAWERS:
        return drawers.png_bytes(DRAWERS[kind](*args))
    return drawers.draw(kind, args)


def serve(jobs, results, parent: int | None = None) -> None:
    """A figure worker (``bench.table.drawing.FigurePool``): draw each (number, kind, args) taken from the queue
    ``jobs`` and put (number, PNG) on ``results``, or (number, the exception) where it fails, until a None, or
    until the process that started it is gone (``moe.pictures.drawers.next_job``: a build killed mid-way leaves no
    worker behind; ``parent``: its pid, default the one that started this process)."""
    parent = os.getppid() if parent is None else parent
    while (job := drawers.next_job(jobs, parent)) is not None:
        number, kind, args = job
        try:
            results.put((number, draw(kind, args)))
        except Exception as err:  # noqa: BLE001 -- the build that asked for it raises it
            if type(err).__module__ != "builtins":  # one that may not travel between processes: its text
                err = RuntimeError(f"{type(err).__name__}: {err}")
            results.put((number, err))
