"""``python -m bench.reproduce [NAME|all]``: run the seed papers' findings as sweeps and write ``REPRODUCTION.md``.

Each finding is a claim of ``bench.claims`` (a sweep, a statistic of its runs table, a comparison and a
threshold). The command runs the sweeps the chosen claims need through ``bench.sweep.run`` (one Ray
session for all of them), then writes into the output directory (``--out``, default
``results/reproduce-<timestamp>``)::

    <sweep>/             each sweep's own directory (records, runs.csv, table.md, ... as bench.sweep writes)
    figures/*.png        the figures of each sweep (bench.reproduce_plots)
    REPRODUCTION.md      per claim: the numbers, the figures, SUPPORTED / NOT SUPPORTED with the threshold
    reproduction.json    the same verdicts as data

Budgets: ``paper`` runs the sweep files as they are (the papers' settings); ``small`` overrides their
budget (subsets, fewer epochs and seeds: the ``budgets: small`` section of each sweep file) to finish ``all`` within 30 minutes on 2 CPU cores.
Running again with the same ``--out`` continues the sweeps there (finished trials are kept).

A sweep that cannot run (e.g. the MNIST files are missing) is reported with its error message, its claims
are NOT RUN, and the other sweeps still run; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import claims as C
from bench import spec, sweep
from bench.spec import SweepError
from moe.record import versions, write_json_atomic

SWEEPS = ("lr_asymmetry", "pretrained_experts", "fmnist_mnist_joint", "cheating", "expert_count")  # run order
EMBEDDED = ("gm6",)  # datasets that need no files (no --data-root)
# Budgets: ``paper`` runs the sweep files as they are; any other name is the ``budgets:`` section of
# each sweep file. BUDGETS, when it holds a budget, replaces the files' overrides (sweep -> --set pairs; tests).
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {}
BUDGET_WORDS = {"paper": "the papers' settings (the sweep files as they are)",
                "small": "subsets, fewer epochs and seeds (within 30 minutes on 2 CPU cores)"}
# The per-configuration numbers shown under each sweep: accuracy and the measures its claims read.
NUMBERS: dict[str, list[str | dict[str, Any]]] = {
    "lr_asymmetry": ["accuracy", C.FAST_SHARE, {"expert_share": 1}],
    "pretrained_experts": ["accuracy_after_joint", "accuracy", {"split_nmi": "fmnist_mnist"}, "partition_nmi"],
    "fmnist_mnist_joint": ["accuracy", {"separation": C.FASHION_DIGITS}, "partition_nmi", "partition_ari"],
    "cheating": ["accuracy", "cheating_index", "expert_constancy", "nmi"],
    "expert_count": ["accuracy", "cheating_index", "expert_constancy", "nmi"],
}
REPORT = "REPRODUCTION.md"


class ReproduceError(ValueError):
    """A bad claim name, budget or output directory: one line, with the valid choices."""


@dataclass
class SweepResult:
    name: str
    runs: pd.DataFrame | None  # None: the sweep did not run
    reason: str = ""  # why it did not run
    overrides: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False
    trial_s: float = 0.0  # sum of the trial times of this call (0 when every trial had run before)
    slots: int = 0  # trials run at once
    figures: list[tuple[str, Path]] = field(default_factory=list)
    figure_errors: list[str] = field(default_factory=list)
    description: str = ""
    version: int | None = None


@dataclass
class Reproduction:
    out: Path
    budget: str
    results: dict[str, SweepResult]
    verdicts: list[C.Verdict]
    wall_s: float
    data_root: str | None

    @property
    def exit_status(self) -> int:
        if any(r.interrupted for r in self.results.values()):
            return 130
        return 1 if any(v.status == C.NOT_RUN for v in self.verdicts) else 0


# ---------------------------------------------------------------------------------------------------
# Choosing claims and budgets
# ---------------------------------------------------------------------------------------------------

def choices() -> list[str]:
    """Valid NAME arguments: all, each sweep, each claim."""
    return ["all", *C.sweeps(), *C.by_name()]


def select_claims(target: str) -> list[C.Claim]:
    """``all``, a sweep name (its claims) or a claim name."""
    table = C.by_name()
    if target == "all":
        return list(C.CLAIMS)
    if target in C.sweeps():
        return C.for_sweep(target)
    if target in table:
        return [table[target]]
    raise ReproduceError(f"unknown claim {target!r}{C.did_you_mean(target, choices())}; valid choices: "
                         f"{', '.join(choices())}")


def budget_overrides(budget: str | dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The overrides of one sweep under a budget name (or a budget table: sweep -> overrides, for tests)."""
    if isinstance(budget, str):
        if budget not in BUDGET_WORDS:
            raise ReproduceError(f"unknown budget {budget!r}; valid choices: {', '.join(BUDGET_WORDS)}")
        if budget in BUDGETS:
            budget = BUDGETS[budget]
        elif budget == "paper":
            return {}
        else:
            try:
                return spec.load(name).budget_overrides(budget)
            except SweepError as err:
                raise ReproduceError(str(err)) from None
    return dict(budget.get(name, {}))


