"""Evaluation of a model: predictions in a fixed order, accuracy, and the test scores of a run record.

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


def test_scores(model: MixtureOfExperts, data: Dataset, device: torch.device,
                batch_size: int = EVAL_BATCH) -> tuple[dict[str, float], list[list[int]], list[int]]:
    """Every score of ``moe.scores.score`` on the test split (with ``dropped``, the share of test samples no
    expert took), the test loss, the class x expert allocation counts and the per-sample assignment."""
    p = predict(model, data.x_test.to(device), batch_size)
    y = data.y_test
    scores = score(y, p["preds"], p["assignment"], data.n_classes, model.experts.n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping,
                   expert_parameters=model.experts.readable_parameters())
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    alloc = allocation(y, p["assignment"], data.n_classes, model.experts.n_experts).tolist()
    return scores, alloc, p["assignment"].tolist()


@torch.no_grad()
def accuracy(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    model.eval()
    order = eval_order(model, len(y))
    if order is not None:
        x, y = x[order.to(x.device)], y[order.to(y.device)]
    return float(sum(int((model(xb).log_probs.argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size))) / len(y))


def evaluate(model: MixtureOfExperts, data: Dataset, device: torch.device, batch_size: int) -> dict[str, Any]:
    """The record fields of the test evaluation: ``dataset``, ``test`` (every score), ``allocation``, ``test_assignment``."""
    scores, alloc, assignment = test_scores(model, data, device, batch_size)
    return {"dataset": data.describe(), "test": scores, "allocation": alloc,
            "test_assignment": assignment}  # expert of each test sample (-1: none), for seed stability
