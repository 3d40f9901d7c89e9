"""The figures of ``REPRODUCTION.md``: one function per sweep, each ``(runs, records, folder) -> [(caption, path)]``.

``runs`` is the sweep's runs table (``runs.csv``), ``records`` its run records (the per-epoch history lives
only there). Figures are drawn on bare Figures with the Agg canvas and written atomically
(``moe.pictures.plots.save_png``). A figure with nothing to draw (no ``ok`` runs) is left out.

Letters: C classes, E experts.
"""
from __future__ import annotations

import functools

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.reproduce.claim_types import ClaimError, SweepEntry
from bench.reproduce.claims import FASHION_DIGITS, SWEEPS
from bench.reproduce.measures import BALANCING_LOSSES, measure_values, ok_runs
from bench.table.vs_experts import expert_count_figure
from moe.pictures.plots import save_png

Figures = list[tuple[str, Path]]


BLACK_BOX_GATES = ("mlp", "cnn", "lenet")


def family(row: pd.Series) -> str:
    """A router family label: black box (MLP, CNN or LeNet gate; balanced or not), Sinkhorn (its gate),
    matched to X, prototype, linear, single linear."""
    if row.get("experts") == 1:
        return "single linear model"
    match = row.get("match_router")
    gate = row.get("gate")
    black_box = gate in BLACK_BOX_GATES
    if isinstance(match, str) and match:
        return f"{gate.upper()} gate matched to {match}" if black_box else f"{row.get('router')} matched to {match}"
    if row.get("router") == "sinkhorn":
        return f"Sinkhorn ({gate.upper()} gate)" if isinstance(gate, str) else "Sinkhorn"
    if row.get("router") == "softmax":
        if not black_box:
            return "softmax (linear gate)"
        balanced = any(_positive(row.get(k)) for k in BALANCING_LOSSES)
        return f"black box ({gate.upper()} gate{', balanced' if balanced else ''})"
    return f"{row.get('router')} router"


def _positive(v: Any) -> bool:
    try:
        return float(v) > 0
    except (TypeError, ValueError):
        return False


def _families(runs: pd.DataFrame) -> pd.Series:
    return runs.apply(family, axis=1) if len(runs) else pd.Series(dtype=object)


def _alloc(cell: Any) -> np.ndarray | None:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    return np.asarray(json.loads(cell) if isinstance(cell, str) else cell, dtype=float)


def _class_names(records: list[dict[str, Any]], n: int) -> list[str]:
    for r in records:
        names = (r.get("dataset") or {}).get("class_names")
        if names and len(names) == n:
            return list(names)
    return [f"class {c}" for c in range(n)]


