"""REPRODUCTION.md and reproduction.json: per claim the numbers, the figures and the verdict with its threshold."""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reproduce.claims import FASHION_DIGITS, FAST_SHARE
from bench.reproduce.engine import NOT_RUN, NOT_SUPPORTED, SUPPORTED, Verdict
from bench.reproduce.measures import OP_WORDS, measure_name, measure_values, ok_runs
from bench.reproduce.results import BUDGET_WORDS, Reproduction, SweepResult
from bench.table.tables import write_text
from moe.record import versions, write_json_atomic

REPORT = "REPRODUCTION.md"
# The per-configuration numbers shown under each sweep: accuracy and the measures its claims read.
NUMBERS: dict[str, list[str | dict[str, Any]]] = {
    "lr_asymmetry": ["accuracy", FAST_SHARE, {"expert_share": 1}],
    "pretrained_experts": ["accuracy_after_joint", "accuracy", {"split_nmi": "fmnist_mnist"}, "partition_nmi"],
    "fmnist_mnist_joint": ["accuracy", {"separation": FASHION_DIGITS}, "partition_nmi", "partition_ari"],
    "cheating": ["accuracy", "cheating_index", "expert_prediction_entropy", "nmi"],
    "expert_count": ["accuracy", "cheating_index", "expert_prediction_entropy", "nmi"],
}


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{v:.{digits}f}"


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def overrides_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items()) or "none"


def numbers_table(runs: pd.DataFrame, measures: list[str | dict[str, Any]]) -> str:
    """Markdown: one row per configuration, mean ± std over its ok runs of each measure."""
    ok = ok_runs(runs)
    head = ["configuration", "ok runs"] + [measure_name(m) for m in measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(measures)) + "|"]
    for name, g in runs.groupby("name", sort=False) if "name" in runs.columns else []:
        good = ok[ok["name"] == name]
        cells = [f"`{name}`", f"{len(good)}/{len(g)}"]
        for m in measures:
            v = measure_values(good, m).dropna()
            cell = _num(float(v.mean())) if len(v) else "–"
            if len(v) > 1:
                cell += f" ± {float(v.std(ddof=1)):.3f}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict_line(v: Verdict) -> str:
    return {SUPPORTED: "**SUPPORTED**", NOT_SUPPORTED: "**NOT SUPPORTED**", NOT_RUN: "**NOT RUN**"}[v.status]


def summary_table(verdicts: list[Verdict]) -> str:
    lines = ["| claim | verdict | statistic | value | threshold | holds |", "|---|---|---|---:|---|---|"]
    for v in verdicts:
        if not v.outcomes:
            conds = [(c.label, "–", f"{c.op} {c.threshold:g}", "–") for c in v.claim.conditions]
        else:
            conds = [(o.condition.label, _num(o.stat.value), f"{o.condition.op} {o.condition.threshold:g}",
                      "yes" if o.holds else "no") for o in v.outcomes]
        for i, (label, value, thr, holds) in enumerate(conds):
            first = i == 0
            lines.append(f"| {f'`{v.claim.name}`' if first else ''} | {_verdict_line(v) if first else ''} | "
                         f"{label} | {value} | {thr} | {holds} |")
    return "\n".join(lines)


def claim_section(v: Verdict) -> list[str]:
    c = v.claim
    lines = [f"### `{c.name}`: {v.status}", "", f"> {c.text} ({c.source})", ""]
    if v.status == NOT_RUN:
        return lines + ["Not run: the sweep did not run (see above).", ""]
    for o in v.outcomes:
        cond, st = o.condition, o.stat
        value = "undefined" if math.isnan(st.value) else f"**{_num(st.value)}**"
        verdict = "holds" if o.holds else "does not hold"
        lines.append(f"- {cond.label} = {value} (n = {st.n}); threshold {cond.op} {cond.threshold:g} "
                     f"({OP_WORDS[cond.op]} {cond.threshold:g}): {verdict}"
                     + (f" — {st.note}" if st.note else "") + ".")
        if st.detail:
            lines.append("  " + "; ".join(f"{k}: {_num(x) if isinstance(x, float) else x}" for k, x in st.detail.items()))
    if c.note:
        lines += ["", c.note]
    lines += ["", f"Verdict: {_verdict_line(v)} (every condition must hold; computed from the numbers above).", ""]
    return lines


