"""Evaluation of a model: predictions in a fixed order, accuracy, the validation split's per-epoch scores,
and the final scores of a run record (the test split, scored once at the end, and the validation split).

Batch-dependent routers (expert choice, capacity limits) are evaluated in training-size batches, in a
fixed shuffled order (``eval_order``), so that their evaluation batches are mixed like their training batches.
"""
from __future__ import annotations

from typing import Any

import torch

from moe.scoring import ablation
from moe.config import EVAL_BATCH, Config
from moe.data import Dataset
from moe.scoring.metrics import allocation, coactivation
from moe.model import MixtureOfExperts
from moe.routers import NonFiniteError
from moe.scoring.saturation import top_experts
from moe.scoring.scores import score
from moe.records.model_views import views

EVAL_SHUFFLE_SEED = 0  # the fixed evaluation order of batch-dependent routers


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


def split_scores(model: MixtureOfExperts, data: Dataset, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                 batch_size: int = EVAL_BATCH, modules: torch.Tensor | None = None, with_allocation: bool = False):
    """Every score of ``moe.scoring.scores.score`` on the samples (x, y) of one split of ``data`` other than the test
    split (with ``dropped``, the share of its samples no expert took, and the module scores when ``modules``
    are given) and its loss: the validation block of a record (no ablation: that is the test split's).
    ``with_allocation``: (scores, the split's class x expert allocation [C, E]), the table the test split's
    cross-fitted scores learn each expert's class from."""
    p = predict(model, x.to(device), batch_size)
    scores = score(y, p["preds"], p["assignment"], data.n_classes, model.experts.n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping, modules=modules,
                   expert_parameters=model.experts.readable_parameters())
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    if with_allocation:
        return scores, allocation(y, p["assignment"], data.n_classes, model.experts.n_experts)
    return scores


MAX_COACTIVATION_EXPERTS = 64  # the record keeps the E x E co-activation table up to this many experts


def test_evaluation(model: MixtureOfExperts, data: Dataset, device: torch.device,
                    batch_size: int = EVAL_BATCH, fit_allocation: torch.Tensor | None = None) -> dict[str, Any]:
    """The test split's record fields: ``test`` (every score of ``moe.scoring.scores.score``, with the module scores
    when the dataset plants modules and the causal scores of the ablation, and the test loss), ``allocation``
    (class x expert counts), ``test_assignment``, ``ablation`` (the expert x class accuracy drops of
    ``moe.scoring.ablation``, or None) with ``ablation_rule`` (how, or why not), and ``coactivation`` (the expert x
    expert table of ``moe.scoring.metrics.coactivation``, null for an expert no sample reaches; None when no sample goes
    to more than one expert, and beyond MAX_COACTIVATION_EXPERTS experts: an E x E table of 4,096 experts is 16
    million numbers in every record, and a dense router's is all ones). ``fit_allocation``: the validation
    split's allocation, for the cross-fitted cheating score and the constant-experts check (absent without it)."""
    x = data.x_test.to(device)
    p = predict(model, x, batch_size)
    y = data.y_test
    n_experts = model.experts.n_experts
    abl = ablation.ablate(model, x, y, data.n_classes, batch_size, order=eval_order(model, len(y)))
    scores = score(y, p["preds"], p["assignment"], data.n_classes, n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping, modules=getattr(data, "module_test", None),
                   ablation=abl.matrix, expert_parameters=model.experts.readable_parameters(),
                   fit_allocation=fit_allocation)
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    co = coactivation(p["weights"]) if n_experts <= MAX_COACTIVATION_EXPERTS else None
    return {"test": scores, "allocation": allocation(y, p["assignment"], data.n_classes, n_experts).tolist(),
            "test_assignment": p["assignment"].tolist(),  # expert of each test sample (-1: none), for seed stability
            "ablation": None if abl.matrix is None else abl.matrix.tolist(), "ablation_rule": abl.rule,
            "coactivation": None if co is None else [[v if v == v else None for v in row] for row in co.tolist()]}  # NaN: null


def accuracy_and_loss(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood of the mixture) on (x, y): the per-epoch scores of the validation
    split, the same numbers as :func:`split_scores`' accuracy and loss (batches in the order of ``eval_order``)."""
    acc, loss, _ = validation_pass(model, x, y, batch_size)
    return acc, loss


@torch.no_grad()
def validation_pass(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH,
                    k: int | None = None) -> tuple[float, float, torch.Tensor | None]:
    """:func:`accuracy_and_loss` and, with ``k``, each sample's first k experts from the same forward pass
    (``moe.scoring.saturation.top_experts``: int16 [N, k], in the order of x; None without ``k``)."""
    model.eval()
    order = eval_order(model, len(y))
    xs = x if order is None else x[order.to(x.device)]
    log_probs, sets = [], []
    for xb in xs.split(batch_size):
        out = model(xb)
        log_probs.append(out.log_probs)
        if k is not None:
            sets.append(top_experts(out.routing.plan.expert_ids, k))
    log_probs = torch.cat(log_probs).cpu()
    top = torch.cat(sets) if k is not None else None
    if order is not None:
        log_probs = torch.empty_like(log_probs).index_copy_(0, order, log_probs)
        top = None if top is None else torch.empty_like(top).index_copy_(0, order, top)
    y = y.cpu()
    correct = int((log_probs.argmax(1) == y).sum())
    return correct / len(y), float(-log_probs.gather(1, y[:, None]).mean()), top


@torch.no_grad()
def accuracy(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    model.eval()
    order = eval_order(model, len(y))
    if order is not None:
        x, y = x[order.to(x.device)], y[order.to(y.device)]
    return float(sum(int((model(xb).log_probs.argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size))) / len(y))


def evaluate(model: MixtureOfExperts, data: Dataset, device: torch.device, batch_size: int) -> dict[str, Any]:
    """The record fields of the final evaluation: ``dataset``, those of :func:`test_evaluation` (``test``: every
    score, ``allocation``, ``test_assignment``, ``ablation``, ``ablation_rule``, ``coactivation``),
    ``validation_allocation`` (the validation split's class x expert counts, from which the test split's
    cross-fitted cheating score learns each expert's class; None without a validation split),
    ``views`` (gate regions, expert weights: ``moe.records.model_views``) and ``validation`` (the scores of :func:`split_scores` on the validation split; None without one, {} when its
    gate logits are not finite: the test split's scores stand)."""
    validation, fit = None, None
    if data.y_val is not None:
        try:
            validation, fit = split_scores(model, data, data.x_val, data.y_val, device, batch_size,
                                           modules=getattr(data, "module_val", None), with_allocation=True)
        except NonFiniteError:
            validation = {}
    test = test_evaluation(model, data, device, batch_size, fit_allocation=fit)
    return {"dataset": data.describe(), **test, "validation": validation,
            "validation_allocation": None if fit is None else fit.tolist(),
            "views": views(model, data, device, batch_size, test.get("test_assignment"))}  # gate regions, expert weights (moe.records.model_views)