def heatmaps(panels: list[tuple[str, np.ndarray]], class_names: list[str], path: Path, title: str) -> Path:
    """Row-normalised allocations [C, E] side by side: the share of each class's test samples per expert."""
    n = len(panels)
    width = sum(1.2 + 0.32 * a.shape[1] for _, a in panels) + 1.6
    fig = Figure(figsize=(max(6.0, width), 1.4 + 0.3 * len(class_names)), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True,
                                      gridspec_kw={"width_ratios": [max(2, a.shape[1]) for _, a in panels]}))
    image = None
    for i, (ax, (label, a)) in enumerate(zip(axes, panels)):
        share = a / np.clip(a.sum(1, keepdims=True), 1, None)
        image = ax.imshow(share, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("expert")
        ax.set_xticks(range(a.shape[1]))
        ax.tick_params(axis="x", labelsize=7)
        if i == 0:
            ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of the class's test samples")
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def _first_run(runs: pd.DataFrame, where: Callable[[pd.Series], bool]) -> pd.Series | None:
    ok = ok_runs(runs)
    ok = ok[ok["allocation"].notna()] if "allocation" in ok.columns else ok.iloc[0:0]
    for _, row in ok.sort_values(["seed", "index"] if "index" in ok.columns else ["seed"]).iterrows():
        if where(row):
            return row
    return None


def allocation_figure(runs: pd.DataFrame, records: list[dict[str, Any]],
                      picks: list[tuple[Callable[[pd.Series], bool], Callable[[pd.Series], str]]],
                      path: Path, title: str, caption: str) -> Figures:
    """One heat-map panel per pick (where, label): the allocation of the first run (lowest seed) matching
    ``where``, titled ``label(run)`` and its seed; no figure when no pick matches a run."""
    panels = []
    for where, label in picks:
        row = _first_run(runs, where)
        if row is not None:
            panels.append((f"{label(row)}, seed {row['seed']}", _alloc(row["allocation"])))
    if not panels:
        return []
    return [(caption, heatmaps(panels, _class_names(records, panels[0][1].shape[0]), path, title))]


# ---------------------------------------------------------------------------------------------------
# lr_asymmetry: expert shares against epoch (the seed paper's Figure 5) and against the ratio
# ---------------------------------------------------------------------------------------------------

def lr_asymmetry(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path) -> Figures:
    out: Figures = []
    curves: dict[float, list[np.ndarray]] = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        shares = [h.get("expert_share") for h in r.get("history") or []]
        if shares and all(s is not None for s in shares):
            curves.setdefault(float(r["config"]["lr_ratio"]), []).append(np.asarray(shares, dtype=float))
    if curves:
        ratios = sorted(curves)
        fig = Figure(figsize=(3.2 * len(ratios), 3.2), dpi=100, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(ratios), sharey=True))
        for ax, ratio in zip(axes, ratios):
            length = min(len(c) for c in curves[ratio])
            stack = np.stack([c[:length] for c in curves[ratio]])  # [runs, epochs, E]
            epochs = np.arange(1, length + 1)
            for e in range(stack.shape[2]):
                mean, lo, hi = stack[:, :, e].mean(0), stack[:, :, e].min(0), stack[:, :, e].max(0)
                label = "expert 0 (fast)" if e == 0 else f"expert {e} (lr / {ratio:g})" if ratio != 1 else f"expert {e}"
                ax.plot(epochs, mean, color=f"C{e}", label=label)
                ax.fill_between(epochs, lo, hi, color=f"C{e}", alpha=0.15)
            ax.set_title(f"lr ratio {ratio:g} ({len(stack)} seeds)", fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="center right", frameon=False)
        axes[0].set_ylabel("share of training samples")
        fig.suptitle("Each expert's share of samples (top-weight expert) per epoch: mean over seeds, band min-max")
        out.append(("Each expert's share of the training samples against epoch, one panel per lr ratio "
                    "(the seed paper's Figure 5).", save_png(fig, folder / "lr_asymmetry_share_by_epoch.png")))
    ok = ok_runs(runs)
    if len(ok) and "lr_ratio" in ok.columns:
        fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
        ax = fig.subplots()
        ratio = pd.to_numeric(ok["lr_ratio"], errors="coerce")
        rng = np.random.default_rng(0)
        n_experts = max((a.shape[1] for a in map(_alloc, ok["allocation"]) if a is not None), default=2)
        for e in range(n_experts):
            share = measure_values(ok, {"expert_share": e})
            jitter = np.exp(rng.uniform(-0.06, 0.06, len(ratio)))
            ax.scatter(ratio * jitter, share, s=14, alpha=0.5, color=f"C{e}")
            means = pd.DataFrame({"r": ratio, "s": share}).groupby("r")["s"].mean()
            ax.plot(means.index, means.values, "-o", color=f"C{e}", label=f"expert {e}" + (" (fast)" if e == 0 else ""))
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("learning-rate ratio (fast / slow expert)")
        ax.set_ylabel("share of test samples")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        ax.set_title("Each expert's share of the test samples against the lr ratio (dots: runs, line: mean)", fontsize=9)
        out.append(("Each expert's share of the test samples against the learning-rate ratio.",
                    save_png(fig, folder / "lr_asymmetry_share_by_ratio.png")))
    return out


# ---------------------------------------------------------------------------------------------------
# pretrained_experts and fmnist_mnist_joint: allocation heat-maps, accuracy against partition agreement
# ---------------------------------------------------------------------------------------------------

def _scatter_by(ax, x: pd.Series, y: pd.Series, labels: pd.Series) -> None:
    for i, lab in enumerate(dict.fromkeys(labels)):
        m = (labels == lab).to_numpy()
        ax.scatter(x[m], y[m], s=22, alpha=0.75, color=f"C{i}", label=str(lab))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)


