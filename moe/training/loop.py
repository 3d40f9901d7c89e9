"""One training run: ``run(config, data=None, on_epoch=None) -> record``, a pure function of its config
and seed (a text dataset's run is the language model's loop, ``moe.training.lm_loop``). ``python -m moe.train``
is a thin CLI over it (``main``). Over 400 lines, and long because the CLI lives beside the loop it drives.

``data`` lets a caller (a Ray trial) pass a dataset loaded once; ``on_epoch(metrics)`` reports progress
after every epoch and stops training early when it returns a true value.

Checkpoints (``moe.training.checkpoint``): ``on_state(state_bytes)`` receives the full training state
(``TrainState.to_bytes()``) after every finished epoch, and ``run(..., state=state_bytes)`` continues from
one: a run resumed after epoch k gives exactly the record of the run never stopped (same numbers, bitwise,
on the CPU); the language model's loop saves and resumes the same way. ``evaluate_state(config, state_bytes)``
scores a saved state of a mixture over samples as ``run`` would have had it stopped there (a sweep trial stopped
early by its scheduler). The evaluations: ``moe.training.evaluate``. Every epoch
reports the validation split's scores (``moe.data.hold_out``); the test split is scored once, at the end.

Public pieces beyond ``run`` (``__all__``), for the stacked seeds (``moe.training.stacked``), a sweep's trials
and progress (``bench.sweep``) and the speed benchmarks: ``Training`` (what the epochs of one run share),
``resolve_device``, ``run_data`` and ``checked_data`` (the run's data), ``set_up`` (seeded model, loss and batch
order), ``start_phase``, ``temperature_at``, ``finish`` (the record of a finished run), ``evaluate_state`` (the
record of a saved state), ``initial_model``, ``fresh_experts`` and ``torch_threads``. Everything else is the
loop's own.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm import tqdm

from moe import regimes
from moe.training.checkpoint import TrainState, capture_state, load_model_state, load_state, restore_state
from moe.config import FIELD_TYPES, Config, ConfigError, load_file
from moe.field_limits import help_text
from moe.data import Dataset, dataset_options, load_dataset, prepare
from moe.data.mnist import DataFileError
from moe.training.epochs import parameters_finite, pretrain_epoch, train_epoch
from moe.training.evaluate import eval_batch_size, evaluate, validation_pass
from moe.training.lm_loop import TextDataError, is_text_dataset, lm_summary, run_lm
from moe.model import MixtureOfExperts, build_experts, build_model, checked_config, parameter_counts
from moe.objectives import Loss
from moe.records.provenance import provenance
from moe.training.optim import build_optimizer, set_trainable
from moe.records.record import error_record, finished_record, out_problem, write_json_atomic
from moe.routers import NonFiniteError
from moe.scoring.saturation import routing_dynamics, saturation_k
from moe.validate import field_choices, from_dict, loaded_data_problems, resolve_device


__all__ = ["run", "main", "parser", "Training", "resolve_device", "run_data", "checked_data", "set_up", "start_phase",
           "temperature_at", "finish", "evaluate_state", "initial_model", "fresh_experts", "torch_threads"]

def fresh_experts(cfg: Config, model: MixtureOfExperts, initial: dict[str, torch.Tensor], how: str,
                  input_shape: tuple[int, ...], n_classes: int) -> None:
    """Replace the experts' weights by their initial ones ('same') or by a new draw ('new', seeded from cfg.seed);
    masked experts stay masked with 'same' and become full C-class experts with 'new' (the seed code's refits)."""
    if how == "same":
        model.experts.load_state_dict(initial)
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1_000_003)
        state = build_experts(cfg, input_shape, n_classes).state_dict()
    model.experts.load_state_dict(state)
    model.experts.unmask()


def temperature_at(cfg: Config, gate_epoch: int) -> float:
    """Gate temperature in the gate's ``gate_epoch``-th training epoch (1-based): max(T * decay^(n-1), T_min)."""
    if cfg.temperature_decay == 1:
        return cfg.temperature
    return max(cfg.temperature * cfg.temperature_decay ** (gate_epoch - 1), cfg.temperature_min)


def phase_starts(plan: list[regimes.Phase]) -> list[int]:
    """The epochs finished before each phase (``epoch`` counts across phases)."""
    return [sum(p.epochs for p in plan[:i]) for i in range(len(plan))]