# ---------------------------------------------------------------------------------------------------
# Running the sweeps
# ---------------------------------------------------------------------------------------------------

class _RaySession:
    """One Ray connection for every sweep (bench.sweep.run reuses an initialised Ray), opened on first need."""

    def __init__(self, address: str | None, verbose: bool):
        self.address, self.verbose, self.started = address, verbose, False

    def ensure(self) -> None:
        import ray

        if ray.is_initialized():
            return
        for k, v in sweep.QUIET_ENV.items():
            if not self.verbose or k != "RAY_AIR_NEW_OUTPUT":
                os.environ.setdefault(k, v)
        self.started = sweep.connect(self.address, self.verbose)

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))


def run_sweep(name: str, folder: Path, overrides: dict[str, Any], ray_session: _RaySession, *,
              verbose: bool = False, quiet: bool = False) -> SweepResult:
    """Run (or continue, when ``folder`` holds it already) one sweep; errors become a result with a reason."""
    result = SweepResult(name, None, overrides=overrides)
    started = time.perf_counter()
    try:
        loaded = spec.load(name, overrides)
        result.description, result.version = loaded.description, loaded.version
        needs_ray = True
        if (folder / "sweep.json").exists():
            check_continuable(name, folder, overrides)
            kwargs: dict[str, Any] = {"resume": folder}
            _, trials = sweep.read_state(folder)
            needs_ray = bool({t.index for t in trials} - sweep.finished_indices(folder))
        else:
            kwargs = {"out": folder, **overrides}
        if not quiet:
            print(f"\n== {name}: {loaded.description}\n   overrides: {_overrides_text(overrides).replace('`', '')}",
                  flush=True)
        if needs_ray:  # (a finished sweep only has its tables rebuilt)
            ray_session.ensure()
        runs = sweep.run(name, verbose=verbose, quiet=quiet, **kwargs)
        from bench.table import read_records

        result.interrupted = bool(runs.attrs.get("interrupted"))
        result.runs = C.with_phase_accuracy(runs, read_records(folder))
        result.trial_s, result.slots = float(runs.attrs.get("trial_s") or 0.0), int(runs.attrs.get("slots") or 0)
    except (SweepError, sweep.ResourceError, ReproduceError) as err:
        result.reason = " ".join(getattr(err, "problems", None) or [str(err)])
    except Exception as err:  # a failing sweep must not cost the other sweeps' results
        result.reason = f"{type(err).__name__}: {err}"
        if verbose:
            traceback.print_exc()
    result.wall_s = time.perf_counter() - started
    if result.reason:
        said = result.reason in _REPORTED
        print(f"error: {name}: " + ("the same error as above" if said else result.reason), file=sys.stderr, flush=True)
        _REPORTED.add(result.reason)
    return result


_REPORTED: set[str] = set()  # error messages already printed (a missing MNIST stops several sweeps alike)


