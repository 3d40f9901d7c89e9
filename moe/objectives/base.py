"""The objectives' base: the ``OBJECTIVES`` and ``REGULARISERS`` registries, :class:`Loss` and the regularisers' rules.

An objective is the task loss ``f(out, y) -> scalar`` (``out`` a ``moe.model.MoEOutput``); its attribute
``combine`` tells the model how to combine the experts ("mixture": log sum_e p_e q_e, the default;
"product": log softmax(sum_e p_e log q_e)). A regulariser is ``f(out, x) -> scalar`` with a config field
holding its coefficient (0: off). :class:`Loss` adds the regularisers that are on to the objective.

Adding one is adding one small function registered with ``@OBJECTIVES.register(name)`` or
``@regulariser(name, field)`` in a file imported by ``moe/objectives/__init__.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from moe.registry import Registry

OBJECTIVES: Registry = Registry("objective")
REGULARISERS: Registry = Registry("regulariser")


@dataclass(frozen=True)
class Regulariser:
    name: str
    field: str  # the config field holding its coefficient
    fn: Callable[..., Tensor]  # (out: MoEOutput, x: Tensor [T, ...]) -> scalar


def regulariser(name: str, field: str):
    """Register ``fn(out, x) -> scalar`` as a regulariser whose coefficient is ``cfg.<field>``."""
    def add(fn):
        REGULARISERS.register(name)(Regulariser(name, field, fn))
        return fn

    return add


def combine_mode(cfg) -> str:
    """How the model combines the experts for ``cfg.objective``: 'mixture' or 'product'."""
    return getattr(OBJECTIVES.get(cfg.objective, "objective"), "combine", "mixture")


class Loss:
    """total = objective(out, y) + sum_r coefficient_r * regulariser_r(out, x), over the regularisers that are on.

    ``__call__`` returns (total, terms), terms = {"task": ..., "<regulariser>": unweighted value} (detached).
    """

    def __init__(self, cfg):
        self.task = OBJECTIVES.get(cfg.objective, "objective")
        self.terms = [(r, getattr(cfg, r.field)) for r in map(REGULARISERS.get, REGULARISERS) if getattr(cfg, r.field) != 0]

    def __call__(self, out, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        total = self.task(out, y)
        terms = {"task": total.detach()}
        for reg, coefficient in self.terms:
            value = reg.fn(out, x)
            terms[reg.name] = value.detach()
            total = total + coefficient * value
        return total, terms


def config_problems(cfg) -> list[str]:
    """The regularisers' own rules, one message per bad field (the load loss's need of a noisy top-k router and
    router matching's rules: ``moe.validate`` and ``moe.objectives.matching``)."""
    problems = []
    if cfg.similarity_diff != 0 and cfg.experts < 2:
        problems.append("similarity_diff: the between-expert term needs experts >= 2")
    return problems
