"""The experts' base: the :class:`ExpertBank` base class and the ``EXPERTS`` registry. An expert bank holds
E experts, each its own module (its own optimizer group). Adding an expert type is one small file that
registers an :class:`ExpertBank` subclass and one import line in ``moe/experts/__init__.py``; a type may
define ``input_problems(cfg, input_shape) -> list[str]`` (checked against the dataset by ``moe.validate``).

Letters: T samples in the batch, D input features, H hidden width, C classes, E experts,
A routed assignments (rows grouped by expert, see ``kernels.RoutingPlan``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from moe.registry import Registry

EXPERTS: Registry = Registry("expert")


class ExpertBank(nn.Module):
    """E experts mapping inputs to C class logits.

    ``forward_routed(x, plan) -> [A, C]`` evaluates only the routed (sample, expert) pairs, rows in the
    plan's expert-grouped order; ``forward_all(x) -> [T, E, C]`` evaluates every expert on every sample
    (the seed code's way; used for error attribution and as the dense reference).
    ``hidden_size`` is the width of the per-expert hidden state (0: the expert has none).
    """

    hidden_size: int = 0

    @classmethod
    def hidden_width(cls, cfg) -> int:
        """The hidden-state width H this expert type has under ``cfg`` (0: none), known before building."""
        return 0

    @classmethod
    def activation_width(cls, cfg, input_shape: tuple[int, ...], n_classes: int) -> int:
        """Floats one expert holds per sample in a forward pass (its hidden state and its logits), known before
        building: the activation term of ``moe.validate.memory_estimate``."""
        return cls.hidden_width(cfg) + n_classes

    def hidden_all(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} experts have no hidden state")

    def __init__(self, experts: list[nn.Module]):
        super().__init__()
        self.experts = nn.ModuleList(experts)

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def forward_routed(self, x: Tensor, plan) -> Tensor:
        raise NotImplementedError

    def forward_all(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def stacked(self, get) -> Tensor:
        """Stack one parameter of every expert along a new leading expert axis (differentiable)."""
        return torch.stack([get(e) for e in self.experts], 0)
