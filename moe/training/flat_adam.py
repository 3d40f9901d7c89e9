"""Adam's state of every parameter in one flat buffer each (the moments, the step counts), and its step on them.

On the CPU, torch's multi-tensor ops (``torch._foreach_*``) loop over the tensors one op each, so a step of a
model with many small parameters (a bias and a weight per expert) costs ~10 small ops per parameter, the largest
part of a small model's training step after the products. Here the optimizer state lives in one buffer per kind,
each parameter's state a view of its slice, and the elementwise arithmetic of torch's ``_multi_tensor_adam`` runs
once over the buffer: the same ops on the same values, element by element, so the moments and the parameters are
bitwise those of the per-parameter step (``tests/moe/test_optim.py``). The parameters stay the modules' own
``nn.Parameter`` objects, but their data is moved into one buffer too (each parameter a view of its slice, as its
state), so that the update p + (s m) / (sqrt(v) / c + eps) is one ``addcdiv_`` per run of equal learning rates; the
gradients are concatenated once per step. A parameter whose data is replaced afterwards (``p.data = ...``, a move
to another device) is noticed at the next step, which then runs parameter by parameter and moves it in again.

The state dict is torch's (the per-parameter tensors are views), so checkpoints are unchanged; after a
``load_state_dict`` the buffers are rebuilt from the loaded values.

Letters: P parameters, n_i elements of parameter i, M = sum_i n_i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.graph import increment_version


@dataclass
class FlatAdamState:
    """The moments m, v [M] and the step counts [P] of parameters ``params``, whose ``state`` entries are views."""

    state: dict  # the optimizer's state object these views were installed in (a load_state_dict replaces it)
    params: list[Tensor]
    exp_avg: Tensor  # [M]
    exp_avg_sq: Tensor  # [M]
    steps: Tensor  # [P]
    sizes: list[int]
    values: Tensor  # [M]: the parameters' data, each parameter a view of its slice
    addresses: list[int]  # each parameter's data_ptr when installed: a parameter whose data moved is no longer served
    denom: Tensor | None = None  # [M]: sqrt(v) / c + eps, reused every step
    lr_runs: tuple[list[float], list[tuple[float, slice]]] | None = None  # the learning rates and their runs, cached

    @classmethod
    def install(cls, state: dict, groups: list[dict]) -> FlatAdamState | None:
        """Move the (initialised) state and the data of the parameters of ``groups`` into flat buffers and make each
        a view of its slice; None when they do not fit one buffer (dtypes, devices, step counts that are not CPU
        scalars of one dtype or not all equal, a parameter without state, parameters in shared memory, in another
        memory format than contiguous, or sharing memory with each other)."""
        params = [p for g in groups for p in g["params"]]
        entries = [state.get(p, {}) for p in params]
        if not params or any(set(s) != {"step", "exp_avg", "exp_avg_sq"} for s in entries):
            return None
        if len({(p.device, p.dtype) for p in params}) > 1 or any(p.is_complex() for p in params):
            return None
        if any(p.is_shared() or not p.is_contiguous() for p in params) or overlapping(params):
            return None  # shared memory (moving it would undo the sharing), another memory format, tied parameters
        counts = [s["step"] for s in entries]
        if len({(c.device, c.dtype, c.dim()) for c in counts}) > 1 or counts[0].dim() != 0:
            return None
        if len(set(torch.stack(counts).tolist())) != 1:  # a parameter skipped steps: the flat step could not serve
            return None
        sizes = [p.numel() for p in params]
        values = torch.cat([p.detach().reshape(-1) for p in params])
        for p, x in zip(params, values.split(sizes)):
            p.data = x.view_as(p)
        flat = cls(state, params, torch.cat([s["exp_avg"].reshape(-1) for s in entries]),
                   torch.cat([s["exp_avg_sq"].reshape(-1) for s in entries]), torch.stack(counts), sizes, values,
                   [p.data_ptr() for p in params])
        for s, p, m, v, n in zip(entries, params, flat.exp_avg.split(sizes), flat.exp_avg_sq.split(sizes),
                                 flat.steps.unbind(0)):
            s["exp_avg"], s["exp_avg_sq"], s["step"] = m.view_as(p), v.view_as(p), n
        return flat

    def serves(self, state: dict, groups: list[dict]) -> bool:
        """Whether these buffers hold the state and the data of exactly the parameters of ``groups``, in ``state``."""
        return state is self.state and sum(len(g["params"]) for g in groups) == len(self.params) and all(
            a is b and a.data_ptr() == address
            for a, b, address in zip((p for g in groups for p in g["params"]), self.params, self.addresses))

    def step(self, grads: list[Tensor], lrs: list[float], beta1: float, beta2: float, eps: float,
             loss: Tensor | None = None) -> bool | None:
        """One Adam step of every parameter (no weight decay), the ops of torch's ``_multi_tensor_adam`` over the
        buffers: True. With ``loss`` (a scalar of the gradients' dtype), the loss and every gradient are checked
        first, in the concatenation and the sync the step makes anyway: False, with nothing changed, when one is not
        finite. None, with nothing changed, when the step counts differ (a parameter skipped a step) or the loss
        cannot join the gradients: the caller checks and steps parameter by parameter."""
        parts = [t.reshape(-1) for t in grads]
        if loss is None:
            g = torch.cat(parts)
            head = self.steps.tolist()  # one sync
        elif loss.dtype != parts[0].dtype or loss.numel() != 1:
            return None
        else:
            both = torch.cat([loss.detach().reshape(1), *parts])
            g = both[1:]
            total = both.sum().reshape(1).to(self.steps.device, self.steps.dtype)  # the counts live on the CPU
            total, *head = torch.cat([total, self.steps]).tolist()  # one sync
            if not math.isfinite(total) and not bool(torch.isfinite(both).all()):  # a sum can overflow from finite values
                return False
        if len(set(head)) != 1:
            return None
        self.steps.add_(1.0)
        n = head[0] + 1.0
        self.exp_avg.lerp_(g, 1 - beta1)
        self.exp_avg_sq.mul_(beta2)
        self.exp_avg_sq.addcmul_(g, g, value=1 - beta2)
        if self.denom is None:
            self.denom = torch.empty_like(self.exp_avg_sq)
        denom = self.denom
        torch.sqrt(self.exp_avg_sq, out=denom)
        denom.div_((1 - beta2 ** n) ** 0.5)
        denom.add_(eps)
        if self.lr_runs is None or self.lr_runs[0] != lrs:
            self.lr_runs = (lrs, runs(lrs, self.sizes))
        for lr, part in self.lr_runs[1]:  # p + (s * m) / denom, s = -lr / (1 - beta1^n): torch's addcdiv_ per parameter
            self.values[part].addcdiv_(self.exp_avg[part], denom[part], value=(lr / (1 - beta1 ** n)) * -1)
        increment_version(self.params)  # as an in-place update of each parameter would: autograd sees they changed
        return True


def overlapping(params: list[Tensor]) -> bool:
    """Whether two of the tensors share memory (tied parameters: one buffer would split them apart)."""
    spans = sorted((p.data_ptr(), p.data_ptr() + p.numel() * p.element_size()) for p in params if p.numel())
    return any(end > start for (_, end), (start, _) in zip(spans, spans[1:]))


def runs(values: list[float], sizes: list[int]) -> list[tuple[float, slice]]:
    """Consecutive equal values merged: (value, slice of the flat buffer) of each run of parameters."""
    out: list[tuple[float, slice]] = []
    start = 0
    for v, n in zip(values, sizes):
        if out and out[-1][0] == v:
            out[-1] = (v, slice(out[-1][1].start, start + n))
        else:
            out.append((v, slice(start, start + n)))
        start += n
    return out
