"""``python -m bench.sweep [NAME]``: run a sweep of ``sweeps/NAME.yaml`` with Ray Tune and write its tables.

The driver validates every trial config before touching Ray, loads each dataset once (shared with the
trials through the object store by ``tune.with_parameters``), asks Ray for a CPU share per trial (and a
GPU share when the cluster has GPUs) with ``tune.with_resources``, refuses a request no node can hold,
and runs ``bench.trial.trainable`` under ``tune.Tuner`` with reused actors.

Results directory (``--out``, default ``results/<sweep>-<timestamp>``, absolute and unique)::

    sweep.json          the resolved sweep (file, overrides, resources) and every trial's config
    records/NNNN.json   one run record per finished trial (ok, diverged, error or stopped): the truth
    ray/, ray-resume-N/ Ray's experiment directories (tuner.pkl, experiment state, trial dirs
                        trial_NNNN/ holding the trial's latest checkpoint while it runs)
    runs.csv, table.md, table.tex, pareto.csv, tradeoff.png, heatmaps/<router>.png   (see bench.table)

Checkpoints: every trial reports its whole training state after each epoch (``bench.trial``); Ray keeps
the latest one per trial (``CheckpointConfig(num_to_keep=1)``), and the driver deletes it once the
trial has an ok, diverged or stopped record (a stopped trial's record is scored from it first; an
``error`` trial keeps it, for ``--retry-errors``).

Resume (``--resume DIR``) reruns exactly the trials without a record, in a fresh Ray experiment, each
from the latest checkpoint an earlier experiment of DIR holds for it (from its last finished epoch; the
record says ``resumed_from_epoch``), else from epoch 1. A record is written the moment the driver
receives the trial's last result, so neither Ctrl-C nor a killed driver loses a finished trial or
duplicates it. ``--resume DIR --retry-errors`` also reruns the ``error`` trials, each from its checkpoint
(their error records move to ``records/errors/``).

Failures: a trial that raises (or whose node dies) is retried ``--max-failures`` times (default 1), each
retry from its latest checkpoint, then kept as an ``error`` record with its message; a run whose loss
becomes NaN/inf is an ``diverged`` record (``moe.train.run`` stops it); a trial stopped by
``--scheduler asha`` is a ``stopped`` record scored like an ``ok`` one, from the model of its latest
checkpoint (``bench.scored_from_epoch``; ``bench.not_scored`` says why when that cannot be done, and the
record keeps only its last epoch's accuracy).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import spec, table
from bench.cluster import QUIET_ENV, ResourceError, connect, nodes, quiet_ray_logs, resolve_resources, unreachable  # noqa: F401
from bench.progress import _Progress, cost, full_config, progress_callback, record_path
from bench.spec import SweepError, Trial
from moe.record import error_record, versions, write_json_atomic

SCHEDULERS = ("fifo", "asha")
OVERHEAD_TARGET = 1.3


# ---------------------------------------------------------------------------------------------------
# Preparing a sweep (no Ray)
# ---------------------------------------------------------------------------------------------------

def default_out(name: str, root: str | os.PathLike = "results") -> Path:
    """``results/<sweep>-<YYYYmmdd-HHMMSS>`` (absolute; ``-2``, ``-3``... if taken)."""
    base = Path(root).resolve() / f"{Path(name).stem}-{datetime.now():%Y%m%d-%H%M%S}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def prepare(name: str, overrides: dict[str, Any] | None = None,
            faults: dict[int | str, str] | None = None) -> tuple[spec.Sweep, list[Trial]]:
    """Load, override and validate a sweep; mark test faults (trial index or configuration name -> kind)."""
    from bench.trial import FAULTS, is_fault

    sweep = spec.load(name, overrides)
    trials = spec.validate(sweep)
    for key, kind in (faults or {}).items():
        if not is_fault(kind):
            raise SweepError(f"faults: unknown fault {kind!r}; valid: {', '.join(FAULTS)}")
        hits = [t for t in trials if key in (t.index, t.name)]
        if not hits:
            raise SweepError(f"faults: no trial has index or name {key!r}")
        for t in hits:
            t.fault = kind
    return sweep, trials


def write_state(out: Path, sweep: spec.Sweep, trials: list[Trial]) -> None:
    write_json_atomic(out / "sweep.json", {"sweep": sweep.to_dict(), "trials": [t.to_dict() for t in trials],
                                           "created": datetime.now().isoformat(timespec="seconds"),
                                           "versions": versions()})


def read_state(out: Path) -> tuple[dict[str, Any], list[Trial]]:
    try:
        state = json.loads((out / "sweep.json").read_text())
    except FileNotFoundError:
        raise SweepError(f"--resume {out}: no sweep.json there; not a sweep directory") from None
    except (OSError, json.JSONDecodeError) as err:
        raise SweepError(f"--resume {out}: cannot read sweep.json: {err}") from None
    return state["sweep"], [Trial(**t) for t in state["trials"]]


def finished_indices(out: Path) -> set[int]:
    """Trial indices that already have a record (any status)."""
    done = set()
    for p in (out / "records").glob("*.json"):
        try:
            done.add(int(p.stem))
        except ValueError:
            pass
    return done


def record_statuses(out: Path) -> list[tuple[int, Path, str | None]]:
    """(trial index, path, status) of every readable record of a sweep directory, in index order."""
    found = []
    for path in sorted((out / "records").glob("*.json")):
        try:
            found.append((int(path.stem), path, json.loads(path.read_text()).get("status")))
        except (ValueError, OSError, json.JSONDecodeError):
            continue
    return found


def set_aside_errors(out: Path) -> list[int]:
    """Move the ``error`` records to ``records/errors/NNNN.K.json`` (K = 1, 2, ...: nothing is overwritten), so
    that a resume runs those trials again, each from its checkpoint; returns their indices."""
    moved = []
    for index, p, status in record_statuses(out):
        if status != "error":
            continue
        (out / "records" / "errors").mkdir(exist_ok=True)
        k = 1 + sum(1 for _ in (out / "records" / "errors").glob(f"{index:04d}.*.json"))
        os.replace(p, out / "records" / "errors" / f"{index:04d}.{k}.json")
        moved.append(index)
    return moved


def checkpoint_dirs(out: Path, index: int) -> list[Path]:
    """Every checkpoint directory the Ray experiments of a sweep directory hold for trial ``index``."""
    return sorted(out.glob(f"ray*/trial_{index:04d}/checkpoint_*"))


def latest_states(out: Path, trials: list[Trial]) -> dict[int, bytes]:
    """Trial index -> the training state of the furthest epoch any earlier experiment checkpointed for it.

    A checkpoint cut short (the driver killed while Ray copied it) cannot be read and is passed over.
    """
    from bench.trial import STATE_FILE
    from moe.train import StateMismatch, TrainState

    states: dict[int, bytes] = {}
    for t in trials:
        best = -1
        for folder in checkpoint_dirs(out, t.index):
            try:
                data = (folder / STATE_FILE).read_bytes()
                epoch = TrainState.from_bytes(data).epoch
            except (OSError, StateMismatch):
                continue
            if epoch > best:
                states[t.index], best = data, epoch
    return states


def drop_checkpoints(out: Path) -> None:
    """Delete the checkpoints of trials that need them no more: those with an ok, diverged or stopped record."""
    import shutil

    for index, _, status in record_statuses(out):
        if status != "error":
            for folder in checkpoint_dirs(out, index):
                shutil.rmtree(folder, ignore_errors=True)


def load_datasets(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Each dataset the trials need, loaded once at full size (the runs take their own subsets)."""
    from bench.trial import dataset_key
    from moe.data import load_dataset

    out: dict[str, dict[str, Any]] = {}
    for t in trials:
        key = dataset_key(t.config)
        if key not in out:
            c = t.config
            try:
                out[key] = load_dataset(c.get("dataset", "gm6"), data_root=c.get("data_root"),
                                        seed=c.get("data_seed", 0)).to_numpy()
            except (FileNotFoundError, OSError) as err:
                raise SweepError(f"dataset {c.get('dataset')!r}: cannot load it: {err}") from None
    return out


