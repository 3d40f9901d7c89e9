"""Routers by name. Every router, learned or not, returns a :class:`Routing` whose ``plan`` is the
kernels' routing plan; the expert layer consumes only that plan.

Letters: T samples, D input features, E experts, k experts per sample.
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
    probs: Tensor  # [T, E] the gate's full distribution softmax(logits) (before any top-k)

    def dense_weights(self) -> Tensor:
        """[T, E] the routing weights actually used to mix the experts, zero for experts not routed to."""
        p = self.plan
        valid = p.expert_ids >= 0
        out = torch.zeros(p.n_tokens, p.n_experts, dtype=p.weights.dtype, device=p.weights.device)
        return out.scatter_add(1, p.expert_ids.clamp_min(0), torch.where(valid, p.weights, 0))

    def assignment(self) -> Tensor:
        """[T] the expert with the largest routing weight (-1 for a sample no expert took)."""
        return self.plan.expert_ids[:, 0]


class NonFiniteError(ArithmeticError):
    """The gate produced NaN or infinite logits: the run has diverged."""


def check_finite(logits: Tensor) -> Tensor:
    if not torch.isfinite(logits).all():
        raise NonFiniteError("gate logits are NaN or infinite")
    return logits


class Router(nn.Module):
    """Base: a linear gate on the flattened input, logits = (x W_g + b_g) / T."""

    needs_expert_hidden = False  # True: forward() also receives the experts' hidden states [T, E, H]

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__()
        self.n_experts = n_experts
        self.temperature = cfg.temperature
        self.gate = nn.Linear(math.prod(input_shape), n_experts)

    def gate_logits(self, x: Tensor) -> Tensor:
        return check_finite(self.gate(x.flatten(1)) / self.temperature)  # [T, E]

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        raise NotImplementedError


from moe.routers import softmax, topk  # noqa: E402,F401  (register the routers)
