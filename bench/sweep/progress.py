"""Progress of a running sweep: a Tune callback in the driver that writes each finished trial's record
(``records/NNNN.json``, atomically, the moment its last result arrives) and prints one line per
finished trial with an ETA weighted by each trial's estimated cost; :func:`reconcile` writes the
records it missed from Tune's result grid.
"""
from __future__ import annotations

import json
import math
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.sweep.groups import member_indices
from bench.sweep.layout import SweepDir
from bench.sweep.spec import FIELD_DEFAULTS, Trial
from bench.sweep.trial import dataset_key, read_checkpoint
from moe.training.checkpoint import TrainState
from moe.config import ConfigError
from moe.records.provenance import provenance
from moe.records.record import checkpoint_fields, error_record, stopped_record
from moe.scoring.saturation import routing_dynamics, saturation_k
from moe.training.loop import evaluate_state, resolve_device, run_data
from moe.validate import from_dict


DEFAULT_SEED = FIELD_DEFAULTS["seed"]


def cost(config: dict[str, Any]) -> float:
    """A rough relative cost of a trial (batches x experts), to start the longest first and to weigh the ETA."""
    c = {**FIELD_DEFAULTS, **config}
    n_train = c["n_train"] or 2400
    return c["epochs"] * math.ceil(n_train / c["batch_size"]) * (1 + 0.1 * c["experts"] * c["top_k"])


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config with every default filled in (as a run record holds it)."""
    try:
        return from_dict(config).to_dict()
    except ConfigError:
        return dict(config)


def stopped_trial_record(trial: Trial, last_result: dict[str, Any], checkpoint, datasets: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The record of a trial the scheduler stopped: it never sent its final report, so the driver scores the
    model of its latest checkpoint (``checkpoint``, a ``tune.Checkpoint`` or None: its last finished epoch)
    with ``moe.training.loop.evaluate_state``, as an ``ok`` run is scored; ``bench.scored_from_epoch`` says which
    epoch. When that fails (no checkpoint, an unreadable one) the record keeps the last epoch's validation
    accuracy (``validation``; its ``test`` stays empty: the test split is scored only at the end) and says why
    in ``bench.not_scored``: a stopped trial never stops the sweep."""
    rec = stopped_record(full_config(trial.config), last_result.get("val_accuracy"), provenance())
    rec["bench"] = {"index": trial.index, "name": trial.name, "trial_s": None, "epochs_run": last_result.get("epoch"),
                    "scored_from_epoch": None}
    try:
        rec["bench"]["scored_from_epoch"], fields = scored_from_checkpoint(trial.config, checkpoint, datasets)
    except Exception as err:  # noqa: BLE001 -- whatever went wrong, the stopped record is written
        rec["bench"]["not_scored"] = f"{type(err).__name__}: {err}"
        return rec
    rec.update(fields)
    return rec


def scored_from_checkpoint(config: dict[str, Any], checkpoint,
                           datasets: dict[str, dict[str, Any]] | None) -> tuple[int, dict[str, Any]]:
    """(the epoch of a trial's latest checkpoint, the record fields it gives: config, history and the final
    evaluation (test and validation) of its model by ``moe.training.loop.evaluate_state``, on the driver: these models are small)."""
    if checkpoint is None:
        raise FileNotFoundError("the trial left no checkpoint")
    state = TrainState.from_bytes(read_checkpoint(checkpoint))
    config = dict(config)
    if config.get("threads") is None:  # the trial ran with the torch threads of its CPU share (bench.sweep.trial)
        config["threads"] = state.config.get("threads")
    t0 = time.perf_counter()
    evaluated = evaluate_state(config, state, data=(datasets or {}).get(dataset_key(config)))
    dynamics = routing_dynamics([h["epoch"] for h in state.history], state.val_sets,  # against its epoch
                                saturation_k(state.config["router"], state.config["top_k"]), state.config["experts"])
    return state.epoch, checkpoint_fields(full_config(config), state.config.get("seed"), state.history, evaluated,
                                          dynamics, {"train_s": state.train_s, "eval_s": time.perf_counter() - t0},
                                          stopped_provenance(config, datasets))


