"""One epoch of training, the inner loops of ``moe.training.loop.run``: ``train_epoch`` (shuffled mini-batches through
the whole mixture, with the per-expert statistics of the seed paper's curves) and ``pretrain_epoch`` (each
expert alone on its own classes, no gate).

Letters: N training samples, B samples in a batch, E experts, k slots per sample, A routed assignments.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from kernels import RoutingPlan
from moe.training.epoch_stats import EpochStats
from moe.routers import NonFiniteError


def backward_checked(loss: torch.Tensor, optimizer, model) -> dict[str, Any] | None:
    """Zero the gradients and back-propagate ``loss``; None when the loss and every gradient are finite, else the
    epoch's report of the divergence (the optimizer has not stepped: the parameters stay those of the last good
    step). The loss and the gradients are checked together, in one host sync."""
    return None if checked(loss, backward(loss, optimizer)) else divergence(loss)


def step_checked(loss: torch.Tensor, optimizer, model) -> dict[str, Any] | None:
    """``backward_checked``, then the optimizer's step when the loss and every gradient are finite. An optimizer
    with ``step_if_finite`` (``moe.training.optim.Adam``) checks and steps on one concatenation of the gradients."""
    params = backward(loss, optimizer)
    fused = getattr(optimizer, "step_if_finite", None)
    finite = None if fused is None else fused(loss)
    if finite is None:  # no fused step, or it does not serve this step: the check, then the plain step
        finite = checked(loss, params)
        if finite:
            optimizer.step()
    return None if finite else divergence(loss)


def checked(loss: torch.Tensor, params: list[torch.Tensor]) -> bool:
    """The loss and every gradient of ``params`` finite, in one host sync."""
    return all_finite([loss.detach(), *(p.grad for p in params if p.grad is not None)])


def backward(loss: torch.Tensor, optimizer) -> list[torch.Tensor]:
    """The optimizer's parameters, their gradients set to None (``zero_grad(set_to_none=True)`` without its per-call
    machinery), then ``loss`` back-propagated."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for p in params:
        p.grad = None
    loss.backward()
    return params


def divergence(loss: torch.Tensor) -> dict[str, Any]:
    """The epoch's report of a step whose loss or gradients are not finite."""
    reason = "non-finite gradients" if bool(torch.isfinite(loss)) else "non-finite training loss"
    return {"train_loss": float(loss.detach()), "finite": False, "reason": reason}


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Every element of every tensor finite, in two ops and one sync: the sum of all elements is finite only if
    all of them are (a NaN or an infinity makes it NaN or inf). A sum can also overflow from finite values (above
    ~3e38), so a non-finite sum is confirmed element by element (rare: a diverging run)."""
    tensors = [t for t in tensors if t.numel()]
    if not tensors or math.isfinite(float(torch.cat([t.reshape(-1) for t in tensors]).sum())):
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def gradients_finite(model) -> bool:
    """Every gradient of the step finite (a finite loss can still overflow in backward). ``model``: a module or
    a list of parameters (the optimizer's: walking the modules costs more than the check itself)."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else model
    return all_finite([p.grad for p in params if p.grad is not None])


def parameters_finite(model) -> bool:
    """Every parameter finite (an optimizer step from finite gradients can still overflow them)."""
    return all_finite([p.detach() for p in model.parameters()])


def train_epoch(model, optimizer, loss_fn, x, y, batch_size: int, generator: torch.Generator,
                on_batch: Callable[[int], Any] | None = None, train_gate: bool = True) -> dict[str, Any]:
    """One pass over shuffled mini-batches. Returns the mean loss (and each loss term ``loss_<name>``), accuracy,
    each expert's share of samples (as top-weight expert, ``expert_share``), its mean routing weight
    (``expert_weight``: the seed paper's 'sample count' / N), its mean NLL on the samples routed to it
    (``expert_loss``, None if it got none), and the share of samples no expert took (``dropped``).
    A frozen gate runs in eval mode.

    Stops at the first non-finite loss or gradient and reports it (``finite`` false, ``reason``), leaving the
    parameters of the last good step.
    """
    model.train()
    for m in model.gate_modules():
        m.train(train_gate)
    stats = EpochStats(model.experts.n_experts, y)  # moe.training.epoch_stats: reduced once per epoch, bitwise as batch by batch
    for idx in torch.randperm(len(y), generator=generator).to(y.device).split(batch_size):
        xb = x[idx]
        try:
            out = model(xb)
        except NonFiniteError:
            return {"train_loss": math.nan, "finite": False, "reason": "non-finite gate logits in training"}
        loss, parts = loss_fn(out, xb, y[idx])
        if (diverged := step_checked(loss, optimizer, model)) is not None:
            return diverged
        stats.add(idx, loss, parts, out)
        if on_batch is not None:
            on_batch(1)
    return stats.result()


def pretrain_epoch(model, optimizer, x, y, owner: torch.Tensor, batch_size: int, generator: torch.Generator,
                   on_batch: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Each expert trained alone on its own classes: owner [N] is the expert of each training sample.

    Every expert draws its own shuffled batches of ``batch_size`` from its samples; the experts' batches of
    one step run together through one routing plan (expert e gets exactly its rows), and the loss is the sum
    over experts of each one's mean cross-entropy, so each expert's gradient is that of training it alone.
    """
    model.train()
    n_experts = model.experts.n_experts
    mine = [torch.nonzero(owner == e).flatten() for e in range(n_experts)]
    queues = [m[torch.randperm(len(m), generator=generator).to(m.device)].split(batch_size) for m in mine]
    total_loss, correct, seen, steps = 0.0, 0, 0, max(len(q) for q in queues)
    none = torch.zeros(0, dtype=torch.long, device=y.device)
    for step in range(steps):
        parts = [q[step] if step < len(q) else none for q in queues]
        rows = torch.cat(parts)  # sorted by expert, so the plan's grouped order is the identity
        experts = torch.repeat_interleave(torch.arange(n_experts, device=y.device),
                                          torch.tensor([len(p) for p in parts], device=y.device))
        plan = RoutingPlan.from_assignments(torch.arange(len(rows), device=y.device), experts,
                                            torch.ones(len(rows), device=y.device), len(rows), n_experts)
        log_q = torch.log_softmax(model.experts.forward_routed(x[rows], plan), -1)  # [A, C]
        nll = -log_q.gather(1, y[rows][:, None])[:, 0]
        loss = (nll / plan.counts[experts]).sum()  # sum_e mean_{rows of e} nll
        if (diverged := backward_checked(loss, optimizer, model)) is not None:
            return diverged
        for e in range(n_experts):  # an expert whose samples ran out this epoch makes no step (Adam would move it)
            if len(parts[e]) == 0:
                for p in model.experts.experts[e].parameters():
                    p.grad = None
        optimizer.step()
        total_loss += float(nll.detach().sum())
        correct += int((log_q.argmax(1) == y[rows]).sum())
        seen += len(rows)
        if on_batch is not None:
            on_batch(1)
    share = torch.bincount(owner, minlength=n_experts).double() / len(owner)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen, "expert_share": share.tolist(),
            "dropped": 0.0, "finite": True}
