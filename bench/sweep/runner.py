"""Running the trials of a sweep of ``sweeps/NAME.yaml`` with Ray Tune, one record each (``run_trials``). The tables and
the report are built above it, by ``bench.pipeline.run_sweep`` (the CLI: ``bench.sweep.cli``).

The driver validates every trial config before touching Ray, loads each dataset once (shared with the
trials through the object store by ``tune.with_parameters``), asks Ray for a CPU share per trial (and a
GPU share when the cluster has GPUs) with ``tune.with_resources``, refuses a request no node can hold,
and runs ``bench.sweep.trial.trainable`` under ``tune.Tuner`` with reused actors.

Results directory (``--out``, default ``results/<sweep>-<timestamp>``, absolute and unique): see
``bench.sweep.layout``, its one owner.

Checkpoints: every trial reports its whole training state after each epoch (``bench.sweep.trial``); Ray keeps
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
becomes NaN/inf is a ``diverged`` record (``moe.training.loop.run`` stops it), and so is a trial that raises on a
non-finite value anywhere else (``moe.routers.NonFiniteError``: a gate, an evaluation); a trial stopped by
``--scheduler asha`` (on its validation accuracy, ``val_accuracy``; a sweep with a trial without a
validation split, ``val_fraction`` 0, is refused) is a ``stopped`` record scored like an ``ok`` one, from
the model of its latest checkpoint (``bench.scored_from_epoch``; ``bench.not_scored`` says why when that
cannot be done, and the record keeps only its last epoch's validation accuracy).
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from bench.sweep import groups, growth, spec
from bench.sweep.cluster import ResourceError, local_machine, nodes, quiet_ray_logs, resolve_resources
from bench.sweep.early import ray_environment, starting as ray_starting, starts_locally
from bench.sweep.layout import STATE_FILE, SweepDir, default_out
from bench.sweep.progress import cost, progress_callback, reconcile
from bench.sweep.resume import DEFAULT_MAX_FAILURES, ORDERS, changes_since, fingerprints, restored_free_options, restored_options
from bench.sweep.spec import SweepError, Trial
from bench.sweep.trial import FAULTS, data_source, dataset_key, is_fault, trainable, with_preset
from moe.config import Config
from moe.data import dataset_options, load_dataset
from moe.training.checkpoint import StateMismatch, TrainState

SCHEDULERS = ("fifo", "asha")


@dataclass(frozen=True)
class TuneOptions:
    """How the trials of one call run under Ray Tune (``run``'s keyword arguments)."""

    address: str | None = None  # an existing Ray cluster (None: $RAY_ADDRESS, else a local instance)
    max_failures: int = 1  # retries of a trial that raises or loses its node
    scheduler: str | None = None  # None or "fifo": run every trial; "asha": stop weak trials early
    verbose: bool = False  # Ray's own output and worker logs
    quiet: bool = False  # no per-trial progress lines
    interrupt_after: int | None = None  # test hook: a Ctrl-C after this many finished trials
    stack_seeds: str = "off"  # off | auto | on: trials differing only in seed trained together (bench.sweep.groups)
    order: str = "longest"  # longest first (a short tail on the last slots) | cheapest first (the widest grid soonest)
    on_record: Callable[[SweepDir, dict[int, Trial], dict[str, Any]], None] | None = None  # after each record written


# ---------------------------------------------------------------------------------------------------
# Preparing a sweep (no Ray)
# ---------------------------------------------------------------------------------------------------

def prepare(name: str, overrides: dict[str, Any] | None = None,
            faults: dict[int | str, str] | None = None) -> tuple[spec.Sweep, list[Trial]]:
    """Load, override and validate a sweep; mark test faults (trial index or configuration name -> kind)."""
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


def latest_states(folder: SweepDir, trials: list[Trial]) -> dict[int, bytes]:
    """Trial index -> the training state of the furthest epoch any earlier experiment checkpointed for it.

    A checkpoint cut short (the driver killed while Ray copied it) cannot be read and is passed over.
    """
    states: dict[int, bytes] = {}
    for t in trials:
        best = -1
        for checkpoint in folder.checkpoint_dirs(t.index):
            try:
                data = (checkpoint / STATE_FILE).read_bytes()
                epoch = TrainState.from_bytes(data).epoch
            except (OSError, StateMismatch):
                continue
            if epoch > best:
                states[t.index], best = data, epoch
    return states


def load_datasets(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Each dataset the trials need, loaded once at full size (the runs take their own subsets)."""
    out: dict[str, dict[str, Any]] = {}
    for t in trials:
        key = dataset_key(t.config)
        if key not in out:
            name, root, seed = data_source(t.config)
            try:
                options = dataset_options(name, with_preset(t.config))  # a generated dataset's knobs (planted)
                out[key] = load_dataset(name, data_root=root, seed=seed, options=options).to_numpy()
            except (FileNotFoundError, OSError, ValueError) as err:  # missing or damaged files (DataFileError)
                raise SweepError(f"dataset {name!r}: cannot load it: {err}") from None
    return out


# ---------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------

def start_order(units: list[list[Any]], order: str = "longest") -> list[list[Any]]:
    """The units of work (lists of trials trained together) in the order they start, by their estimated cost
    (``bench.sweep.progress.cost``): ``longest`` first leaves the shortest tail on the last slots; ``cheapest``
    first covers the widest part of the grid soonest (a sweep that will be stopped and resumed). Stable: equal
    costs keep the grid's order."""
    sign = -1 if order == "longest" else 1
    return sorted(units, key=lambda unit: sign * sum(cost(t.config) for t in unit))


def run_trials(name: str | None = None, out: str | os.PathLike | None = None, address: str | None = None, *,
        resume: str | os.PathLike | None = None, retry_errors: bool = False, max_failures: int | None = None,
        scheduler: str | None = None, verbose: bool = False, quiet: bool = False,
        faults: dict[int | str, str] | None = None, stack_seeds: str | bool | None = None, allow_changes: bool = False,
        order: str | None = None, add_seeds: list[int] | None = None, add_values: dict[str, list] | None = None,
        grow_to: list[dict[str, Any]] | None = None, _interrupt_after: int | None = None,
        on_record: Callable[[SweepDir, dict[int, Trial], dict[str, Any]], None] | None = None,
        **overrides: Any) -> dict[str, Any]:
    """Run (or resume) the trials of a sweep, one record each; returns how it went (below). The tables and the
    report: ``bench.pipeline.run_sweep``, which calls this.

    ``name``: a sweep of sweeps/ or a .yaml path (default ``quick``; with ``resume``, the directory's own).
    ``retry_errors`` (with ``resume``): run the ``error`` trials again too (their records move to records/errors/).
    ``add_seeds`` (with ``resume``): grow the sweep by these seeds of every configuration (``SweepDir.add_seeds``).
    ``add_values`` (with ``resume``): grow the sweep by more values of its grid's axes (``{"experts": [5, 20]}``: each
    block with that axis gains them; ``bench.sweep.growth``); ``grow_to``: grow it to this target grid (its own grid,
    block for block, with more values). The finished trials keep their indices and records.
    ``max_failures``: retries of a trial that raises (default 1); ``order``: which trials start first (``ORDERS``,
    default longest). With ``resume``, each is the sweep's own, saved in sweep.json; one given with ``resume``
    replaces it there, for this and later resumes (neither changes a trial's numbers).

    ``stack_seeds``: off (default) | auto | on: the trials that differ only in their seed train together as one
    stacked model (``bench.sweep.groups``; refused with ``scheduler='asha'`` and with faults).

    ``on_record(folder, trials, record)``: called in the driver after each record is written (``trials``: index ->
    Trial, every trial of the sweep); what it raises is reported as a warning, never stops the sweep.

    ``overrides``: ``--set`` pairs, e.g. ``run("quick", epochs=2, experts=[2, 4], **{"resources.cpu": 2})``.
    ``faults`` (tests): trial index or configuration name -> "raise" | "diverge" | "diverge_in_eval" |
    "crash_after_epoch_K" (raises once, after epoch K's checkpoint). Returns ``out`` (the sweep directory),
    ``interrupted``, ``wall_s`` (Tuner.fit), ``trial_s``, ``slots``, ``overhead`` = wall_s / (trial_s / slots) and
    ``n_run``.
    """
    if scheduler not in (None, *SCHEDULERS):
        raise SweepError(f"--scheduler {scheduler!r}: valid choices: {', '.join(SCHEDULERS)}")
    if order is not None and order not in ORDERS:
        raise SweepError(f"--order {str(order)[:40]!r}: valid choices: {', '.join(ORDERS)}")
    if max_failures is not None and (not isinstance(max_failures, int) or isinstance(max_failures, bool)
                                     or max_failures < 0):
        raise SweepError(f"--max-failures: must be an integer >= 0, got {max_failures!r}")
    folder = None
    chosen = {k: v for k, v in {"max_failures": max_failures, "order": order}.items() if v is not None}
    if resume is not None:  # how the directory's trials ran: restored, or refused when told otherwise
        folder = SweepDir(Path(resume).resolve())
        stack_seeds, scheduler = restored_options(folder, stack_seeds, scheduler)
        max_failures, order = restored_free_options(folder, max_failures, order)
    max_failures = DEFAULT_MAX_FAILURES if max_failures is None else max_failures
    order = order or ORDERS[0]
    stack_seeds = groups.check_mode("off" if stack_seeds is None else stack_seeds)
    if stack_seeds != "off" and scheduler == "asha":
        raise SweepError("--stack-seeds: a seed group reports once, at its end, so --scheduler asha cannot stop it "
                         "early; use one of them")
    if stack_seeds != "off" and faults:
        raise SweepError("--stack-seeds: test faults mark single trials; run them without --stack-seeds")
    datasets = None
    for flag, given, what in (("--allow-changes", allow_changes, "it continues a sweep after its inputs changed"),
                              ("--retry-errors", retry_errors, "it reruns the error trials of that sweep"),
                              ("--add-seeds", add_seeds, "it grows that sweep by more seeds (a new sweep: --set seed=[...])"),
                              ("--add", add_values or grow_to, "it grows that sweep by more values of its grid's axes "
                                                                "(a new sweep: --set AXIS=[...])")):
        if given and resume is None:
            raise SweepError(f"{flag} goes with --resume DIR: {what}")
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if resume is not None:
        if overrides or faults:
            raise SweepError("--resume continues a sweep as it was defined: no --set overrides")
        folder, sweep, trials = _resumed(resume, name)
        check_scheduler(scheduler, trials)
        datasets = load_datasets(trials)  # each once: what the trials to run need, and the fingerprints to check
        if changes := changes_since(folder, datasets):
            if not allow_changes:
                raise SweepError(f"--resume {folder.root}: {'; '.join(changes)}: its records would mix them; restore "
                                 "them, or add --allow-changes to continue anyway (the report then marks the mixture)")
            folder.note_mixture(changes)
            say(f"warning: continuing after changes: {'; '.join(changes)}")
        if changed := {k: v for k, v in chosen.items() if folder.run_options().get(k) != v}:
            folder.save_options(**changed)  # the retries or order given now, for this and later resumes
        if add_values or grow_to:  # more values of the grid's axes: the finished trials keep their indices and records
            meta_grid = folder.read_meta()[0].get("grid")
            target = grow_to if grow_to is not None else growth.grown_grid(
                meta_grid if isinstance(meta_grid, list) else [meta_grid], add_values or {})
            grown = folder.grow(trials, target)
            say(f"{sweep.name}: {len(grown) - len(trials)} trial(s) added for "
                f"{growth.describe(growth.new_values(trials, grown)) or 'nothing new'}; the {len(trials)} kept")
            trials = grown
        if add_seeds:  # more seeds of every configuration: the finished trials keep their indices and records
            grown = folder.add_seeds(sweep, trials, list(add_seeds))
            say(f"{sweep.name}: {len(grown) - len(trials)} trial(s) added for seed(s) {add_seeds}; the {len(trials)} kept")
            trials = grown
        if missing := [t for t in trials if dataset_key(t.config) not in datasets]:  # data the new values need
            datasets.update(load_datasets(missing))
    else:
        sweep, trials = prepare(name or "quick", overrides, faults)
        check_scheduler(scheduler, trials)
        groups.units(trials, stack_seeds)  # a configuration the stacked path does not support: refused before any work
        folder = SweepDir(Path(out).resolve() if out is not None else default_out(sweep.name))
        folder.check_new_out()  # before any work: nothing of another directory is overwritten or adopted
        check_local_resources(sweep, trials, address)  # a request this machine cannot hold: refused before anything is written
        datasets = load_datasets(trials)  # before anything is written: missing files leave no half-made directory
        folder.create(sweep, trials, {"stack_seeds": stack_seeds, "scheduler": scheduler or "fifo",  # and locks it
                                      "max_failures": max_failures, "order": order},
                      fingerprints(datasets))
    if retry_errors:
        moved = folder.set_aside_errors()
        say(f"{len(moved)} error trial(s) to run again; their records are kept in {folder.errors_dir}")
    done = folder.finished_indices()
    todo = [t for t in trials if t.index not in done]
    stats: dict[str, Any] = {"out": str(folder.root), "interrupted": False, "wall_s": 0.0, "trial_s": 0.0, "slots": 0,
                             "overhead": math.nan, "n_run": 0}
    if todo:
        options = TuneOptions(address=address, max_failures=max_failures, scheduler=scheduler, verbose=verbose,
                              quiet=quiet, interrupt_after=_interrupt_after, stack_seeds=stack_seeds, order=order,
                              on_record=on_record)
        try:
            stats.update(_tune_trials(sweep, trials, todo, folder, options, n_done=len(done), datasets=datasets))
        except ResourceError as err:  # a cluster that cannot be reached or cannot hold a trial
            if resume is None:
                folder.remove_unstarted()  # a failed start leaves nothing: the same command can be run again
                raise
            head = re.split(r"[.;] (?:Ask|Use|ask) ", str(err))[0].rstrip(".")
            raise ResourceError(f"{head}. --resume keeps the "
                                "sweep's own resources: continue it on a cluster that holds them "
                                "(--address), or start a new sweep with smaller ones") from None
        except Exception:  # Ray that cannot start (a read-only home), ...
            if resume is None:
                folder.remove_unstarted()
            raise
    else:
        say(f"{sweep.name}: all {len(trials)} trials already have records in {folder.root}")
    return stats


def _resumed(resume: str | os.PathLike, name: str | None) -> tuple[SweepDir, spec.Sweep, list[Trial]]:
    """The sweep directory to continue, its sweep and trials (sweep.json checked), locked for this process (a second
    writer is refused, naming the first's PID); its damaged records set aside."""
    folder = SweepDir(Path(resume).resolve())
    meta, trials = folder.read_meta()
    folder.lock("--resume")
    try:
        sweep = spec.from_mapping({k: meta[k] for k in spec.TOP_KEYS if k in meta}, name=meta["name"],
                                  path=meta.get("path"))
    except SweepError as err:
        raise SweepError([f"--resume {folder.root}: {folder.meta_path} holds a sweep that is not valid: {p}"
                          for p in err.problems]) from None
    if name is not None and Path(name).stem != meta["name"]:
        raise SweepError(f"--resume {folder.root}: that directory holds sweep {meta['name']!r}, not {name!r}")
    for path, moved, problem in folder.set_aside_damaged():
        print(f"warning: {path} is damaged ({problem}): moved to {moved}; its trial runs again", file=sys.stderr)
    return folder, sweep, trials


def _tune_trials(sweep: spec.Sweep, trials: list[Trial], todo: list[Trial], folder: SweepDir, options: TuneOptions, *,
                n_done: int, datasets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One Tuner.fit over the trials ``todo`` of ``trials`` (``n_done`` had records before); returns its timings."""
    ray_environment(options.verbose)
    if datasets is None:
        datasets = load_datasets(todo)  # before Ray: a missing file fails fast
    starting = ray_starting(options.address, options.verbose)  # Ray starts (or started) while the rest is prepared
    try:
        states = latest_states(folder, todo)  # what earlier experiments of this directory checkpointed (--resume)
        import ray  # deferred: Ray starts slowly, and loading or listing sweeps never needs it
        from ray import tune

        starting.result()
        res = resolve_resources(sweep.resources, nodes(), len(todo), threads=most_threads(todo))
        if res["gpu"] > 0:  # trials on a GPU share run on CUDA unless the sweep says otherwise
            for t in todo:
                t.config.setdefault("device", "cuda")
        resume_states = {index: ray.put(data) for index, data in states.items()}  # one object each: a trial fetches its own
        fn = tune.with_resources(tune.with_parameters(trainable, datasets=datasets, resume_states=resume_states),
                                 {"cpu": res["cpu"], "gpu": res["gpu"]})
        progress = progress_callback(folder, trials, todo, quiet=options.quiet, interrupt_after=options.interrupt_after,
                                     datasets=datasets, on_record=options.on_record)
        work = start_order(groups.units(todo, options.stack_seeds), options.order)
        tuner = tune.Tuner(
            fn,
            param_space={"trial": tune.grid_search([groups.unit_dict(unit) for unit in work])},
            tune_config=tune.TuneConfig(reuse_actors=True, scheduler=_scheduler(options.scheduler, todo),
                                        max_concurrent_trials=res["slots"],
                                        trial_dirname_creator=lambda tr: SweepDir.trial_dirname(tr.config["trial"]["index"])),
            run_config=tune.RunConfig(name=folder.experiment_name(), storage_path=str(folder.root),
                                      verbose=2 if options.verbose else 0,
                                      failure_config=tune.FailureConfig(max_failures=options.max_failures),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      callbacks=[progress]),
        )
        if not options.quiet:
            gpu = f" + {res['gpu']:g} GPU" if res["gpu"] else ""
            checkpointed = f", {len(states)} from a checkpoint" if states else ""
            stacked = f" in {len(work)} unit(s) (seeds stacked)" if len(work) < len(todo) else ""
            print(f"{sweep.name}: {len(todo)} trial(s){stacked} to run ({n_done} done before{checkpointed}) on {res['slots']} slot(s) of "
                  f"{res['cpu']:g} CPU{gpu} each; results in {folder.root}", flush=True)
        t0 = time.perf_counter()
        with quiet_ray_logs(not options.verbose):  # errors show as progress lines and error rows instead
            results = tuner.fit()
        wall = time.perf_counter() - t0
        reconcile(results, folder, progress)
        folder.drop_checkpoints()
    finally:
        # this call's object references end here, in this thread, before Ray does: one freed while the background
        # thread shuts Ray down ends the process with exit status 1 (bench.sweep.cluster.drop_references)
        resume_states = fn = tuner = results = None  # noqa: F841
        starting.shut_down_later()  # a local instance this call started ends while the tables are built
    missing = [t.index for t in todo if not folder.has_record(t.index)]
    trial_s = sum(progress.trial_s)
    ideal = trial_s / res["slots"] if res["slots"] else math.nan
    return {"interrupted": bool(missing), "wall_s": wall, "trial_s": trial_s, "slots": res["slots"],
            "overhead": wall / ideal if ideal else math.nan, "n_run": len(progress.finished), "missing": missing}


def most_threads(trials: list[Trial]) -> int | None:
    """The largest torch ``threads`` a trial sets (None: every trial takes its CPU share)."""
    return max((t.config["threads"] for t in trials if isinstance(t.config.get("threads"), int)), default=None)


def check_local_resources(sweep: spec.Sweep, trials: list[Trial], address: str | None) -> None:
    """The per-trial request against this machine, when the sweep will start a local Ray instance (no ``address``,
    no $RAY_ADDRESS, no Ray already running here but one the command started early: ``bench.sweep.early``):
    ``ResourceError`` before any directory is made."""
    if not starts_locally(address):
        return  # a cluster: checked once connected
    resolve_resources(sweep.resources, local_machine(), len(trials), threads=most_threads(trials))


SCHEDULER_METRIC = "val_accuracy"  # what ASHA stops on: the validation split's, never the test split's


def check_scheduler(name: str | None, trials: list[Trial]) -> None:
    """ASHA stops trials on their validation accuracy: a trial without a validation split (``val_fraction`` 0,
    its own or its preset's) has none to stop on, and the sweep is refused before anything runs (no fallback
    to the test split)."""
    if name != "asha":
        return
    default = Config().val_fraction
    bare = [t for t in trials if with_preset(t.config).get("val_fraction", default) == 0]
    if bare:
        shown = ", ".join(f"{t.index} ({t.name})" for t in bare[:3]) + (f" and {len(bare) - 3} more" if len(bare) > 3 else "")
        raise SweepError(f"--scheduler asha: stops trials on their validation accuracy ({SCHEDULER_METRIC}), but trial(s) "
                         f"{shown} have val_fraction 0 (no validation split); set val_fraction in (0, 0.5] or use "
                         "--scheduler fifo")


def _scheduler(name: str | None, todo: list[Trial]):
    """The Tune scheduler of ``--scheduler``: None (fifo), or ASHA on ``val_accuracy`` (:func:`check_scheduler`),
    its rungs before the last epoch (``max_t`` = epochs - 1; trials past it run on): a cut at the last epoch
    would save nothing and mark a run that finished its training ``stopped``."""
    if name in (None, "fifo"):
        return None
    check_scheduler(name, todo)
    from ray.tune.schedulers import ASHAScheduler  # deferred: Ray (see _tune_trials)

    epochs = max(int(with_preset(t.config).get("epochs", Config().epochs) or 1) for t in todo)
    return ASHAScheduler(time_attr="epoch", metric=SCHEDULER_METRIC, mode="max", max_t=max(epochs - 1, 1),
                         grace_period=max(1, epochs // 4), reduction_factor=2, stop_last_trials=False)
