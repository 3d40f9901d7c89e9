"""Grouped expert matmul: rows grouped by expert times that expert's weight, forward and backward.

Letters: E experts, M grouped rows (= A assignments), T tokens (rows of x when gathering),
K input features, N output features. w is [E, K, N], passed by strides (transposed views cost nothing).

Layers: `@triton.jit` kernels (one expert per row tile, gather on load, fp32 accumulation, masked
edges, int64 offsets), their launchers, the torch reference (a loop over experts), the
autograd.Function, and `grouped_mm`. Over 400 lines, and long because these layers of one operation stay
side by side (as ScatterMoE and Triton's tutorials keep them): splitting them would part a kernel from
the launcher that checks its shapes and the Function that calls it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_tensor, interpreting, resolve_backend, tl, triton

__all__ = ["grouped_mm"]

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TORCH_DTYPES = KERNEL_DTYPES + (torch.float64,)


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
@triton.jit
def _grouped_mm_kernel(
    # pointers
    x_ptr, w_ptr, bias_ptr, out_ptr, gather_ptr, offsets_ptr, tile_expert_ptr, tile_row_ptr,
    # sizes
    N, K,
    # strides
    stride_xm, stride_xk, stride_we, stride_wk, stride_wn, stride_be, stride_bn, stride_om, stride_on,
    # meta-parameters
    GATHER: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_F32: tl.constexpr = False,  # interpreter only: bf16 operands go to tl.dot as fp32 (see `_dot_f32`)
):
    """out[m] = x[src(m)] @ w[e(m)] (+ bias[e(m)]) for one (row tile, column tile).

    x: [M, K] (or [T, K] with GATHER: src(m) = gather[m]); w: [E, K, N]; bias: [E, N]; out: [M, N];
    offsets: int64 [E + 1]; tile_expert / tile_row: int64 [n_tiles], the expert (-1: idle tile)
    and first row of each row tile. Every row tile lies inside one expert's rows.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(tile_expert_ptr + pid_m)
    if e < 0:
        return
    row_end = tl.load(offsets_ptr + e + 1)
    offs_m = tl.load(tile_row_ptr + pid_m) + tl.arange(0, BLOCK_M)
    mask_m = offs_m < row_end
    if GATHER:
        src = tl.load(gather_ptr + offs_m, mask=mask_m, other=0)
    else:
        src = offs_m
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_k = tl.arange(0, BLOCK_K)
    stride_xk = tl.cast(stride_xk, tl.int64)  # x may be a column-major view: k * stride_xk can pass 2**31
    x_ptrs = x_ptr + src[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + e * stride_we + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        mask_k = offs_k < K - k0
        a = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(w_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        if DOT_F32:
            acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk
    if HAS_BIAS:
        acc += tl.load(bias_ptr + e * stride_be + offs_n * stride_bn, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :] * stride_on
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _grouped_dw_kernel(
    # pointers
    x_ptr, dy_ptr, dw_ptr, gather_ptr, offsets_ptr,
    # sizes
    K, N,
    # strides
    stride_xm, stride_xk, stride_dym, stride_dyn, stride_dwe, stride_dwk, stride_dwn,
    # meta-parameters
    GATHER: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_F32: tl.constexpr = False,  # interpreter only: bf16 operands go to tl.dot as fp32 (see `_dot_f32`)
):
    """dw[e] = x[src(rows of e)]^T @ dy[rows of e] for one (expert, K tile, N tile).

    x: [M, K] or [T, K] (GATHER); dy: [M, N]; dw: [E, K, N]. Deterministic (no atomics): each
    program owns its output tile and walks the expert's rows in order; an empty expert stores zeros.
    """
    e = tl.program_id(0)
    pid_kn = tl.program_id(1)
    n_tiles_n = tl.cdiv(N, BLOCK_N)
    offs_k = (pid_kn // n_tiles_n) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_n = (pid_kn % n_tiles_n) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_k = offs_k < K
    mask_n = offs_n < N
    start = tl.load(offsets_ptr + e)
    end = tl.load(offsets_ptr + e + 1)
    x_col = offs_k[:, None].to(tl.int64) * stride_xk  # x may be a column-major view: past 2**31
    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
    for m0 in range(start, end, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < end
        if GATHER:
            src = tl.load(gather_ptr + offs_m, mask=mask_m, other=0)
        else:
            src = offs_m
        xt = tl.load(x_ptr + src[None, :] * stride_xm + x_col,
                     mask=mask_k[:, None] & mask_m[None, :], other=0.0)
        dy = tl.load(dy_ptr + offs_m[:, None] * stride_dym + offs_n[None, :] * stride_dyn,
                     mask=mask_m[:, None] & mask_n[None, :], other=0.0)
        if DOT_F32:
            acc = tl.dot(xt.to(tl.float32), dy.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(xt, dy, acc, input_precision=PRECISION)
    dw_ptrs = dw_ptr + e.to(tl.int64) * stride_dwe + offs_k[:, None] * stride_dwk + offs_n[None, :] * stride_dwn
    tl.store(dw_ptrs, acc.to(dw_ptr.dtype.element_ty), mask=mask_k[:, None] & mask_n[None, :])


@triton.jit
def _segment_sum_kernel(
    src_ptr, perm_ptr, seg_offsets_ptr, out_ptr,  # src [M, K]; perm int64 [M]; seg_offsets int64 [T + 1]; out [T, K]
    K,
    stride_sm, stride_sk, stride_om, stride_ok,
    BLOCK_K: tl.constexpr,
):
    """out[t] = sum of src[perm[r]] for r in [seg_offsets[t], seg_offsets[t + 1]), in order (deterministic)."""
    t = tl.program_id(0)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    start = tl.load(seg_offsets_ptr + t)
    end = tl.load(seg_offsets_ptr + t + 1)
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    src_k = src_ptr + offs_k * stride_sk  # the column offsets, once per program rather than once per row
    for r in range(start, end):
        row = tl.load(perm_ptr + r)
        acc += tl.load(src_k + row * stride_sm, mask=mask_k, other=0.0).to(tl.float32)
    tl.store(out_ptr + t.to(tl.int64) * stride_om + offs_k * stride_ok,
             acc.to(out_ptr.dtype.element_ty), mask=mask_k)


# ----------------------------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------------------------
def mm_config(M: int, N: int, K: int, dtype: torch.dtype) -> dict:
    """Tile sizes and launch options of `_grouped_mm_kernel`: one small and one large set per dtype class.

    16-bit: tensor-core tiles (128x128x64 on 8 warps for large M, as vLLM's H100 configs). fp32 with
    TF32 off runs on FMA units, where a thread holds BLOCK_M * BLOCK_N / (32 * num_warps) accumulators:
    tiles stay at 32 or fewer per thread so that nothing spills (checked by `python -m kernels.aot`).
    """
    large = M > 2048 and N > 64
    if dtype == torch.float32:
        if large:
            return dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, num_warps=8, num_stages=3)
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=3)
    if large:
        return dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, num_warps=8, num_stages=3)
    return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3)


def dw_config(dtype: torch.dtype, K: int, N: int) -> dict:
    """Tile sizes of `_grouped_dw_kernel` (a BLOCK_K x BLOCK_N output tile per program, BLOCK_M rows a step)."""
    if dtype == torch.float32:
        return dict(BLOCK_M=32, BLOCK_K=64, BLOCK_N=64, num_warps=8, num_stages=3)
    if K >= 128 and N >= 128:  # tensor-core sized steps for wide layers
        return dict(BLOCK_M=64, BLOCK_K=128, BLOCK_N=128, num_warps=8, num_stages=3)
    return dict(BLOCK_M=32, BLOCK_K=64, BLOCK_N=64, num_warps=4, num_stages=3)


SEGSUM_BLOCK_K = 128


def _precision(dtype: torch.dtype) -> str:
    """fp32 dots follow torch's TF32 switch (off by default: exact fp32 FMA)."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def _dot_f32(dtype: torch.dtype) -> bool:
    """True under the Triton interpreter for bf16: its bf16 tl.dot returns garbage (Triton 3.8), while
    bf16 loads, conversions and stores work. Products of bf16 numbers are exact in fp32, so an fp32 dot
    of the upcast tiles gives what the tensor cores give, up to the order of the fp32 sums: the rest of
    the bf16 path (masks, gather, epilogue, rounding on store) is then tested as compiled for the GPU.
    Compiled kernels never take this branch (`python -m kernels.aot` checks their HGMMA/HMMA)."""
    return dtype == torch.bfloat16 and interpreting()


def tile_schedule(offsets: Tensor, M: int, block_m: int) -> tuple[Tensor, Tensor]:
    """Row tiles that never straddle two experts, built on the device without a host sync.

    Returns tile_expert, tile_row: int64 [n_bound], n_bound = min(M, cdiv(M, BLOCK_M) + E) >= the
    real tile count; the spare tiles have expert -1 and exit at once.
    """
    E = offsets.numel() - 1
    n_bound = min(M, triton.cdiv(M, block_m) + E)
    counts = offsets[1:] - offsets[:-1]
    tiles = torch.div(counts + block_m - 1, block_m, rounding_mode="floor")
    tile_end = torch.cumsum(tiles, 0)
    t = torch.arange(n_bound, device=offsets.device)
    e = torch.searchsorted(tile_end, t, right=True)
    ec = e.clamp(max=E - 1)
    tile_row = offsets[ec] + (t - tile_end[ec] + tiles[ec]) * block_m
    return torch.where(e < E, ec, -1), tile_row


def _mm_triton(x: Tensor, w: Tensor, offsets: Tensor, gather_index: Tensor | None, bias: Tensor | None = None) -> Tensor:
    """x [M, K] (or [T, K] with gather_index [M]), w [E, K, N], bias [E, N] -> out [M, N]."""
    M = x.shape[0] if gather_index is None else gather_index.numel()
    K, N = w.shape[1], w.shape[2]
    out = torch.empty(M, N, dtype=x.dtype, device=x.device)
    if M == 0 or N == 0:
        return out
    if K == 0:
        return out.copy_(bias.index_select(0, _row_experts(offsets, M))) if bias is not None else out.zero_()
    cfg = mm_config(M, N, K, x.dtype)
    tile_expert, tile_row = tile_schedule(offsets, M, cfg["BLOCK_M"])
    grid = (tile_expert.numel(), triton.cdiv(N, cfg["BLOCK_N"]))
    _grouped_mm_kernel[grid](
        x, w, bias if bias is not None else w, out, gather_index if gather_index is not None else offsets,
        offsets, tile_expert, tile_row,
        N, K,
        x.stride(0), x.stride(1), w.stride(0), w.stride(1), w.stride(2),
        *(bias.stride() if bias is not None else (0, 0)), out.stride(0), out.stride(1),
        GATHER=gather_index is not None, HAS_BIAS=bias is not None, PRECISION=_precision(x.dtype),
        DOT_F32=_dot_f32(x.dtype), **cfg,
    )
    return out


def _dw_triton(x: Tensor, dy: Tensor, offsets: Tensor, gather_index: Tensor | None, w_shape) -> Tensor:
    """dw [E, K, N] = per-expert x_rows^T @ dy_rows; empty experts get exact zeros."""
    E, K, N = w_shape
    dw = torch.empty(E, K, N, dtype=x.dtype, device=x.device)
    if K == 0 or N == 0:
        return dw
    cfg = dw_config(x.dtype, K, N)
    grid = (E, triton.cdiv(K, cfg["BLOCK_K"]) * triton.cdiv(N, cfg["BLOCK_N"]))
    _grouped_dw_kernel[grid](
        x, dy, dw, gather_index if gather_index is not None else offsets, offsets,
        K, N,
        x.stride(0), x.stride(1), dy.stride(0), dy.stride(1), dw.stride(0), dw.stride(1), dw.stride(2),
        GATHER=gather_index is not None, PRECISION=_precision(x.dtype), DOT_F32=_dot_f32(x.dtype), **cfg,
    )
    return dw


def _scatter_rows_triton(src: Tensor, index: Tensor, n_rows: int) -> Tensor:
    """out [n_rows, K]: out[t] = sum of src[i] with index[i] = t, summed in i order (deterministic)."""
    K = src.shape[1]
    out = torch.empty(n_rows, K, dtype=src.dtype, device=src.device)
    if n_rows == 0 or K == 0:
        return out
    perm = torch.sort(index, stable=True).indices
    seg = torch.zeros(n_rows + 1, dtype=torch.int64, device=src.device)
    torch.cumsum(torch.bincount(index, minlength=n_rows), 0, out=seg[1:])
    grid = (n_rows, triton.cdiv(K, SEGSUM_BLOCK_K))
    _segment_sum_kernel[grid](src, perm, seg, out, K, src.stride(0), src.stride(1), out.stride(0), out.stride(1),
                              BLOCK_K=SEGSUM_BLOCK_K)
    return out


def _native_layout(t: Tensor) -> bool:
    """A 2-D operand torch._grouped_mm takes: one unit stride, the other a multiple of 16 bytes."""
    a, b = t.stride()
    return (b == 1 and a * t.element_size() % 16 == 0) or (a == 1 and b * t.element_size() % 16 == 0)


def _native_grouped(a: Tensor, b: Tensor) -> bool:
    """Whether torch._grouped_mm runs a @ b[e] per group here: CPU, fp32/fp16/bf16, aligned layouts, and int32
    group ends (numel < 2**31). It is the same per-group loop as below, in C++: per product 0.54-0.82x the
    time of the Python loop on the sweeps' small layers ([128, 32..784] rows x 8 experts; 0.88-0.96x
    for a whole grouped_mm fwd+bwd), 1.0x on large ones."""
    return (a.device.type == "cpu" and a.dtype in KERNEL_DTYPES and a.numel() < 2**31
            and _native_layout(a) and _native_layout(b if b.dim() == 2 else b[0]))


def _mm_torch(x: Tensor, w: Tensor, offsets: Tensor, gather_index: Tensor | None, bias: Tensor | None = None) -> Tensor:
    """Reference: one matmul (addmm with the bias) per expert over its row range, into slices of the output;
    torch._grouped_mm instead where it can. Not with a bias (it takes none on the CPU, and adding one
    after costs more than addmm's fused add on large layers), nor when gathering: rows gathered per
    expert are still in cache for its matmul (gathering all first cost 1.08x instead of 1.04x a dense
    matmul at [8192, 512] x [8, 512, 512])."""
    if bias is None and gather_index is None and _native_grouped(x, w):
        return torch._grouped_mm(x, w, offs=offsets[1:].to(torch.int32))
    M = x.shape[0] if gather_index is None else gather_index.numel()
    out = x.new_empty(M, w.shape[2])
    counts = offsets.diff().tolist()
    sources = (x if gather_index is None else gather_index).split(counts)  # row blocks, or their indices
    biases = bias.unbind(0) if bias is not None else [None] * len(counts)
    for src, w_e, b_e, out_e in zip(sources, w.unbind(0), biases, out.split(counts)):
        if out_e.shape[0]:
            rows = src if gather_index is None else x.index_select(0, src)
            torch.mm(rows, w_e, out=out_e) if b_e is None else torch.addmm(b_e, rows, w_e, out=out_e)
    return out


def _dw_torch(x: Tensor, dy: Tensor, offsets: Tensor, gather_index: Tensor | None, w_shape) -> Tensor:
    """Reference: dw[e] = x_rows^T @ dy_rows, zeros for empty experts (torch._grouped_mm where it can)."""
    counts = offsets.diff().tolist()
    if gather_index is None and _native_grouped(x.t(), dy):
        dw = torch._grouped_mm(x.t(), dy, offs=offsets[1:].to(torch.int32))  # [E, K, N]
        empty = [e for e, c in enumerate(counts) if c == 0]
        if empty:  # an empty expert's gradient is exactly 0 by contract, whatever the library leaves there
            dw[empty] = 0
        return dw
    dw = x.new_zeros(w_shape)
    sources = (x if gather_index is None else gather_index).split(counts)
    for src, dy_e, dw_e in zip(sources, dy.split(counts), dw.unbind(0)):
        if dy_e.shape[0]:
            rows = src if gather_index is None else x.index_select(0, src)
            torch.mm(rows.t(), dy_e, out=dw_e)
    return dw


def _scatter_rows_torch(src: Tensor, index: Tensor, n_rows: int) -> Tensor:
    """out [n_rows, K]: out[t] = sum of src[i] with index[i] = t. index_add_ is deterministic on the CPU only."""
    if src.device.type == "cpu":
        return src.new_zeros(n_rows, src.shape[1]).index_add_(0, index, src)
    return scatter_rows_padded(src, index, n_rows)


def scatter_rows_padded(src: Tensor, index: Tensor, n_rows: int) -> Tensor:
    """Deterministic scatter-add without atomics: rows placed into [n_rows, max count, K] (unique slots), summed."""
    K = src.shape[1]
    if src.shape[0] == 0:
        return src.new_zeros(n_rows, K)
    perm = torch.sort(index, stable=True).indices
    counts = torch.bincount(index, minlength=n_rows)
    tok = index[perm]
    rank = torch.arange(index.numel(), device=src.device) - (torch.cumsum(counts, 0) - counts)[tok]
    buf = src.new_zeros(n_rows, int(counts.max()), K)
    buf[tok, rank] = src[perm]
    return buf.sum(1)


def _row_experts(offsets: Tensor, M: int) -> Tensor:
    """int64 [M]: the expert of each grouped row."""
    return torch.searchsorted(offsets[1:], torch.arange(M, device=offsets.device), right=True)


def _bias_grad_torch(dy: Tensor, offsets: Tensor, n_experts: int) -> Tensor:
    """db [E, N]: per-expert sums of the grouped rows of dy (zeros for empty experts).

    A loop of sums: torch.segment_reduce does the same in one call but was measured far slower on the CPU
    (``bench.speed.kernel_bench`` times the kernels)."""
    db = dy.new_zeros(n_experts, dy.shape[1])
    counts = offsets.diff().tolist()
    for dy_e, db_e in zip(dy.split(counts), db.unbind(0)):
        if dy_e.shape[0]:
            torch.sum(dy_e, 0, out=db_e)
    return db


def _bias_grad_triton(dy: Tensor, offsets: Tensor, n_experts: int) -> Tensor:
    """db [E, N] by the deterministic segment-sum kernel over the expert row ranges."""
    N = dy.shape[1]
    db = torch.empty(n_experts, N, dtype=dy.dtype, device=dy.device)
    if N == 0:
        return db
    perm = torch.arange(dy.shape[0], device=dy.device)
    grid = (n_experts, triton.cdiv(N, SEGSUM_BLOCK_K))
    _segment_sum_kernel[grid](dy, perm, offsets, db, N, dy.stride(0), dy.stride(1), db.stride(0), db.stride(1),
                              BLOCK_K=SEGSUM_BLOCK_K)
    return db


_IMPL = {
    "torch": (_mm_torch, _dw_torch, _scatter_rows_torch, _bias_grad_torch),
    "triton": (_mm_triton, _dw_triton, _scatter_rows_triton, _bias_grad_triton),
}


class _GroupedMM(torch.autograd.Function):
    """out [M, N] = grouped x @ w. Backward: dX through the same kernel with w transposed by strides
    (then a deterministic scatter-add into [T, K] when gathering); dW by the per-expert X^T dY kernel."""

    @staticmethod
    def forward(ctx, x, w, offsets, gather_index, bias, backend):
        ctx.save_for_backward(x, w, offsets, gather_index)
        ctx.backend = backend
        return _IMPL[backend][0](x, w, offsets, gather_index, bias)

    @staticmethod
    def backward(ctx, dy):
        x, w, offsets, gather_index = ctx.saved_tensors
        mm, dw_fn, scatter, bias_grad = _IMPL[ctx.backend]
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = mm(dy, w.transpose(1, 2), offsets, None)
            if gather_index is not None:
                dx = scatter(dx, gather_index, x.shape[0])
        if ctx.needs_input_grad[1]:
            dw = dw_fn(x, dy, offsets, gather_index, w.shape)
        if ctx.needs_input_grad[4]:
            db = bias_grad(dy, offsets, w.shape[0])
        return dx, dw, None, None, db, None


# ----------------------------------------------------------------------------------------------
# checks and the public function
# ----------------------------------------------------------------------------------------------
def _check_mm(x, w, offsets, gather_index, bias, backend) -> int:
    check_tensor("x", x, ndim=2, dtypes=TORCH_DTYPES)
    dev = x.device
    check_tensor("w", w, ndim=3, dtypes=(x.dtype,), device=dev)
    check_tensor("offsets", offsets, ndim=1, dtypes=(torch.int64, torch.int32), device=dev)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w must be [E, K={x.shape[1]}, N] to match x [M, K], got w of shape {tuple(w.shape)}")
    if offsets.numel() != w.shape[0] + 1:
        raise ValueError(f"offsets must have E + 1 = {w.shape[0] + 1} entries for w with E = {w.shape[0]}, "
                         f"got {offsets.numel()}")
    if bias is not None:
        check_tensor("bias", bias, ndim=2, dtypes=(x.dtype,), device=dev)
        if tuple(bias.shape) != (w.shape[0], w.shape[2]):
            raise ValueError(f"bias must be [E, N] = {[w.shape[0], w.shape[2]]}, got {list(bias.shape)}")
    if gather_index is not None:
        check_tensor("gather_index", gather_index, ndim=1, dtypes=(torch.int64,), device=dev)
    M = x.shape[0] if gather_index is None else gather_index.numel()
    if backend == "triton" and x.dtype not in KERNEL_DTYPES:
        raise ValueError(f"x of dtype {x.dtype} needs backend='torch' (Triton kernels take fp16/bf16/fp32)")
    if backend == "torch" or dev.type == "cpu":  # value checks cost a host sync: skipped on the CUDA fast path
        o = offsets.tolist()
        if o[0] != 0 or o[-1] != M or any(b < a for a, b in zip(o, o[1:])):
            raise ValueError(f"offsets must rise from 0 to M = {M} (the number of grouped rows), got {o}")
        if gather_index is not None and M > 0:
            lo, hi = torch.stack([gather_index.min(), gather_index.max()]).tolist()
            if lo < 0 or hi >= x.shape[0]:
                raise ValueError(f"gather_index must lie in [0, {x.shape[0]}) (rows of x), got [{lo}, {hi}]")
    return M


def grouped_mm(x: Tensor, w: Tensor, offsets: Tensor, *, gather_index: Tensor | None = None,
               bias: Tensor | None = None, backend: str | None = None) -> Tensor:
    """Grouped expert matmul: out[offsets[e]:offsets[e+1]] = rows @ w[e]; out is [M, N], M = offsets[-1].

    x: [M, K] grouped by expert, or [T, K] with gather_index int64 [M] (row i uses x[gather_index[i]],
    gathered on load by the Triton kernel); w: [E, K, N] (any strides); offsets: int [E + 1];
    bias: optional [E, N], added to each row of expert e in the epilogue.
    Differentiable in x, w and bias; dW (and db) of an empty expert is exactly zero.
    """
    check_tensor("x", x)
    backend = resolve_backend(backend, x.device)
    _check_mm(x, w, offsets, gather_index, bias, backend)
    offsets = offsets.to(torch.int64)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, w, bias)):
        return _GroupedMM.apply(x, w, offsets, gather_index, bias, backend)
    return _IMPL[backend][0](x, w, offsets, gather_index, bias)  # nothing to differentiate: no autograd node
