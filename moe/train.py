"""One training run: ``run(config, data=None, on_epoch=None) -> record``, a pure function of its config
and seed. ``python -m moe.train`` is a thin CLI over it.

``data`` lets a caller (a Ray trial) pass a dataset loaded once; ``on_epoch(metrics)`` reports progress
after every epoch and stops training early when it returns a true value.

Checkpoints: ``on_state(state_bytes)`` receives the full training state (``TrainState.to_bytes()``) after
every finished epoch, and ``run(..., state=state_bytes)`` continues from one: a run resumed after epoch k
gives exactly the record of the run never stopped (same numbers, bitwise, on the CPU).
``evaluate_state(config, state_bytes)`` scores a saved state as ``run`` would have had it stopped there
(a sweep trial stopped early by its scheduler).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm import tqdm

from moe.config import FIELD_TYPES, Config, ConfigError, as_config, field_help, from_dict, load_file
from moe.data import Dataset, load_for_config, subset
from moe.data.mnist import DataFileError
from kernels import RoutingPlan
from moe import regimes
from moe.model import MixtureOfExperts, build_experts, build_model
from moe.objectives import Loss
from moe.routers import NonFiniteError
from moe.record import SCHEMA, error_record, versions, write_json_atomic

EVAL_BATCH = 1024
EVAL_SHUFFLE_SEED = 0  # the fixed evaluation order of batch-dependent routers
STATE_VERSION = 1  # of the saved training state (TrainState)
NOT_IN_STATE_HASH = ("data_root",)  # where the data files are, not what they hold: a resumed run may find them elsewhere


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["device: 'cuda' asked for but no CUDA device is available; valid choices here: cpu, auto"])
    return torch.device(name)


def build_optimizer(cfg: Config, model: MixtureOfExperts, train_gate: bool = True,
                    train_experts: bool = True) -> torch.optim.Optimizer:
    """One parameter group for the router side (gate and matched router) and one per expert, each with its
    own learning rate; a frozen side gets no group."""
    gate_params = [p for m in model.gate_modules() for p in m.parameters()]
    groups = [{"name": "gate", "params": gate_params, "lr": cfg.lr if cfg.gate_lr is None else cfg.gate_lr}]
    for e, (expert, lr) in enumerate(zip(model.experts.experts, cfg.expert_learning_rates())):
        groups.append({"name": f"expert{e}", "params": list(expert.parameters()), "lr": lr})
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}, "every parameter belongs to exactly one group"
    trained = lambda g: train_gate if g["name"] == "gate" else train_experts  # noqa: E731
    groups = [g for g in groups if g["params"] and trained(g)]  # a fixed (non-learned) router has no parameters
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_trainable(model: MixtureOfExperts, gate: bool, experts: bool) -> None:
    """Freeze or unfreeze the router side and the experts (no gradients are computed for a frozen side)."""
    for m in model.gate_modules():
        m.requires_grad_(gate)
    model.experts.requires_grad_(experts)


def train_epoch(model, optimizer, loss_fn, x, y, batch_size: int, generator: torch.Generator,
                on_batch: Callable[[int], Any] | None = None, train_gate: bool = True) -> dict[str, Any]:
    """One pass over shuffled mini-batches. Returns the mean loss (and each loss term ``loss_<name>``), accuracy,
    each expert's share of samples (as top-weight expert, ``expert_share``), its mean routing weight
    (``expert_weight``: the seed paper's 'sample count' / N), its mean NLL on the samples routed to it
    (``expert_loss``, None if it got none), and the share of samples no expert took (``dropped``).
    A frozen gate runs in eval mode.

    Stops at the first non-finite loss and reports it, leaving the parameters of the last good step.
    """
    model.train()
    for m in model.gate_modules():
        m.train(train_gate)
    n, n_experts = len(y), model.experts.n_experts
    total_loss, correct, seen, terms = 0.0, 0, 0, {}
    top_counts = torch.zeros(n_experts, dtype=torch.long, device=y.device)
    weight_sum = torch.zeros(n_experts, dtype=torch.float64, device=y.device)
    nll_sum = torch.zeros(n_experts, dtype=torch.float64, device=y.device)
    pairs = torch.zeros(n_experts, dtype=torch.long, device=y.device)
    dropped = torch.zeros((), dtype=torch.long, device=y.device)
    for idx in torch.randperm(n, generator=generator).to(y.device).split(batch_size):
        try:
            out = model(x[idx])
        except NonFiniteError:
            return {"train_loss": math.nan, "finite": False}
        loss, parts = loss_fn(out, x[idx], y[idx])
        if not torch.isfinite(loss):
            return {"train_loss": float(loss.detach()), "finite": False}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(idx)
        for name, value in parts.items():
            terms[name] = terms.get(name, 0.0) + value * len(idx)
        correct += int((out.log_probs.argmax(1) == y[idx]).sum())
        seen += len(idx)
        top = out.routing.assignment()
        top_counts += torch.bincount(top[top >= 0], minlength=n_experts)
        dropped += (top < 0).sum()
        with torch.no_grad():  # the seed paper's per-epoch curves: mean gate weight and own-sample loss of each expert
            weight_sum += out.routing.dense_weights().sum(0).double()
            ids = out.routing.plan.expert_ids  # [B, k]
            nll = -out.expert_log_probs.gather(2, y[idx][:, None, None].expand(-1, ids.shape[1], 1))[..., 0]  # [B, k]
            valid = ids >= 0
            nll_sum.index_add_(0, ids[valid], nll[valid].double())
            pairs += torch.bincount(ids[valid], minlength=n_experts)
        if on_batch is not None:
            on_batch(1)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen,
            **{f"loss_{name}": float(v) / seen for name, v in terms.items()},
            "expert_share": (top_counts.double() / seen).tolist(), "expert_weight": (weight_sum / seen).tolist(),
            "expert_loss": [float(s / c) if c > 0 else None for s, c in zip(nll_sum.tolist(), pairs.tolist())],
            "dropped": int(dropped) / seen, "finite": True}


def pretrain_epoch(model, optimizer, x, y, owner: torch.Tensor, batch_size: int, generator: torch.Generator,
                   on_batch: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Each expert trained alone on its own classes: owner [N] is the expert of each training sample.

    Every expert draws its own shuffled batches of ``batch_size`` from its samples; the experts' batches of
    one step run together through one routing plan (expert e gets exactly its rows), and the loss is the sum
    over experts of each one's mean cross-entropy, so each expert's gradient is that of training it alone.
    """
    model.train()
    n_experts = model.experts.n_experts
    mine = [torch.nonzero(owner == e).flatten() for e in range(n_experts)]
    queues = [m[torch.randperm(len(m), generator=generator).to(m.device)].split(batch_size) for m in mine]
    total_loss, correct, seen, steps = 0.0, 0, 0, max(len(q) for q in queues)
    none = torch.zeros(0, dtype=torch.long, device=y.device)
    for step in range(steps):
        parts = [q[step] if step < len(q) else none for q in queues]
        rows = torch.cat(parts)  # sorted by expert, so the plan's grouped order is the identity
        experts = torch.repeat_interleave(torch.arange(n_experts, device=y.device),
                                          torch.tensor([len(p) for p in parts], device=y.device))
        plan = RoutingPlan.from_assignments(torch.arange(len(rows), device=y.device), experts,
                                            torch.ones(len(rows), device=y.device), len(rows), n_experts)
        log_q = torch.log_softmax(model.experts.forward_routed(x[rows], plan), -1)  # [A, C]
        nll = -log_q.gather(1, y[rows][:, None])[:, 0]
        loss = (nll / plan.counts[experts]).sum()  # sum_e mean_{rows of e} nll
        if not torch.isfinite(loss):
            return {"train_loss": float(loss.detach()), "finite": False}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for e in range(n_experts):  # an expert whose samples ran out this epoch makes no step (Adam would move it)
            if len(parts[e]) == 0:
                for p in model.experts.experts[e].parameters():
                    p.grad = None
        optimizer.step()
        total_loss += float(nll.detach().sum())
        correct += int((log_q.argmax(1) == y[rows]).sum())
        seen += len(rows)
        if on_batch is not None:
            on_batch(1)
    share = torch.bincount(owner, minlength=n_experts).double() / len(owner)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen, "expert_share": share.tolist(),
            "dropped": 0.0, "finite": True}