# ---------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------

def run(name: str | None = None, out: str | os.PathLike | None = None, address: str | None = None, *,
        resume: str | os.PathLike | None = None, retry_errors: bool = False, max_failures: int = 1,
        scheduler: str | None = None, verbose: bool = False, quiet: bool = False,
        faults: dict[int | str, str] | None = None,
        _interrupt_after: int | None = None, **overrides: Any) -> pd.DataFrame:
    """Run (or resume) a sweep; returns the runs table (``runs.csv``) as a DataFrame.

    ``name``: a sweep of sweeps/ or a .yaml path (default ``quick``; with ``resume``, the directory's own).
    ``retry_errors`` (with ``resume``): run the ``error`` trials again too (their records move to records/errors/).

    ``overrides``: ``--set`` pairs, e.g. ``run("quick", epochs=2, experts=[2, 4], **{"resources.cpu": 2})``.
    ``faults`` (tests): trial index or configuration name -> "raise" | "diverge" |
    "crash_after_epoch_K" (raises once, after epoch K's checkpoint). ``df.attrs`` holds
    ``out``, ``interrupted``, ``wall_s`` (Tuner.fit), ``total_s`` (this call), ``trial_s``, ``slots`` and
    ``overhead`` = wall_s / (trial_s / slots).
    """
    started = time.perf_counter()
    if scheduler not in (None, *SCHEDULERS):
        raise SweepError(f"--scheduler {scheduler!r}: valid choices: {', '.join(SCHEDULERS)}")
    if not isinstance(max_failures, int) or max_failures < 0:
        raise SweepError(f"--max-failures: must be an integer >= 0, got {max_failures!r}")
    datasets = None
    if retry_errors and resume is None:
        raise SweepError("--retry-errors goes with --resume DIR: it reruns the error trials of that sweep")
    if resume is not None:
        if overrides or faults:
            raise SweepError("--resume continues a sweep as it was defined: no --set overrides")
        out = Path(resume).resolve()
        meta, trials = read_state(out)
        sweep = spec.from_mapping({k: meta[k] for k in spec.TOP_KEYS if k in meta}, name=meta["name"], path=meta["path"])
        if name is not None and Path(name).stem != meta["name"]:
            raise SweepError(f"--resume {out}: that directory holds sweep {meta['name']!r}, not {name!r}")
    else:
        sweep, trials = prepare(name or "quick", overrides, faults)
        out = Path(out).resolve() if out is not None else default_out(sweep.name)
        if (out / "sweep.json").exists():
            raise SweepError(f"--out {out}: already holds a sweep; continue it with --resume {out} or pick a new directory")
        datasets = load_datasets(trials)  # before anything is written: missing files leave no half-made directory
        out.mkdir(parents=True, exist_ok=True)
        write_state(out, sweep, trials)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if retry_errors:
        moved = set_aside_errors(out)
        say(f"{len(moved)} error trial(s) to run again; their records are kept in {out / 'records' / 'errors'}")
    done = finished_indices(out)
    todo = [t for t in trials if t.index not in done]
    stats: dict[str, Any] = {"out": str(out), "interrupted": False, "wall_s": 0.0, "trial_s": 0.0, "slots": 0,
                             "overhead": math.nan, "n_run": 0}
    if todo:
        stats.update(_run_trials(sweep, trials, todo, out, address, max_failures, scheduler, verbose, quiet,
                                 _interrupt_after, len(done), datasets))
    else:
        say(f"{sweep.name}: all {len(trials)} trials already have records in {out}")
    built = table.build(out)
    runs = built["runs"]
    runs.attrs.update(stats, total_s=time.perf_counter() - started)
    return runs


