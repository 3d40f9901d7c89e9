"""Running the seed papers' findings as sweeps (``python -m bench.reproduce``: ``bench.reproduce.cli``).

Each finding is a claim of ``bench.reproduce.claims`` (a sweep, a statistic of its runs table, a comparison and a
threshold). The command runs the sweeps the chosen claims need through ``bench.pipeline.run_sweep`` (one Ray
session for all of them), then writes into the output directory (``--out``, default
``results/reproduce-<timestamp>``)::

    <sweep>/             each sweep's own directory (records, runs.csv, table.md, ... as bench.sweep writes)
    figures/*.png        the figures of each sweep (bench.reproduce.figures)
    REPRODUCTION.md      (bench.reproduce.verdict_page) per claim: the numbers with their bootstrap intervals, the figures, the
                         verdict (SUPPORTED / CONTRADICTED / INCONCLUSIVE / PREMISE FAILED) with the threshold, the seed code's numbers
    reproduction.json    the same verdicts as data
    report.html          (bench.report.reproduction) the same as one self-contained HTML page

Budgets: ``paper`` runs the sweep files as they are (the papers' settings); ``small`` overrides their
budget (subsets, fewer epochs and seeds: the ``budgets: small`` section of each sweep file) (``--list`` estimates each budget's time);
``seed`` runs the seed code's own settings, splits and run counts (the ``budgets: seed`` sections: the
``moe.config`` presets seed_gm6, seed_mnist, seed_fmnist_mnist).
Running again with the same ``--out`` continues the sweeps there (finished trials are kept).

A sweep that cannot run (e.g. the MNIST files are missing) is reported with its error message, its claims
are NOT RUN, and the other sweeps still run; the exit status is then 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.reproduce import claims, to_come
from bench.reproduce.engine import Claim, evaluate_all
from bench.reproduce.figures import PLOTS
from bench.reproduce.continuation import check_continuable
from bench.reproduce.measures import with_phase_accuracy
from bench.report.reproduction import write_reproduction_report
from bench.reproduce.verdict_page import overrides_text, trial_seconds, write_report
from bench.reproduce.results import BUDGET_WORDS, ReproduceError, Reproduction, SweepResult
from bench.sweep import lock, spec
from bench.table.tables import load_runs
from bench.sweep.cluster import QUIET_ENV, ResourceError, connect
from bench.sweep.layout import SweepDir, default_out
from bench import pipeline
from bench.sweep.spec import SweepError
from moe.training.controls import run_controls
from moe.config import Config, preset_values
from moe.data import load_dataset, subset
from moe.records.record import write_json_atomic
from moe.registry import suggestion

SWEEPS = tuple(entry.name for entry in claims.SWEEPS)  # run order: the entries of bench.reproduce.claims.SWEEPS
EMBEDDED = ("gm6", "kjv")  # datasets that need no files (no --data-root)
# Budgets: ``paper`` runs the sweep files as they are; any other name is the ``budgets:`` section of
# each sweep file; a budget table (sweep -> --set pairs; tests) replaces the files' overrides.
BudgetTable = dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------------
# Choosing claims and budgets
# ---------------------------------------------------------------------------------------------------

def choices() -> list[str]:
    """Valid NAME arguments: all, each sweep, each claim."""
    return ["all", *claims.sweeps(), *claims.by_name()]


def select_claims(target: str) -> list[Claim]:
    """``all``, a sweep name (its claims) or a claim name."""
    table = claims.by_name()
    if target == "all":
        return list(claims.CLAIMS)
    if target in claims.sweeps():
        return claims.for_sweep(target)
    if target in table:
        return [table[target]]
    raise ReproduceError(f"unknown claim {target!r}{suggestion(target, choices())}; valid choices: "
                         f"{', '.join(choices())}")


def budget_overrides(budget: str | BudgetTable, name: str, table: BudgetTable | None = None) -> dict[str, Any]:
    """The overrides of one sweep under a budget name (or a budget table: sweep -> overrides, for tests).
    ``table`` (tests): the named budget's overrides, in place of the sweep files' own."""
    if isinstance(budget, str):
        if budget not in BUDGET_WORDS:
            raise ReproduceError(f"unknown budget {budget!r}; valid choices: {', '.join(BUDGET_WORDS)}")
        if table is not None:
            return dict(table.get(name, {}))
        if budget == "paper":
            return {}
        try:
            return spec.load(name).budget_overrides(budget)
        except SweepError as err:
            raise ReproduceError(str(err)) from None
    return dict(budget.get(name, {}))


# ---------------------------------------------------------------------------------------------------
# Running the sweeps
# ---------------------------------------------------------------------------------------------------

class _Session:
    """What the sweeps of one ``reproduce`` call share: one Ray connection (bench.pipeline.run_sweep reuses an
    initialised Ray), opened on first need, and the error messages already printed (a missing MNIST
    stops several sweeps alike: the later ones say 'the same error as above')."""

    def __init__(self, address: str | None, verbose: bool):
        self.address, self.verbose, self.started = address, verbose, False
        self.reported: set[str] = set()

    def ensure(self) -> None:
        import ray  # deferred: Ray starts slowly, and listing or checking claims never needs it

        if ray.is_initialized():
            return
        for k, v in QUIET_ENV.items():
            if not self.verbose or k != "RAY_AIR_NEW_OUTPUT":
                os.environ.setdefault(k, v)
        self.started = connect(self.address, self.verbose)

    def close(self) -> None:
        if self.started:
            import ray  # deferred: see ensure

            ray.shutdown()
            self.started = False


def run_sweep(name: str, folder: Path, overrides: dict[str, Any], session: _Session, *,
              verbose: bool = False, quiet: bool = False, report_only: bool = False,
              allow_changes: bool = False, partial: bool = False) -> SweepResult:
    """Run (or continue, when ``folder`` holds it already) one sweep; errors become a result with a reason.
    ``report_only``: train nothing; a sweep with unfinished trials (or none yet) is reported as not run, why
    and how far it got given; with ``partial``, a directory with some finished trials is judged on them instead
    (``SweepResult.partial`` says what is missing; the report lists the runs still to come)."""
    result = SweepResult(name, None, overrides=overrides)
    started = time.perf_counter()
    try:
        loaded = spec.load(name, overrides)
        result.description, result.version = loaded.description, loaded.version
        needs_ray = True
        sweep_dir = SweepDir(folder)
        if sweep_dir.exists():
            try:
                target = check_continuable(name, folder, overrides, report_only=report_only)
            except ReproduceError as err:  # --report-only, a budget beyond the directory: --partial judges what is there
                if not (partial and report_only and str(err).startswith("--report-only:")):
                    raise
                target, result.partial = None, str(err).split(": ", 1)[1].split("; the same command")[0]
            kwargs: dict[str, Any] = {"resume": folder, **({"grow_to": target} if target else {}),
                                      **({"allow_changes": True} if allow_changes else {})}
            _, trials = sweep_dir.read_meta()
            needs_ray = bool(target) or bool({t.index for t in trials} - sweep_dir.finished_indices())
            if report_only and needs_ray and {t.index for t in trials} <= tabled_indices(sweep_dir):
                needs_ray = False  # a finished sweep kept without its records (a runs.csv committed under docs/)
            done = (sweep_dir.finished_indices() | tabled_indices(sweep_dir)) & {t.index for t in trials}
            if report_only and needs_ray and partial and done:
                needs_ray = False  # --partial: judged on the trials that have finished, the others listed as to come
                result.partial = "; ".join(filter(None, [result.partial, f"{len(done)} of the directory's "
                                                                          f"{len(trials)} trials have finished"]))
            if report_only and needs_ray:
                raise ReproduceError(f"--report-only: {len(done)} "
                                     f"of {len(trials)} trials have finished; the same command without "
                                     "--report-only continues it" + ("" if partial else
                                                                      " (--partial judges the finished ones)"))
        elif report_only:
            raise ReproduceError("--report-only: not run yet")
        else:
            kwargs = {"out": folder, **overrides}
        if not quiet:
            print(f"\n== {name}: {loaded.description}\n   overrides: {overrides_text(overrides).replace('`', '')}",
                  flush=True)
        if needs_ray:  # (a finished sweep only has its tables rebuilt)
            session.ensure()
        if report_only and result.partial and sweep_dir.record_files():  # runs.csv may predate the last records
            runs = load_runs(sweep_dir.root)
        elif report_only:  # its tables and page as the run that finished it wrote them
            runs = read_runs(sweep_dir)
        else:
            runs = pipeline.run_sweep(name, verbose=verbose, quiet=quiet, **kwargs)
        result.interrupted = bool(runs.attrs.get("interrupted"))
        result.runs = with_phase_accuracy(runs, sweep_dir.read_records())
        result.trial_s, result.slots = float(runs.attrs.get("trial_s") or 0.0), int(runs.attrs.get("slots") or 0)
        # a claim's largest lr ratio (or epochs) is the budget's, finished or not, ok or not (--partial: runs to come;
        # else runs that ended in error or diverged): it is never the next value down read as 'the largest'
        result.planned = to_come.config_frame(loaded.trials())
    except (SweepError, ResourceError, ReproduceError) as err:
        result.reason = " ".join(getattr(err, "problems", None) or [str(err)])
    except Exception as err:  # a failing sweep must not cost the other sweeps' results
        result.reason = f"{type(err).__name__}: {err}"
        if verbose:
            traceback.print_exc()
    result.wall_s = time.perf_counter() - started
    if result.reason:
        said = result.reason in session.reported
        print(f"error: {name}: " + ("the same error as above" if said else result.reason), file=sys.stderr, flush=True)
        session.reported.add(result.reason)
    return result


def fit_to_data(name: str, overrides: dict[str, Any], root: str | None) -> tuple[dict[str, Any], list[str]]:
    """The overrides with ``n_train`` / ``n_test`` capped at the samples the data files hold, and a note for
    the report per capped field. A budget written for the full datasets (the seed budget takes the first 10,048
    MNIST training images) then runs on a smaller copy (e.g. the 8,000 training digits of a 10,000-digit
    MNIST) with all of its samples, and says so, instead of refusing every trial. Datasets that cannot be
    loaded here are left as they are: the sweep itself then reports why."""
    try:
        sweep = spec.load(name, overrides)
        if sweep.dataset in EMBEDDED:
            return overrides, []
        configs = [{**preset_values(t.config.get("preset")), **t.config} for t in sweep.trials()]
        data = load_dataset(sweep.dataset, data_root=root)
    except Exception:  # noqa: BLE001 (missing or damaged files: the sweep's own run says why)
        return overrides, []
    out, notes = dict(overrides), []
    for field_, split, have in (("n_train", "training", len(data.y_train)), ("n_test", "test", len(data.y_test))):
        values = {c.get(field_) for c in configs} - {None}
        if values and max(values) > have:
            out[field_] = have
            notes.append(f"`{field_}`: the budget asks for {', '.join(f'{v:,}' for v in sorted(values))} {split} "
                         f"samples of {sweep.dataset}; the data files here hold {have:,}, so all {have:,} are taken "
                         f"(`{field_}={have}` added to the overrides)"
                         + ("; the validation split is carved out of them" if field_ == "n_train" else ""))
            continue
        for n, how in sorted({(c.get(field_), c.get("subset", Config.subset)) for c in configs} - {(None, None)},
                             key=str):
            got = subset(data, n, None, how=how) if field_ == "n_train" else subset(data, None, n, how=how)
            y = got.y_train if field_ == "n_train" else got.y_test
            if n is not None and len(y) < n:  # e.g. the first n split evenly over source datasets, one too small
                parts = ""
                if data.grouping is not None and data.group_names:
                    counts = torch.bincount(torch.tensor(data.grouping)[y], minlength=len(data.group_names)).tolist()
                    parts = " (" + " + ".join(f"{k:,} {g}" for k, g in zip(counts, data.group_names)) + ")"
                notes.append(f"`{field_}`: the budget asks for {n:,} {split} samples of {sweep.dataset} ({how} subset); "
                             f"the data files here give {len(y):,}{parts}")
    return out, notes


def tabled_indices(sweep_dir: SweepDir) -> set[int]:
    """The trial indices its runs.csv holds a row for, whatever their status (empty without a runs.csv)."""
    path = sweep_dir.table_path("runs.csv")
    if not path.is_file():
        return set()
    try:
        return {int(i) for i in pd.read_csv(path, usecols=["index"])["index"].dropna()}
    except (ValueError, KeyError):
        return set()


def read_runs(sweep_dir: SweepDir) -> pd.DataFrame:
    """A finished sweep's runs table: its runs.csv, else built from its records (``bench.table``)."""
    runs = sweep_dir.read_runs_csv()
    return runs if runs is not None else load_runs(sweep_dir.root)


