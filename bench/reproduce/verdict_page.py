"""REPRODUCTION.md and reproduction.json: per claim the numbers with their bootstrap intervals, the verdict with
its threshold, the seeds that would decide an open one, the verdict under a moved threshold, the collapsed
runs, the seed code's own numbers beside ours, and the figures."""
from __future__ import annotations

import functools
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reproduce import bootstrap as boot
from bench.reproduce import seed_results
from bench.reproduce import to_come
from bench.reproduce.claims import SWEEPS
from bench.reproduce.engine import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, PREMISE_FAILED, SUPPORTED, Outcome, Verdict,
                                    combine)
from bench.reproduce.measures import (COLLAPSE_SHARE, OP_WORDS, collapsed, measure_name, measure_values, ok_runs, select,
                                      where_text, with_derived)
from bench.reproduce.results import BUDGET_WORDS, Reproduction, SweepResult
from bench.table.tables import write_text
from bench.uncertainty import RULE_WORDS, fixed, summarize
from moe.training.controls import allocation_controls, allocation_markdown
from moe.training.controls import markdown as controls_markdown
from moe.records.record import versions, write_json_atomic

REPORT = "REPRODUCTION.md"
MNIST_DATASETS = ("mnist", "fmnist_mnist")  # datasets that read MNIST's files
MNIST_TEST = ("the digits scored as 'test' are those of the MNIST files' t10k files: with MNIST's official files, "
              "its test set; the 10,000-digit copy the published pages were made from holds MNIST *training* images "
              "there (held out from this harness's training split, but not the official test set, and not the seed "
              "code's test images)")
# The per-configuration numbers shown under each sweep: its entry in bench.reproduce.claims.SWEEPS.
NUMBERS: dict[str, list[str | dict[str, Any]]] = {e.name: list(e.numbers) for e in SWEEPS}


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return fixed(v, digits)


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def overrides_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items()) or "none"


FLAGS = ("competent",)  # derived yes / no columns of a configuration (bench.reproduce.measures.with_derived)


def numbers_table(runs: pd.DataFrame, measures: list[str | dict[str, Any]]) -> str:
    """Markdown: one row per configuration, each measure over its ok runs as the one uncertainty rule shows it
    (``bench.uncertainty``: the mean and its 95% bootstrap interval from 3 runs on, else the mean, the range and
    n; collapsed runs included, and counted beside the ok runs)."""
    ok = ok_runs(runs)
    flags = collapsed(runs)
    head = ["configuration", "ok runs"] + [measure_name(m) for m in measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(measures)) + "|"]
    for name, g in runs.groupby("name", sort=False) if "name" in runs.columns else []:
        good = ok[ok["name"] == name]
        k = int(flags.loc[good.index].sum())
        cells = [f"`{name}`", f"{len(good)}/{len(g)}" + (f" ({k} collapsed)" if k else "")]
        for m in measures:
            v = measure_values(good, m).dropna()
            if m in FLAGS:  # a property of the configuration: the same in every run
                cells.append(("yes" if bool(v.iloc[0]) else "no") if len(v) else "–")
                continue
            # a dict measure (an expert's share, a split NMI) lies in [0, 1]; a named one has its column's domain
            st = summarize(v.to_numpy(dtype=float), m) if isinstance(m, str) else summarize(v.to_numpy(dtype=float), bounds=(0.0, 1.0))
            cells.append(st.text())
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bold(status: str) -> str:
    return f"**{status}**"


def interval_text(o: Outcome) -> str:
    """``0.934 [0.850, 0.990]``, ``0.934 [no interval]``, ``0.61 [permutation p = 2e-06]`` (a trend: its
    one-sided p in the claimed direction), or ``undefined``."""
    st = o.stat
    if math.isnan(st.value):
        return "undefined"
    if st.is_test:
        p = st.p_greater if o.condition.op in (">", ">=") else st.p_less
        return f"{_num(st.value)} [permutation p = {p:.2g}]"
    ci = "no interval" if math.isnan(st.low) else f"{_num(st.low)}, {_num(st.high)}"
    return f"{_num(st.value)} [{ci}]"


def collapsed_text(o: Outcome) -> str:
    k = o.stat.collapsed
    return "0" if k == 0 else f"{k} ({'kept' if o.stat.collapsed_kept else 'left out'})"


