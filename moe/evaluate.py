"""Evaluation of a model: predictions in a fixed order, accuracy, the validation split's per-epoch scores,
and the final scores of a run record (the test split, scored once at the end, and the validation split).

Batch-dependent routers (expert choice, capacity limits) are evaluated in training-size batches, in a
fixed shuffled order (``eval_order``), so that their evaluation batches are mixed like their training batches.
"""
from __future__ import annotations

from typing import Any

import torch

from moe.config import Config
from moe.data import Dataset
from moe.metrics import allocation
from moe.model import MixtureOfExperts
from moe.routers import NonFiniteError
from moe.scores import score

EVAL_BATCH = 1024
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
                 batch_size: int = EVAL_BATCH) -> tuple[dict[str, float], list[list[int]], list[int]]:
    """Every score of ``moe.scores.score`` on the samples (x, y) of one split of ``data`` (with ``dropped``, the
    share of its samples no expert took), its loss, the class x expert allocation counts and the per-sample assignment."""
    p = predict(model, x.to(device), batch_size)
    scores = score(y, p["preds"], p["assignment"], data.n_classes, model.experts.n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping)
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    alloc = allocation(y, p["assignment"], data.n_classes, model.experts.n_experts).tolist()
    return scores, alloc, p["assignment"].tolist()


def test_scores(model: MixtureOfExperts, data: Dataset, device: torch.device,
                batch_size: int = EVAL_BATCH) -> tuple[dict[str, float], list[list[int]], list[int]]:
    """:func:`split_scores` on the test split."""
    return split_scores(model, data, data.x_test, data.y_test, device, batch_size)


@torch.no_grad()
def accuracy_and_loss(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood of the mixture) on (x, y): the per-epoch scores of the validation
    split, the same numbers as :func:`split_scores`' accuracy and loss (batches in the order of ``eval_order``)."""
    model.eval()
    order = eval_order(model, len(y))
    xs = x if order is None else x[order.to(x.device)]
    log_probs = torch.cat([model(xb).log_probs for xb in xs.split(batch_size)]).cpu()
    if order is not None:
        log_probs = torch.empty_like(log_probs).index_copy_(0, order, log_probs)
    y = y.cpu()
    correct = int((log_probs.argmax(1) == y).sum())
    return correct / len(y), float(-log_probs.gather(1, y[:, None]).mean())


@torch.no_grad()
def accuracy(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    model.eval()
    order = eval_order(model, len(y))
    if order is not None:
        x, y = x[order.to(x.device)], y[order.to(y.device)]
    return float(sum(int((model(xb).log_probs.argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size))) / len(y))


def evaluate(model: MixtureOfExperts, data: Dataset, device: torch.device, batch_size: int) -> dict[str, Any]:
    """The record fields of the final evaluation: ``dataset``, ``test`` (every score), ``validation`` (the same
    scores on the validation split; None without one, {} when its gate logits are not finite: the test
    split's scores stand), ``allocation`` and ``test_assignment`` (of the test split)."""
    scores, alloc, assignment = test_scores(model, data, device, batch_size)
    validation = None
    if data.y_val is not None:
        try:
            validation = split_scores(model, data, data.x_val, data.y_val, device, batch_size)[0]
        except NonFiniteError:
            validation = {}
    return {"dataset": data.describe(), "test": scores, "validation": validation, "allocation": alloc,
            "test_assignment": assignment}  # expert of each test sample (-1: none), for seed stability
