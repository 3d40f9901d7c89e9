"""Routing: top-k softmax routing and the RoutingPlan every router produces.

Letters: T tokens, E experts, k slots per token, A valid assignments (= grouped rows, T * k for top-k),
S = T * k slots, N feature width of expert outputs.

Layers, as in the Triton tutorials / ScatterMoE: `@triton.jit` kernels, their launchers (checks,
allocation, grid), the autograd.Function, then the public functions. The torch reference of each
step is a few lines in `_topk_torch` / `_plan_torch`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import FLOAT_DTYPES, check_tensor, resolve_backend, tl, triton

__all__ = ["RoutingPlan", "topk_route"]


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
@triton.jit
def _topk_softmax_kernel(
    # pointers
    logits_ptr, ids_ptr, w_ptr,
    # sizes
    T, E,
    # strides
    stride_lt, stride_le,
    # meta-parameters
    K: tl.constexpr, K_POW2: tl.constexpr, RENORM: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
):
    """Row-wise fp32 softmax and top-K. logits: [T, E] (any strides); ids: int64 [T, K]; w: fp32 [T, K].

    Selection runs on the fp32 logits (same order as the softmax, but immune to exp rounding ties):
    K rounds of max, argmax with ties to the lower index, winner masked out.
    """
    pid = tl.program_id(0)
    offs_t = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_e = tl.arange(0, BLOCK_E)
    offs_k = tl.arange(0, K_POW2)
    mask_t = offs_t < T
    mask_e = offs_e < E
    ptrs = logits_ptr + offs_t[:, None].to(tl.int64) * stride_lt + offs_e[None, :] * stride_le
    x = tl.load(ptrs, mask=mask_t[:, None] & mask_e[None, :], other=float("-inf")).to(tl.float32)
    # fp32 softmax over all E (padded columns are -inf -> 0)
    row_max = tl.max(x, axis=1)
    row_max = tl.where(mask_t, row_max, 0.0)  # padded rows: avoid -inf - -inf
    num = tl.exp(x - row_max[:, None])
    num = tl.where(mask_e[None, :], num, 0.0)
    denom = tl.sum(num, axis=1)
    # K rounds of max / argmax, ties to the lower expert index
    avail = mask_t[:, None] & mask_e[None, :]
    ids = tl.zeros((BLOCK_T, K_POW2), dtype=tl.int64)
    vals = tl.zeros((BLOCK_T, K_POW2), dtype=tl.float32)
    for j in range(K):
        best = tl.max(tl.where(avail, x, float("-inf")), axis=1)
        hit = avail & (x == best[:, None])
        idx = tl.min(tl.where(hit, offs_e[None, :], BLOCK_E), axis=1)
        won = offs_e[None, :] == idx[:, None]
        val = tl.sum(tl.where(won, num, 0.0), axis=1)
        avail = avail & (offs_e[None, :] != idx[:, None])
        ids = tl.where(offs_k[None, :] == j, idx[:, None].to(tl.int64), ids)
        vals = tl.where(offs_k[None, :] == j, val[:, None], vals)
    if RENORM:
        denom = tl.sum(vals, axis=1)
    w = vals / tl.where(mask_t, denom, 1.0)[:, None]
    out_offs = offs_t[:, None].to(tl.int64) * K + offs_k[None, :]
    out_mask = mask_t[:, None] & (offs_k[None, :] < K)
    tl.store(ids_ptr + out_offs, ids, mask=out_mask)
    tl.store(w_ptr + out_offs, w, mask=out_mask)


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
# launchers
# ----------------------------------------------------------------------------------------------
PLAN_BLOCK = 64


def _topk_triton(logits: Tensor, k: int, renormalize: bool) -> tuple[Tensor, Tensor]:
    """logits [T, E] -> (ids int64 [T, k], w fp32 [T, k]) by `_topk_softmax_kernel`."""
    T, E = logits.shape
    ids = torch.empty(T, k, dtype=torch.int64, device=logits.device)
    w = torch.empty(T, k, dtype=torch.float32, device=logits.device)
    if T == 0:
        return ids, w
    cfg = topk_config(E, k)
    grid = (triton.cdiv(T, cfg["BLOCK_T"]),)
    _topk_softmax_kernel[grid](logits, ids, w, T, E, logits.stride(0), logits.stride(1), RENORM=renormalize, **cfg)
    return ids, w


def topk_config(E: int, k: int) -> dict:
    """Meta-parameters of `_topk_softmax_kernel`: a [BLOCK_T, BLOCK_E] tile of at most 2048 logits
    (larger tiles spill at E = 256 in 16-bit, see `python -m kernels.inspect`)."""
    BLOCK_E = triton.next_power_of_2(E)
    return dict(K=k, K_POW2=triton.next_power_of_2(k), BLOCK_T=max(1, min(16, 2048 // BLOCK_E)), BLOCK_E=BLOCK_E,
                num_warps=4)


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


def _topk_torch(logits: Tensor, k: int, renormalize: bool, finite: bool = False) -> tuple[Tensor, Tensor]:
    """Reference: k rounds of max (first maximum = lower index on ties) masking the winner with -inf;
    softmax over E in fp32 at the winners, renormalised. `finite`: no -inf in logits (else a masked
    winner could tie a real -inf, and a unique-key sort decides instead)."""
    x = logits.to(_weight_dtype(logits.dtype))
    if k <= 8 and finite:
        score = x.detach().clone() if k > 1 else x.detach()
        picks = []
        for j in range(k):
            picks.append(score.max(1, keepdim=True).indices)
            if j + 1 < k:
                score.scatter_(1, picks[-1], float("-inf"))
        ids = torch.cat(picks, 1)
    else:  # one sort on a unique key (order-preserving float bits, then lower index first)
        ids = _sort_key(x.detach()).topk(k, dim=1).indices
    w = torch.softmax(x, dim=-1).gather(1, ids)
    return ids, (w / w.sum(-1, keepdim=True) if renormalize else w)


def _sort_key(x: Tensor) -> Tensor:
    """int64 [T, E], unique per row, ordered like (x descending, index ascending)."""
    E = x.shape[1]
    bits = (x.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return (bits << 32) | (E - 1 - torch.arange(E, device=x.device))


def _plan_torch(flat_ids: Tensor, n_experts: int, n_valid: int) -> tuple[Tensor, Tensor]:
    """Reference: counts by bincount, order by sorting the unique key (expert, slot), unused slots last."""
    S = flat_ids.numel()
    counts = torch.bincount(flat_ids + 1, minlength=n_experts + 1)[1:]
    key = torch.where(flat_ids < 0, n_experts, flat_ids) * S + torch.arange(S, device=flat_ids.device)
    return counts, torch.sort(key).indices[:n_valid]


def _weight_dtype(dtype: torch.dtype) -> torch.dtype:
    """Routing weights are fp32; float64 inputs keep float64 (gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _TopkWeights(torch.autograd.Function):
    """logits [T, E] -> w [T, k] with ids [T, k] (non-differentiable) from the Triton kernel.

    Backward (p = softmax(logits), S = chosen set, g = dw): renormalised w = p_S / sum p_S gives
    dl_S = w * (g - sum(w * g)), 0 elsewhere; plain w = p_S gives dl = p * (g_scattered - sum(w * g)).
    """

    @staticmethod
    def forward(ctx, logits, k, renormalize):
        ids, w = _topk_triton(logits, k, renormalize)
        ctx.save_for_backward(logits, ids, w)
        ctx.renormalize = renormalize
        ctx.mark_non_differentiable(ids)
        return ids, w

    @staticmethod
    def backward(ctx, _dids, dw):
        logits, ids, w = ctx.saved_tensors
        wg = (w * dw).sum(-1, keepdim=True)
        if ctx.renormalize:
            dl = torch.zeros(logits.shape, dtype=w.dtype, device=w.device)
            dl.scatter_(1, ids, w * (dw - wg))
        else:
            p = torch.softmax(logits.to(w.dtype), dim=-1)
            g = torch.zeros(logits.shape, dtype=w.dtype, device=w.device).scatter_(1, ids, dw)
            dl = p * (g - wg)
        return dl.to(logits.dtype), None, None


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
    """

    expert_ids: Tensor
    weights: Tensor
    counts: Tensor
    offsets: Tensor
    order: Tensor
    n_experts: int

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

    @property
    def row_weights(self) -> Tensor:
        """[A]: the routing weight of each grouped row (differentiable, so not cached)."""
        return self.weights.flatten()[self.order]

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
        from .combine import combine

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
        wdt = _weight_dtype(weights.dtype)
        w = torch.zeros(T * kmax, dtype=wdt, device=dev).index_put((slot,), weights[perm].to(wdt))
        return _build_plan(ids.view(T, kmax), w.view(T, kmax), n_experts, A, backend)


def _build_plan(ids: Tensor, w: Tensor, n_experts: int, n_valid: int, backend: str | None) -> RoutingPlan:
    flat = ids.flatten()
    plan = _plan_triton if resolve_backend(backend, ids.device) == "triton" else _plan_torch
    counts, order = plan(flat, n_experts, n_valid)
    offsets = torch.zeros(n_experts + 1, dtype=torch.int64, device=ids.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    return RoutingPlan(ids, w, counts, offsets, order, n_experts)


# ----------------------------------------------------------------------------------------------
# checks and the public function
# ----------------------------------------------------------------------------------------------
def _check_logits(logits: Tensor, k: int) -> bool:
    """Raise ValueError on bad logits or k; return True when every logit is finite."""
    check_tensor("logits", logits, ndim=2, dtypes=FLOAT_DTYPES)
    E = logits.shape[1]
    if E < 1:
        raise ValueError(f"logits must have at least one expert column, got shape {tuple(logits.shape)}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= E:
        raise ValueError(f"k must be in [1, E={E}], got k={k}")
    if logits.shape[0] == 0:
        return True
    x = logits.detach()
    if bool(torch.isfinite(x.sum(dtype=_weight_dtype(x.dtype)))):  # one cheap pass and one host sync
        return True
    bad = torch.stack([x.isnan().any(), (x == float("inf")).any(), (x == float("-inf")).all(1).any()])
    nan, pinf, all_neg = bad.tolist()
    if nan:
        raise ValueError("logits contain NaN")
    if pinf:
        raise ValueError("logits contain +inf")
    if all_neg:
        raise ValueError("logits have a row that is entirely -inf (a token with no admissible expert)")
    return not bool((x == float("-inf")).any())  # finite values whose sum overflowed


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


def topk_route(logits: Tensor, k: int, *, renormalize: bool = True, backend: str | None = None) -> RoutingPlan:
    """Token-choice top-k routing. logits [T, E] -> RoutingPlan with expert_ids/weights [T, k].

    weights = softmax over all E (fp32) at the chosen experts, renormalised to sum 1 when `renormalize`;
    differentiable w.r.t. logits. k = E with renormalize=False is dense routing (the full softmax).
    """
    finite = _check_logits(logits, k)
    backend = resolve_backend(backend, logits.device)
    if backend == "triton":
        if logits.dtype == torch.float64:
            raise ValueError("logits of dtype float64 need backend='torch' (Triton kernels take fp16/bf16/fp32)")
        ids, w = _TopkWeights.apply(logits, k, renormalize)
    else:
        ids, w = _topk_torch(logits, k, renormalize, finite)
    return _build_plan(ids, w, logits.shape[1], ids.numel(), backend)