def check_continuable(name: str, folder: Path, overrides: dict[str, Any]) -> None:
    """A sweep directory left by an earlier run may be continued only with the same sweep and settings."""
    if not (folder / "sweep.json").exists():
        return
    meta, _ = sweep.read_state(folder)
    if meta.get("name") != name or not _same(meta.get("overrides") or {}, overrides):
        raise ReproduceError(f"{folder} holds a sweep run with other settings (sweep {meta.get('name')!r}, overrides "
                             f"{json.dumps(meta.get('overrides'))}; now {json.dumps(overrides)}): pick another --out, "
                             "or repeat the earlier budget and data root to continue it")


def make_figures(result: SweepResult, folder: Path, figures: Path) -> None:
    from bench.reproduce_plots import PLOTS
    from bench.table import read_records

    if result.runs is None or result.name not in PLOTS:
        return
    try:
        result.figures = PLOTS[result.name](result.runs, read_records(folder), figures)
    except Exception as err:  # a figure must not cost the report
        result.figure_errors.append(f"{type(err).__name__}: {err}")
        print(f"warning: {result.name}: a figure failed: {type(err).__name__}: {err}", file=sys.stderr)


def reproduce(target: str = "all", *, budget: str | dict[str, dict[str, Any]] = "small",
              data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
              address: str | None = None, verbose: bool = False, quiet: bool = False) -> Reproduction:
    """Run the sweeps of the chosen claims, judge the claims, write REPRODUCTION.md; returns what it found."""
    chosen = select_claims(target)
    names = [n for n in SWEEPS if any(c.sweep == n for c in chosen)]
    plans = {n: budget_overrides(budget, n) for n in names}
    root = str(Path(data_root).expanduser().resolve()) if data_root is not None else None
    out = Path(out).resolve() if out is not None else sweep.default_out("reproduce")
    out.mkdir(parents=True, exist_ok=True)
    plans = {n: {**o, "data_root": root} if root is not None and _dataset(n) not in EMBEDDED else o
             for n, o in plans.items()}
    for n in names:  # before any work: a directory of an earlier run must match
        check_continuable(n, out / n, plans[n])
    continued = {n for n in names if (out / n / "sweep.json").exists()}
    previous = _previous(out)
    started = time.perf_counter()
    _REPORTED.clear()
    results: dict[str, SweepResult] = {}
    session = _RaySession(address, verbose)
    try:
        for n in names:
            results[n] = run_sweep(n, out / n, plans[n], session, verbose=verbose, quiet=quiet)
            if results[n].interrupted:
                break
    finally:
        session.close()
    for n, res in results.items():
        make_figures(res, out / n, out / "figures")
        if n in continued:  # the times of the earlier calls on this directory count too
            before = (previous.get("sweeps") or {}).get(n) or {}
            res.wall_s += float(before.get("wall_s") or 0.0)
            res.trial_s += float(before.get("trial_s") or 0.0)
            res.slots = res.slots or int(before.get("slots") or 0)
    verdicts = [C.evaluate(c, results[c.sweep].runs if c.sweep in results else None,
                           results[c.sweep].reason if c.sweep in results else "interrupted before this sweep")
                for c in chosen]
    wall = time.perf_counter() - started + (float(previous.get("wall_s") or 0.0) if continued else 0.0)
    rep = Reproduction(out, budget if isinstance(budget, str) else "custom", results, verdicts, wall, root)
    write_report(rep)
    return rep


def _previous(out: Path) -> dict[str, Any]:
    """reproduction.json of an earlier call on ``out`` (its timings), or {}."""
    try:
        return json.loads((out / "reproduction.json").read_text())
    except (OSError, ValueError):
        return {}


def _dataset(name: str) -> str:
    try:
        return spec.load(name).dataset
    except SweepError:
        return ""


# ---------------------------------------------------------------------------------------------------
# REPRODUCTION.md
# ---------------------------------------------------------------------------------------------------

def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{v:.{digits}f}"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _overrides_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items()) or "none"