def _run_trials(sweep, trials, todo, out, address, max_failures, scheduler, verbose, quiet, interrupt_after,
                n_done, datasets=None) -> dict[str, Any]:
    for k, v in QUIET_ENV.items():
        if not verbose or k != "RAY_AIR_NEW_OUTPUT":
            os.environ.setdefault(k, v)
    if datasets is None:
        datasets = load_datasets(todo)  # before Ray: a missing file fails fast
    states = latest_states(out, todo)  # what earlier experiments of this directory checkpointed (--resume)
    import ray
    from ray import tune

    from bench.trial import trainable

    started_here = connect(address, verbose)
    try:
        res = resolve_resources(sweep.resources, nodes(), len(todo))
        if res["gpu"] > 0:  # trials on a GPU share run on CUDA unless the sweep says otherwise
            for t in todo:
                t.config.setdefault("device", "cuda")
        resume_states = {index: ray.put(data) for index, data in states.items()}  # one object each: a trial fetches its own
        fn = tune.with_resources(tune.with_parameters(trainable, datasets=datasets, resume_states=resume_states),
                                 {"cpu": res["cpu"], "gpu": res["gpu"]})
        progress = progress_callback(out, trials, todo, quiet=quiet, interrupt_after=interrupt_after, datasets=datasets)
        todo = sorted(todo, key=lambda t: -cost(t.config))  # longest first: a shorter tail on the last slots
        tuner = tune.Tuner(
            fn,
            param_space={"trial": tune.grid_search([t.to_dict() for t in todo])},
            tune_config=tune.TuneConfig(reuse_actors=True, scheduler=_scheduler(scheduler, todo),
                                        max_concurrent_trials=res["slots"],
                                        trial_dirname_creator=lambda tr: f"trial_{tr.config['trial']['index']:04d}"),
            run_config=tune.RunConfig(name=_experiment_name(out), storage_path=str(out), verbose=2 if verbose else 0,
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      callbacks=[progress]),
        )
        if not quiet:
            gpu = f" + {res['gpu']:g} GPU" if res["gpu"] else ""
            checkpointed = f", {len(states)} from a checkpoint" if states else ""
            print(f"{sweep.name}: {len(todo)} trial(s) to run ({n_done} done before{checkpointed}) on {res['slots']} slot(s) of "
                  f"{res['cpu']:g} CPU{gpu} each; results in {out}", flush=True)
        t0 = time.perf_counter()
        with quiet_ray_logs(not verbose):  # errors show as progress lines and error rows instead
            results = tuner.fit()
        wall = time.perf_counter() - t0
        _reconcile(results, out, progress)
        drop_checkpoints(out)
    finally:
        if started_here:
            import ray

            ray.shutdown()
    missing = [t.index for t in todo if not record_path(out, t.index).exists()]
    trial_s = sum(progress.trial_s)
    ideal = trial_s / res["slots"] if res["slots"] else math.nan
    return {"interrupted": bool(missing), "wall_s": wall, "trial_s": trial_s, "slots": res["slots"],
            "overhead": wall / ideal if ideal else math.nan, "n_run": len(progress.finished), "missing": missing}