def make_figures(result: SweepResult, folder: Path, figures: Path) -> None:
    if result.runs is None or claims.sweep_entry(result.name).figures is None:
        return
    try:
        result.figures = PLOTS[result.name](result.runs, SweepDir(folder).read_records(), figures)
    except Exception as err:  # a figure must not cost the report
        result.figure_errors.append(f"{type(err).__name__}: {err}")
        print(f"warning: {result.name}: a figure failed: {type(err).__name__}: {err}", file=sys.stderr)


def reproduce(target: str = "all", *, budget: str | BudgetTable = "small",
              data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
              address: str | None = None, verbose: bool = False, quiet: bool = False,
              budget_table: BudgetTable | None = None, report_only: bool = False,
              allow_changes: bool = False, partial: bool = False) -> Reproduction:
    """Run the sweeps of the chosen claims, judge the claims, write REPRODUCTION.md; returns what it found.

    ``budget``: a budget name, or a budget table (sweep -> overrides; the report says ``custom``).
    ``budget_table`` (tests): the overrides of the named budget, in place of the sweep files' own.
    ``report_only``: train nothing: judge the claims of the finished sweeps, report the others as not run
    (with how many of their trials have finished). ``allow_changes``: continue (or grow) a sweep directory although
    its sweep file, data or code changed since it started (``bench.sweep --allow-changes``; its page marks the mixture).
    ``partial`` (with ``report_only``): judge the finished runs of a directory that has runs still to come.
    """
    chosen = select_claims(target)
    names = [n for n in SWEEPS if any(c.sweep == n for c in chosen)]
    plans = {n: budget_overrides(budget, n, budget_table) for n in names}
    root = str(Path(data_root).expanduser().resolve()) if data_root is not None else None
    out = Path(out).resolve() if out is not None else default_out("reproduce")
    out.mkdir(parents=True, exist_ok=True)
    try:  # one writer per reproduction directory, for the whole call (bench.sweep.lock)
        lock.acquire(out)
    except lock.LockedError as err:
        raise ReproduceError(f"--out {out}: {err}") from None
    plans = {n: {**o, "data_root": root} if root is not None and _dataset(n) not in EMBEDDED else o
             for n, o in plans.items()}
    notes: dict[str, list[str]] = {}
    for n in names:
        plans[n], notes[n] = fit_to_data(n, plans[n], root)
    for n in names:  # before any work: a directory of an earlier run must match (--report-only: said per sweep)
        if not report_only:
            check_continuable(n, out / n, plans[n])
    continued = {n for n in names if SweepDir(out / n).exists()}
    previous = _previous(out)
    started = time.perf_counter()
    results: dict[str, SweepResult] = {}
    session = _Session(address, verbose)
    try:
        for n in names:
            results[n] = run_sweep(n, out / n, plans[n], session, verbose=verbose, quiet=quiet, report_only=report_only,
                                   allow_changes=allow_changes, partial=partial)
            results[n].notes = notes[n]
            if results[n].interrupted:
                break
    finally:
        session.close()
    for n, res in results.items():
        make_figures(res, out / n, out / "figures")
        before = (previous.get("sweeps") or {}).get(n) or {}
        if report_only:  # nothing trained in this call: the sweep's times are those the calls that ran it recorded
            res.wall_s = float(before["wall_s"]) if before.get("wall_s") is not None else math.nan
            res.slots = res.slots or int(before.get("slots") or 0)
            res.trial_s = trial_seconds(res.runs)  # every finished trial's time, from runs.csv
        elif n in continued:  # the times of the earlier calls on this directory count too
            res.wall_s += float(before.get("wall_s") or 0.0)
            res.trial_s += float(before.get("trial_s") or 0.0)
            res.slots = res.slots or int(before.get("slots") or 0)
    verdicts = evaluate_all(chosen, lambda sweep: (results[sweep].runs, results[sweep].reason) if sweep in results
                            else (None, "interrupted before this sweep"),
                            lambda sweep: results[sweep].planned if sweep in results else None)
    wall = time.perf_counter() - started
    rep = Reproduction(out, budget if isinstance(budget, str) else "custom", results, verdicts, wall, root,
                       controls=controls_for(results, plans, out, root, quiet),
                       earlier={n: e for n, e in (previous.get("sweeps") or {}).items()  # kept for the next call
                                if n not in results and isinstance(e, dict)})
    write_report(rep)
    try:
        write_reproduction_report(out)
    except Exception as err:  # the page must not cost REPRODUCTION.md and the sweeps' results, already written
        print(f"warning: report.html not written ({type(err).__name__}: {err}); rebuild it with "
              f"`python -m bench.report {out}`", file=sys.stderr, flush=True)
    lock.release(out)
    return rep