def pretrained_experts(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path, *,
                       name: str = "pretrained_experts", reference: str = "fmnist_mnist") -> Figures:
    """Figures 3 and 4 of the seed paper; a run is scored against its own class split, a joint run (none) against
    the ``reference`` split."""
    out: Figures = []
    ok = ok_runs(runs)
    if ok.empty:
        return out
    out += allocation_figure(
        ok, records, [(lambda r, g=regime: r.get("regime") == g, lambda r, text=text: text)
                      for regime, text in (("frozen_gate", "joint training"), ("pretrain_frozen_gate", "pre-trained experts"))],
        folder / f"{name}_allocation.png",
        "Gate allocation (row-normalised): joint training vs pre-trained experts",
        "Allocation of the test samples by the gate, joint training against pre-trained experts "
        "(the seed paper's Figure 3).")
    fig = Figure(figsize=(6.5, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    labels = ok["regime"].map({"frozen_gate": "joint", "pretrain_frozen_gate": "pre-trained"}).fillna(ok["regime"])
    labels = labels + ", refit " + ok["refit_init"].astype(str)
    agreement = measure_values(ok, {"split_nmi": "$class_split"}).fillna(measure_values(ok, {"split_nmi": reference}))
    _scatter_by(ax, agreement, ok["accuracy"].astype(float), labels)
    ax.set_xlabel(f"NMI between split part and expert (own split; joint runs: {reference})")
    ax.set_ylabel("test accuracy after refit under the frozen gate")
    ax.set_title("Accuracy against agreement with the split (the seed paper's Figure 4)", fontsize=9)
    out.append(("Test accuracy against partition agreement with the class split, per run.",
                save_png(fig, folder / f"{name}_accuracy_vs_split.png")))
    return out


def fmnist_mnist_joint(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path) -> Figures:
    out: Figures = []
    ok = ok_runs(runs)
    if ok.empty:
        return out
    experts = pd.to_numeric(ok["experts"], errors="coerce")
    sep = measure_values(ok, {"separation": FASHION_DIGITS})
    fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, (values, label) in enumerate(((sep, "separation I(G;E)/H(G)"),
                                         (measure_values(ok, "partition_nmi"), "partition_nmi"))):
        ax1.scatter(experts + (i - 0.5) * 0.12, values, s=16, alpha=0.5, color=f"C{i}")
        means = pd.DataFrame({"e": experts, "v": values}).groupby("e")["v"].mean()
        ax1.plot(means.index, means.values, "-o", color=f"C{i}", label=label)
    ax1.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("experts")
    ax1.set_ylabel("agreement with {fashion, digits}")
    ax1.set_ylim(-0.02, 1.05)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, frameon=False)
    ax1.set_title("Fashion/digit separation against the expert count", fontsize=9)
    _scatter_by(ax2, sep, ok["accuracy"].astype(float), experts.astype(int).astype(str) + " experts")
    ax2.set_xlabel("separation I(G;E)/H(G)")
    ax2.set_ylabel("test accuracy")
    ax2.set_title("Accuracy against partition agreement", fontsize=9)
    out.append(("Fashion/digit separation and partition NMI against the number of experts; accuracy against "
                "separation.", save_png(fig, folder / "fmnist_mnist_joint_separation.png")))
    out += allocation_figure(
        ok, records, [(lambda r, e=e: float(r.get("experts")) == e, lambda r, e=e: f"{int(e)} experts")
                      for e in sorted(experts.dropna().unique())],
        folder / "fmnist_mnist_joint_allocation.png", "Gate allocation after joint training (row-normalised)",
        "Allocation of the test samples after joint training, one run per expert count (the seed paper's Figure 1).")
    return out


# ---------------------------------------------------------------------------------------------------
# cheating and expert_count: accuracy against cheating index and expert count
# ---------------------------------------------------------------------------------------------------

def cheating(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path, name: str = "cheating") -> Figures:
    out: Figures = []
    ok = ok_runs(runs)
    if ok.empty:
        return out
    fam = _families(ok)
    label = fam + ", E=" + ok["experts"].astype(int).astype(str)
    mixture = fam != "single linear model"
    fig = Figure(figsize=(12, 4.4), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    score = measure_values(ok, "cheating_score")
    _scatter_by(ax1, score[mixture], ok["accuracy"][mixture].astype(float), label[mixture])
    single = ok["accuracy"][~mixture].astype(float)
    if len(single):
        ax1.axhline(single.mean(), color="black", ls="--", lw=1, label="single linear model")
        ax1.legend(fontsize=7, frameon=False)
    ax1.set_xlabel("cheating score (1: the router alone solves the task; 0: blind to the class)")
    ax1.set_ylabel("test accuracy")
    ax1.set_title("Accuracy against cheating score, per run", fontsize=9)
    _scatter_by(ax2, score[mixture], measure_values(ok, "constant_experts_drop")[mixture], label[mixture])
    ax2.set_xlabel("cheating score")
    ax2.set_ylabel("accuracy the experts add over constants (0: constant experts would do)")
    ax2.set_title("Constant-experts check against cheating score", fontsize=9)
    out.append(("Accuracy and the constant-experts check (the accuracy the experts add over constants for their "
                "validation majority classes) against the cross-fitted cheating score, per run.",
                save_png(fig, folder / f"{name}_scatter.png")))
    out += allocation_figure(
        ok, records, [(lambda r, f=f: family(r) == f, lambda r, f=f: f"{f}\nE={int(r['experts'])}")
                      for f in dict.fromkeys(fam[mixture])],
        folder / f"{name}_allocation.png", "Allocation by router family (row-normalised)",
        "Allocation of the test samples, one run per router family.")
    return out


def balancing(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path) -> Figures:
    """Cheating score, accuracy and experts alive against the importance-loss weight, one line per expert count."""
    ok = ok_runs(runs)
    if ok.empty or "importance_loss" not in ok.columns:
        return []
    frame = ok.assign(w=pd.to_numeric(ok["importance_loss"], errors="coerce"),
                      e=pd.to_numeric(ok["experts"], errors="coerce"),
                      score=measure_values(ok, "cheating_score"), acc=measure_values(ok, "accuracy"),
                      alive=measure_values(ok, "val_dead_experts"))
    frame["alive"] = frame["e"] * (1 - frame["alive"])
    fig = Figure(figsize=(13, 4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    floor = frame.loc[frame["w"] > 0, "w"].min() / 3 if (frame["w"] > 0).any() else 1e-3  # weight 0 on a log axis
    for i, (e, g) in enumerate(frame.groupby("e")):
        x = g["w"].where(g["w"] > 0, floor)
        for ax, col in zip(axes, ("score", "acc", "alive")):
            ax.scatter(x, g[col], color=f"C{i}", s=14, alpha=0.6)
            m = g.assign(x=x).groupby("x")[col].mean()
            ax.plot(m.index, m.values, color=f"C{i}", label=f"E={int(e)}")
    for ax, words in zip(axes, ("cheating score (NaN: collapsed, not drawn)", "test accuracy",
                                "experts alive (>= 1% of the validation samples)")):
        ax.set_xscale("log")
        ax.set_xlabel(f"importance-loss weight (0 drawn at {floor:.3g})")
        ax.set_ylabel(words)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    out = [("Cheating score, accuracy and experts alive against the importance-loss weight (dots: runs; lines: means "
            "per weight).", save_png(fig, folder / "balancing_vs_weight.png"))]
    return out


def expert_count(runs: pd.DataFrame, records: list[dict[str, Any]], folder: Path) -> Figures:
    out: Figures = []
    ok = ok_runs(runs)
    if ok.empty:
        return out
    fam = ok.apply(lambda r: family({**r, "experts": None}), axis=1)
    experts = pd.to_numeric(ok["experts"], errors="coerce")
    out.append(("Accuracy, cheating score (cross-fitted), local interpretability (the share of samples whose routed expert alone "
                 "gives the mixture's prediction) and global interpretability (parameters of the experts in use) "
                 "against the number of experts, one line per configuration family (its name without the expert "
                 "count; means over seeds).",
                 expert_count_figure(ok, folder / "expert_count_vs_experts.png",
                                     "The expert-count sweep: accuracy and interpretability against E")))
    fig = Figure(figsize=(12, 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    conf = ok.assign(family=fam, e=experts).groupby(["family", "e"], sort=False)
    cols = [c for c in ("accuracy", "cheating_score", "used_expert_parameters") if c in ok.columns]
    means = conf[cols].mean(numeric_only=True).reset_index()
    for ax, score, words in zip(axes, ("used_expert_parameters", "cheating_score"),
                                ("expert parameters in use (global interpretability: fewer is better)",
                                 "cheating score (lower: the experts do the work)")):
        if score not in means.columns:
            continue
        for i, f in enumerate(dict.fromkeys(means["family"])):
            m = means[means["family"] == f]
            ax.scatter(m[score], m["accuracy"], color=f"C{i}", label=f)
            for _, r in m.iterrows():
                ax.annotate(f"{int(r['e'])}", (r[score], r["accuracy"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel(words)
        if score == "used_expert_parameters":
            ax.set_xscale("log")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"Accuracy against {score} (configuration means; labels: expert count)", fontsize=9)
    out.append(("Accuracy against global interpretability (expert parameters in use: the frontier of the trade-off) "
                "and against the cheating score, configuration means labelled with the expert count.",
                save_png(fig, folder / "expert_count_tradeoff.png")))
    return out


# The figure functions a sweep's entry (bench.reproduce.claims.SWEEPS) names.
FIGURES: dict[str, Callable[..., Figures]] = {
    "lr_asymmetry": lr_asymmetry,
    "pretrained_experts": pretrained_experts,
    "fmnist_mnist_joint": fmnist_mnist_joint,
    "cheating": cheating,
    "balancing": balancing,
    "expert_count": expert_count,
}


def plots(entries: tuple[SweepEntry, ...]) -> dict[str, Callable[[pd.DataFrame, list[dict[str, Any]], Path], Figures]]:
    """Each sweep's figure function with its options, from the sweeps' entries; an entry naming no figure function
    of :data:`FIGURES` is an error."""
    unknown = [f"{e.name}: {e.figures!r}" for e in entries if e.figures is not None and e.figures not in FIGURES]
    if unknown:
        raise ClaimError(f"unknown figure functions ({', '.join(unknown)}); valid: {', '.join(FIGURES)}")
    return {e.name: functools.partial(FIGURES[e.figures], **dict(e.figure_options)) for e in entries if e.figures}


PLOTS = plots(SWEEPS)  # sweep name -> its figures