def stopped_provenance(config: dict[str, Any], datasets: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The provenance of a stopped trial's record: its data as its run prepared it, on its device."""
    cfg = from_dict(config)
    return provenance(run_data(cfg, (datasets or {}).get(dataset_key(config))), resolve_device(cfg.device))


NON_FINITE = ("NonFiniteError", "FloatingPointError")  # what a run raises on a NaN or inf it cannot go on from


def failure_record(config: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The record of a trial that raised: ``diverged`` when the exception says a value became NaN or infinite
    (``moe.routers.NonFiniteError``, by class name: the driver rebuilds it from text), else ``error``."""
    return error_record(config, exc, "diverged" if type(exc).__name__ in NON_FINITE else "error", provenance=provenance())


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tune_callback_base():
    from ray import tune  # deferred: Ray starts slowly, and only a running sweep needs it

    return tune.Callback


class _Progress:
    """Writes each finished trial's record and prints one line with an ETA (mixed into a tune.Callback)."""

    def __init__(self, folder: SweepDir, trials: list[Trial], todo: list[Trial], quiet: bool = False,
                 interrupt_after: int | None = None, datasets: dict[str, dict[str, Any]] | None = None,
                 on_record: Callable[[SweepDir, dict[int, Trial], dict[str, Any]], None] | None = None):
        self.folder, self.quiet = folder, quiet
        self.on_record = on_record  # told of each record written (bench.pipeline: the report's figures drawn ahead)
        self.datasets = datasets  # the driver's loaded datasets, to score the trials a scheduler stops
        self.trials = {t.index: t for t in trials}
        self.cost = {t.index: cost(t.config) for t in todo}
        self.n_total, self.n_before = len(trials), len(trials) - len(todo)
        self.finished: list[int] = []
        self.trial_s: list[float] = []
        self.started = time.perf_counter()
        self.interrupt_after = interrupt_after  # test hook: a Ctrl-C after this many finished trials

    # -- Tune hooks
    def on_trial_result(self, iteration, trials, trial, result, **info):
        for rec in result_records(result):
            self._save(trial, rec)

    def on_trial_complete(self, iteration, trials, trial, **info):
        for index in member_indices(trial.config):
            if index not in self.finished:  # stopped early by the scheduler: no final report
                self._save(trial, stopped_trial_record(self.trials[index], trial.last_result or {}, trial.checkpoint, self.datasets))

    def on_trial_error(self, iteration, trials, trial, **info):
        exc = _trial_exception(trial)
        for index in member_indices(trial.config):  # a seed group's error is each of its trials'
            rec = failure_record(full_config(self.trials[index].config), exc)
            rec["bench"] = {"index": index, "name": self.trials[index].name, "trial_s": None}
            self._save(trial, rec)

    def on_trial_recover(self, iteration, trials, trial, **info):
        t = self.trials[trial.config["trial"]["index"]]
        exc = _trial_exception(trial)
        self._print(f"{'':>{2 * len(str(self.n_total)) + 3}} retry    {t.name} seed={t.config.get('seed', DEFAULT_SEED)}  "
                    f"after failure {trial.num_failures}: {type(exc).__name__}: {exc}")

    # -- helpers
    def _save(self, trial, rec: dict[str, Any]) -> None:
        index = rec["bench"]["index"]
        rec["bench"].update(trial_id=trial.trial_id, failures=trial.num_failures)
        self.folder.write_record(index, rec)
        if self.on_record is not None:
            try:
                self.on_record(self.folder, self.trials, rec)
            except Exception as err:  # noqa: BLE001 -- the sweep goes on; its records are what matter
                print(f"warning: after the record of trial {index}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
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
        what = scores_text(rec)
        took = rec["bench"].get("trial_s")
        width = len(str(self.n_total))
        self._print(f"[{done:>{width}}/{self.n_total}] {rec['status']:<8} {t.name} seed={t.config.get('seed', DEFAULT_SEED)}  "
                    f"{what}  {'' if took is None else f'{took:.1f}s  '}elapsed {_clock(elapsed)}  ETA {_clock(eta)}")

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def scores_text(rec: dict[str, Any]) -> str:
    """What a finished trial's progress line says of its scores: validation and test accuracy and the test NMI; a
    language model's validation and test bits per byte and the unigram model's; an error's message."""
    test, val = rec.get("test") or {}, rec.get("validation") or {}
    if rec["status"] == "error":
        return (rec.get("error") or "")[:80]
    if "bits_per_byte" in test or "bits_per_byte" in val:
        return (f"val bpb {_fmt(val.get('bits_per_byte'))}  bpb {_fmt(test.get('bits_per_byte'))}  "
                f"unigram {_fmt(test.get('unigram_bits_per_byte'))}")
    return f"val acc {_fmt(val.get('accuracy'))}  acc {_fmt(test.get('accuracy'))}  nmi {_fmt(test.get('nmi'))}"


def _fmt(v: Any) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _trial_exception(trial) -> BaseException:
    """The exception a trial raised, rebuilt from the text of Ray's error file, never unpickled.

    A trial directory may hold any file, so Ray's ``error.pkl`` is not loaded (unpickling runs code). The
    driver's staging copy of ``error.txt`` (``trial.error_file``; when the callback runs it need not have
    reached the storage path yet), else ``trial.get_error()``, is read as untrusted text: its last
    ``Name: message`` line gives the exception's class name (unwrapped from ``RayTaskError(Name)`` and any
    module path) and message, rebuilt as a RuntimeError subclass of that name.
    """
    text = None
    for read in (lambda: Path(trial.error_file).read_text(errors="replace"), trial.get_error):
        try:
            text = read()
        except Exception:
            text = None
        if text:
            break
    return exception_from_text(text or "")


_EXC_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*)(?:\((?:[\w.]*\.)?([A-Za-z_]\w*)\))?: (.*)$")


def exception_from_text(text: str) -> BaseException:
    """``ValueError: boom`` (or ``ray.exceptions.RayTaskError(pkg.ValueError): boom``) -> an exception whose
    class is named ``ValueError`` and whose message is ``boom``; text with no such line -> RuntimeError."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        m = _EXC_LINE.match(line)
        if m:
            name = m.group(2) or m.group(1)
            message = m.group(3)
            if m.group(2):  # RayTaskError(Name): the message repeats 'Name: ...' after Ray's own prefix
                message = message.split(f"{name}: ", 1)[-1] if f"{name}: " in message else message
            return type(name, (RuntimeError,), {})(message)
    return RuntimeError(lines[-1] if lines else "trial failed (no error message)")


def progress_callback(*args, **kwargs):
    """A ``tune.Callback`` subclass instance of :class:`_Progress` (Ray imported lazily)."""
    cls = type("SweepProgress", (_Progress, _tune_callback_base()), {})
    return cls(*args, **kwargs)


def result_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The run records a trial's final result carries: one (``record_json``), or a seed group's (``records_json``)."""
    if "record_json" in result:
        return [json.loads(result["record_json"])]
    return json.loads(result["records_json"]) if "records_json" in result else []


def reconcile(results, folder: SweepDir, progress: _Progress) -> None:
    """Write the record of any finished trial the callback missed (from Tune's result grid)."""
    for r in results:
        if "trial" not in (r.config or {}):
            continue
        metrics = r.metrics or {}
        for index in member_indices(r.config):
            if folder.has_record(index):
                continue
            recs = [rec for rec in result_records(metrics) if rec["bench"]["index"] == index]
            if recs:
                rec = recs[0]
            elif r.error is not None:
                rec = failure_record(full_config(progress.trials[index].config), getattr(r.error, "cause", None) or r.error)
                rec["bench"] = {"index": index, "name": progress.trials[index].name, "trial_s": None}
            else:
                continue  # unfinished (interrupted): resume reruns it
            folder.write_record(index, rec)