CONTROLS_FILE = "controls.json"


def controls_for(results: dict[str, SweepResult], plans: dict[str, dict[str, Any]], out: Path, root: str | None,
                 quiet: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """The controls of the cheating scores (``moe.training.controls``: a mixture that cheats by construction, a hash
    router that cannot, a collapsed router), beside the cheating claims when the cheating sweep ran: on gm6, and
    on the cheating sweep's dataset with its subset sizes. Computed once per output directory (``controls.json``;
    a few seconds); a control that cannot run is left out with a warning, never costing the report."""
    res = results.get("cheating")
    if res is None or res.runs is None:
        return {}
    path = out / CONTROLS_FILE
    try:
        return {d: {k: {m: math.nan if v is None else v for m, v in scores.items()} for k, scores in kinds.items()}
                for d, kinds in json.loads(path.read_text()).items()}  # (NaN was written as null)
    except (OSError, ValueError, AttributeError):
        pass
    sizes = {k: plans["cheating"].get(k) for k in ("n_train", "n_test") if plans["cheating"].get(k) is not None}
    found: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, fields in (("gm6", {}), (_dataset("cheating"), {"data_root": root, **sizes})):
        if dataset in found or not dataset:
            continue
        try:
            if not quiet:
                print(f"controls of the cheating scores on {dataset} ...", flush=True)
            found[dataset] = run_controls(dataset, **{k: v for k, v in fields.items() if v is not None})
        except Exception as err:  # noqa: BLE001 (a control must not cost the report)
            print(f"warning: the controls on {dataset} did not run ({type(err).__name__}: {err})", file=sys.stderr)
    write_json_atomic(path, found)
    return found


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