def eval_batch_size(cfg: Config, model: MixtureOfExperts) -> int:
    """Batch-dependent routers (expert choice, capacity limits) are evaluated in training-size batches."""
    return cfg.batch_size if model.router.batch_dependent else EVAL_BATCH


def eval_order(model: MixtureOfExperts, n: int) -> torch.Tensor | None:
    """For a batch-dependent router, a fixed shuffle of the n evaluation samples (the same for every run), so
    that its evaluation batches are mixed like its training batches (a test split may be sorted by class)."""
    if not model.router.batch_dependent:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(EVAL_SHUFFLE_SEED))


@torch.no_grad()
def predict(model: MixtureOfExperts, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> dict[str, torch.Tensor]:
    """Mixture predictions, top-weight expert, dense routing weights [N, E] and each expert's own predictions [N, E],
    in the order of x (batch-dependent routers see x in the fixed shuffled order of ``eval_order``)."""
    model.eval()
    order = eval_order(model, len(x))
    xs = x if order is None else x[order.to(x.device)]
    parts: dict[str, list[torch.Tensor]] = {"log_probs": [], "preds": [], "assignment": [], "weights": [], "expert_preds": []}
    for xb in xs.split(batch_size):
        out = model(xb)
        parts["log_probs"].append(out.log_probs)
        parts["preds"].append(out.log_probs.argmax(1))
        parts["assignment"].append(out.routing.assignment())
        parts["weights"].append(out.routing.dense_weights())
        parts["expert_preds"].append(model.experts.forward_all(xb).argmax(-1))
    result = {k: torch.cat(v).cpu() for k, v in parts.items()}
    if order is not None:
        result = {k: torch.empty_like(v).index_copy_(0, order, v) for k, v in result.items()}
    return result


def test_scores(model: MixtureOfExperts, data: Dataset, device: torch.device,
                batch_size: int = EVAL_BATCH) -> tuple[dict[str, float], list[list[int]], list[int]]:
    """Every score of ``moe.metrics.score`` on the test split (with ``dropped``, the share of test samples no
    expert took), the test loss, the class x expert allocation counts and the per-sample assignment."""
    from moe.metrics import allocation, score

    p = predict(model, data.x_test.to(device), batch_size)
    y = data.y_test
    scores = score(y, p["preds"], p["assignment"], data.n_classes, model.experts.n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping)
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    alloc = allocation(y, p["assignment"], data.n_classes, model.experts.n_experts).tolist()
    return scores, alloc, p["assignment"].tolist()


@torch.no_grad()
def accuracy(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    model.eval()
    order = eval_order(model, len(y))
    if order is not None:
        x, y = x[order.to(x.device)], y[order.to(y.device)]
    return float(sum(int((model(xb).log_probs.argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size))) / len(y))


def fresh_experts(cfg: Config, model: MixtureOfExperts, initial: dict[str, torch.Tensor], how: str,
                  input_shape: tuple[int, ...], n_classes: int) -> None:
    """Replace the experts' weights by their initial ones ('same') or by a new draw ('new', seeded from cfg.seed)."""
    if how == "same":
        model.experts.load_state_dict(initial)
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1_000_003)
        state = build_experts(cfg, input_shape, n_classes).state_dict()
    model.experts.load_state_dict(state)


def temperature_at(cfg: Config, gate_epoch: int) -> float:
    """Gate temperature in the gate's ``gate_epoch``-th training epoch (1-based): max(T * decay^(n-1), T_min)."""
    if cfg.temperature_decay == 1:
        return cfg.temperature
    return max(cfg.temperature * cfg.temperature_decay ** (gate_epoch - 1), cfg.temperature_min)


# ---------------------------------------------------------------------------------------------------
# The training state saved after each epoch (checkpoints)
# ---------------------------------------------------------------------------------------------------

class StateMismatch(ValueError):
    """A saved training state that another config (or another state format) wrote."""


def config_hash(cfg: Config) -> str:
    """A short hash of every config field that decides a run's numbers."""
    fields = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_STATE_HASH}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainState:
    """Everything ``run`` needs to go on after a finished epoch with the numbers of a run never stopped.

    The loop draws random numbers from two generators after set-up: ``batch_order`` (shuffles) and torch's
    global one (the noisy top-k gate's ``randn_like``; the CUDA one on a GPU); numpy and ``random`` are not
    used. The optimizer is that of the phase the epoch belongs to (each phase starts a fresh one).
    """
    config_hash: str
    config: dict[str, Any]  # to name the fields that differ when a state is refused
    epoch: int  # epochs finished, counted across phases
    gate_epochs: int  # epochs that trained the gate (the temperature schedule)
    temperature: float
    history: list[dict[str, Any]]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]  # batch_order, torch, cuda (on a GPU)
    train_s: float  # training seconds of the epochs in history
    version: int = STATE_VERSION

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        """Read with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
        try:
            saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # truncated file, or not a torch file at all
            raise StateMismatch(f"state: cannot read it as a training state: {err}") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(saved, dict) or set(saved) != names or saved["version"] != STATE_VERSION:
            found = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise StateMismatch(f"state: not a training state of version {STATE_VERSION} (found {found})")
        return cls(**saved)

    def check_config(self, cfg: Config) -> None:
        """Refuse a state another config wrote, naming the fields that differ."""
        if self.config_hash == config_hash(cfg):
            return
        now = cfg.to_dict()
        diff = [f"{k}: {self.config.get(k)!r} in the state, {v!r} here" for k, v in now.items()
                if k not in NOT_IN_STATE_HASH and self.config.get(k) != v]
        raise StateMismatch(f"state: written by a run of another config ({'; '.join(diff) or 'config hash differs'})")


def capture_state(cfg: Config, model: MixtureOfExperts, optimizer: torch.optim.Optimizer, batch_order: torch.Generator,
                  device: torch.device, *, epoch: int, gate_epochs: int, history: list[dict[str, Any]],
                  train_s: float) -> TrainState:
    rng = {"batch_order": batch_order.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return TrainState(config_hash(cfg), cfg.to_dict(), epoch, gate_epochs, model.router.temperature, history,
                      model.state_dict(), optimizer.state_dict(), rng, train_s)


def load_model_state(state: TrainState, model: MixtureOfExperts) -> None:
    """The model of a saved state: its parameters and the router's temperature at that epoch."""
    model.load_state_dict(state.model)
    model.set_temperature(state.temperature)