def seeds_text(o: Outcome) -> str:
    """Why an INCONCLUSIVE condition is open and what would decide it ('' for a decided one)."""
    if o.verdict != INCONCLUSIVE:
        return ""
    if o.reason:
        return o.reason
    need = o.seeds_needed
    if math.isinf(need):
        return "the value sits on the threshold: no number of runs decides it"
    return (f"the interval straddles the threshold; about {int(need)} runs per configuration (now {o.stat.seeds}) "
            "would decide it")


def sensitivity_text(o: Outcome) -> str:
    if o.stat.is_test:
        return "none (a trend is judged by its permutation test against no trend)"
    moved = o.sensitivity()
    if not moved:
        return "a zero threshold without a stated move"
    return "; ".join(f"{o.condition.op} {t:g}: {v}" for t, v in moved)


def summary_table(verdicts: list[Verdict], partial: set[str] | frozenset[str] = frozenset()) -> str:
    """The verdicts, a row per condition; a claim of a sweep in ``partial`` (judged on the runs that have finished,
    ``--partial``) says so beside its verdict."""
    lines = [f"| claim | verdict | statistic | value [{boot.LEVEL:.0%} interval] | threshold | condition | collapsed runs |",
             "|---|---|---|---:|---|---|---:|"]
    for v in verdicts:
        if not v.outcomes:
            conds = [(c.label, "–", f"{c.op} {c.threshold:g}", "–", "–") for c in v.claim.conditions]
        else:
            conds = [(o.condition.label, interval_text(o), f"{o.condition.op} {o.condition.threshold:g}", o.verdict,
                      collapsed_text(o)) for o in v.outcomes]
        for i, (label, value, thr, cond, coll) in enumerate(conds):
            first = i == 0
            mark = " (partial: the finished runs)" if v.claim.sweep in partial else ""
            lines.append(f"| {f'`{v.claim.name}`' if first else ''} | {_bold(v.status) + mark if first else ''} | "
                         f"{label} | {value} | {thr} | {cond} | {coll} |")
    return "\n".join(lines)


def condition_lines(o: Outcome) -> list[str]:
    cond, st = o.condition, o.stat
    value = "undefined" if math.isnan(st.value) else f"**{interval_text(o)}**"
    coll = (f"; {st.collapsed} collapsed run{'s' if st.collapsed != 1 else ''} "
            f"{'counted in' if st.collapsed_kept else 'left out'}" if st.collapsed else "; no collapsed runs")
    why = seeds_text(o)
    lines = [f"- {cond.label} = {value} (n = {st.n}{coll}); threshold {cond.op} {cond.threshold:g} "
             f"({OP_WORDS[cond.op]} {cond.threshold:g}): {_bold(o.verdict)}" + (f" — {why}" if why else "") + ".",
             f"  Sensitivity (threshold moved by {_move(o)}): {sensitivity_text(o)}."]
    if st.interval_note and not math.isnan(st.low) and not st.is_test:
        lines.append(f"  Bootstrap: {st.interval_note}.")
    if st.detail:
        lines.append("  " + "; ".join(f"{k}: {_num(x) if isinstance(x, float) else x}" for k, x in st.detail.items()))
    lines.append("  " + configurations_text(o.configurations))
    return lines


def configurations_text(names: tuple[str, ...], show: int = 12) -> str:
    """The configurations a statistic reads, in words (at most ``show`` named)."""
    if not names:
        return "Reads no configuration (no ok run matches)."
    listed = ", ".join(f"`{n}`" for n in names[:show])
    more = f" and {len(names) - show} more (reproduction.json lists them all)" if len(names) > show else ""
    return f"Reads {len(names)} configuration{'s' if len(names) != 1 else ''}: {listed}{more}."


def _move(o: Outcome) -> str:
    c = o.condition
    return f"{c.shift:g}" if c.shift is not None else "25% of itself"


