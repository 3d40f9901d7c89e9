"""The routing plan: the contract between routers and experts, and how it is built from slot assignments.

Every router, learned or not, produces a `RoutingPlan`; the expert layer consumes it (`grouped_mm` on
`plan.offsets` / `plan.row_tokens`, then `plan.combine`). Kernels know nothing of routers.

Letters: T tokens, E experts, k slots per token, A valid assignments (= grouped rows), S = T * k slots,
N feature width of expert outputs.

Grouping the slots by expert: a per-block expert histogram, a prefix sum and a stable counting-sort
scatter (Triton), or a sort on a unique key (torch reference, `_plan_torch`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import FLOAT_DTYPES, check_tensor, resolve_backend, tl, triton
from .combine import combine

__all__ = ["RoutingPlan", "build_plan", "weight_dtype"]


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
@triton.jit
def _plan_count_kernel(
    ids_ptr, blk_counts_ptr,  # ids: int64 [S] flat slot experts (-1 = unused); blk_counts: int64 [B, E]
    S, E,
    BLOCK: tl.constexpr, BLOCK_E: tl.constexpr,
):
    """Per-block expert histogram of the flat slots: blk_counts[b, e] = #{s in block b: ids[s] = e}."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)  # int64: S = T * k may pass 2**31
    e = tl.load(ids_ptr + offs, mask=offs < S, other=-1)
    valid = (offs < S) & (e >= 0)
    hist = tl.histogram(tl.where(valid, e, 0).to(tl.int32), BLOCK_E, mask=valid)
    offs_e = tl.arange(0, BLOCK_E)
    tl.store(blk_counts_ptr + pid * E + offs_e, hist.to(tl.int64), mask=offs_e < E)


@triton.jit
def _plan_scatter_kernel(
    ids_ptr, base_ptr, order_ptr,  # ids: int64 [S]; base: int64 [B, E] first row of (block, expert); order: int64 [A]
    S, E,
    BLOCK: tl.constexpr,
):
    """Stable counting-sort scatter: order[base[b, e] + rank] = s, rank = earlier slots of block b with expert e."""
    pid = tl.program_id(0).to(tl.int64)
    local = tl.arange(0, BLOCK)
    offs = pid * BLOCK + local
    e = tl.load(ids_ptr + offs, mask=offs < S, other=-1)
    valid = (offs < S) & (e >= 0)
    same = (e[:, None] == e[None, :]) & (local[None, :] < local[:, None])
    rank = tl.sum(same.to(tl.int32), axis=1)
    base = tl.load(base_ptr + pid * E + e, mask=valid, other=0)
    tl.store(order_ptr + base + rank, offs, mask=valid)


# ----------------------------------------------------------------------------------------------
# launchers and the torch reference
# ----------------------------------------------------------------------------------------------
PLAN_BLOCK = 64


def _plan_triton(flat_ids: Tensor, n_experts: int, n_valid: int) -> tuple[Tensor, Tensor]:
    """flat_ids int64 [S] (-1 unused) -> (counts [E], order [A]) by histogram + prefix sum + stable scatter."""
    S, E, dev = flat_ids.numel(), n_experts, flat_ids.device
    n_blocks = triton.cdiv(S, PLAN_BLOCK)
    blk = torch.empty(n_blocks, E, dtype=torch.int64, device=dev)
    order = torch.empty(n_valid, dtype=torch.int64, device=dev)
    if S == 0:
        return torch.zeros(E, dtype=torch.int64, device=dev), order
    _plan_count_kernel[(n_blocks,)](flat_ids, blk, S, E, **plan_count_config(E))
    counts = blk.sum(0)
    starts = torch.cumsum(counts, 0) - counts                       # exclusive prefix sum over experts
    base = starts[None, :] + torch.cumsum(blk, 0) - blk              # and over blocks: [B, E]
    _plan_scatter_kernel[(n_blocks,)](flat_ids, base, order, S, E, BLOCK=PLAN_BLOCK)
    return counts, order


def plan_count_config(E: int) -> dict:
    """Meta-parameters of `_plan_count_kernel`."""
    return dict(BLOCK=PLAN_BLOCK, BLOCK_E=triton.next_power_of_2(E), num_warps=4)


def _plan_torch(flat_ids: Tensor, n_experts: int, n_valid: int) -> tuple[Tensor, Tensor]:
    """Reference: counts by bincount, order by sorting the unique key (expert, slot), unused slots last."""
    S = flat_ids.numel()
    counts = torch.bincount(flat_ids + 1, minlength=n_experts + 1)[1:]
    key = torch.where(flat_ids < 0, n_experts, flat_ids) * S + torch.arange(S, device=flat_ids.device)
    return counts, torch.sort(key).indices[:n_valid]


