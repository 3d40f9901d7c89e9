"""The phase diagram of the planted-decomposition sweep (``sweeps/planted.yaml``): how well each router family
recovers the planted modules as they become entangled with the classes.

``python -m bench.figures.phase RUNS [--out PNG] [--score module_nmi]``: RUNS is a sweep directory (its
``runs.csv``) or a runs.csv. One line per router family (the configuration name without its entanglement),
the mean over seeds of the score against ``planted_entanglement``, with a band of +- one standard deviation;
beside it, the same for ``nmi`` (the expert against the class): at entanglement 0 the classes determine the
modules, so a gate that copies the labels also 'recovers' them; at 1 only a real decomposition does.
Only ``ok`` runs count. Writes the PNG atomically; a missing file or column is one ``error:`` line, exit 2.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench.sweep.layout import SweepDir, read_runs_csv
from moe.pictures.plots import DPI, save_png

KNOB = "planted_entanglement"
DEFAULT_OUT = "docs/planted_phase.png"


def family(name: str) -> str:
    """The configuration name without its entanglement: 'topk[k=2,planted_entanglement=0.5]' -> 'topk[k=2]'."""
    out = re.sub(rf",?{KNOB}=[^,\]]*", "", str(name)).replace("[,", "[")
    return out.replace("[]", "")


def phase_table(runs: pd.DataFrame, score: str) -> pd.DataFrame:
    """Rows (family, entanglement) with the mean, standard deviation and count over seeds of ``score``."""
    missing = [c for c in ("name", "status", KNOB, score) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs.csv lacks the column(s) {', '.join(missing)} (a planted sweep's runs.csv has them)")
    ok = runs[runs["status"] == "ok"].assign(family=lambda d: d["name"].map(family))
    grouped = ok.groupby(["family", KNOB])[score]
    return grouped.agg(["mean", "std", "count"]).reset_index()


def read_runs(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    csv = SweepDir(p).runs_csv if p.is_dir() else p
    if not csv.is_file():
        raise FileNotFoundError(f"{csv}: no runs.csv (run the sweep first: python3 run.py sweep planted)")
    return read_runs_csv(csv)


def draw(runs: pd.DataFrame, out: str | Path, scores: tuple[str, ...] = ("module_nmi", "nmi")) -> Path:
    """The phase diagram: one panel per score, one line per router family; written atomically to ``out``."""
    tables = [phase_table(runs, s) for s in scores]
    fig = Figure(figsize=(5.2 * len(scores), 4.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, score, table in zip(axes, scores, tables):
        for name, rows in table.groupby("family", sort=True):
            rows = rows.sort_values(KNOB)
            x, mean, std = rows[KNOB].to_numpy(), rows["mean"].to_numpy(), rows["std"].fillna(0).to_numpy()
            line, = ax.plot(x, mean, marker="o", label=name)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_xlabel("entanglement of the modules with the classes")
        ax.set_ylabel(_label(score))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(title="router", fontsize=8)
    n_seeds = int(max((t["count"].max() for t in tables if len(t)), default=0))
    fig.suptitle(f"Planted decomposition: recovery against entanglement (mean +- sd over {n_seeds} seeds)")
    return save_png(fig, out)


def _label(score: str) -> str:
    return {"module_nmi": "module_nmi (expert vs planted module)", "module_ari": "module_ari (expert vs planted module)",
            "nmi": "nmi (expert vs class)"}.get(score, score)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.figures.phase", description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a sweep directory (its runs.csv) or a runs.csv of sweeps/planted.yaml")
    parser.add_argument("--out", default=None, help=f"the PNG to write (default: {DEFAULT_OUT})")
    parser.add_argument("--score", default=None, help="the recovery score of the first panel (default: module_nmi)")
    args = parser.parse_args(argv)
    scores = (args.score if args.score is not None else "module_nmi", "nmi")
    try:
        png = draw(read_runs(args.runs), args.out if args.out is not None else DEFAULT_OUT, scores)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {png}")
    for score in scores:
        table = phase_table(read_runs(args.runs), score)
        wide = table.pivot(index="family", columns=KNOB, values="mean")
        print(f"\n{score} (mean over seeds):\n{wide.round(3).to_string()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