def _experiment_name(out: Path) -> str:
    """``ray`` for the first run of a sweep directory, ``ray-resume-N`` for the N-th resume."""
    if not (out / "ray").exists():
        return "ray"
    n = 1
    while (out / f"ray-resume-{n}").exists():
        n += 1
    return f"ray-resume-{n}"


def _scheduler(name: str | None, todo: list[Trial]):
    if name in (None, "fifo"):
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = max(int(t.config.get("epochs", 1) or 1) for t in todo)
    return ASHAScheduler(time_attr="epoch", metric="test_accuracy", mode="max", max_t=max(epochs, 1),
                         grace_period=max(1, epochs // 4), reduction_factor=2, stop_last_trials=False)


def _reconcile(results, out: Path, progress: _Progress) -> None:
    """Write the record of any finished trial the callback missed (from the result grid)."""
    for r in results:
        index = (r.config or {}).get("trial", {}).get("index")
        if index is None or record_path(out, index).exists():
            continue
        metrics = r.metrics or {}
        if "record_json" in metrics:
            rec = json.loads(metrics["record_json"])
        elif r.error is not None:
            rec = error_record(full_config(progress.trials[index].config), getattr(r.error, "cause", None) or r.error)
            rec["bench"] = {"index": index, "name": progress.trials[index].name, "trial_s": None}
        else:
            continue  # unfinished (interrupted): resume reruns it
        write_json_atomic(record_path(out, index), rec)


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep",
                                 description="Run a sweep of sweeps/NAME.yaml with Ray Tune and write its trade-off tables.")
    ap.add_argument("name", nargs="?", default=None, help="sweep name (see --list) or a .yaml file (default: quick)")
    ap.add_argument("--list", action="store_true", help="list the sweeps with their trial counts and exit")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field (config field, budget.X, settings.X, grid.X, resources.cpu|gpu|max_concurrent); "
                         "value read as YAML, e.g. --set epochs=2 --set experts=[2,4]")
    ap.add_argument("--budget", default=None, metavar="NAME",
                    help="apply a named budget of the sweep file (its budgets: section), before any --set")
    ap.add_argument("--data-root", default=None, metavar="DIR",
                    help="where the MNIST-family files are (same as --set data_root=DIR; default: $MOE_DATA, "
                         "else ~/.cache/moe-interp-bench)")
    ap.add_argument("--dry-run", action="store_true", help="print the trial configs and exit")
    ap.add_argument("--out", default=None, help="results directory (default: results/<sweep>-<timestamp>)")
    ap.add_argument("--resume", default=None, metavar="DIR",
                    help="continue an interrupted sweep in DIR: trials without a record run again, each from its "
                         "latest checkpoint (its last finished epoch) when DIR holds one")
    ap.add_argument("--retry-errors", action="store_true",
                    help="with --resume: run the trials that ended in error again too, each from its latest "
                         "checkpoint (their error records move to DIR/records/errors/)")
    ap.add_argument("--max-failures", type=int, default=None,
                    help="retries of a trial that raises or loses its node, each from its latest checkpoint (default: 1)")
    ap.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="asha: stop weak trials early")
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    ap.add_argument("-v", "--verbose", action="store_true", help="Ray's own output and worker logs")
    return ap