def weight_dtype(dtype: torch.dtype) -> torch.dtype:
    """Routing weights are fp32; float64 inputs keep float64 (gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------------------------
# the routing plan
# ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class RoutingPlan:
    """Which expert handles which token slot, grouped by expert for the expert kernels.

    expert_ids: int64 [T, k]  slot (t, j), rows by descending weight, ties to the lower expert; -1 unused
    weights:    fp32  [T, k]  differentiable; 0 in unused slots (float64 when the logits are float64)
    counts:     int64 [E]     valid assignments per expert
    offsets:    int64 [E + 1] offsets[0] = 0, cumulative counts
    order:      int64 [A]     flat slot indices t * k + j of the valid slots, sorted by expert, stable in t
    dense:      bool          every token routed to every expert once (k = E, no unused slot), known by construction
                              (top-k with k = E): expert e's grouped rows are then the tokens 0..T-1 in order
    """

    expert_ids: Tensor
    weights: Tensor
    counts: Tensor
    offsets: Tensor
    order: Tensor
    n_experts: int
    dense: bool = False

    @property
    def k(self) -> int:
        return self.expert_ids.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.expert_ids.shape[0]

    @functools.cached_property
    def row_tokens(self) -> Tensor:
        """int64 [A]: the token of each expert-grouped row."""
        return torch.div(self.order, self.k, rounding_mode="floor")

    @functools.cached_property
    def row_experts(self) -> Tensor:
        """int64 [A]: the expert of each grouped row."""
        return self.expert_ids.flatten()[self.order]

    @functools.cached_property
    def slot_rows(self) -> Tensor:
        """int64 [T, k]: the grouped row of each slot (inverse of `order`); -1 for unused slots."""
        rows = torch.full((self.n_tokens * self.k,), -1, dtype=torch.int64, device=self.order.device)
        rows[self.order] = torch.arange(self.order.numel(), device=self.order.device)
        return rows.view(self.n_tokens, self.k)

    def _check_rows(self, y: Tensor) -> None:
        check_tensor("y", y, ndim=2, device=self.order.device)
        if y.shape[0] != self.order.numel():
            raise ValueError(f"y must have {self.order.numel()} rows (one per assignment), got {y.shape[0]}")

    def unpermute(self, y: Tensor) -> Tensor:
        """y [A, N] grouped rows -> [T, k, N] in slot layout, zeros in unused slots (differentiable)."""
        self._check_rows(y)
        rows = self.slot_rows.flatten()
        if self.order.numel() < rows.numel():  # unused slots read an appended zero row
            y, rows = torch.cat([y, y.new_zeros(1, y.shape[1])]), rows.where(rows >= 0, self.order.numel())
        return y.index_select(0, rows).view(self.n_tokens, self.k, y.shape[1])

    def combine(self, y: Tensor, *, backend: str | None = None) -> Tensor:
        """y [A, N] -> [T, N]: sum_j weights[t, j] * y_slot(t, j), fp32 accumulation, in y's dtype.

        Differentiable in y and weights; a gather per token, no scatter: deterministic everywhere.
        The Triton path is one fused pass forward and one backward (row-wise dots for the weights)."""
        self._check_rows(y)
        return combine(y, self.weights, self.slot_rows, self.order, resolve_backend(backend, y.device))

    @classmethod
    def from_assignments(cls, token_ids: Tensor, expert_ids: Tensor, weights: Tensor,
                         n_tokens: int, n_experts: int, *, backend: str | None = None) -> "RoutingPlan":
        """Plan from explicit assignments [A] (expert choice, hash, dense routing).

        Slots [T, kmax], kmax = most assignments of any token (at least 1), each row by descending
        weight (ties to the lower expert); unused slots expert -1, weight 0. Differentiable in weights.
        """
        _check_assignments(token_ids, expert_ids, weights, n_tokens, n_experts)
        T, A, dev = n_tokens, token_ids.numel(), token_ids.device
        # sort by (token, -weight, expert): stable sorts from the least significant key
        perm = torch.sort(expert_ids, stable=True).indices
        perm = perm[torch.sort(-weights.detach()[perm], stable=True).indices]
        perm = perm[torch.sort(token_ids[perm], stable=True).indices]
        tok = token_ids[perm]
        per_token = torch.bincount(token_ids, minlength=T)
        kmax = max(1, int(per_token.max())) if A > 0 else 1
        first = torch.cumsum(per_token, 0) - per_token
        slot = tok * kmax + (torch.arange(A, device=dev) - first[tok])
        ids = torch.full((T * kmax,), -1, dtype=torch.int64, device=dev).index_put_((slot,), expert_ids[perm])
        wdt = weight_dtype(weights.dtype)
        w = torch.zeros(T * kmax, dtype=wdt, device=dev).index_put((slot,), weights[perm].to(wdt))
        return build_plan(ids.view(T, kmax), w.view(T, kmax), n_experts, A, backend)


def build_plan(ids: Tensor, w: Tensor, n_experts: int, n_valid: int, backend: str | None,
               dense: bool = False) -> RoutingPlan:
    if dense:
        return _dense_plan(ids, w, n_experts)
    flat = ids.flatten()
    plan = _plan_triton if resolve_backend(backend, ids.device) == "triton" else _plan_torch
    counts, order = plan(flat, n_experts, n_valid)
    offsets = torch.zeros(n_experts + 1, dtype=torch.int64, device=ids.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    return RoutingPlan(ids, w, counts, offsets, order, n_experts, dense)


def _dense_plan(ids: Tensor, w: Tensor, n_experts: int) -> RoutingPlan:
    """The plan of ids [T, E] holding every expert once per token, without a sort: expert e's grouped rows are
    the tokens in order, so slot (t, j) is grouped row ids[t, j] * T + t, and ``order`` is its inverse. The
    same integers the general path computes (a plan is uniquely defined), in ~5 ops instead of ~10."""
    T, E = ids.shape[0], n_experts
    small = T * E <= CACHED_DENSE_SLOTS and not torch.is_inference_mode_enabled()
    tokens, slots, counts, offsets = (_dense_constants if small else _dense_constants.__wrapped__)(T, E, ids.device)
    rows = ids * T + tokens  # [T, E] the grouped row of each slot
    order = torch.empty(T * E, dtype=torch.int64, device=ids.device)
    order.index_copy_(0, rows.flatten(), slots)
    plan = RoutingPlan(ids, w, counts, offsets, order, n_experts, True)
    plan.__dict__["slot_rows"] = rows  # the cached_property, known here
    return plan


CACHED_DENSE_SLOTS = 1 << 16  # dense plans up to this many slots share their constants (a training batch's plan)


@functools.lru_cache(maxsize=16)
def _dense_constants(T: int, E: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The index tensors every dense plan of T tokens and E experts shares: the token column [T, 1], 0..T*E-1, the
    counts [E] (T each) and the offsets [E + 1]. Made once per shape for small plans (a training run makes the same
    plan shape every step; evaluation's large batches are made afresh, so the cache holds little memory), never under
    inference mode (inference tensors could not be saved for a later backward); shared between plans, so never
    written to (nothing in the project writes to a plan's tensors)."""
    return (torch.arange(T, device=device)[:, None], torch.arange(T * E, device=device),
            torch.full((E,), T, dtype=torch.int64, device=device), torch.arange(E + 1, device=device) * T)


