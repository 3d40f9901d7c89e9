"""The per-epoch statistics of ``moe.training.epochs.train_epoch``, gathered with a handful of ops per epoch instead of
~35 small ops and 3 host syncs per batch.

Each batch only keeps (detached) what the statistics are made of: the loss and its terms, the mixture's and
the slots' log-probabilities, the routing plan's experts and weights, the batch's sample indices. They are
reduced together when the epoch ends (or when the kept tensors pass :data:`FLUSH_FLOATS` floats, so memory
stays bounded on large data), in the order and with the arithmetic of the batch-by-batch reductions they
replace, so every number is bitwise the same (``tests/moe/test_epoch_stats.py``):

- the mean loss: float64 sums of float(loss) * B in batch order (as Python did);
- each loss term: float32 sums of value * B in batch order (as the tensors did);
- accuracy, expert shares, dropped share: integer counts (exact in any order);
- expert weights: each batch's float32 column sums of the dense weights [B, E] (the same reduction, batched
  over equal-sized batches), then float64 sums in batch order (a cumulative sum, sequential by definition);
- expert losses: float64 ``index_add_`` of the routed slots' NLL in batch, sample, slot order.

Letters: N training samples, B samples in a batch, E experts, k slots per sample, C classes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

NUMPY_FLOATS = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}

FLUSH_FLOATS = 1 << 22  # reduce what the batches kept once it holds this many floats (16 MiB of float32)


class EpochStats:
    """Statistics of one epoch of the mixture: :meth:`add` after each step, :meth:`result` at the end."""

    def __init__(self, n_experts: int, y: Tensor):
        self.n_experts, self.y = n_experts, y
        dev = y.device
        self.losses: list[float] = []
        self.sizes: list[int] = []
        self.term_values: dict[str, list[Tensor]] = {}
        self.correct = torch.zeros((), dtype=torch.long, device=dev)
        self.top_counts = torch.zeros(n_experts, dtype=torch.long, device=dev)
        self.dropped = torch.zeros((), dtype=torch.long, device=dev)
        self.weight_sum = torch.zeros(n_experts, dtype=torch.float64, device=dev)
        self.nll_sum = torch.zeros(n_experts, dtype=torch.float64, device=dev)
        self.pairs = torch.zeros(n_experts, dtype=torch.long, device=dev)
        self.kept: list[tuple[Tensor, ...]] = []  # per batch: idx, log_probs, expert_log_probs, expert_ids, weights
        self.kept_floats = 0
        self.loss_tensors: list[Tensor] = []

    def add(self, idx: Tensor, loss: Tensor, parts: dict[str, Tensor], out) -> None:
        """One finished step: its sample indices [B], loss, loss terms and ``moe.model.MoEOutput``."""
        self.loss_tensors.append(loss.detach())
        self.sizes.append(len(idx))
        for name, value in parts.items():
            self.term_values.setdefault(name, []).append(value)
        plan = out.routing.plan
        batch = (idx, out.log_probs.detach(), out.expert_log_probs.detach(), plan.expert_ids, plan.weights.detach())
        self.kept.append(batch)
        self.kept_floats += batch[2].numel()
        if self.kept_floats >= FLUSH_FLOATS:
            self.flush()

    def flush(self) -> None:
        """Reduce the kept batches into the running counts and sums, in batch order."""
        if not self.kept:
            return
        k = max(b[3].shape[1] for b in self.kept)  # slots per sample may vary by batch (expert choice): pad them unused
        padded = [(i, lp, F.pad(s, (0, 0, 0, k - e.shape[1])), F.pad(e, (0, k - e.shape[1]), value=-1),
                   F.pad(w, (0, k - e.shape[1]))) if e.shape[1] < k else (i, lp, s, e, w) for i, lp, s, e, w in self.kept]
        idx, log_probs, slots, ids, weights = (torch.cat(t) for t in zip(*padded))
        y = self.y[idx]
        self.correct += (log_probs.argmax(1) == y).sum()
        top = ids[:, 0]
        self.top_counts += torch.bincount(top[top >= 0], minlength=self.n_experts)
        self.dropped += (top < 0).sum()
        with torch.no_grad():
            sums = self.batch_weight_sums(ids, weights, [len(b[0]) for b in self.kept])  # [batches, E] float32
            self.weight_sum = torch.cat([self.weight_sum[None], sums.double()]).cumsum(0)[-1]
            nll = -slots.gather(2, y[:, None, None].expand(-1, ids.shape[1], 1))[..., 0]  # [n, k]
            valid = ids >= 0
            self.nll_sum.index_add_(0, ids[valid], nll[valid].double())
            self.pairs += torch.bincount(ids[valid], minlength=self.n_experts)
        self.kept, self.kept_floats = [], 0

    def batch_weight_sums(self, ids: Tensor, weights: Tensor, sizes: list[int]) -> Tensor:
        """[batches, E]: each batch's column sums of its dense routing weights (zero where not routed), as
        ``Routing.dense_weights().sum(0)`` gives them; runs of equal-sized batches reduced in one op."""
        valid = ids >= 0
        dense = torch.zeros(ids.shape[0], self.n_experts, dtype=weights.dtype, device=weights.device)
        dense = dense.scatter_add(1, ids.clamp_min(0), torch.where(valid, weights, 0))
        out, start = [], 0
        for size, run in runs(sizes):
            out.append(dense[start:start + size * run].view(run, size, self.n_experts).sum(1))
            start += size * run
        return torch.cat(out)

    def result(self) -> dict[str, Any]:
        """The epoch's statistics (``train_epoch``'s keys), bitwise those of the batch-by-batch reductions."""
        self.flush()
        seen = sum(self.sizes)
        losses = torch.stack(self.loss_tensors).tolist() if self.loss_tensors else []
        total_loss = 0.0
        for value, size in zip(losses, self.sizes):
            total_loss += value * size
        terms = {}
        for name, values in self.term_values.items():  # in the terms' own float type, as the tensors summed them
            stacked = torch.stack(values)
            real = NUMPY_FLOATS.get(stacked.dtype, np.float64)
            acc = real(0.0)
            for value, size in zip(stacked.tolist(), self.sizes):
                acc = real(acc + real(real(value) * real(size)))
            terms[name] = float(acc)
        return {"train_loss": total_loss / seen, "train_accuracy": int(self.correct) / seen,
                **{f"loss_{name}": v / seen for name, v in terms.items()},
                "expert_share": (self.top_counts.double() / seen).tolist(),
                "expert_weight": (self.weight_sum / seen).tolist(),
                "expert_loss": [float(s / c) if c > 0 else None for s, c in zip(self.nll_sum.tolist(), self.pairs.tolist())],
                "dropped": int(self.dropped) / seen, "finite": True}


def runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Runs of equal values: [32, 32, 32, 7] -> [(32, 3), (7, 1)]."""
    out: list[tuple[int, int]] = []
    for s in sizes:
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out

