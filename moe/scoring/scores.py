"""The registry of scores: each score's name, direction (higher, lower or neutral: lm-evaluation-harness's
``higher_is_better``), what it needs, a one-line definition, its formula, range and source, whether it is
this project's own operationalisation (``ours``) and how :func:`score` computes it.

``DIRECTIONS`` (every score's direction), ``TABLE_SCORES`` (the columns of the sweep tables: ``table=True``), ``SCORE_KEYS`` (the keys :func:`score` returns, by the optional
argument they need) and :func:`score` itself are all read from ``SCORES``: adding a score is one
``_add(...)`` line below. The registration order is the display order. The formulas and sources are in the
building blocks of ``moe.scoring.metrics`` and ``moe.scoring.cheating``; the shapes of the inputs and the handling of
dropped samples are in the docstring of ``moe.scoring.metrics``. ``docs/scores.md`` (``DOCS``), the definitions for
users, is generated from this registry by ``python -m moe.scoring.score_docs`` and checked against it by a test.
The module is long because it is the one table of every score (one ``_add`` of about five lines each).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping, Sequence

import torch

from moe.scoring import ami
from moe.scoring import causal
from moe.scoring import cheating
from moe.scoring import interpretability
from moe.scoring import metrics
from moe.registry import Registry

# What a score is computed from -> the optional argument of score() that brings it (None: always given).
# Scores whose needs are not arguments of score() are computed elsewhere.
NEEDS: dict[str, str | None] = {
    "predictions": None,  # labels and the mixture's predictions
    "allocation": None,  # the top-weight expert of each sample (the class x expert allocation)
    "weights": "weights",  # the routing weights [N, E]
    "grouping": "grouping",  # a grouping of the classes
    "oracle": "expert_preds",  # every expert's own prediction for every sample (oracle routing)
    "modules": "modules",  # the planted module of every sample (a dataset with planted modules)
    "ablation": "ablation",  # the expert x class accuracy drops when each expert is removed (moe.scoring.ablation)
    "loss": None,  # the model's log-probabilities: the test loss moe.training.evaluate adds to the record's "test"
    "two runs": None,  # the assignments of two runs of one configuration: moe.scoring.metrics.stability, by the sweep
    "expert size": "expert_parameters",  # the readable parameters of one expert (ExpertBank.readable_parameters)
    "epochs": None,  # the validation split's experts after every epoch: moe.scoring.saturation, by training (moe.training.loop)
    "fit allocation": "fit_allocation",  # the validation split's class x expert allocation (cross-fitted scores)
    "trace": None,  # a routing trace of a language model, per MoE layer (moe.records.trace): moe.scoring.token_scores
    "removal": None,  # a language model evaluated with each expert removed in turn: moe.training.lm_loop.causal_scores
    "history": None,  # the record's per-epoch history, each epoch marked with its phase: bench.table.runs
}
COMPUTED_ELSEWHERE = ("loss", "two runs", "epochs", "trace", "removal", "history")
DIRECTION_NAMES = ("higher", "lower", "neutral")
DOCS = "docs/scores.md"  # the users' definitions of the scores, generated from SCORES (moe.scoring.score_docs)
# Scores renamed since earlier records: old key -> new key (same values). A reader of old records maps them.
RENAMED: dict[str, str] = {"expert_constancy": "expert_prediction_entropy"}


@dataclass(frozen=True)
class Score:
    name: str
    direction: str  # higher | lower | neutral (neither direction is better in itself)
    needs: str  # a key of NEEDS
    definition: str  # one line, in words
    formula: str  # one line, in symbols (the letters of docs/scores.md)
    range: str  # the values it can take, e.g. "[0, 1]"; "or NaN" where it can be undefined
    source: str  # where the formula comes from
    ours: bool  # this project's operationalisation (not a published formula taken as it is)
    compute: Callable[[Inputs], float] | None = None  # None: not computed by score() (needs computed elsewhere)
    domain: tuple[float, float] = (-math.inf, math.inf)  # the numeric bounds of range (parse_domain): intervals stay in it
    table: bool = False  # a column of the sweep tables (table.md, report.html, compare), in registration order


SCORES: Registry = Registry("score")


def parse_domain(text: str) -> tuple[float, float]:
    """The numeric bounds of a range text: its first bracket's first and last entries (``[0, 1]`` -> (0, 1),
    ``[0, inf)`` -> (0, inf), ``{1, ..., epochs}`` -> (1, inf)); a bound that is not a number (``E``,
    ``log2 min(C, E)``, ``about 0``) is unbounded on its side."""
    found = re.match(r"\s*[\[{(]([^\]})]*)[\]})]", text)
    if not found or "," not in found.group(1):
        return -math.inf, math.inf
    parts = found.group(1).split(",")

    def bound(s: str, default: float) -> float:
        try:
            return float(s.strip())
        except ValueError:
            return default
    return bound(parts[0], -math.inf), bound(parts[-1], math.inf)


def _add(name: str, direction: str, needs: str, definition: str, compute: Callable[[Inputs], float] | None = None,
         *, formula: str, range: str, source: str, ours: bool, domain: tuple[float, float] | None = None,
         table: bool = False) -> None:
    """Register a score; ``table``: the sweep tables show it; ``domain``: its numeric bounds where ``range`` names a symbolic one that is known
    (``[b, 1]``: b is a share, so (0, 1)); by default parsed from ``range`` (:func:`parse_domain`)."""
    if direction not in DIRECTION_NAMES or needs not in NEEDS or (compute is None) != (needs in COMPUTED_ELSEWHERE):
        raise ValueError(f"score {name!r}: bad direction {direction!r}, needs {needs!r} or compute")
    if not all(isinstance(t, str) and t.strip() and "\n" not in t for t in (definition, formula, range, source)):
        raise ValueError(f"score {name!r}: definition, formula, range and source must each be one non-empty line")
    lo, hi = parse_domain(range) if domain is None else domain
    if not lo < hi:
        raise ValueError(f"score {name!r}: empty domain [{lo}, {hi}]")
    SCORES.register(name)(Score(name, direction, needs, definition, formula, range, source, bool(ours), compute,
                                (float(lo), float(hi)), bool(table)))


class Inputs:
    """The checked inputs of :func:`score` and what several scores share (computed once, on first use)."""

    def __init__(self, labels, preds, assignment, n_classes: int, n_experts: int, weights, expert_preds, grouping,
                 modules=None, ablation=None, expert_parameters=None, fit_allocation=None):
        self.C, self.E = metrics.check_sizes(n_classes, n_experts)
        self.y = metrics.as_ints(labels, "labels", 0, self.C)
        n = self.n = self.y.numel()
        if n == 0:
            raise ValueError("labels: no samples to score")
        self.yhat = metrics.as_ints(preds, "preds", 0, self.C, shape=(n,))
        self.a = metrics.as_ints(assignment, "assignment", -1, self.E, shape=(n,))
        self.weights = None if weights is None else _weights(weights, n, self.E)
        self.grouping = grouping
        if expert_parameters is not None and (isinstance(expert_parameters, bool) or not isinstance(expert_parameters, int)
                                              or expert_parameters < 0):
            raise ValueError(f"expert_parameters: expected a non-negative int, got {expert_parameters!r}")
        self.expert_parameters = expert_parameters
        self.expert_preds = None if expert_preds is None else \
            metrics.as_ints(expert_preds, "expert_preds", 0, self.C, shape=(n, self.E), ndim=2)
        self.modules = None if modules is None else metrics.as_ints(modules, "modules", 0, 2**62, shape=(n,))
        self.ablation = None if ablation is None else _ablation(ablation, self.E, self.C)
        self.fit_allocation = None if fit_allocation is None else _fit_allocation(fit_allocation, self.C, self.E)

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
        return metrics.bincount2(self.y[self.kept], self.a[self.kept], self.C, self.E)

    @cached_property
    def usage(self) -> torch.Tensor:  # [E]
        return self.alloc.sum(0)

    @cached_property
    def kept_accuracy(self) -> float:
        return float(self.right[self.kept].double().mean()) if bool(self.kept.any()) else math.nan

    @cached_property
    def attribution(self) -> dict[str, float]:
        return metrics.error_attribution(self.y, self.yhat, self.expert_preds)

    @cached_property
    def partition(self) -> dict[str, float]:
        return _partition_scores(self.alloc, self.grouping, self.C)

    @cached_property
    def module_table(self) -> torch.Tensor:  # [M, E] planted module x expert counts of the kept samples
        mods = self.modules[self.kept]
        return metrics.bincount2(mods, self.a[self.kept], int(self.modules.max()) + 1, self.E)

    @cached_property
    def cross_fit(self) -> dict[str, float]:  # the router-only classifier learned on the fit split, on test
        return cheating.cross_fitted_router(self.alloc, self.fit_allocation)

    @cached_property
    def constant_accuracy(self) -> float:  # every expert replaced by its fit split's majority class
        w = self.weights
        if w is None:  # hard weights from the assignment (a dropped sample: no expert)
            w = torch.zeros(self.n, self.E, dtype=torch.float64)
            w[self.kept, self.a[self.kept]] = 1.0
        return cheating.constant_experts_accuracy(self.y, w, self.fit_allocation)

    @cached_property
    def class_counts(self) -> torch.Tensor:  # [C]
        return torch.bincount(self.y, minlength=self.C)


def _weights(weights, n: int, n_experts: int) -> torch.Tensor:
    w = torch.as_tensor(weights)
    if not w.dtype.is_floating_point or tuple(w.shape) != (n, n_experts):
        raise ValueError(f"weights: expected floats of shape [{n}, {n_experts}], got {w.dtype} "
                         f"of shape {list(w.shape)}")
    return w


def _ablation(ablation, n_experts: int, n_classes: int) -> torch.Tensor:
    d = torch.as_tensor(ablation, dtype=torch.float64)
    if tuple(d.shape) != (n_experts, n_classes) or not bool(torch.isfinite(d).all()):
        raise ValueError(f"ablation: expected finite numbers of shape [{n_experts}, {n_classes}] (experts x classes), "
                         f"got shape {list(d.shape)}")
    return d


def _fit_allocation(table, n_classes: int, n_experts: int) -> torch.Tensor:
    f = torch.as_tensor(table)
    if f.dtype.is_floating_point or tuple(f.shape) != (n_classes, n_experts) or bool((f < 0).any()):
        raise ValueError(f"fit_allocation: expected non-negative integer counts of shape [{n_classes}, {n_experts}] "
                         f"(classes x experts), got {f.dtype} of shape {list(f.shape)}")
    return f.long()


def _partition_scores(alloc: torch.Tensor, grouping: Sequence[int], n_classes: int) -> dict[str, float]:
    """NMI and ARI between the expert and the group of the label: the rows of A summed per group."""
    g = metrics.as_ints(grouping, "grouping", -(2**62), 2**62, shape=(n_classes,))
    _, gid = torch.unique(g, return_inverse=True)
    table = torch.zeros(int(gid.max()) + 1, alloc.shape[1], dtype=alloc.dtype, device=alloc.device)
    table.index_add_(0, gid.to(alloc.device), alloc)  # [G, E]
    return {"partition_nmi": metrics.nmi(table), "partition_ari": metrics.adjusted_rand_index(table)}


# ---------------------------------------------------------------------------------------------------
# The scores, in display order
# ---------------------------------------------------------------------------------------------------

_STD = "standard"
_ATTRIB = "after Ismail et al. 2023 (Interpretable Mixture of Experts: oracle routing); the split of the errors is ours"
_CHEAT = "after Elazar & Taylor 2022 (Implicit Mixture of Interpretable Experts: the router 'cheats'); formula ours"

_add("accuracy", "higher", "predictions", "share of samples the mixture classifies correctly",
     lambda i: float(i.right.double().mean()),
     formula="(1/N) sum_x [yhat(x) = y(x)]", range="[0, 1]", source=_STD, ours=False, table=True)
_add("dropped", "lower", "allocation", "share of samples no expert took (expert choice, a capacity limit)",
     lambda i: float((~i.kept).double().mean()),
     formula="(1/N) sum_x [a(x) = -1]", range="[0, 1]",
     source="a count (capacity limits: Fedus et al. 2021; expert choice: Zhou et al. 2022)", ours=False)
_add("mi_bits", "higher", "allocation", "mutual information I(E; Y) in bits of the class x expert allocation",
     lambda i: metrics.mutual_information_bits(i.alloc),
     formula="sum_ce p_ce log2(p_ce / (p_c p_e)), p = A / N", range="[0, log2 min(C, E)] bits, or NaN",
     source="Cover & Thomas eq. 2.28; the I(E; Y) of Krishnamurthy & Watkins 2021", ours=False, table=True)
_add("nmi", "higher", "allocation", "I(E; Y) / mean(H(E), H(Y)) of the allocation, in [0, 1]",
     lambda i: metrics.nmi(i.alloc),
     formula="I(E; Y) / ((H(E) + H(Y)) / 2)", range="[0, 1], or NaN",
     source="Strehl & Ghosh 2002 (arithmetic-mean normalisation, scikit-learn's default)", ours=False, table=True)
_add("ami", "higher", "allocation", "NMI corrected for chance: about 0 for an allocation independent of the class",
     lambda i: ami.adjusted_mutual_information(i.alloc),
     formula="(I(E; Y) - E[I]) / ((H(E) + H(Y)) / 2 - E[I]), E[I] under the hypergeometric model",
     range="[about 0, 1] (can be slightly negative), or NaN", domain=(-1, 1),
     source="Vinh, Epps & Bailey 2010 (adjusted mutual information; scikit-learn's, arithmetic mean)", ours=False, table=True)
_add("purity", "higher", "allocation", "share of the samples that belong to the majority class of their expert",
     lambda i: metrics.purity(i.alloc),
     formula="(1/N) sum_e max_c A[c, e]", range="[b, 1], or NaN", source="Manning et al. 2008, sec. 16.3", ours=False,
     domain=(0, 1), table=True)
_add("usage_entropy", "higher", "allocation", "entropy of the expert sample counts over its maximum; 1 = balanced",
     lambda i: metrics.usage_entropy(i.usage),
     formula="H(E) / log E (1 when E = 1)", range="[0, 1], or NaN",
     source="Pielou's evenness (1966); the seed papers report H(E) in bits", ours=False, table=True)
_add("perplexity", "neutral", "allocation", "the effective number of experts used (grows with E)",
     lambda i: metrics.perplexity(i.usage),
     formula="exp H(E)", range="[1, E], or NaN", source="Hill number of order 1 (standard)", ours=False)
_add("dead_experts", "lower", "allocation", "share of experts that get under 1% of the samples",
     lambda i: metrics.dead_experts(i.usage),
     formula="(1/E) sum_e [n_e / N < 0.01]", range="[0, 1 - 1/E], or NaN", source="ours (the 1% threshold)", ours=True,
     domain=(0, 1), table=True)
_add("busiest_share", "lower", "allocation", "share of the samples on the busiest expert",
     lambda i: metrics.busiest_share(i.usage),
     formula="max_e n_e / N", range="[1/E, 1], or NaN", source="ours (defines collapse)", ours=True, domain=(0, 1))
_add("collapsed", "lower", "allocation",
     f"1 when one expert takes at least {metrics.COLLAPSE_SHARE:.0%} of the samples (the run learned no split), else 0",
     lambda i: metrics.collapsed(i.usage),
     formula=f"[busiest_share >= {metrics.COLLAPSE_SHARE}]", range="{0, 1}, or NaN",
     source="ours; the threshold is the seed code's '>= 99% of test samples on one expert'", ours=True)
_add("importance_cv2", "lower", "weights", "CV^2 of the experts' summed routing weights",
     lambda i: metrics.importance_cv2(i.weights),
     formula="Var_e(imp_e) / Mean_e(imp_e)^2, imp_e = sum_x w_e(x) (population variance)",
     range="[0, E - 1], or NaN", source="Shazeer et al. 2017, eq. 6", ours=False)
_add("routing_entropy", "lower", "weights", "mean per-sample entropy of the routing weights, in nats (crisp = 0)",
     lambda i: metrics.routing_entropy(i.weights),
     formula="(1/N) sum_x -sum_e w_e(x) log w_e(x) (rows renormalised)", range="[0, log E] nats",
     source="Shannon entropy of each sample's routing weights (standard)", ours=False)
_add("max_weight", "higher", "weights", "mean over samples of the largest routing weight",
     lambda i: metrics.max_weight(i.weights),
     formula="(1/N) sum_x max_e w_e(x)", range="[0, 1] (>= 1/E for weights that sum to 1)",
     source="ours (a plain summary of routing sharpness)", ours=True)
_add("partition_nmi", "higher", "grouping", "NMI between the expert and the group of the label",
     lambda i: i.partition["partition_nmi"],
     formula="nmi of the group x expert table (the rows of A summed per group)", range="[0, 1], or NaN",
     source="Strehl & Ghosh 2002; scoring against a grouping of the classes (fmnist_mnist: fashion / digits) is ours",
     ours=True, table=True)
_add("partition_ari", "higher", "grouping", "adjusted Rand index between the expert and the group of the label",
     lambda i: i.partition["partition_ari"],
     formula="ARI of the group x expert table", range="[-1, 1] (about 0 = independent), or NaN",
     source="Hubert & Arabie 1985; scoring against a grouping of the classes is ours", ours=True)
_add("module_nmi", "higher", "modules", "NMI between the expert and the planted module of the sample (not its class)",
     lambda i: metrics.nmi(i.module_table),
     formula="nmi of the module x expert table of the kept samples", range="[0, 1], or NaN",
     source="Strehl & Ghosh 2002; scoring against planted modules after InterpretCC and MoE-X (ground truth); ours",
     ours=True, table=True)
_add("module_ari", "higher", "modules", "adjusted Rand index between the expert and the planted module of the sample",
     lambda i: metrics.adjusted_rand_index(i.module_table),
     formula="ARI of the module x expert table of the kept samples", range="[-1, 1] (about 0 = independent), or NaN",
     source="Hubert & Arabie 1985; scoring against planted modules is ours", ours=True)
_add("expert_error", "lower", "oracle", "share of samples no expert classifies correctly (no routing could fix them)",
     lambda i: i.attribution["expert_error"],
     formula="(1/N) sum_x [no e: yhat_e(x) = y(x)]", range="[0, 1]", source=_ATTRIB, ours=True)
_add("gate_error", "lower", "oracle", "share misclassified although some expert was right (the routing's fault)",
     lambda i: i.attribution["gate_error"],
     formula="(1/N) sum_x [yhat(x) != y(x) and some e: yhat_e(x) = y(x)]", range="[0, 1]", source=_ATTRIB, ours=True)
_add("oracle_accuracy", "higher", "oracle", "accuracy of an oracle router that picks a correct expert where one exists",
     lambda i: i.attribution["oracle_accuracy"],
     formula="1 - expert_error", range="[0, 1]", source=_ATTRIB, ours=True)
_add("mixture_only_correct", "neutral", "oracle",  # helps accuracy, but no single expert explains those samples
     "share the mixture gets right though no single expert does",
     lambda i: i.attribution["mixture_only_correct"],
     formula="(1/N) sum_x [yhat(x) = y(x) and no e: yhat_e(x) = y(x)]", range="[0, 1]", source=_ATTRIB, ours=True)
_add("router_only_accuracy", "neutral", "allocation",  # high is good only together with a low cheating_index
     "accuracy of the router alone, predicting its expert's majority class (= purity)",
     lambda i: metrics.router_only_accuracy(i.alloc),
     formula="r = (1/N) sum_e max_c A[c, e]", range="[b, 1], or NaN", source=_CHEAT, ours=True,
     domain=(0, 1))
_add("near_chance", "lower", "allocation",
     f"1 when the accuracy closes at most {cheating.NEAR_CHANCE:.0%} of the gap from the majority baseline to 1, else 0",
     lambda i: cheating.near_chance(i.kept_accuracy, cheating.majority_share(i.alloc)),
     formula=f"[acc - b <= {cheating.NEAR_CHANCE} (1 - b)]", range="{0, 1}, or NaN",
     source="ours (Cohen's kappa against the majority baseline at most 0.1)", ours=True)
_add("cheating_index", "lower", "allocation",
     "share of the best above-baseline accuracy that the router alone achieves; NaN if collapsed or near chance",
     lambda i: cheating.cheating_index(i.alloc, i.kept_accuracy),
     formula="(r - b) / (max(acc, r) - b); NaN when collapsed = 1 or near_chance = 1", range="[0, 1], or NaN",
     source=_CHEAT, ours=True, table=True)
_add("expert_prediction_entropy", "neutral", "oracle",  # 0 flags cheating, yet a specialist predicts few classes
     "mean entropy / log C of each used expert's own predictions on its samples; 0 = every expert a constant",
     lambda i: cheating.expert_prediction_entropy(i.a, i.expert_preds, i.C, i.E),
     formula="mean over used e of H(yhat_e(x) : a(x) = e) / log C", range="[0, 1], or NaN", source=_CHEAT, ours=True)
_add("cheating_score", "lower", "fit allocation",
     "cheating index cross-fitted and corrected for chance: each expert's class learned on the validation split, "
     "scored on test; about 0 for a router blind to the class at every E, 1 when the router alone does the mixture's job",
     lambda i: cheating.cheating_score(i.alloc, i.fit_allocation, i.kept_accuracy),
     formula="(r_cf - r_0) / (max(acc, r_cf) - r_0), r_cf = sum_{e in S} A[m_e, e] / N_S, r_0 = sum_{e in S} n_e p_{m_e} "
             "/ N_S, m_e = argmax_c F[c, e]; NaN when collapsed, near chance or coverage < "
             f"{cheating.MIN_COVERAGE}",
     range="[about 0, 1] (slightly negative by chance), or NaN",
     source=_CHEAT + "; cross-fitting and the chance correction (as adjusted mutual information: Vinh et al. 2010) ours",
     ours=True)
_add("cheating_coverage", "neutral", "fit allocation",
     "share of the test samples on experts the validation split reached (those the cheating score reads)",
     lambda i: i.cross_fit["coverage"],
     formula="N_S / N, S = {e: sum_c F[c, e] > 0}", range="[0, 1], or NaN", source=_CHEAT, ours=True)
_add("constant_experts_accuracy", "neutral", "fit allocation",
     "accuracy left when every expert is replaced by a constant for its validation majority class, the routing kept",
     lambda i: i.constant_accuracy,
     formula="(1/N) sum_x [argmax_c sum_{e: m_e = c} w_e(x) = y(x)] (an expert the validation split never "
             "reached: its most frequent class)", range="[0, 1], or NaN", source=_CHEAT, ours=True)
_add("constant_experts_drop", "higher", "fit allocation",
     "accuracy the experts add over constants for their validation majority classes (about 0 = cheating)",
     lambda i: float(i.right.double().mean()) - i.constant_accuracy,
     formula="acc(all N) - constant_experts_accuracy", range="[-1, 1], or NaN", source=_CHEAT, ours=True)
_add("expert_prediction_entropy_all", "neutral", "oracle",
     "mean entropy / log C of each expert's own predictions on all test samples (not only its own); 0 = constants",
     lambda i: cheating.expert_prediction_entropy_all(i.expert_preds, i.C),
     formula="mean over all e of H(yhat_e(x) : all x) / log C", range="[0, 1], or NaN", source=_CHEAT, ours=True)
_add("causal_specialisation", "higher", "ablation",
     "how much of each expert's causal effect (accuracy lost when it is removed) falls on one class",
     lambda i: causal.causal_specialisation(i.ablation),
     formula="sum_e (T_e / sum T) (max_c D+[e, c] / T_e - 1/C) / (1 - 1/C), D+ = max(D, 0), T_e = sum_c D+[e, c]",
     range="[0, 1], or NaN", source="ours, after Monet and InterpretCC (ablate an expert, compare the drop on its "
     "target with the drop elsewhere)", ours=True, table=True)
_add("causal_agreement", "higher", "ablation",
     "rank agreement over (expert, class) cells between the share of the class routed to the expert and the drop "
     "when the expert is removed",
     lambda i: causal.causal_agreement(i.ablation, i.alloc),
     formula="Spearman(A[c, e] / n_c, D[e, c]) over the E x C cells", range="[-1, 1], or NaN",
     source="ours, after the causal audit of expert importance (arXiv 2606.10703: routing statistics vs intervention)",
     ours=True, table=True)
_add("importance_agreement", "higher", "ablation",
     "rank agreement over experts between the share of samples routed to the expert and the accuracy lost without it",
     lambda i: causal.importance_agreement(i.ablation, i.alloc, i.class_counts),
     formula="Spearman(n_e / N, sum_c (n_c / N) D[e, c]) over the E experts", range="[-1, 1], or NaN",
     source="ours, after the causal audit of expert importance (arXiv 2606.10703)", ours=True)
_IMOE = ("after Elazar & Taylor 2022 (Implicit Mixture of Interpretable Experts: accuracy against local and global "
         "interpretability); formula ours")
_add("local_fidelity", "higher", "oracle",
     "local interpretability: share of samples on which the routed (top-weight) expert alone gives the mixture's prediction",
     lambda i: interpretability.local_fidelity(i.a, i.yhat, i.expert_preds),
     formula="(1/N_kept) sum_{x: a(x) >= 0} [yhat_a(x)(x) = yhat(x)] (1 under hard routing)", range="[0, 1], or NaN",
     source=_IMOE, ours=True)
_add("experts_used", "lower", "allocation",
     "global interpretability: experts that take at least one sample (fewer = less to read; perplexity is the effective count)",
     lambda i: interpretability.experts_used(i.usage),
     formula="#{e: n_e > 0}", range="[0, E]", source=_IMOE, ours=True)
_add("used_expert_parameters", "lower", "expert size",
     "global interpretability: parameters to read to understand every expert in use",
     lambda i: interpretability.used_expert_parameters(i.usage, i.expert_parameters),
     formula="experts_used x P, P = readable parameters of one expert ((D + 1) C for linear and implicit experts)",
     range="[0, E P]", source=_IMOE, ours=True)
# Not returned by score(): the test loss that moe.training.evaluate adds to the record's "test", the sweep's
# names for moe.scoring.metrics.stability() between seeds of one configuration, and the routing dynamics of training.
_add("loss", "lower", "loss", "test negative log-likelihood of the model",
     formula="-(1/N) sum_x log p(y(x) | x)", range="[0, inf)", source=_STD, ours=False)
_add("stability_nmi", "higher", "two runs", "NMI between the assignments of two seeds of one configuration",
     formula="nmi of the expert(run 1) x expert(run 2) table; NaN if either run has all its samples on one expert",
     range="[0, 1], or NaN",
     source="Strehl & Ghosh 2002; comparing seeds this way is ours", ours=True, table=True)
_add("stability_ari", "higher", "two runs", "adjusted Rand index between the assignments of two seeds",
     formula="ARI of the expert(run 1) x expert(run 2) table; NaN if either run has all its samples on one expert",
     range="[-1, 1], or NaN", source="Hubert & Arabie 1985; comparing seeds this way is ours", ours=True, table=True)
# neutral: settling early is not better in itself (a router frozen from epoch 1 may have learned nothing), and the
# epoch depends on the number of epochs run (it is at most the last one)
_add("saturation_epoch", "neutral", "epochs",
     "first epoch at which the validation split's router saturation (its top-k experts' overlap with the last "
     "epoch's) reaches 0.9",
     formula="min t: (1/N) sum_x |S_t(x) ∩ S_T(x)| / max(|S_t(x)|, |S_T(x)|) >= 0.9, S_t(x) the first k experts "
     "of x after epoch t, T the last epoch (k = top_k for the topk router, else 1)",
     range="{1, ..., epochs}; undefined without a validation split and when k >= E (one expert: the routing "
     "cannot change, so it would read as settled at once)",
     source="router saturation of Muennighoff et al. 2024 (OLMoE, arXiv 2409.02060), per epoch on the "
     "validation split; the 0.9 threshold and the max denominator (fewer than k experts) are ours", ours=True, table=True)

# A run of several phases (moe.regimes: pretrain, joint, gate, experts): how far each phase got, read on the
# validation split (the per-epoch history holds no test score: the test split is scored once, at the end)
PHASES = ("pretrain", "joint", "gate", "experts")  # the phase names of moe.regimes (the history's 'phase')
for _phase in PHASES:
    _add(f"accuracy_after_{_phase}", "higher", "history",
         f"validation accuracy at the last epoch of the run's {_phase} phase (runs of several phases only: a "
         "single-phase run's is val_accuracy)",
         formula=f"(1/N_val) sum_x [yhat(x) = y(x)] on the validation split, after the last epoch whose phase is {_phase}",
         range="[0, 1], or NaN (no validation split, or no such phase)",
         source="ours: the seed paper (Krishnamurthy & Watkins 2021, Figure 4) compares accuracies before and after "
                "the gate is frozen; it does not say on which split", ours=True)

# per MoE layer of a language model, from its routing trace (moe.scoring.token_scores) or by removing experts (moe.training.lm_loop)
_OLMOE = "Muennighoff et al. 2024 (OLMoE, arXiv 2409.02060), sec. 5"
_add("domain_specialisation", "neutral", "trace",
     "per MoE layer: how much more of a domain's tokens its favourite expert takes than under routing independent "
     "of the domain (0: none, 1: every domain has an expert taking all its tokens)",
     formula="(m - m0) / (1 - m0), m = mean_d max_e N_{d,e} / N_d (OLMoE's domain shares), m0 the same with the "
     "tokens' routings shuffled (seeded); top-1 for a dense router; NaN when exp H(load) < 1.5 (collapsed)",
     range="[about 0, 1], or NaN", source=f"{_OLMOE} (domain specialisation); the shuffled baseline is ours", ours=True, table=True)
_add("vocabulary_specialisation", "neutral", "trace",
     "per MoE layer: how consistently a token id goes to one expert beyond chance (0: routing independent of the "
     "token, 1: each token id always to one expert)",
     formula="(v - v0) / (1 - v0), v = sum_v N_v max_e N_{v,e} / N_v / sum_v N_v over ids with N_v >= 10, v0 the "
     "same with the routings shuffled (seeded); NaN when collapsed",
     range="[about 0, 1], or NaN", source=f"{_OLMOE} (vocabulary specialisation); the shuffled baseline is ours", ours=True, table=True)
_add("bits_per_byte", "lower", "loss", "a language model's test loss in bits per byte (its tokens are bytes)",
     formula="-(1/N) sum_t log2 p(x_{t+1} | x_{<=t}) over the evaluated windows", range="[0, 8]",
     source="standard (cross-entropy in bits)", ours=False, table=True)
_add("domain_nmi", "neutral", "trace", "per MoE layer: NMI between the tokens' domain and their top-1 expert",
     formula="I(domain; a) / ((H(domain) + H(a)) / 2) over the tokens an expert took; NaN when collapsed",
     range="[0, 1], or NaN", source="Strehl & Ghosh 2002 applied to token routing; ours", ours=True, table=True)
_add("coactivation", "neutral", "trace",
     "per MoE layer (k >= 2): how often an expert's most frequent partner is chosen with it, averaged over experts",
     formula="mean_i max_{j != i} C[i, j], C[i, j] = #{t: i, j in S(t)} / #{t: i in S(t)}",
     range="[0, 1], or NaN for k = 1", source=f"{_OLMOE} (expert co-activation); the summary is ours", ours=True)
_add("cross_layer_nmi", "neutral", "trace",
     "per MoE layer: NMI between a token's top-1 expert in this layer and in the next MoE layer",
     formula="I(a_l; a_{l+1}) / ((H(a_l) + H(a_{l+1})) / 2)", range="[0, 1], or NaN for the last layer",
     source="ours (co-activation across adjacent layers, after OLMoE's within-layer analysis)", ours=True)
_add("load_maxvio", "lower", "trace", "per MoE layer: how far the busiest expert's load exceeds the mean load",
     formula="(max_e n_e - mean_e n_e) / mean_e n_e, n_e the tokens routed to e",
     range="[0, E - 1], or NaN", source="Wang et al. 2024 (arXiv 2408.15664), MaxVio", ours=False)
_add("load_cv", "lower", "trace", "per MoE layer: coefficient of variation of the experts' loads",
     formula="std_e(n_e) / mean_e(n_e) (population standard deviation)", range="[0, sqrt(E - 1)], or NaN",
     source="standard; Shazeer et al. 2017 balance its square", ours=False)
_add("dead_experts_count", "lower", "trace", "per MoE layer: experts that take no token of the trace",
     formula="#{e: n_e = 0}", range="{0, ..., E}", source="a count (expert-statistics requests of MoE users)", ours=False)
_add("router_saturation", "neutral", "trace",
     "per MoE layer and point of training: share of the final model's top-k choices already made then",
     formula="(1/N) sum_t |S_s(t) ∩ S_final(t)| / k over fixed validation windows, at 8 points of training",
     range="[0, 1]", source=f"{_OLMOE} (router saturation); the 8 points are ours", ours=True)
_add("causal_domain_increase", "neutral", "removal",
     "per MoE layer: the increase in each domain's validation loss when one expert is removed (routed around); "
     "summarised as the mean over experts of the largest domain's increase",
     formula="Delta[d, e] = bpb_d(without e) - bpb_d(full); summary mean_e max_d Delta[d, e]",
     range="(-inf, inf) bits per byte", source="ours, after the interventional audit of expert importance (arXiv 2606.10703)",
     ours=True)


# ---------------------------------------------------------------------------------------------------
# Derived: the tables' directions, the keys of score(), score() itself
# ---------------------------------------------------------------------------------------------------

ORDER: tuple[str, ...] = tuple(SCORES.in_order())
DIRECTIONS: dict[str, str] = {name: SCORES.get(name).direction for name in ORDER}
TABLE_SCORES: tuple[str, ...] = tuple(name for name in ORDER if SCORES.get(name).table)  # the sweep tables' columns
SCORE_KEYS: dict[str | None, tuple[str, ...]] = {
    arg: tuple(n for n in ORDER if NEEDS[SCORES.get(n).needs] == arg and SCORES.get(n).compute is not None)
    for arg in dict.fromkeys(NEEDS.values())
}


def score(labels, preds, assignment, n_classes: int, n_experts: int, *, weights=None,
          expert_preds=None, grouping=None, modules=None, ablation=None, expert_parameters=None,
          fit_allocation=None) -> dict[str, float]:
    """Every interpretability score of one run's test split that its inputs allow, as plain Python floats,
    in display order: the registered scores (``SCORES``) whose needs are given.

    Always: those of ``SCORE_KEYS[None]`` (accuracy, dropped, mi_bits, nmi, purity, usage_entropy, perplexity,
    dead_experts, busiest_share, collapsed, router_only_accuracy, near_chance, cheating_index); with ``weights``,
    ``grouping`` (between the expert and the group of the label) or ``expert_preds``: those of
    ``SCORE_KEYS[...]`` of that argument; ``modules`` [N]: the planted module of each sample (module scores);
    ``ablation`` [E, C]: the accuracy drops of ``moe.scoring.ablation`` (causal scores); ``expert_parameters``: the
    readable parameters of one expert (``used_expert_parameters``); ``fit_allocation`` [C, E]: the class x expert
    allocation of the validation split (the cross-fitted ``cheating_score`` and the constant-experts check). Why a
    NaN cheating index is undefined: :func:`cheating_undefined`; a NaN cheating score:
    ``moe.scoring.cheating.cheating_score_undefined``.
    """
    inputs = Inputs(labels, preds, assignment, n_classes, n_experts, weights, expert_preds, grouping, modules, ablation,
                    expert_parameters, fit_allocation)
    return {name: s.compute(inputs) for name in ORDER
            if (s := SCORES.get(name)).compute is not None and inputs.given(s.needs)}


def cheating_undefined(scores: Mapping[str, float | None]) -> str | None:
    """Why the cheating index of these scores (a :func:`score` result, or a record's ``test``) is NaN:
    ``"no samples kept"``, ``"collapsed"``, ``"near chance"``, or None when it is defined (as
    ``moe.scoring.cheating.cheating_undefined``, read from the ``collapsed`` and ``near_chance`` flags). None also for
    scores written before those flags existed. JSON null counts as NaN."""
    def flag(key: str) -> float:
        v = scores.get(key, 0.0)
        return math.nan if v is None else float(v)

    if "collapsed" in scores and math.isnan(flag("collapsed")):
        return "no samples kept"
    if flag("collapsed") == 1.0:
        return "collapsed"
    if flag("near_chance") == 1.0:
        return "near chance"
    return None


def cheating_score_undefined(scores: Mapping[str, float | None]) -> str | None:
    """Why the cheating score of these scores (a :func:`score` result, or a record's ``test``) is NaN: the reasons
    of :func:`cheating_undefined`, then ``"fit split reaches too few experts"`` (``cheating_coverage`` below
    ``moe.scoring.cheating.MIN_COVERAGE``), ``"no validation allocation"`` (no coverage: a run without a validation
    split), or None when it is defined."""
    why = cheating_undefined(scores)
    if why is not None:
        return why
    cover = scores.get("cheating_coverage")
    if cover is None or math.isnan(float(cover)):
        return "no validation allocation"
    return "fit split reaches too few experts" if float(cover) < cheating.MIN_COVERAGE else None
