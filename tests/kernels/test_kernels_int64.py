"""Element offsets past 2**31: the kernels index rows in int64, so a row whose first element lies beyond
int32 range is read and written where it is, not at a wrapped-around address.

The big operands have > 2**31 elements (4 GiB in fp16) but are made with torch.empty, so only the few
rows the test touches are ever backed by memory; the kernels are asked for a handful of those rows
(gather on load, combine by slot rows), so the grids stay tiny even under the interpreter. The
interpreter computes int32 arithmetic in int32, so a missing int64 cast shows up there as a wrong
value or a crash of the child process.
"""
import pytest
import torch

from kernels import grouped_mm, topk_route
from kernels.combine import combine
from kernels_reference import plan_offsets

BIG = 2**31 + 4096  # elements of the big operand: just past int32
WIDTH = 16  # its row width: row r starts at element r * WIDTH
ROWS = BIG // WIDTH


def last_rows(n: int) -> torch.Tensor:
    """int64 [n]: distinct rows at the end of the big operand, every one starting past element 2**31, unsorted."""
    rows = ROWS - 1 - torch.randperm(n) * 3
    assert int(rows.min()) * WIDTH > 2**31
    return rows


def big_with_rows(rows: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(big [ROWS, WIDTH] with random values in `rows` only, those values as a small [n, WIDTH] tensor)."""
    big = torch.empty(ROWS, WIDTH, dtype=dtype)
    vals = torch.randn(rows.numel(), WIDTH).to(dtype)
    big[rows] = vals
    return big, vals


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_grouped_mm_gathers_rows_past_int32(backend, dtype):
    E, M, N = 3, 40, 24
    rows = last_rows(M)
    big, vals = big_with_rows(rows, dtype)
    offsets = plan_offsets(torch.sort(torch.randint(0, E, (M,))).values, E)
    w = torch.randn(E, WIDTH, N, dtype=dtype, requires_grad=True)
    out = grouped_mm(big, w, offsets, gather_index=rows, backend=backend)
    expected = grouped_mm(vals, w.detach(), offsets, backend="torch")  # the same rows, small and contiguous
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.float16 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, expected, **tol)
    # dW walks the same gathered rows (x^T dy per expert)
    dy = torch.randn(M, N).to(dtype)
    (dw,) = torch.autograd.grad(out, w, dy)
    w_small = w.detach().clone().requires_grad_(True)
    (dw_expected,) = torch.autograd.grad(grouped_mm(vals, w_small, offsets, backend="torch"), w_small, dy)
    torch.testing.assert_close(dw, dw_expected, **tol)


def test_combine_reads_rows_past_int32(backend):
    T, k = 12, 2
    rows = last_rows(T * k)
    y, vals = big_with_rows(rows, torch.float32)
    weights = torch.rand(T, k)
    out = combine(y, weights, rows.view(T, k), None, backend)  # order: backward only
    expected = (vals.view(T, k, WIDTH) * weights[:, :, None]).sum(1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_topk_route_reads_rows_past_int32(backend):
    T, E, k = 16, 6, 2
    row_stride = 2**28  # row t starts at element t * 2**28: rows 8 and up lie past int32
    storage = torch.empty((T - 1) * row_stride + E, dtype=torch.float16)
    logits = storage.as_strided((T, E), (row_stride, 1))
    logits.copy_(torch.randn(T, E).to(torch.float16))
    plan = topk_route(logits, k, backend=backend)
    expected = topk_route(logits.contiguous(), k, backend="torch")
    assert torch.equal(plan.expert_ids, expected.expert_ids)
    assert torch.equal(plan.order, expected.order) and torch.equal(plan.offsets, expected.offsets)
    torch.testing.assert_close(plan.weights, expected.weights, rtol=1e-6, atol=1e-6)


def test_grouped_mm_columns_past_int32(backend):
    """x as a column-major view whose column k starts at element k * 2**27: columns 16 and up lie past int32."""
    E, M, K, N = 2, 24, 20, 12
    col_stride = 2**27
    storage = torch.empty((K - 1) * col_stride + M, dtype=torch.float16)
    x = storage.as_strided((M, K), (1, col_stride))
    x.copy_(torch.randn(M, K).to(torch.float16))
    offsets = plan_offsets(torch.sort(torch.randint(0, E, (M,))).values, E)
    w = torch.randn(E, K, N, dtype=torch.float16, requires_grad=True)
    out = grouped_mm(x, w, offsets, backend=backend)
    x_small = x.contiguous()
    torch.testing.assert_close(out, grouped_mm(x_small, w.detach(), offsets, backend="torch"), rtol=1e-2, atol=1e-2)
    dy = torch.randn(M, N).to(torch.float16)
    (dw,) = torch.autograd.grad(out, w, dy)
    w_small = w.detach().clone().requires_grad_(True)
    (dw_expected,) = torch.autograd.grad(grouped_mm(x_small, w_small, offsets, backend="torch"), w_small, dy)
    torch.testing.assert_close(dw, dw_expected, rtol=1e-2, atol=1e-2)