def list_sweeps() -> int:
    rows = []
    for name in spec.available():
        try:
            sweep = spec.load(name)
            problem = ""
            try:
                spec.validate(sweep)
            except SweepError as err:
                problem = err.problems[0].split(": ", 1)[-1]
            rows.append((name, str(spec.count_trials(sweep)), sweep.dataset, f"v{sweep.version}", sweep.description, problem))
        except SweepError as err:
            rows.append((name, "?", "?", "?", "", str(err)))
    w = max([5] + [len(r[0]) for r in rows])
    wd = max([7] + [len(r[2]) for r in rows])
    print(f"{'sweep':<{w}}  trials  {'dataset':<{wd}}  version  description")
    for name, n, ds, ver, desc, problem in rows:
        print(f"{name:<{w}}  {n:>6}  {ds:<{wd}}  {ver:<7}  {desc}")
        if problem:
            print(f"{'':<{w}}  {'':>6}  not runnable here yet: {problem}")
    return 0


def dry_run(name: str, overrides: dict[str, Any]) -> int:
    sweep = spec.load(name, overrides)
    trials = sweep.trials()
    print(f"{sweep.name} v{sweep.version}: {len(trials)} trials on {sweep.dataset}; resources per trial {sweep.resources}")
    print("(fields not shown take the defaults of moe.config.Config)")
    width = max(len(t.name) for t in trials) if trials else 0
    for t in trials:
        print(f"{t.index:>4}  {t.name:<{width}}  {json.dumps(t.config)}")
    spec.validate(sweep, trials)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.list:
            return list_sweeps()
        overrides = spec.parse_set(args.sets)
        if args.budget is not None:
            if args.resume:
                raise SweepError("--resume continues a sweep as it was defined: no --budget with it")
            overrides = {**spec.load(args.name or "quick").budget_overrides(args.budget), **overrides}
        if args.data_root is not None:
            overrides.setdefault("data_root", str(Path(args.data_root).expanduser().resolve()))
        if args.dry_run:
            return dry_run(args.name or "quick", overrides)
        if args.resume and (args.sets or args.out or args.data_root):
            raise SweepError("--resume continues a sweep as it was defined: no --set, --data-root or --out with it")
        runs = run(args.name, out=args.out, address=args.address, resume=args.resume, retry_errors=args.retry_errors,
                   max_failures=1 if args.max_failures is None else args.max_failures, scheduler=args.scheduler,
                   verbose=args.verbose, **overrides)
    except (SweepError, ResourceError) as err:
        for line in getattr(err, "problems", None) or str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    return report(runs)


def report(runs: pd.DataFrame) -> int:
    """The table on screen, the overhead ratio, where the files are; exit status 130 when interrupted."""
    a = runs.attrs
    out = Path(a["out"])
    print()
    print((out / "table.md").read_text())
    if a.get("n_run"):
        ideal = a["trial_s"] / a["slots"]
        verdict = "ok" if a["overhead"] <= OVERHEAD_TARGET else f"above the {OVERHEAD_TARGET} target"
        print(f"timing: Tuner.fit wall {a['wall_s']:.1f} s for {a['n_run']} trials; sum of trial times "
              f"{a['trial_s']:.1f} s / {a['slots']} slots = {ideal:.1f} s; overhead ratio {a['overhead']:.2f} ({verdict}); "
              f"{a['total_s']:.1f} s in all with Ray's start and the tables")
    statuses = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"runs: {', '.join(f'{v} {k}' for k, v in statuses.items()) or 'none'}; results in {out}")
    if a.get("interrupted"):
        print(f"interrupted: {len(a.get('missing', []))} trial(s) unfinished; continue with: "
              f"python -m bench.sweep --resume {out}")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