def run_data(cfg: Config, data: Dataset | dict | None) -> Dataset:
    """The data of a run: loaded for the config, or the dataset a caller loaded once (a sweep driver),
    checked, cut to the config's subsets and normalised (``moe.data.prepare``)."""
    if data is None:
        data = load_dataset(cfg.dataset, data_root=cfg.data_root, seed=cfg.data_seed,
                            options=dataset_options(cfg.dataset, cfg))  # whole, to check the sizes
    data = Dataset.from_numpy(data) if isinstance(data, dict) else data
    if data.name != cfg.dataset:
        raise ValueError(f"data: the dataset passed in is {data.name!r} but the config asks for {cfg.dataset!r}")
    if (data.options or {}) != dataset_options(cfg.dataset, cfg):  # e.g. the planted dataset's knobs
        raise ValueError(f"data: the dataset passed in was made with {data.options} but the config asks for "
                         f"{dataset_options(cfg.dataset, cfg)}")
    if problems := loaded_data_problems(cfg, data):  # n_train, n_test against the samples it has
        raise ConfigError(problems)
    return prepare(data, cfg)


def initial_model(cfg: Config, data: Dataset, x_train: torch.Tensor) -> MixtureOfExperts:
    """The model a run starts from, on the device of x_train: seeded by cfg.seed (the global torch generator),
    its routers initialised from the training inputs (prototypes)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.input_shape, data.n_classes).to(x_train.device)
    model.init_from_data(x_train, torch.Generator().manual_seed(cfg.seed))
    return model


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's CPU threads set to n (when given) inside the block, restored after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_state(config: Config | dict[str, Any], state: TrainState | bytes,
                   data: Dataset | dict | None = None) -> dict[str, Any]:
    """The final evaluation of a saved training state: the record fields (``evaluate``) that ``run`` gives when
    it stops after the state's epoch, exactly (bitwise on the CPU). For a trial a scheduler stopped before
    its final report. A state another config wrote raises ``StateMismatch``.

    It runs on the config's device, with its torch threads; the caller's threads and random generators are
    left as they were (building the model reseeds the global one).
    """
    cfg = checked_config(config)
    if is_text_dataset(cfg.dataset):
        raise ValueError("state: a language model's saved state is not scored by itself (its record holds the final "
                         "analyses of the whole run); resume the run from it instead")
    saved = load_state(state, cfg)
    device = resolve_device(cfg.device)
    data = run_data(cfg, data)
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = initial_model(cfg, data, data.x_train.to(device))
        load_model_state(saved, model)
        return evaluate(model, data, device, eval_batch_size(cfg, model))


def run(config: Config | dict[str, Any] | None = None, data: Dataset | dict | None = None,
        on_epoch: Callable[[dict[str, Any]], Any] | None = None, progress: bool = False,
        state: TrainState | bytes | None = None, on_state: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    """Train one mixture of experts through the phases of its regime and return its run record (``moe.records.record``).

    ``history`` holds one entry per epoch of every phase (``epoch`` counts across phases, ``phase`` and
    ``phase_epoch`` say where it belongs); ``on_epoch`` is called after each and stops the run when it
    returns a true value; its held-out scores are the validation split's (``val_accuracy``, ``val_loss``;
    none when ``val_fraction`` is 0); ``test`` and ``validation`` score the model after the last phase.

    ``on_state(state_bytes)`` is called after each finished epoch, just before ``on_epoch``, with the whole
    training state; ``state`` (such bytes, or a ``TrainState``) continues a run from there, and the record
    says ``resumed_from_epoch``. A state written under another config raises ``StateMismatch``.
    """
    started = time.perf_counter()
    cfg = checked_config(config)  # every field checked before any work
    if is_text_dataset(cfg.dataset):  # the mixture-of-experts language model (moe.training.lm_loop)
        return run_lm(cfg, data, on_epoch, progress, state=state, on_state=on_state)
    resumed = None if state is None else load_state(state, cfg)  # another config's state is refused here
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t = set_up(cfg, checked_data(cfg, data), device)
    if resumed is not None:
        t.resume(resumed)
    train_phases(t, resumed, on_epoch, on_state, progress)
    return finish(t, started, resumed)


@dataclass
class Training:
    """What the epochs of one run share: the config, the data on the device, the seeded model, loss, batch
    order and regime, and the loop's counters (``epoch`` across phases, ``gate_epochs`` for the temperature)."""
    cfg: Config
    data: Dataset
    device: torch.device
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None  # the validation split (None: val_fraction 0); the test split stays off the device until the end
    y_val: torch.Tensor | None
    model: MixtureOfExperts
    initial_experts: dict[str, torch.Tensor]
    loss_fn: Loss
    batch_order: torch.Generator
    eval_batch: int
    plan: list[regimes.Phase]
    owner: torch.Tensor | None  # [N] the expert of each training sample (pretrain regimes)
    history: list[dict[str, Any]] = field(default_factory=list)
    val_sets: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> the validation split's experts (moe.scoring.saturation)
    status: str = "ok"
    diverged: dict[str, Any] | None = None  # {"epoch", "reason"} of the first non-finite loss, gradient or evaluation
    epoch: int = 0
    gate_epochs: int = 0
    saved_s: float = 0.0  # training seconds of the epochs a saved state had already run
    train_started: float = 0.0

    def resume(self, resumed: TrainState) -> None:
        """Start at the epoch a saved state reached: its model, generators and history."""
        self.history, self.epoch, self.gate_epochs = list(resumed.history), resumed.epoch, resumed.gate_epochs
        self.saved_s, self.val_sets = resumed.train_s, dict(resumed.val_sets)
        restore_state(resumed, self.model, self.batch_order, self.device)

    def diverge(self, reason: str) -> None:
        """Mark the run diverged (the first reason and its epoch stay)."""
        self.status = "diverged"
        if self.diverged is None:
            self.diverged = {"epoch": self.epoch, "reason": reason}

    def train_s(self) -> float:
        """Training seconds of the epochs in history (not those redone after a crash)."""
        return self.saved_s + time.perf_counter() - self.train_started