def numbers_table(runs: pd.DataFrame, measures: list[str | dict[str, Any]]) -> str:
    """Markdown: one row per configuration, mean ± std over its ok runs of each measure."""
    ok = C.ok_runs(runs)
    head = ["configuration", "ok runs"] + [C.measure_name(m) for m in measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(measures)) + "|"]
    for name, g in runs.groupby("name", sort=False) if "name" in runs.columns else []:
        good = ok[ok["name"] == name]
        cells = [f"`{name}`", f"{len(good)}/{len(g)}"]
        for m in measures:
            v = C.measure_values(good, m).dropna()
            cell = _num(float(v.mean())) if len(v) else "–"
            if len(v) > 1:
                cell += f" ± {float(v.std(ddof=1)):.3f}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict_line(v: C.Verdict) -> str:
    return {C.SUPPORTED: "**SUPPORTED**", C.NOT_SUPPORTED: "**NOT SUPPORTED**", C.NOT_RUN: "**NOT RUN**"}[v.status]


def summary_table(verdicts: list[C.Verdict]) -> str:
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


def claim_section(v: C.Verdict) -> list[str]:
    c = v.claim
    lines = [f"### `{c.name}`: {v.status}", "", f"> {c.text} ({c.source})", ""]
    if v.status == C.NOT_RUN:
        return lines + ["Not run: the sweep did not run (see above).", ""]
    for o in v.outcomes:
        cond, st = o.condition, o.stat
        value = "undefined" if math.isnan(st.value) else f"**{_num(st.value)}**"
        verdict = "holds" if o.holds else "does not hold"
        lines.append(f"- {cond.label} = {value} (n = {st.n}); threshold {cond.op} {cond.threshold:g} "
                     f"({C.OP_WORDS[cond.op]} {cond.threshold:g}): {verdict}"
                     + (f" — {st.note}" if st.note else "") + ".")
        if st.detail:
            lines.append("  " + "; ".join(f"{k}: {_num(x) if isinstance(x, float) else x}" for k, x in st.detail.items()))
    if c.note:
        lines += ["", c.note]
    lines += ["", f"Verdict: {_verdict_line(v)} (every condition must hold; computed from the numbers above).", ""]
    return lines