def seed_table(v: Verdict, runs: pd.DataFrame | None) -> list[str]:
    """The seed code's numbers beside ours for the settings that inform this claim (bench.reproduce.seed_results)."""
    settings = seed_results.for_claim(v.claim.name)
    if v.claim.sweep in seed_results.NO_SEED_CODE:
        return ["The seed code has no such experiment (and Elazar & Taylor released no code): no seed numbers to "
                "set beside ours.", ""]
    if not settings:
        return []
    lines = ["The seed code's numbers beside ours (`bench/reproduce/seed_results.py`; ours: mean ± std over the "
             "matching ok runs, collapsed runs included; the seed's settings are those of `--budget seed`):", ""]
    for setting in settings:
        lines += [f"*{setting.label}* (ours: {where_text(setting.where)}):", "",
                  "| quantity | seed code | this harness |", "|---|---|---|"]
        for num in setting.numbers:
            ours = "–" if runs is None else harness_value(runs, {**setting.where, **num.where}, num.measure)
            lines.append(f"| {num.label}{_where_suffix(num.where)} | {num.seed} | {ours} |")
        lines.append("")
    return lines


def _where_suffix(where: dict[str, Any]) -> str:
    return f" ({where_text(where)})" if where else ""


def harness_value(runs: pd.DataFrame, where: dict[str, Any], measure: str | dict[str, Any]) -> str:
    """Our number for a seed quantity: 'k of n' runs collapsed, or mean ± std (n runs, range)."""
    rows = select(runs, where)
    if rows.empty:
        return "no matching runs"
    if measure == "collapsed":
        return f"{int(collapsed(rows).sum())} of {len(rows)}"
    vals = measure_values(rows, measure).dropna()
    if vals.empty:
        return "–"
    if len(vals) == 1:
        return f"{_num(float(vals.iloc[0]))} (1 run)"
    return (f"{_num(float(vals.mean()))} ± {float(vals.std(ddof=1)):.3f} ({len(vals)} runs, "
            f"{float(vals.min()):.2f}-{float(vals.max()):.2f})")


def claim_section(v: Verdict, runs: pd.DataFrame | None = None) -> list[str]:
    c = v.claim
    lines = [f"### `{c.name}`: {v.status}", "", f"> {c.text} ({c.source})", ""]
    if v.status == NOT_RUN:
        return lines + ["Not run: the sweep did not run (see above).", ""]
    for o in v.outcomes:
        lines += condition_lines(o)
    if c.note:
        lines += ["", c.note]
    lines += [""] + seed_table(v, runs)
    if v.status == PREMISE_FAILED:
        lines += [f"Verdict: {_bold(PREMISE_FAILED)}: {v.reason}, and this claim presupposes it, so its own numbers "
                  f"(above; by themselves {combine([o.verdict for o in v.outcomes if not o.condition.beside])}) "
                  "carry no verdict.", ""]
    else:
        aside = " (the conditions beside the verdict left out)" if any(o.condition.beside for o in v.outcomes) else ""
        lines += [f"Verdict: {_bold(v.status)} (SUPPORTED if every condition is, CONTRADICTED if any is, else "
                  f"INCONCLUSIVE{aside}; computed from the numbers above).", ""]
    return lines


RULES = (f"Each statistic is shown with its {boot.LEVEL:.0%} percentile bootstrap interval ({boot.B:,} resamples of the "
         "runs, a fixed generator seed; runs resampled within each group the statistic compares, configurations and "
         "then their runs for correlations across configurations: `bench/reproduce/bootstrap.py`). A condition is "
         "SUPPORTED when the whole interval lies on the claim's side of the threshold, CONTRADICTED when it lies wholly "
         "on the other side, INCONCLUSIVE when it straddles the threshold (with the runs per configuration that would "
         "decide it, from the half-width shrinking as 1/sqrt(n): n' = ceil(n (h / |value - threshold|)^2)) or when it "
         f"is undefined (too few runs: fewer than {boot.MIN_RUNS} in a group gives no interval; the reason is given). A "
         "statistic pooling several configurations is the mean of their means, its interval resampling configurations, "
         "then their runs. A trend is Spearman's rho over all runs, judged by a one-sided permutation test (10,000 "
         "random orderings, every ordering up to 8 runs): SUPPORTED when p < 0.025 in the claimed direction, "
         "CONTRADICTED when p < 0.025 the other way. A claim is SUPPORTED when every condition "
         "is, CONTRADICTED when any is, else INCONCLUSIVE; PREMISE FAILED when a claim it presupposes is not "
         "SUPPORTED (the remedies of cheating need a black box that cheats). Under each condition: its verdict with "
         "the threshold moved by 25% either way. Collapsed runs (one expert takes >= "
         f"{COLLAPSE_SHARE:.0%} of the test samples) are left out of a claim's statistics unless its note says they "
         "count, and are counted beside each statistic.")