def checked_data(cfg: Config, data: Dataset | dict | None) -> Dataset:
    """The run's data (:func:`run_data`), its class split checked against the classes it actually has."""
    data = run_data(cfg, data)
    split = regimes.resolve_split(cfg, data.n_classes)
    if split is not None and (problems := regimes.split_problems(split, cfg.experts, data.n_classes)):
        raise ConfigError(problems)
    return data


def set_up(cfg: Config, data: Dataset, device: torch.device) -> Training:
    """The data on the device; the model, loss, batch order and phases, all seeded."""
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_val, y_val = (None, None) if data.y_val is None else (data.x_val.to(device), data.y_val.to(device))
    model = initial_model(cfg, data, x_train)
    initial_experts = {k: v.clone() for k, v in model.experts.state_dict().items()}  # init_from_data set only the routers
    loss_fn = Loss(cfg)
    batch_order = torch.Generator().manual_seed(cfg.seed)
    split = regimes.resolve_split(cfg, data.n_classes)
    owner = None if split is None else regimes.class_owners(split, data.n_classes).to(device)[y_train]
    return Training(cfg, data, device, x_train, y_train, x_val, y_val, model, initial_experts, loss_fn, batch_order,
                    eval_batch_size(cfg, model), regimes.phases(cfg), owner)


def train_phases(t: Training, resumed: TrainState | None, on_epoch: Callable[[dict[str, Any]], Any] | None,
                 on_state: Callable[[bytes], Any] | None, progress: bool) -> None:
    """The phases of the regime in order, from epoch ``t.epoch``, until the last epoch or a stop; then every
    part of the model is trainable again."""
    t.train_started = time.perf_counter()
    for phase, phase_start in zip(t.plan, phase_starts(t.plan)):
        if phase_start + phase.epochs <= t.epoch:
            continue  # finished before the saved state
        optimizer = start_phase(t, phase, resumed if phase_start < t.epoch else None)
        for phase_epoch in range(t.epoch - phase_start + 1, phase.epochs + 1):
            metrics = train_one_epoch(t, phase, phase_epoch, optimizer, progress)
            if stop_after(t, metrics, optimizer, on_epoch, on_state):
                set_trainable(t.model, True, True)
                return
    set_trainable(t.model, True, True)


def start_phase(t: Training, phase: regimes.Phase, inside: TrainState | None) -> torch.optim.Optimizer:
    """Fresh experts where the phase asks for them, the sides it trains, and its optimizer. ``inside``: the saved
    state lies inside this phase (its experts already reset, its optimizer saved)."""
    if phase.reset_experts and inside is None:
        fresh_experts(t.cfg, t.model, t.initial_experts, phase.reset_experts, t.data.input_shape, t.data.n_classes)
    set_trainable(t.model, phase.train_gate, phase.train_experts)
    optimizer = build_optimizer(t.cfg, t.model, phase.train_gate, phase.train_experts)
    if inside is not None:
        optimizer.load_state_dict(inside.optimizer)
    return optimizer