def _check_assignments(token_ids, expert_ids, weights, n_tokens, n_experts) -> None:
    for name, v in (("n_tokens", n_tokens), ("n_experts", n_experts)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "n_tokens" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'n_tokens' else 'positive'} int, got {v!r}")
    check_tensor("token_ids", token_ids, ndim=1, dtypes=(torch.int64,))
    dev = token_ids.device
    check_tensor("expert_ids", expert_ids, ndim=1, dtypes=(torch.int64,), device=dev)
    check_tensor("weights", weights, ndim=1, dtypes=FLOAT_DTYPES, device=dev)
    A = token_ids.numel()
    for name, t in (("expert_ids", expert_ids), ("weights", weights)):
        if t.numel() != A:
            raise ValueError(f"{name} must have {A} entries like token_ids, got {t.numel()}")
    if A == 0:
        return
    stats = torch.stack([token_ids.min(), token_ids.max(), expert_ids.min(), expert_ids.max()]).tolist()
    if stats[0] < 0 or stats[1] >= n_tokens:
        raise ValueError(f"token_ids must lie in [0, n_tokens={n_tokens}), got range [{stats[0]}, {stats[1]}]")
    if stats[2] < 0 or stats[3] >= n_experts:
        raise ValueError(f"expert_ids must lie in [0, n_experts={n_experts}), got range [{stats[2]}, {stats[3]}]")
    if weights.detach().isnan().any():
        raise ValueError("weights contain NaN")
