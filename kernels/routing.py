"""Routing: top-k softmax routing into the RoutingPlan (kernels.plan) every router produces.

Letters: T tokens, E experts, k slots per token, A valid assignments (= grouped rows, T * k for top-k).

Layers, as in the Triton tutorials / ScatterMoE: the `@triton.jit` kernel, its launcher (checks,
allocation, grid), the autograd.Function, then the public function. The torch reference is a few
lines in `_topk_torch`; the plan itself is built by `kernels.plan.build_plan`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._common import FLOAT_DTYPES, check_tensor, resolve_backend, tl, triton
from .plan import RoutingPlan, build_plan, weight_dtype

__all__ = ["topk_route", "dense_route"]


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


# ----------------------------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------------------------
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
    (larger tiles spill at E = 256 in 16-bit, see `python -m kernels.aot`)."""
    BLOCK_E = triton.next_power_of_2(E)
    return dict(K=k, K_POW2=triton.next_power_of_2(k), BLOCK_T=max(1, min(16, 2048 // BLOCK_E)), BLOCK_E=BLOCK_E,
                num_warps=4)


def _topk_torch(logits: Tensor, k: int, renormalize: bool, finite: bool = False) -> tuple[Tensor, Tensor]:
    """Reference: k rounds of max (first maximum = lower index on ties) masking the winner with -inf;
    softmax over E in fp32 at the winners, renormalised. `finite`: no -inf in logits (else a masked
    winner could tie a real -inf, and a unique-key sort decides instead)."""
    x = logits.to(weight_dtype(logits.dtype))
    if k == x.shape[1] and k > 1 and finite:  # every expert: the order of k rounds of max in one stable sort
        ids = torch.sort(x.detach(), dim=1, descending=True, stable=True).indices
    elif k <= 8 and finite:
        score = x.detach().clone() if k > 1 else x.detach()
        picks = []
        for j in range(k):
            picks.append(score.max(1, keepdim=True).indices)
            if j + 1 < k:
                score.scatter_(1, picks[-1], float("-inf"))
        ids = torch.cat(picks, 1)
    else:  # one sort on a unique key (order-preserving float bits, then lower index first)
        ids = _sort_key(x.detach()).topk(k, dim=1).indices
    if renormalize:
        return ids, _RenormalizedWeights.apply(x, ids)
    return ids, torch.softmax(x, dim=-1).gather(1, ids)


class _RenormalizedWeights(torch.autograd.Function):
    """x [T, E] (fp32 or fp64), ids [T, k] -> w = p_S / sum p_S, p = softmax(x) (the torch path's renormalised weights).

    Backward: the closed form of the Triton kernel's (``_TopkWeights``): dx_S = w * (g - sum(w * g)), exactly 0 on
    the unchosen logits. Autograd through the softmax and the division gives the unchosen logits what is 0 only up
    to rounding (p_j times a sum that cancels), and an optimizer that scales by the gradient's size (Adam, RMSprop)
    turns that noise into full steps of the gate: runs would follow their rounding, and CPU and GPU would part.
    """

    @staticmethod
    def forward(ctx, x, ids):
        w = torch.softmax(x, dim=-1).gather(1, ids)
        w = w / w.sum(-1, keepdim=True)
        ctx.save_for_backward(ids, w)
        ctx.shape = x.shape
        return w

    @staticmethod
    def backward(ctx, dw):
        ids, w = ctx.saved_tensors
        return _renormalized_grad(ctx.shape, ids, w, dw), None


def _renormalized_grad(shape: torch.Size, ids: Tensor, w: Tensor, dw: Tensor) -> Tensor:
    """[T, E] gradient of the logits for renormalised weights w [T, k] at ids: w * (dw - sum(w * dw)) on the
    chosen, exactly 0 elsewhere (both paths' backward)."""
    wg = (w * dw).sum(-1, keepdim=True)
    return torch.zeros(shape, dtype=w.dtype, device=w.device).scatter_(1, ids, w * (dw - wg))


def _sort_key(x: Tensor) -> Tensor:
    """int64 [T, E], unique per row, ordered like (x descending, index ascending)."""
    E = x.shape[1]
    bits = (x.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return (bits << 32) | (E - 1 - torch.arange(E, device=x.device))


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
        if ctx.renormalize:
            dl = _renormalized_grad(logits.shape, ids, w, dw)
        else:
            wg = (w * dw).sum(-1, keepdim=True)
            p = torch.softmax(logits.to(w.dtype), dim=-1)
            g = torch.zeros(logits.shape, dtype=w.dtype, device=w.device).scatter_(1, ids, dw)
            dl = p * (g - wg)
        return dl.to(logits.dtype), None, None


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
    if math.isfinite(float(x.sum(dtype=weight_dtype(x.dtype)))):  # one cheap pass and one host sync
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


def dense_route(logits: Tensor, *, backend: str | None = None) -> RoutingPlan:
    """Dense routing of finite logits [T, E]: every expert for every token (k = E), weights softmax(logits) in
    descending order, ties to the lower expert. The plan of ``topk_route(logits, E, renormalize=False)``, bitwise
    (``tests/kernels/test_kernels_routing.py``), without its validation pass and host sync: for callers that have
    checked that every logit is finite (a router's ``check_finite``). On the Triton backend: ``topk_route``."""
    E = logits.shape[1]
    if resolve_backend(backend, logits.device) == "triton":
        return topk_route(logits, E, renormalize=False, backend=backend)
    ids, w = _topk_torch(logits, E, renormalize=False, finite=True)
    return build_plan(ids, w, E, ids.numel(), "torch", dense=True)


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
    return build_plan(ids, w, logits.shape[1], ids.numel(), backend, dense=k == logits.shape[1])  # k distinct experts each