def sweep_section(res: SweepResult, verdicts: list[Verdict], out: Path, budget: str) -> list[str]:
    lines = [f"## {res.name}", ""]
    if res.description:
        lines += [res.description + ".", ""]
    lines.append(f"Sweep file `sweeps/{res.name}.yaml`" + (f" (v{res.version})" if res.version else "")
                 + f"; budget {budget}, overrides {overrides_text(res.overrides)}.")
    if res.runs is None:
        lines += ["", f"**The sweep did not run**: {res.reason}", ""]
    else:
        counts = res.runs["status"].value_counts().to_dict() if len(res.runs) else {}
        lines.append(f"{len(res.runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'}); "
                     f"wall time {clock(res.wall_s)}"
                     + (f" (sum of trial times {clock(res.trial_s)} on {res.slots} slots)" if res.slots else "")
                     + f"; results in `{res.name}/` (runs.csv, table.md, records/).")
        if res.interrupted:
            lines.append("**Interrupted**: some trials did not finish; run the same command with "
                         f"`--out {out}` to continue.")
        lines += ["", "Numbers per configuration (mean ± std over seeds, ok runs):", "",
                  numbers_table(res.runs, NUMBERS.get(res.name, ["accuracy"])), ""]
    for v in verdicts:
        lines += claim_section(v)
    for caption, path in res.figures:
        rel = os.path.relpath(path, out)
        lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    for err in res.figure_errors:
        lines += [f"(A figure could not be drawn: {err})", ""]
    return lines


def render(rep: Reproduction) -> str:
    v = versions()
    counts = {s: sum(x.status == s for x in rep.verdicts) for s in (SUPPORTED, NOT_SUPPORTED, NOT_RUN)}
    lines = ["# Reproduction of the seed papers' findings", "",
             "Krishnamurthy & Watkins, 'Interpretability in Gated Modular Neural Networks' (XAI 4 Debugging, "
             "NeurIPS 2021), and Elazar & Taylor, 'Implicit Mixture of Interpretable Experts for Global and Local "
             "Interpretability' (arXiv 2212.00471, 2022; only its abstract was available, so the cheating measures "
             "are this project's operationalisation). Each finding is a claim (`bench/reproduce/claims.py`): a statistic of a sweep's runs, a comparison "
             "and a threshold; the verdict is computed from the numbers. NOT SUPPORTED is an honest result, "
             "not a failure of the harness.", "",
             f"Budget **{rep.budget}**: {BUDGET_WORDS.get(rep.budget, 'custom overrides')}. "
             f"Data root: `{rep.data_root or 'default ($MOE_DATA or ~/.cache/moe-interp-bench)'}`. "
             f"Written {datetime.now():%Y-%m-%d %H:%M}; git {v.get('git', '?')}; total wall time {clock(rep.wall_s)} "
             "(every call on this directory; a sweep's trial times: the sum over its trials, run on several slots).",
             "", f"{counts[SUPPORTED]} supported, {counts[NOT_SUPPORTED]} not supported, "
                 f"{counts[NOT_RUN]} not run.", "", summary_table(rep.verdicts), ""]
    for name, res in rep.results.items():
        lines += sweep_section(res, [x for x in rep.verdicts if x.claim.sweep == name], rep.out, rep.budget)
    missing = [x for x in rep.verdicts if x.claim.sweep not in rep.results]
    if missing:
        lines += ["## Not run", ""] + [f"- `{x.claim.name}`: {x.reason}" for x in missing] + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(rep: Reproduction) -> Path:
    data = {"budget": rep.budget, "data_root": rep.data_root, "wall_s": rep.wall_s, "versions": versions(),
            "sweeps": {n: {"overrides": r.overrides, "wall_s": r.wall_s, "trial_s": r.trial_s, "slots": r.slots,
                           "reason": r.reason,
                           "runs": None if r.runs is None else len(r.runs), "interrupted": r.interrupted,
                           "figures": [os.path.relpath(p, rep.out) for _, p in r.figures]}
                       for n, r in rep.results.items()},
            "claims": [v.to_dict() for v in rep.verdicts]}
    write_json_atomic(rep.out / "reproduction.json", data)
    return write_text(rep.out / REPORT, render(rep))
