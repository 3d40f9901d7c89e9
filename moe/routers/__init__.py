"""Routers by name. Every router, learned or not, returns a :class:`Routing` whose ``plan`` is the
kernels' routing plan; the expert layer consumes only that plan.

Letters: T samples, D input features, E experts, k experts per sample, H expert hidden width.

Adding a router is adding one small file that registers a :class:`Router` subclass with
``@ROUTERS.register("name")`` and is imported at the bottom of this file. A router may define
``config_problems(cfg) -> list[str]`` for its own configuration rules (checked before training).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kernels import RoutingPlan
from moe.registry import Registry

ROUTERS: Registry = Registry("router")


@dataclass
class Routing:
    plan: RoutingPlan  # which experts each sample goes to, with which weights
    logits: Tensor  # [T, E] gate logits after the temperature
    probs: Tensor  # [T, E] the gate's full distribution softmax(logits) (before any top-k or capacity)
    load: Tensor | None = None  # [E] a differentiable expected load, where the router has one (noisy top-k)

    def dense_weights(self) -> Tensor:
        """[T, E] the routing weights actually used to mix the experts, zero for experts not routed to."""
        p = self.plan
        valid = p.expert_ids >= 0
        out = torch.zeros(p.n_tokens, p.n_experts, dtype=p.weights.dtype, device=p.weights.device)
        return out.scatter_add(1, p.expert_ids.clamp_min(0), torch.where(valid, p.weights, 0))

    def assignment(self) -> Tensor:
        """[T] the expert with the largest routing weight (-1 for a sample no expert took)."""
        return self.plan.expert_ids[:, 0]

    def dropped(self) -> Tensor:
        """[T] bool: samples that no expert took (capacity overflow, expert choice)."""
        return self.plan.expert_ids[:, 0] < 0


class NonFiniteError(ArithmeticError):
    """The gate produced NaN or infinite logits: the run has diverged."""


def check_finite(logits: Tensor) -> Tensor:
    if not torch.isfinite(logits).all():
        raise NonFiniteError("gate logits are NaN or infinite")
    return logits


def gate_network(kind: str, n_in: int, n_out: int, hidden: int) -> nn.Module:
    """``linear``: x W + b; ``mlp``: relu(x W1 + b1) W2 + b2 (a black-box gate, hidden width ``hidden``)."""
    if kind == "linear":
        return nn.Linear(n_in, n_out)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class Router(nn.Module):
    """Base: a gate network g on the flattened input (cfg.gate: linear or mlp), logits = g(x) / T.

    ``temperature`` is a plain attribute, so a training regime can decay it between epochs.
    """

    needs_expert_hidden = False  # True: forward() also receives the experts' hidden states [T, E, H]
    batch_dependent = False  # True: a sample's routing depends on the rest of its batch (evaluate in training-size batches)
    uses_gate_network = True  # False: the router ignores cfg.gate (it must stay 'linear')
    learned = True  # False: a fixed router without parameters (hash)

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__()
        self.n_experts = n_experts
        self.temperature = cfg.temperature
        kind = cfg.gate if self.uses_gate_network else "linear"  # an interpretable router stays linear
        self.gate = gate_network(kind, math.prod(input_shape), n_experts, cfg.gate_hidden)

    def gate_logits(self, x: Tensor) -> Tensor:
        return check_finite(self.gate(x.flatten(1)) / self.temperature)  # [T, E]

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        raise NotImplementedError

    def init_from_data(self, x: Tensor, generator: torch.Generator) -> None:
        """Data-dependent initialisation before training (x: training inputs); most routers have none."""

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        if not cls.uses_gate_network and cfg.gate != "linear":
            return [f"gate: the {cfg.router} router has no gate network to replace; gate must be 'linear', got {cfg.gate!r}"]
        return []


def capacity_slots(capacity: float, n_tokens: int, n_experts: int) -> int:
    """Samples an expert may take from a batch: ceil(c * T / E), at least 1 and at most T."""
    return max(1, min(n_tokens, math.ceil(round(capacity * n_tokens / n_experts, 9))))


from moe.routers import attention, expert_choice, hashing, linear, prototype, softmax, switch, topk  # noqa: E402,F401  (register)
