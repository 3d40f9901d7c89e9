"""The training state saved after each epoch (checkpoints): :class:`TrainState`, its bytes, and the checks
that refuse a state written under another config or format.

``moe.training.loop.run(..., on_state=...)`` receives ``TrainState.to_bytes()`` after every finished epoch and
``run(..., state=...)`` continues from one with the numbers of a run never stopped (bitwise on the CPU). The
language model's loop (``moe.training.lm_loop``) saves the same state (``capture_lm_state``, ``restore_lm_state``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from moe.config import Config
from moe.model import MixtureOfExperts

STATE_VERSION = 1  # of the saved training state (TrainState)
# where the data files are, not what they hold: a resumed run may find them elsewhere; the preset's name
# (its values are in the other fields)
NOT_IN_STATE_HASH = ("data_root", "preset")
OPTIONAL = {"val_sets"}  # fields a state of this version may lack (written before they existed)


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
    # epoch -> int16 [N_val, k]: the validation split's experts after that epoch (moe.scoring.saturation; never in the
    # record); optional: a state saved before it existed reads as {}
    val_sets: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)

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
        if not isinstance(saved, dict) or not set(names) - OPTIONAL <= set(saved) <= names or saved["version"] != STATE_VERSION:
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


def rng_states(batch_order: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The states of the generators a run draws from after set-up: its batch order, torch's global one, CUDA's."""
    rng = {"batch_order": batch_order.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def check_device(rng: dict[str, torch.Tensor], device: torch.device) -> None:
    """Refuse a state saved on another kind of device (its generators are not this run's)."""
    if ("cuda" in rng) != (device.type == "cuda"):
        raise StateMismatch(f"device: the state was saved {'on' if 'cuda' in rng else 'off'} CUDA, this run is on {device}")


def restore_rngs(rng: dict[str, torch.Tensor], batch_order: torch.Generator, device: torch.device) -> None:
    """The generators of :func:`rng_states` set back."""
    check_device(rng, device)
    batch_order.set_state(rng["batch_order"])
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def capture_state(cfg: Config, model: MixtureOfExperts, optimizer: torch.optim.Optimizer, batch_order: torch.Generator,
                  device: torch.device, *, epoch: int, gate_epochs: int, history: list[dict[str, Any]],
                  train_s: float, val_sets: dict[int, torch.Tensor] | None = None) -> TrainState:
    return TrainState(config_hash(cfg), cfg.to_dict(), epoch, gate_epochs, model.router.temperature, history,
                      model.state_dict(), optimizer.state_dict(), rng_states(batch_order, device), train_s,
                      val_sets=dict(val_sets or {}))


def load_model_state(state: TrainState, model: MixtureOfExperts) -> None:
    """The model of a saved state: its parameters and the router's temperature at that epoch."""
    model.load_state_dict(state.model)
    model.set_temperature(state.temperature)


def restore_state(state: TrainState, model: MixtureOfExperts, batch_order: torch.Generator, device: torch.device) -> None:
    """The model, temperature and generators of a saved state (the optimizer waits for its phase)."""
    check_device(state.rng, device)
    load_model_state(state, model)
    restore_rngs(state.rng, batch_order, device)


# ---- the language model's state (moe.training.lm_loop): the same TrainState, read as follows ----
# epoch and history as above; gate_epochs = epoch and temperature = the config's (its routers keep one temperature);
# model and optimizer: the language model's and its one optimizer's; val_sets: training step -> int16 [L, N, k] the
# experts of the saturation windows in each MoE layer at that step (router saturation's snapshots).

def capture_lm_state(cfg: Config, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_order: torch.Generator,
                     device: torch.device, *, epoch: int, history: list[dict[str, Any]], train_s: float,
                     snapshots: list[tuple[int, list[np.ndarray]]]) -> TrainState:
    """The language model's training state after a finished epoch; ``snapshots``: (step, [N, k] experts per MoE layer)."""
    val_sets = {step: torch.from_numpy(np.stack(layers)).to(torch.int16) for step, layers in snapshots}
    return TrainState(config_hash(cfg), cfg.to_dict(), epoch, epoch, cfg.temperature, [dict(h) for h in history],
                      model.state_dict(), optimizer.state_dict(), rng_states(batch_order, device), train_s,
                      val_sets=val_sets)


def restore_lm_state(state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     batch_order: torch.Generator, device: torch.device) -> list[tuple[int, list[np.ndarray]]]:
    """The language model, its optimizer and generators as a saved state left them; returns its snapshots."""
    check_device(state.rng, device)
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    restore_rngs(state.rng, batch_order, device)
    return [(int(step), [layer.long().numpy() for layer in layers]) for step, layers in sorted(state.val_sets.items())]


def load_state(state: TrainState | bytes, cfg: Config) -> TrainState:
    state = TrainState.from_bytes(state) if isinstance(state, (bytes, bytearray)) else state
    state.check_config(cfg)
    return state
