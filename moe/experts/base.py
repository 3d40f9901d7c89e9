"""The experts' base: the :class:`ExpertBank` base class and the ``EXPERTS`` registry. An expert bank holds
E experts, each its own module (its own optimizer group). Adding an expert type is one small file that
registers an :class:`ExpertBank` subclass (defining ``routed_logits`` and ``all_logits``) and one import
line in ``moe/experts/__init__.py``; a type may define ``input_problems(cfg, input_shape) -> list[str]``
(checked against the dataset by ``moe.validate``).

Masked experts (``mask_experts``, the seed code's pair experts): any bank can be restricted to a class split
(:meth:`ExpertBank.mask_classes`); expert e then predicts q_e(c | x) = softmax over its own classes of its
logits, scattered into the C classes, and exactly 0 for the others.

Letters: T samples in the batch, D input features, H hidden width, C classes, E experts,
A routed assignments (rows grouped by expert, see ``kernels.RoutingPlan``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from moe.registry import Registry

EXPERTS: Registry = Registry("expert")
# The log-probability of a class outside a masked expert's classes: finite, so that no log-sum-exp meets
# -inf - (-inf) and every loss stays finite (the mixture NLL of a sample routed only to experts that do not
# own its class is ~1e4, the expectation loss -log(0 + 1e-7)), yet exp() of it is exactly 0 in float32 and
# float64: the probability is exactly zero. A constant: no gradient flows through it.
MASKED_LOG_PROB = -1e4


def masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """log q: the log-softmax of ``logits`` over the classes where ``mask`` is true, :data:`MASKED_LOG_PROB`
    elsewhere. logits: [..., C], mask: bool, broadcast to it. The masked logits are replaced (not shifted),
    so their parameters get exactly zero gradient; a log-softmax of the result gives it back (its
    probabilities sum to 1), so callers that take log_softmax of expert outputs need no change."""
    own = torch.log_softmax(logits.masked_fill(~mask, -torch.inf), -1)
    return own.masked_fill(~mask, MASKED_LOG_PROB)


class ExpertBank(nn.Module):
    """E experts mapping inputs to C class logits.

    ``forward_routed(x, plan) -> [A, C]`` evaluates only the routed (sample, expert) pairs, rows in the
    plan's expert-grouped order; ``forward_all(x) -> [T, E, C]`` evaluates every expert on every sample
    (the seed code's way; used for error attribution and as the dense reference). A subclass computes its
    logits in ``routed_logits`` and ``all_logits``; these two apply the class mask, when there is one
    (masked experts give log-probabilities, which are logits of the same distribution).
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
        building: the activation term of ``moe.model.memory_estimate``."""
        return cls.hidden_width(cfg) + n_classes

    def hidden_all(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} experts have no hidden state")

    def __init__(self, experts: list[nn.Module]):
        super().__init__()
        self.experts = nn.ModuleList(experts)

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        raise NotImplementedError

    def all_logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_routed(self, x: Tensor, plan) -> Tensor:
        logits = self.routed_logits(x, plan)  # [A, C]
        if not self.masked:
            return logits
        experts = torch.repeat_interleave(torch.arange(self.n_experts, device=logits.device), plan.counts.to(logits.device),
                                          output_size=logits.shape[0])  # [A] the expert of each row
        return masked_log_softmax(logits, self.class_mask[experts])

    def forward_all(self, x: Tensor) -> Tensor:
        logits = self.all_logits(x)  # [T, E, C]
        return masked_log_softmax(logits, self.class_mask) if self.masked else logits

    @property
    def masked(self) -> bool:
        return "class_mask" in self._buffers  # (hasattr would go through nn.Module's failing __getattr__ each step)

    def mask_classes(self, split: list[list[int]], n_classes: int) -> None:
        """Restrict expert e to the classes ``split[e]`` (the seed code's pair experts). The mask is a buffer
        [E, C] (bool), so it moves with the model and is part of its state (checkpoints, the 'same' refit)."""
        mask = torch.zeros(self.n_experts, n_classes, dtype=torch.bool)
        for e, part in enumerate(split):
            mask[e, part] = True
        self.register_buffer("class_mask", mask.to(next(iter(self.parameters()), mask).device))

    def unmask(self) -> None:
        """Let every expert predict every class again (a full expert), keeping the buffer (the state's keys)."""
        if self.masked:
            self.class_mask.fill_(True)

    def readable_parameters(self) -> int:
        """Parameters one reads to understand one expert (the global interpretability score
        ``used_expert_parameters``): those of one expert module; a bank whose experts share weights overrides it."""
        return sum(p.numel() for p in self.experts[0].parameters())

    def stacked(self, get) -> Tensor:
        """Stack one parameter of every expert along a new leading expert axis (differentiable)."""
        return torch.stack([get(e) for e in self.experts], 0)