def sweep_section(res: SweepResult, verdicts: list[Verdict], out: Path, budget: str) -> list[str]:
    lines = [f"## {res.name}", ""]
    if res.description:
        lines += [res.description + ".", ""]
    lines.append(f"Sweep file `sweeps/{res.name}.yaml`" + (f" (v{res.version})" if res.version else "")
                 + f"; budget {budget}, overrides {overrides_text(res.overrides)}.")
    lines += [f"**Data**: {note}." for note in res.notes]
    if res.runs is not None and "dataset" in res.runs.columns and res.runs["dataset"].isin(MNIST_DATASETS).any():
        lines.append(f"**Test split**: {MNIST_TEST}.")
    if res.runs is None:
        lines += ["", f"**The sweep did not run**: {res.reason}", ""]
    else:
        counts = res.runs["status"].value_counts().to_dict() if len(res.runs) else {}
        lines.append(f"{len(res.runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'}); "
                     + (f"wall time {clock(res.wall_s)}" if math.isfinite(res.wall_s)
                        else "wall time not recorded (trained by calls that kept no time)")
                     + (f" (sum of trial times {clock(res.trial_s)} on {res.slots} slots)" if res.slots else "")
                     + f"; results in `{res.name}/` (runs.csv, table.md, records/).")
        if "git" in res.runs.columns and res.runs["git"].nunique() > 1:  # a sweep grown or resumed by newer code
            made = res.runs["git"].fillna("?").astype(str).value_counts().sort_index()
            lines.append("**Code**: its runs were trained at several commits (" + "; ".join(
                f"git {g}: {n} run{'' if n == 1 else 's'}" for g, n in made.items()) + "); each run's provenance is in runs.csv.")
        if res.partial:
            lines.append(f"**Partial**: {res.partial}; the verdicts below read the runs that have finished (the runs "
                         "still to come are listed at the end).")
        if res.interrupted:
            lines.append("**Interrupted**: some trials did not finish; run the same command with "
                         f"`--out {out}` to continue.")
        lines += ["", f"Numbers per configuration (ok runs; {RULE_WORDS}):", "",
                  numbers_table(with_derived(res.runs), NUMBERS[res.name]), ""]
    for v in verdicts:
        lines += claim_section(v, res.runs)
    for caption, path in res.figures:
        rel = os.path.relpath(path, out)
        lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    for err in res.figure_errors:
        lines += [f"(A figure could not be drawn: {err})", ""]
    return lines


@functools.cache
def allocation_controls_table() -> str:
    """The hand-built controls' table (``allocation_controls`` at its defaults, up to 4096 experts: about 1.5 s of
    CPU): the same seed gives the same numbers, so one process computes it once for all the reports it renders."""
    return allocation_markdown(allocation_controls())