def train_one_epoch(t: Training, phase: regimes.Phase, phase_epoch: int, optimizer: torch.optim.Optimizer,
                    progress: bool) -> dict[str, Any]:
    """One epoch of a phase (with a progress bar when asked), appended to the history with the validation
    split's accuracy and loss (missing without a validation split, or when the loss became NaN or infinite)."""
    cfg, t.epoch = t.cfg, t.epoch + 1
    if phase.train_gate:
        t.gate_epochs += 1
        t.model.set_temperature(temperature_at(cfg, t.gate_epochs))
    t0 = time.perf_counter()
    n_batches = math.ceil(len(t.y_train) / cfg.batch_size)
    label = f"epoch {phase_epoch}/{phase.epochs}" if len(t.plan) == 1 else f"{phase.name} epoch {phase_epoch}/{phase.epochs}"
    with tqdm(total=None if phase.pretrain else n_batches, desc=label, disable=not progress, file=sys.stderr) as bar:
        if phase.pretrain:
            stats = pretrain_epoch(t.model, optimizer, t.x_train, t.y_train, t.owner, cfg.batch_size, t.batch_order, bar.update)
        else:
            stats = train_epoch(t.model, optimizer, t.loss_fn, t.x_train, t.y_train, cfg.batch_size, t.batch_order,
                                bar.update, train_gate=phase.train_gate)
        if not stats.pop("finite"):
            t.diverge(stats.pop("reason"))
        elif not parameters_finite(t.model):
            t.diverge("non-finite parameters after the epoch's last step")
        elif t.y_val is not None:
            try:
                stats["val_accuracy"], stats["val_loss"], t.val_sets[t.epoch] = validation_pass(
                    t.model, t.x_val, t.y_val, t.eval_batch, saturation_k(cfg.router, cfg.top_k))
            except NonFiniteError:
                t.diverge("non-finite gate logits in the validation scores after the epoch")
        bar.set_postfix(loss=f"{stats['train_loss']:.4f}", val_acc=f"{stats.get('val_accuracy', math.nan):.3f}")
    metrics = {"epoch": t.epoch, "phase": phase.name, "phase_epoch": phase_epoch, **stats,
               "temperature": t.model.router.temperature, "epoch_s": time.perf_counter() - t0}
    t.history.append(metrics)
    return metrics


def stop_after(t: Training, metrics: dict[str, Any], optimizer: torch.optim.Optimizer,
               on_epoch: Callable[[dict[str, Any]], Any] | None, on_state: Callable[[bytes], Any] | None) -> bool:
    """After an epoch: a diverged run stops; a finished one hands its state to ``on_state``, then asks ``on_epoch``."""
    if t.diverged is not None:  # a loss, gradient, parameter or gate logit became NaN or infinite
        return True
    if on_state is not None:
        on_state(capture_state(t.cfg, t.model, optimizer, t.batch_order, t.device, epoch=t.epoch, gate_epochs=t.gate_epochs,
                               history=t.history, train_s=t.train_s(), val_sets=t.val_sets).to_bytes())
    return on_epoch is not None and bool(on_epoch(metrics))