def restore_state(state: TrainState, model: MixtureOfExperts, batch_order: torch.Generator, device: torch.device) -> None:
    """The model, temperature and generators of a saved state (the optimizer waits for its phase)."""
    if ("cuda" in state.rng) != (device.type == "cuda"):
        raise StateMismatch(f"device: the state was saved {'on' if 'cuda' in state.rng else 'off'} CUDA, this run is on {device}")
    load_model_state(state, model)
    batch_order.set_state(state.rng["batch_order"])
    torch.set_rng_state(state.rng["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state.rng["cuda"], device)


def load_state(state: TrainState | bytes, cfg: Config) -> TrainState:
    state = TrainState.from_bytes(state) if isinstance(state, (bytes, bytearray)) else state
    state.check_config(cfg)
    return state


def phase_starts(plan: list[regimes.Phase]) -> list[int]:
    """The epochs finished before each phase (``epoch`` counts across phases)."""
    return [sum(p.epochs for p in plan[:i]) for i in range(len(plan))]


def run_data(cfg: Config, data: Dataset | dict | None) -> Dataset:
    """The data of a run: loaded for the config, or the dataset a caller loaded once (a sweep driver),
    checked and cut to the config's subsets."""
    if data is None:
        return load_for_config(cfg)
    data = Dataset.from_numpy(data) if isinstance(data, dict) else data
    if data.name != cfg.dataset:
        raise ValueError(f"data: the dataset passed in is {data.name!r} but the config asks for {cfg.dataset!r}")
    return subset(data, cfg.n_train, cfg.n_test, cfg.data_seed)


def initial_model(cfg: Config, data: Dataset, x_train: torch.Tensor) -> MixtureOfExperts:
    """The model a run starts from, on the device of x_train: seeded by cfg.seed (the global torch generator),
    its routers initialised from the training inputs (prototypes)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.input_shape, data.n_classes).to(x_train.device)
    model.init_from_data(x_train, torch.Generator().manual_seed(cfg.seed))
    return model


def evaluate(model: MixtureOfExperts, data: Dataset, device: torch.device, batch_size: int) -> dict[str, Any]:
    """The record fields of the test evaluation: ``dataset``, ``test`` (every score), ``allocation``, ``test_assignment``."""
    scores, alloc, assignment = test_scores(model, data, device, batch_size)
    return {"dataset": data.describe(), "test": scores, "allocation": alloc,
            "test_assignment": assignment}  # expert of each test sample (-1: none), for seed stability


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
    """The test evaluation of a saved training state: the record fields (``evaluate``) that ``run`` gives when
    it stops after the state's epoch, exactly (bitwise on the CPU). For a trial a scheduler stopped before
    its final report. A state another config wrote raises ``StateMismatch``.

    It runs on the config's device, with its torch threads; the caller's threads and random generators are
    left as they were (building the model reseeds the global one).
    """
    cfg = as_config(config)
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
    """Train one mixture of experts through the phases of its regime and return its run record (``moe.record``).

    ``history`` holds one entry per epoch of every phase (``epoch`` counts across phases, ``phase`` and
    ``phase_epoch`` say where it belongs); ``on_epoch`` is called after each and stops the run when it
    returns a true value; ``test`` scores the model after the last phase.

    ``on_state(state_bytes)`` is called after each finished epoch, just before ``on_epoch``, with the whole
    training state; ``state`` (such bytes, or a ``TrainState``) continues a run from there, and the record
    says ``resumed_from_epoch``. A state written under another config raises ``StateMismatch``.
    """
    started = time.perf_counter()
    cfg = as_config(config)  # every field checked before any work
    resumed = None if state is None else load_state(state, cfg)  # another config's state is refused here
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = run_data(cfg, data)
    split = regimes.resolve_split(cfg, data.n_classes)
    if split is not None and (problems := regimes.split_problems(split, cfg.experts, data.n_classes)):
        raise ConfigError(problems)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    # model, loss, phases: all seeded
    model = initial_model(cfg, data, x_train)
    initial_experts = {k: v.clone() for k, v in model.experts.state_dict().items()}  # init_from_data set only the routers
    loss_fn = Loss(cfg)
    batch_order = torch.Generator().manual_seed(cfg.seed)
    eval_batch = eval_batch_size(cfg, model)
    plan = regimes.phases(cfg)
    owner = None if split is None else regimes.class_owners(split, data.n_classes).to(device)[y_train]  # [N] expert of each sample

    # where to start: epoch 0, or the epoch a saved state reached (its model, generators and history)
    history, status, epoch, gate_epochs, stop, saved_s = [], "ok", 0, 0, False, 0.0
    if resumed is not None:
        history, epoch, gate_epochs, saved_s = list(resumed.history), resumed.epoch, resumed.gate_epochs, resumed.train_s
        restore_state(resumed, model, batch_order, device)

    # the phases, each a training loop with one progress bar per epoch when asked
    train_started = time.perf_counter()
    for phase, phase_start in zip(plan, phase_starts(plan)):
        if phase_start + phase.epochs <= epoch:
            continue  # finished before the saved state
        inside = phase_start < epoch  # the saved state lies inside this phase: experts already reset, optimizer saved
        if phase.reset_experts and not inside:
            fresh_experts(cfg, model, initial_experts, phase.reset_experts, data.input_shape, data.n_classes)
        set_trainable(model, phase.train_gate, phase.train_experts)
        optimizer = build_optimizer(cfg, model, phase.train_gate, phase.train_experts)
        if inside:
            optimizer.load_state_dict(resumed.optimizer)
        for phase_epoch in range(epoch - phase_start + 1, phase.epochs + 1):
            epoch += 1
            if phase.train_gate:
                gate_epochs += 1
                model.set_temperature(temperature_at(cfg, gate_epochs))
            t0 = time.perf_counter()
            n_batches = math.ceil(len(y_train) / cfg.batch_size)
            label = f"epoch {phase_epoch}/{phase.epochs}" if len(plan) == 1 else f"{phase.name} epoch {phase_epoch}/{phase.epochs}"
            with tqdm(total=None if phase.pretrain else n_batches, desc=label, disable=not progress, file=sys.stderr) as bar:
                if phase.pretrain:
                    stats = pretrain_epoch(model, optimizer, x_train, y_train, owner, cfg.batch_size, batch_order, bar.update)
                else:
                    stats = train_epoch(model, optimizer, loss_fn, x_train, y_train, cfg.batch_size, batch_order,
                                        bar.update, train_gate=phase.train_gate)
                if stats.pop("finite"):
                    stats["test_accuracy"] = accuracy(model, x_test, y_test, eval_batch)
                bar.set_postfix(loss=f"{stats['train_loss']:.4f}", test_acc=f"{stats.get('test_accuracy', math.nan):.3f}")
            metrics = {"epoch": epoch, "phase": phase.name, "phase_epoch": phase_epoch, **stats,
                       "temperature": model.router.temperature, "epoch_s": time.perf_counter() - t0}
            history.append(metrics)
            if "test_accuracy" not in metrics:  # the loss became NaN or infinite
                status, stop = "diverged", True
            else:
                if on_state is not None:
                    on_state(capture_state(cfg, model, optimizer, batch_order, device, epoch=epoch, gate_epochs=gate_epochs,
                                           history=history, train_s=saved_s + time.perf_counter() - train_started).to_bytes())
                stop = on_epoch is not None and bool(on_epoch(metrics))
            if stop:
                break
        if stop:
            break
    set_trainable(model, True, True)
    train_s = saved_s + time.perf_counter() - train_started  # the epochs in history (not those redone after a crash)

    # evaluation on the test split
    t0 = time.perf_counter()
    evaluated = evaluate(model, data, device, eval_batch)
    return {"schema": SCHEMA, "status": status, "error": None, "config": cfg.to_dict(), "seed": cfg.seed,
            "history": history, **evaluated,
            "resumed_from_epoch": None if resumed is None else resumed.epoch,
            "timing": {"train_s": train_s, "eval_s": time.perf_counter() - t0, "total_s": time.perf_counter() - started},
            "versions": versions()}


def parser() -> argparse.ArgumentParser:
    """One flag per Config field (``--top-k`` or ``--top_k``), all defaulting to None (the dataclass holds the defaults)."""
    ap = argparse.ArgumentParser(prog="python -m moe.train", description="Train one mixture-of-experts model and write its run record.")
    ap.add_argument("--config", help="YAML or JSON file of config fields (flags override it)")
    ap.add_argument("--out", help="write the run record (JSON) here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    docs, defaults = field_help(), Config()
    for name in FIELD_TYPES:
        flags = sorted({f"--{name.replace('_', '-')}", f"--{name}"})
        text = f"{docs[name]} " if name in docs else ""
        ap.add_argument(*flags, dest=name, default=None, metavar="VALUE",
                        help=f"{text}(default: {getattr(defaults, name)!r})".replace("%", "%%"))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
        record = run(cfg, progress=not args.quiet)
    except (ConfigError, FileNotFoundError, DataFileError) as err:  # data files missing or damaged, device unavailable
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if args.out:
            write_json_atomic(args.out, error_record(cfg.to_dict(), err))
        raise
    test = record["test"]
    print(f"status {record['status']}  test accuracy {test.get('accuracy', math.nan):.4f}  "
          f"train {record['timing']['train_s']:.1f}s")
    if args.out:
        print(f"record written to {write_json_atomic(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