def controls_section(controls: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """What the cheating scores give where the answer is known (``moe.training.controls``), before the cheating verdicts."""
    lines = ["## Controls of the cheating scores", "",
             "Before the cheating verdicts: what the scores give where the answer is known. At every expert count the "
             "claims read, hand-built routers (`python -m moe.training.controls --allocations`, no training): a "
             "cheater (each expert owns one class) should score 1, a hash or random router (blind to the class) about "
             "0, experts that each own a pair of classes about halfway (0.44); the in-sample cheating index beside "
             "it shows the bias the cheating score removes.", "", allocation_controls_table(), ""]
    if controls:
        lines += ["Trained controls (`python -m moe.training.controls`): `cheater` cheats by construction (constant "
                  "experts, the router is the classifier; E = C); `hash` routes by a fixed hash that knows nothing of "
                  "the class; `collapsed` sends every sample to one expert (undefined). These runs have no validation "
                  "split, so they show the in-sample cheating index.", ""]
    for dataset, results in controls.items():
        lines += [f"**{dataset}**", "", controls_markdown(results, dataset), ""]
    return lines


def cpu_time(rep: Reproduction) -> float:
    """The sum of the trial times of every run of every sweep (runs.csv ``trial_s``; each trial one thread, so
    its CPU time), whichever call on this directory ran it."""
    return sum(trial_seconds(r.runs) for r in rep.results.values())


def trial_seconds(runs: pd.DataFrame | None) -> float:
    """The sum of a sweep's trial times (runs.csv ``trial_s``); 0 without runs or the column."""
    if runs is None or "trial_s" not in runs.columns:
        return 0.0
    return float(pd.to_numeric(runs["trial_s"], errors="coerce").sum())


def render(rep: Reproduction) -> str:
    v = versions()
    counts = {s: sum(x.status == s for x in rep.verdicts)
              for s in (SUPPORTED, CONTRADICTED, INCONCLUSIVE, PREMISE_FAILED, NOT_RUN)}
    lines = ["# Reproduction of the seed papers' findings", "",
             "Krishnamurthy & Watkins, 'Interpretability in Gated Modular Neural Networks' (XAI 4 Debugging, "
             "NeurIPS 2021), and Elazar & Taylor, 'Implicit Mixture of Interpretable Experts for Global and Local "
             "Interpretability' (arXiv 2212.00471, 2022; only its abstract was available, so the cheating measures "
             "are this project's operationalisation). Each finding is a claim (`bench/reproduce/claims.py`): a statistic of a sweep's runs, a comparison "
             "and a threshold; the verdict is computed from the numbers and their uncertainty. CONTRADICTED and "
             "INCONCLUSIVE are honest results, not failures of the harness.", "", RULES, "",
             f"Budget **{rep.budget}**: {BUDGET_WORDS.get(rep.budget, 'custom overrides')}. "
             f"Data root: `{rep.data_root or 'default ($MOE_DATA or ~/.cache/moe-interp-bench)'}`. "
             f"Written {datetime.now():%Y-%m-%d %H:%M}; git {v.get('git', '?')}; wall time of this call {clock(rep.wall_s)} "
             f"(each sweep's own wall time is in its section); total CPU time {clock(cpu_time(rep))} (the sum of the "
             "trial times of every sweep, one thread per trial, run on several slots at once, whichever call ran them).",
             "", f"{counts[SUPPORTED]} supported, {counts[CONTRADICTED]} contradicted, {counts[INCONCLUSIVE]} "
                 f"inconclusive, {counts[PREMISE_FAILED]} premise failed, {counts[NOT_RUN]} not run.", "",
             summary_table(rep.verdicts, {n for n, r in rep.results.items() if r.partial}), ""]
    for name, res in rep.results.items():
        if name == "cheating":
            lines += controls_section(rep.controls)
        lines += sweep_section(res, [x for x in rep.verdicts if x.claim.sweep == name], rep.out, rep.budget)
    missing = [x for x in rep.verdicts if x.claim.sweep not in rep.results]
    if missing:
        lines += ["## Not run", ""] + [f"- `{x.claim.name}`: {x.reason}" for x in missing] + [""]
    waiting = [to_come.sweep_to_come(name, rep.out / name, res.overrides,
                                     [x.claim for x in rep.verdicts if x.claim.sweep == name])
               for name, res in rep.results.items()]
    lines += to_come.section([w for w in waiting if w is not None])
    return "\n".join(lines).rstrip() + "\n"


def write_report(rep: Reproduction) -> Path:
    data = {"budget": rep.budget, "data_root": rep.data_root, "wall_s": rep.wall_s, "cpu_s": cpu_time(rep),
            "versions": versions(), "controls": rep.controls,
            "sweeps": {**rep.earlier, **{
                n: {"overrides": r.overrides, "notes": r.notes, "wall_s": r.wall_s if math.isfinite(r.wall_s) else None,
                    "trial_s": r.trial_s, "slots": r.slots, "reason": r.reason, "partial": r.partial,
                    "runs": None if r.runs is None else len(r.runs), "interrupted": r.interrupted,
                    "figures": [os.path.relpath(p, rep.out) for _, p in r.figures]}
                for n, r in rep.results.items()}},
            "claims": [v.to_dict() for v in rep.verdicts]}
    write_json_atomic(rep.out / "reproduction.json", data)
    return write_text(rep.out / REPORT, render(rep))
