"""``python -m bench.sweep [NAME]``: run a sweep of ``sweeps/NAME.yaml`` with Ray Tune and write its tables.

The driver validates every trial config before touching Ray, loads each dataset once (shared with the
trials through the object store by ``tune.with_parameters``), asks Ray for a CPU share per trial (and a
GPU share when the cluster has GPUs) with ``tune.with_resources``, refuses a request no node can hold,
and runs ``bench.trial.trainable`` under ``tune.Tuner`` with reused actors.

Results directory (``--out``, default ``results/<sweep>-<timestamp>``, absolute and unique)::

    sweep.json          the resolved sweep (file, overrides, resources) and every trial's config
    records/NNNN.json   one run record per finished trial (ok, diverged, error or stopped): the truth
    ray/, ray-resume-N/ Ray's experiment directories (tuner.pkl, experiment state, trial dirs)
    runs.csv, table.md, table.tex, pareto.csv, tradeoff.png, heatmaps/<router>.png   (see bench.table)

Resume (``--resume DIR``) reruns exactly the trials without a record, in a fresh Ray experiment: a trial
is seconds long and not checkpointed, and a record is written the moment the driver receives the
trial's last result, so neither Ctrl-C nor a killed driver loses a finished trial or duplicates it.

Failures: a trial that raises is retried ``--max-failures`` times (default 1), then kept as an ``error``
record with its message; a run whose loss becomes NaN/inf is an ``diverged`` record (``moe.train.run``
stops it); a trial stopped by ``--scheduler asha`` is a ``stopped`` record with its last epoch's accuracy.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import spec, table
from bench.spec import SweepError, Trial
from moe.record import error_record, versions, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
             "RAY_DEDUP_LOGS": "1"}
SCHEDULERS = ("fifo", "asha")
OVERHEAD_TARGET = 1.3


class ResourceError(RuntimeError):
    """The trials ask for more than any node of the cluster has: Ray would wait forever."""


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
    from bench.trial import FAULTS

    sweep = spec.load(name, overrides)
    trials = spec.validate(sweep)
    for key, kind in (faults or {}).items():
        if kind not in FAULTS:
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


def record_path(out: Path, index: int) -> Path:
    return out / "records" / f"{index:04d}.json"


# ---------------------------------------------------------------------------------------------------
# Ray: connection, resources
# ---------------------------------------------------------------------------------------------------

def connect(address: str | None, verbose: bool) -> bool:
    """Attach to ``address`` (or $RAY_ADDRESS), else start a fresh local instance. True if this call connected.

    A Ray already initialised in this process (a notebook, the test session) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    problem = unreachable(address)
    if problem:
        raise ResourceError(f"cannot reach a Ray cluster at {address!r}: {problem} "
                            "(start one with `ray start --head`, or leave out --address for a local instance)")
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": verbose,
                              "logging_level": logging.INFO if verbose else logging.ERROR}
    if address == "local":
        kwargs["include_dashboard"] = False
    if Path.cwd().resolve() != REPO_ROOT:  # workers import bench and moe from the repository
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError, ValueError) as err:
        raise ResourceError(f"cannot reach a Ray cluster at {address!r}: {err}") from None
    return True


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why a ``host:port`` GCS address cannot be reached (None if it answers, or for local/auto/ray:// addresses).

    ray.init would otherwise retry for minutes before giving up on a wrong address.
    """
    if address in ("local", "auto") or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return "expected host:port (e.g. 127.0.0.1:6379)"
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except OSError as err:
        return err.strerror or str(err)


def nodes() -> list[dict[str, float]]:
    """Total resources of each alive node."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def resolve_resources(resources: dict[str, Any], cluster: list[dict[str, float]], n_trials: int) -> dict[str, Any]:
    """Per-trial request {cpu, gpu} and the number of trials that can run at once ("slots").

    Raises ResourceError when no node can hold one trial (Ray would otherwise wait silently).
    gpu "auto": no GPU on a cluster without one, else an equal share of the GPUs between the CPU slots.
    """
    cpu = float(resources.get("cpu", 1))
    total_cpu = sum(n.get("CPU", 0) for n in cluster)
    total_gpu = sum(n.get("GPU", 0) for n in cluster)
    max_cpu = max((n.get("CPU", 0) for n in cluster), default=0)
    if not cluster or max_cpu < cpu:
        raise ResourceError(
            f"each trial asks for {cpu:g} CPU(s) but the largest node of the cluster has {max_cpu:g} "
            f"({len(cluster)} node(s), {total_cpu:g} CPUs in all): no trial could ever start. "
            f"Ask for less, e.g. --set resources.cpu={max(max_cpu, 1):g}, or add a larger node.")
    cpu_slots = sum(math.floor(n.get("CPU", 0) / cpu + 1e-9) for n in cluster)
    gpu = resources.get("gpu", "auto")
    if gpu == "auto":
        gpu = 0.0 if total_gpu == 0 else min(1.0, math.floor(100 * total_gpu / cpu_slots) / 100 or 0.01)
    gpu = float(gpu)
    if gpu > 0:
        fits = [n for n in cluster if n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu]
        if not fits:
            raise ResourceError(
                f"each trial asks for {cpu:g} CPU(s) and {gpu:g} GPU(s) but no node has both "
                f"(the cluster has {total_gpu:g} GPUs): no trial could ever start. "
                "Use --set resources.gpu=0 (CPU only) or a fraction that fits.")
        slots = sum(min(math.floor(n.get("CPU", 0) / cpu + 1e-9), math.floor(n.get("GPU", 0) / gpu + 1e-9))
                    for n in cluster)
    else:
        slots = cpu_slots
    if resources.get("max_concurrent"):
        slots = min(slots, int(resources["max_concurrent"]))
    return {"cpu": cpu, "gpu": gpu, "slots": max(1, min(slots, n_trials))}


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
# Progress and records: a Tune callback in the driver
# ---------------------------------------------------------------------------------------------------

def cost(config: dict[str, Any]) -> float:
    """A rough relative cost of a trial (batches x experts), to start the longest first and to weigh the ETA."""
    from bench.spec import FIELD_DEFAULTS

    c = {**FIELD_DEFAULTS, **config}
    n_train = c["n_train"] or 2400
    return c["epochs"] * math.ceil(n_train / c["batch_size"]) * (1 + 0.1 * c["experts"] * c.get("top_k", 1))


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config with every default filled in (as a run record holds it)."""
    from moe.config import ConfigError, from_dict

    try:
        return from_dict(config).to_dict()
    except ConfigError:
        return dict(config)


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tune_callback_base():
    from ray import tune

    return tune.Callback


class _Progress:
    """Writes each finished trial's record and prints one line with an ETA (mixed into a tune.Callback)."""

    def __init__(self, out: Path, trials: list[Trial], todo: list[Trial], quiet: bool = False,
                 interrupt_after: int | None = None):
        self.out, self.quiet = out, quiet
        self.trials = {t.index: t for t in trials}
        self.cost = {t.index: cost(t.config) for t in todo}
        self.n_total, self.n_before = len(trials), len(trials) - len(todo)
        self.finished: list[int] = []
        self.trial_s: list[float] = []
        self.started = time.perf_counter()
        self.interrupt_after = interrupt_after  # test hook: a Ctrl-C after this many finished trials

    # -- Tune hooks
    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "record_json" in result:
            rec = json.loads(result["record_json"])
            self._save(trial, rec)

    def on_trial_complete(self, iteration, trials, trial, **info):
        index = trial.config["trial"]["index"]
        if index not in self.finished:  # stopped early by the scheduler: no final report
            last = trial.last_result or {}
            rec = {"schema": 1, "status": "stopped", "error": None, "config": full_config(self.trials[index].config),
                   "history": [], "test": {"accuracy": last.get("test_accuracy")}, "allocation": None,
                   "timing": {}, "versions": {}}
            rec["bench"] = {"index": index, "name": self.trials[index].name, "trial_s": None,
                            "epochs_run": last.get("epoch")}
            self._save(trial, rec)

    def on_trial_error(self, iteration, trials, trial, **info):
        index = trial.config["trial"]["index"]
        exc = _trial_exception(trial)
        rec = error_record(full_config(self.trials[index].config), exc)
        rec["bench"] = {"index": index, "name": self.trials[index].name, "trial_s": None}
        self._save(trial, rec)

    def on_trial_recover(self, iteration, trials, trial, **info):
        t = self.trials[trial.config["trial"]["index"]]
        exc = _trial_exception(trial)
        self._print(f"{'':>{2 * len(str(self.n_total)) + 3}} retry    {t.name} seed={t.config.get('seed', 0)}  "
                    f"after failure {trial.num_failures}: {type(exc).__name__}: {exc}")

    # -- helpers
    def _save(self, trial, rec: dict[str, Any]) -> None:
        index = rec["bench"]["index"]
        rec["bench"].update(trial_id=trial.trial_id, failures=trial.num_failures)
        write_json_atomic(record_path(self.out, index), rec)
        if index not in self.finished:
            self.finished.append(index)
            if rec["bench"].get("trial_s"):
                self.trial_s.append(rec["bench"]["trial_s"])
            self._line(rec)
        if self.interrupt_after is not None and len(self.finished) == self.interrupt_after:
            signal.raise_signal(signal.SIGINT)  # exactly what Ctrl-C does: Tune saves its state and returns

    def _line(self, rec: dict[str, Any]) -> None:
        done = self.n_before + len(self.finished)
        elapsed = time.perf_counter() - self.started
        done_cost = sum(self.cost.get(i, 0) for i in self.finished)
        left_cost = sum(self.cost.values()) - done_cost
        eta = elapsed * left_cost / done_cost if done_cost > 0 else math.nan
        t = self.trials[rec["bench"]["index"]]
        test = rec.get("test") or {}
        if rec["status"] == "error":
            what = (rec.get("error") or "")[:80]
        else:
            what = f"acc {_fmt(test.get('accuracy'))}  nmi {_fmt(test.get('nmi'))}"
        took = rec["bench"].get("trial_s")
        width = len(str(self.n_total))
        self._print(f"[{done:>{width}}/{self.n_total}] {rec['status']:<8} {t.name} seed={t.config.get('seed', 0)}  "
                    f"{what}  {'' if took is None else f'{took:.1f}s  '}elapsed {_clock(elapsed)}  ETA {_clock(eta)}")

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def _fmt(v: Any) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _trial_exception(trial) -> BaseException:
    """The user exception a trial raised (unwrapped from Ray's RayTaskError), or a RuntimeError with its text.

    Read from the driver's staging copy of the trial's error files (``trial.pickled_error_file`` /
    ``trial.error_file``): when the callback runs they need not have reached the storage path yet.
    """
    err, text = None, None
    for read in (lambda: _unpickle(trial.pickled_error_file), trial.get_pickled_error):
        try:
            err = read()
        except Exception:
            err = None
        if err is not None:
            cause = getattr(err, "cause", None)
            return cause if isinstance(cause, BaseException) else err
    for read in (lambda: Path(trial.error_file).read_text(), trial.get_error):
        try:
            text = read()
        except Exception:
            text = None
        if text:
            break
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return RuntimeError(lines[-1] if lines else "trial failed (no error message)")


def _unpickle(path: str | None):
    import pickle

    if not path or not Path(path).is_file():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def progress_callback(*args, **kwargs):
    """A ``tune.Callback`` subclass instance of :class:`_Progress` (Ray imported lazily)."""
    cls = type("SweepProgress", (_Progress, _tune_callback_base()), {})
    return cls(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------

def run(name: str = "quick", out: str | os.PathLike | None = None, address: str | None = None, *,
        resume: str | os.PathLike | None = None, max_failures: int = 1, scheduler: str | None = None,
        verbose: bool = False, quiet: bool = False, faults: dict[int | str, str] | None = None,
        _interrupt_after: int | None = None, **overrides: Any) -> pd.DataFrame:
    """Run (or resume) a sweep; returns the runs table (``runs.csv``) as a DataFrame.

    ``overrides``: ``--set`` pairs, e.g. ``run("quick", epochs=2, experts=[2, 4], **{"resources.cpu": 2})``.
    ``faults`` (tests): trial index or configuration name -> "raise" | "diverge". ``df.attrs`` holds
    ``out``, ``interrupted``, ``wall_s``, ``trial_s``, ``slots`` and ``overhead``.
    """
    if scheduler not in (None, *SCHEDULERS):
        raise SweepError(f"--scheduler {scheduler!r}: valid choices: {', '.join(SCHEDULERS)}")
    if not isinstance(max_failures, int) or max_failures < 0:
        raise SweepError(f"--max-failures: must be an integer >= 0, got {max_failures!r}")
    if resume is not None:
        if overrides or faults:
            raise SweepError("--resume continues a sweep as it was defined: no --set overrides")
        out = Path(resume).resolve()
        meta, trials = read_state(out)
        sweep = spec.from_mapping({k: meta[k] for k in spec.TOP_KEYS if k in meta}, name=meta["name"], path=meta["path"])
        if name not in ("quick", meta["name"]) and Path(name).stem != meta["name"]:
            raise SweepError(f"--resume {out}: that directory holds sweep {meta['name']!r}, not {name!r}")
    else:
        sweep, trials = prepare(name, overrides, faults)
        out = Path(out).resolve() if out is not None else default_out(sweep.name)
        if (out / "sweep.json").exists():
            raise SweepError(f"--out {out}: already holds a sweep; continue it with --resume {out} or pick a new directory")
        out.mkdir(parents=True, exist_ok=True)
        write_state(out, sweep, trials)
    done = finished_indices(out)
    todo = [t for t in trials if t.index not in done]
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    stats: dict[str, Any] = {"out": str(out), "interrupted": False, "wall_s": 0.0, "trial_s": 0.0, "slots": 0,
                             "overhead": math.nan, "n_run": 0}
    if todo:
        stats.update(_run_trials(sweep, trials, todo, out, address, max_failures, scheduler, verbose, quiet,
                                 _interrupt_after, len(done)))
    else:
        say(f"{sweep.name}: all {len(trials)} trials already have records in {out}")
    built = table.build(out)
    runs = built["runs"]
    runs.attrs.update(stats)
    return runs


def _run_trials(sweep, trials, todo, out, address, max_failures, scheduler, verbose, quiet, interrupt_after,
                n_done) -> dict[str, Any]:
    for k, v in QUIET_ENV.items():
        if not verbose or k != "RAY_AIR_NEW_OUTPUT":
            os.environ.setdefault(k, v)
    datasets = load_datasets(todo)  # before Ray: a missing file fails fast
    from ray import tune

    from bench.trial import trainable

    started_here = connect(address, verbose)
    try:
        res = resolve_resources(sweep.resources, nodes(), len(todo))
        if res["gpu"] > 0:  # trials on a GPU share run on CUDA unless the sweep says otherwise
            for t in todo:
                t.config.setdefault("device", "cuda")
        fn = tune.with_resources(tune.with_parameters(trainable, datasets=datasets), {"cpu": res["cpu"], "gpu": res["gpu"]})
        progress = progress_callback(out, trials, todo, quiet=quiet, interrupt_after=interrupt_after)
        todo = sorted(todo, key=lambda t: -cost(t.config))  # longest first: a shorter tail on the last slots
        tuner = tune.Tuner(
            fn,
            param_space={"trial": tune.grid_search([t.to_dict() for t in todo])},
            tune_config=tune.TuneConfig(reuse_actors=True, scheduler=_scheduler(scheduler, todo),
                                        max_concurrent_trials=res["slots"],
                                        trial_dirname_creator=lambda tr: f"trial_{tr.config['trial']['index']:04d}"),
            run_config=tune.RunConfig(name=_experiment_name(out), storage_path=str(out), verbose=2 if verbose else 0,
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      callbacks=[progress]),
        )
        if not quiet:
            gpu = f" + {res['gpu']:g} GPU" if res["gpu"] else ""
            print(f"{sweep.name}: {len(todo)} trial(s) to run ({n_done} done before) on {res['slots']} slot(s) of "
                  f"{res['cpu']:g} CPU{gpu} each; results in {out}", flush=True)
        t0 = time.perf_counter()
        with _quiet_ray_logs(not verbose):  # errors show as progress lines and error rows instead
            results = tuner.fit()
        wall = time.perf_counter() - t0
        _reconcile(results, out, progress)
    finally:
        if started_here:
            import ray

            ray.shutdown()
    missing = [t.index for t in todo if not record_path(out, t.index).exists()]
    trial_s = sum(progress.trial_s)
    ideal = trial_s / res["slots"] if res["slots"] else math.nan
    return {"interrupted": bool(missing), "wall_s": wall, "trial_s": trial_s, "slots": res["slots"],
            "overhead": wall / ideal if ideal else math.nan, "n_run": len(progress.finished), "missing": missing}


@contextlib.contextmanager
def _quiet_ray_logs(quiet: bool):
    """Ray Tune logs every trial error with its traceback and a closing 'Trials did not complete': silence them."""
    loggers = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray.air")] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


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
    ap.add_argument("--dry-run", action="store_true", help="print the trial configs and exit")
    ap.add_argument("--out", default=None, help="results directory (default: results/<sweep>-<timestamp>)")
    ap.add_argument("--resume", default=None, metavar="DIR", help="continue an interrupted sweep in DIR")
    ap.add_argument("--max-failures", type=int, default=None, help="retries of a trial that raises (default: 1)")
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
        name = args.name or "quick"
        if args.dry_run:
            return dry_run(name, overrides)
        if args.resume and (args.sets or args.out):
            raise SweepError("--resume continues a sweep as it was defined: no --set or --out with it")
        runs = run(name, out=args.out, address=args.address, resume=args.resume,
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
              f"{a['trial_s']:.1f} s / {a['slots']} slots = {ideal:.1f} s; overhead ratio {a['overhead']:.2f} ({verdict})")
    statuses = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"runs: {', '.join(f'{v} {k}' for k, v in statuses.items()) or 'none'}; results in {out}")
    if a.get("interrupted"):
        print(f"interrupted: {len(a.get('missing', []))} trial(s) unfinished; continue with: "
              f"python -m bench.sweep --resume {out}")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