def sweep_section(res: SweepResult, verdicts: list[C.Verdict], out: Path, budget: str) -> list[str]:
    lines = [f"## {res.name}", ""]
    if res.description:
        lines += [res.description + ".", ""]
    lines.append(f"Sweep file `sweeps/{res.name}.yaml`" + (f" (v{res.version})" if res.version else "")
                 + f"; budget {budget}, overrides {_overrides_text(res.overrides)}.")
    if res.runs is None:
        lines += ["", f"**The sweep did not run**: {res.reason}", ""]
    else:
        counts = res.runs["status"].value_counts().to_dict() if len(res.runs) else {}
        lines.append(f"{len(res.runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'}); "
                     f"wall time {_clock(res.wall_s)}"
                     + (f" (sum of trial times {_clock(res.trial_s)} on {res.slots} slots)" if res.slots else "")
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
    counts = {s: sum(x.status == s for x in rep.verdicts) for s in (C.SUPPORTED, C.NOT_SUPPORTED, C.NOT_RUN)}
    lines = ["# Reproduction of the seed papers' findings", "",
             "Krishnamurthy & Watkins, 'Interpretability in Gated Modular Neural Networks' (XAI 4 Debugging, "
             "NeurIPS 2021) and 'Implicit Mixture of Interpretable Experts for Global and Local Interpretability' "
             "(2022). Each finding is a claim (`bench/claims.py`): a statistic of a sweep's runs, a comparison "
             "and a threshold; the verdict is computed from the numbers. NOT SUPPORTED is an honest result, "
             "not a failure of the harness.", "",
             f"Budget **{rep.budget}**: {BUDGET_WORDS.get(rep.budget, 'custom overrides')}. "
             f"Data root: `{rep.data_root or 'default ($MOE_DATA or ~/.cache/moe-interp-bench)'}`. "
             f"Written {datetime.now():%Y-%m-%d %H:%M}; git {v.get('git', '?')}; total wall time {_clock(rep.wall_s)} "
             "(every call on this directory; a sweep's trial times: the sum over its trials, run on several slots).",
             "", f"{counts[C.SUPPORTED]} supported, {counts[C.NOT_SUPPORTED]} not supported, "
                 f"{counts[C.NOT_RUN]} not run.", "", summary_table(rep.verdicts), ""]
    for name, res in rep.results.items():
        lines += sweep_section(res, [x for x in rep.verdicts if x.claim.sweep == name], rep.out, rep.budget)
    missing = [x for x in rep.verdicts if x.claim.sweep not in rep.results]
    if missing:
        lines += ["## Not run", ""] + [f"- `{x.claim.name}`: {x.reason}" for x in missing] + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(rep: Reproduction) -> Path:
    from bench.table import write_text

    data = {"budget": rep.budget, "data_root": rep.data_root, "wall_s": rep.wall_s, "versions": versions(),
            "sweeps": {n: {"overrides": r.overrides, "wall_s": r.wall_s, "trial_s": r.trial_s, "slots": r.slots,
                           "reason": r.reason,
                           "runs": None if r.runs is None else len(r.runs), "interrupted": r.interrupted,
                           "figures": [os.path.relpath(p, rep.out) for _, p in r.figures]}
                       for n, r in rep.results.items()},
            "claims": [v.to_dict() for v in rep.verdicts]}
    write_json_atomic(rep.out / "reproduction.json", data)
    return write_text(rep.out / REPORT, render(rep))


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.reproduce",
                                 description="Run the seed papers' findings as sweeps and write REPRODUCTION.md.")
    ap.add_argument("name", nargs="?", default=None, metavar="NAME",
                    help="all (default), a sweep (lr_asymmetry, pretrained_experts, fmnist_mnist_joint, cheating, "
                         "expert_count) or one claim (see --list)")
    ap.add_argument("--data-root", default=None, metavar="DIR",
                    help="MNIST-family files in torchvision's layout (default: $MOE_DATA, else ~/.cache/moe-interp-bench)")
    ap.add_argument("--budget", default=None, metavar="{small,paper}",
                    help="small (default): subsets, fewer epochs and seeds, <= 30 min on 2 CPUs; paper: the papers' settings")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="output directory (default: results/reproduce-<timestamp>); an existing one is continued")
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    ap.add_argument("--list", action="store_true", help="list the claims with their statistics and thresholds, and exit")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress lines")
    ap.add_argument("-v", "--verbose", action="store_true", help="Ray's own output, tracebacks of failing sweeps")
    return ap


def list_claims() -> int:
    for c in C.CLAIMS:
        print(f"{c.name}  [sweep {c.sweep}]  {c.text}")
        for cond in c.conditions:
            print(f"    {C.describe_condition(cond)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        return list_claims()
    out = args.out
    try:
        budget = args.budget if args.budget is not None else "small"
        if budget not in BUDGET_WORDS:
            raise ReproduceError(f"--budget {budget!r}: unknown budget; valid choices: {', '.join(BUDGET_WORDS)}")
        target = args.name if args.name is not None else "all"
        select_claims(target)  # a bad name fails before any work
        out = Path(args.out).resolve() if args.out is not None else sweep.default_out("reproduce")
        rep = reproduce(target, budget=budget, data_root=args.data_root, out=out, address=args.address,
                        verbose=args.verbose, quiet=args.quiet)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--out" and a != args.out]
        print(f"\ninterrupted: finished trials are kept in {out}; continue with: python -m bench.reproduce "
              f"{' '.join(again)} --out {out}", file=sys.stderr)
        return 130
    print()
    print(summary_table(rep.verdicts))
    print(f"\nwrote {rep.out / REPORT} (total wall time {_clock(rep.wall_s)})")
    return rep.exit_status


if __name__ == "__main__":
    sys.exit(main())