def finish(t: Training, started: float, resumed: TrainState | None,
           provenance_block: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run record: the final evaluation of the model after the last phase (the test split, scored here
    once, and the validation split), history, timing and versions. A final evaluation that meets NaN or
    infinity makes the run ``diverged`` (with ``diverged``: epoch, reason). ``provenance_block``: the record's
    ``provenance`` when the caller has it (the seeds of a stacked group share their data, device, start and
    checkout), else made here."""
    train_s = t.train_s()
    t0 = time.perf_counter()
    try:
        evaluated = evaluate(t.model, t.data, t.device, t.eval_batch)
        if not math.isfinite(evaluated["test"].get("loss", math.nan)):
            t.diverge("non-finite test loss in the final evaluation")
        elif evaluated["validation"] is not None and not math.isfinite(evaluated["validation"].get("loss", math.nan)):
            t.diverge("non-finite validation loss or gate logits in the final evaluation")
    except NonFiniteError:
        t.diverge("non-finite gate logits in the final evaluation")
        evaluated = {"dataset": t.data.describe(), "test": {}, "validation": None if t.y_val is None else {},
                     "allocation": None, "validation_allocation": None, "test_assignment": None}
    dynamics = routing_dynamics([h["epoch"] for h in t.history], t.val_sets, saturation_k(t.cfg.router, t.cfg.top_k),
                                t.cfg.experts)
    timing = {"train_s": train_s, "eval_s": time.perf_counter() - t0, "total_s": time.perf_counter() - started}
    return finished_record(t.status, t.diverged, t.cfg.to_dict(), parameter_counts(t.model), t.history, evaluated,
                           dynamics, None if resumed is None else resumed.epoch, timing,
                           provenance_block or provenance(t.data, t.device, started))


def parser() -> argparse.ArgumentParser:
    """One flag per Config field (``--top-k`` or ``--top_k``), all defaulting to None (the dataclass holds the defaults)."""
    ap = argparse.ArgumentParser(prog="python -m moe.train", description="Train one mixture-of-experts model and write its run record.")
    ap.add_argument("--config", help="YAML or JSON file of config fields (flags override it)")
    ap.add_argument("--out", help="write the run record (JSON) here")
    ap.add_argument("--force", action="store_true", help="overwrite the --out file if it exists (refused otherwise)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--trace", help="text datasets: write the validation split's routing trace (moe.records.trace, .npz) here")
    defaults, choices = Config(), field_choices()
    for name in FIELD_TYPES:  # short lines: the range and the first part of the field's comment (the rest: docs/config.md)
        flags = sorted({f"--{name.replace('_', '-')}", f"--{name}"})
        text = f"{help_text(name)} "
        listed = f"choices: {' | '.join(choices[name])}; " if name in choices else ""
        ap.add_argument(*flags, dest=name, default=None, metavar="VALUE",
                        help=f"{text}({listed}default: {getattr(defaults, name)!r})".replace("%", "%%"))
    return ap


def main(argv: list[str] | None = None) -> int:
    """Exit 0: a finished run; 2: a bad config or missing data (one ``error:`` line per problem, nothing run);
    1: the run diverged (one line saying at which epoch and why; the record still written with ``--out``);
    3: the ``--out`` record could not be written (a full or read-only disk: one line; nothing half-written is left)."""
    args = parser().parse_args(argv)
    if args.out and (problem := out_problem(args.out, force=args.force)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    values: dict[str, Any] = {}
    try:
        if args.config:
            values.update(load_file(args.config))
        values.update({k: getattr(args, k) for k in FIELD_TYPES if getattr(args, k) is not None})
        cfg = from_dict(values)
    except ConfigError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        lm = is_text_dataset(cfg.dataset) or args.trace  # run_lm refuses --trace for other datasets
        record = run_lm(cfg, progress=not args.quiet, trace_out=args.trace) if lm else run(cfg, progress=not args.quiet)
    except ConfigError as err:  # sizes the loaded data lacks, device unavailable
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (FileNotFoundError, DataFileError, TextDataError) as err:  # data files missing or damaged
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if args.out:
            with contextlib.suppress(OSError):  # a disk that cannot take the error record: the error itself matters more
                write_json_atomic(args.out, error_record(cfg.to_dict(), err, provenance=provenance()))
        raise
    diverged = record["status"] == "diverged"
    if not diverged:
        test, val = record["test"], record.get("validation") or {}
        print(lm_summary(record) if "bits_per_byte" in test else f"status {record['status']}  validation accuracy "
              f"{val.get('accuracy', math.nan):.4f}  test accuracy {test.get('accuracy', math.nan):.4f}  train {record['timing']['train_s']:.1f}s")
    written = None
    if args.out:
        try:
            written = write_json_atomic(args.out, record)
        except OSError as err:  # a full disk, a folder made read-only during the run, a file too large
            print(f"error: --out {args.out}: cannot write the record: {err.strerror or err}; nothing was written there"
                  f"{'' if diverged else ' (its scores are printed above)'}; free space or fix the permissions, then "
                  "run again", file=sys.stderr)
            return EXIT_NOT_WRITTEN
    if diverged:  # one line, no traceback, exit 1; the record is still written
        print(f"diverged at epoch {record['diverged']['epoch']}: {record['diverged']['reason']}"
              f"{f'; record written to {written}' if written else ''}", file=sys.stderr)
        return 1
    if written:
        print(f"record written to {written}")
    return 0


EXIT_NOT_WRITTEN = 3  # the run finished, but its --out record could not be written (a full or read-only disk)

if __name__ == "__main__":
    sys.exit(main())
