"""The registry of scores: each score's name, direction (higher, lower or neutral: lm-evaluation-harness's
``higher_is_better``), what it needs, a one-line definition and how :func:`score` computes it.

``DIRECTIONS`` (what the sweep tables show), ``SCORE_KEYS`` (the keys :func:`score` returns, by the optional
argument they need) and :func:`score` itself are all read from ``SCORES``: adding a score is one
``_add(...)`` line below. The registration order is the display order. The formulas and sources are in the
building blocks of ``moe.metrics``; the shapes of the inputs and the handling of dropped samples are in
its module docstring.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import torch

from moe import metrics as m
from moe.registry import Registry

# What a score is computed from -> the optional argument of score() that brings it (None: always given).
# Scores whose needs are not arguments of score() are computed elsewhere.
NEEDS: dict[str, str | None] = {
    "predictions": None,  # labels and the mixture's predictions
    "allocation": None,  # the top-weight expert of each sample (the class x expert allocation)
    "weights": "weights",  # the routing weights [N, E]
    "grouping": "grouping",  # a grouping of the classes
    "oracle": "expert_preds",  # every expert's own prediction for every sample (oracle routing)
    "loss": None,  # the model's log-probabilities: the test loss moe.evaluate adds to the record's "test"
    "two runs": None,  # the assignments of two runs of one configuration: moe.metrics.stability, by the sweep
}
COMPUTED_ELSEWHERE = ("loss", "two runs")
DIRECTION_NAMES = ("higher", "lower", "neutral")


@dataclass(frozen=True)
class Score:
    name: str
    direction: str  # higher | lower | neutral (neither direction is better in itself)
    needs: str  # a key of NEEDS
    definition: str  # one line
    compute: Callable[[Inputs], float] | None = None  # None: not computed by score() (needs computed elsewhere)


SCORES: Registry = Registry("score")


def _add(name: str, direction: str, needs: str, definition: str, compute: Callable[[Inputs], float] | None = None) -> None:
    if direction not in DIRECTION_NAMES or needs not in NEEDS or (compute is None) != (needs in COMPUTED_ELSEWHERE):
        raise ValueError(f"score {name!r}: bad direction {direction!r}, needs {needs!r} or compute")
    SCORES.register(name)(Score(name, direction, needs, definition, compute))


class Inputs:
    """The checked inputs of :func:`score` and what several scores share (computed once, on first use)."""

    def __init__(self, labels, preds, assignment, n_classes: int, n_experts: int, weights, expert_preds, grouping):
        self.C, self.E = m.check_sizes(n_classes, n_experts)
        self.y = m.as_ints(labels, "labels", 0, self.C)
        n = self.n = self.y.numel()
        if n == 0:
            raise ValueError("labels: no samples to score")
        self.yhat = m.as_ints(preds, "preds", 0, self.C, shape=(n,))
        self.a = m.as_ints(assignment, "assignment", -1, self.E, shape=(n,))
        self.weights = None if weights is None else _weights(weights, n, self.E)
        self.grouping = grouping
        self.expert_preds = None if expert_preds is None else \
            m.as_ints(expert_preds, "expert_preds", 0, self.C, shape=(n, self.E), ndim=2)

    def given(self, needs: str) -> bool:
        arg = NEEDS[needs]
        return arg is None or getattr(self, arg) is not None

    @cached_property
    def kept(self) -> torch.Tensor:  # [N] not dropped
        return self.a >= 0

    @cached_property
    def right(self) -> torch.Tensor:  # [N] the mixture is right
        return self.yhat == self.y

    @cached_property
    def alloc(self) -> torch.Tensor:  # [C, E]
        return m.bincount2(self.y[self.kept], self.a[self.kept], self.C, self.E)

    @cached_property
    def usage(self) -> torch.Tensor:  # [E]
        return self.alloc.sum(0)

    @cached_property
    def kept_accuracy(self) -> float:
        return float(self.right[self.kept].double().mean()) if bool(self.kept.any()) else math.nan

    @cached_property
    def attribution(self) -> dict[str, float]:
        return m.error_attribution(self.y, self.yhat, self.expert_preds)

    @cached_property
    def partition(self) -> dict[str, float]:
        return _partition_scores(self.alloc, self.grouping, self.C)


def _weights(weights, n: int, n_experts: int) -> torch.Tensor:
    w = torch.as_tensor(weights)
    if not w.dtype.is_floating_point or tuple(w.shape) != (n, n_experts):
        raise ValueError(f"weights: expected floats of shape [{n}, {n_experts}], got {w.dtype} "
                         f"of shape {list(w.shape)}")
    return w


def _partition_scores(alloc: torch.Tensor, grouping: Sequence[int], n_classes: int) -> dict[str, float]:
    """NMI and ARI between the expert and the group of the label: the rows of A summed per group."""
    g = m.as_ints(grouping, "grouping", -(2**62), 2**62, shape=(n_classes,))
    _, gid = torch.unique(g, return_inverse=True)
    table = torch.zeros(int(gid.max()) + 1, alloc.shape[1], dtype=alloc.dtype, device=alloc.device)
    table.index_add_(0, gid.to(alloc.device), alloc)  # [G, E]
    return {"partition_nmi": m.nmi(table), "partition_ari": m.adjusted_rand_index(table)}


# ---------------------------------------------------------------------------------------------------
# The scores, in display order
# ---------------------------------------------------------------------------------------------------

_add("accuracy", "higher", "predictions", "share of samples the mixture classifies correctly",
     lambda i: float(i.right.double().mean()))
_add("dropped", "lower", "allocation", "share of samples no expert took (expert choice, a capacity limit)",
     lambda i: float((~i.kept).double().mean()))
_add("mi_bits", "higher", "allocation", "mutual information I(E; Y) in bits of the class x expert allocation",
     lambda i: m.mutual_information_bits(i.alloc))
_add("nmi", "higher", "allocation", "I(E; Y) / mean(H(E), H(Y)) of the allocation, in [0, 1]",
     lambda i: m.nmi(i.alloc))
_add("purity", "higher", "allocation", "(1/N) sum_e max_c A[c, e]: the share of each expert's majority class",
     lambda i: m.purity(i.alloc))
_add("usage_entropy", "higher", "allocation", "H(E) / log E of the expert sample counts; 1 = balanced",
     lambda i: m.usage_entropy(i.usage))
_add("perplexity", "neutral", "allocation", "exp H(E): the effective number of experts used (grows with E)",
     lambda i: m.perplexity(i.usage))
_add("dead_experts", "lower", "allocation", "share of experts that get under 1% of the samples",
     lambda i: m.dead_experts(i.usage))
_add("importance_cv2", "lower", "weights", "CV^2 of the experts' summed routing weights (Shazeer et al. 2017)",
     lambda i: m.importance_cv2(i.weights))
_add("routing_entropy", "lower", "weights", "mean per-sample entropy of the routing weights, in nats (crisp = 0)",
     lambda i: m.routing_entropy(i.weights))
_add("max_weight", "higher", "weights", "mean over samples of the largest routing weight",
     lambda i: m.max_weight(i.weights))
_add("partition_nmi", "higher", "grouping", "NMI between the expert and the group of the label",
     lambda i: i.partition["partition_nmi"])
_add("partition_ari", "higher", "grouping", "adjusted Rand index between the expert and the group of the label",
     lambda i: i.partition["partition_ari"])
_add("expert_error", "lower", "oracle", "share of samples no expert classifies correctly (no routing could fix them)",
     lambda i: i.attribution["expert_error"])
_add("gate_error", "lower", "oracle", "share misclassified although some expert was right (the routing's fault)",
     lambda i: i.attribution["gate_error"])
_add("oracle_accuracy", "higher", "oracle", "accuracy of an oracle router: 1 - expert_error",
     lambda i: i.attribution["oracle_accuracy"])
_add("mixture_only_correct", "neutral", "oracle",  # helps accuracy, but no single expert explains those samples
     "share the mixture gets right though no single expert does",
     lambda i: i.attribution["mixture_only_correct"])
_add("router_only_accuracy", "neutral", "allocation",  # high is good only together with a low cheating_index
     "accuracy of the router alone, predicting its expert's majority class (= purity)",
     lambda i: m.router_only_accuracy(i.alloc))
_add("cheating_index", "lower", "allocation", "(router_only_accuracy - 1/C) / (accuracy on kept samples - 1/C)",
     lambda i: m.cheating_index(m.router_only_accuracy(i.alloc), i.kept_accuracy, i.C))
_add("expert_constancy", "neutral", "oracle",  # 0 flags cheating, yet a specialist should predict few classes
     "mean entropy / log C of each used expert's own predictions on its samples",
     lambda i: m.expert_constancy(i.a, i.expert_preds, i.C, i.E))
# Not returned by score(): the test loss that moe.evaluate adds to the record's "test", and the sweep's
# names for moe.metrics.stability() between seeds of one configuration.
_add("loss", "lower", "loss", "test negative log-likelihood of the model, -mean log p(y | x)")
_add("stability_nmi", "higher", "two runs", "NMI between the assignments of two seeds of one configuration")
_add("stability_ari", "higher", "two runs", "adjusted Rand index between the assignments of two seeds")

# ---------------------------------------------------------------------------------------------------
# Derived: the tables' directions, the keys of score(), score() itself
# ---------------------------------------------------------------------------------------------------

ORDER: tuple[str, ...] = tuple(SCORES.in_order())
DIRECTIONS: dict[str, str] = {name: SCORES.get(name).direction for name in ORDER}
SCORE_KEYS: dict[str | None, tuple[str, ...]] = {
    arg: tuple(n for n in ORDER if NEEDS[SCORES.get(n).needs] == arg and SCORES.get(n).compute is not None)
    for arg in dict.fromkeys(NEEDS.values())
}


def score(labels, preds, assignment, n_classes: int, n_experts: int, *, weights=None,
          expert_preds=None, grouping=None) -> dict[str, float]:
    """Every interpretability score of one run's test split that its inputs allow, as plain Python floats,
    in display order: the registered scores (``SCORES``) whose needs are given.

    Always: those of ``SCORE_KEYS[None]`` (accuracy, dropped, mi_bits, nmi, purity, usage_entropy, perplexity,
    dead_experts, router_only_accuracy, cheating_index); with ``weights``, ``grouping`` (between the expert and
    the group of the label) or ``expert_preds``: those of ``SCORE_KEYS[...]`` of that argument.
    """
    inputs = Inputs(labels, preds, assignment, n_classes, n_experts, weights, expert_preds, grouping)
    return {name: s.compute(inputs) for name in ORDER
            if (s := SCORES.get(name)).compute is not None and inputs.given(s.needs)}
