"""grouped_mm against a row-by-row float64 loop, forward and backward, on both backends."""
import pytest
import torch

from kernels import grouped_mm, topk_route
from kernels_reference import grouped_mm_loop, plan_offsets

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-4), torch.float16: dict(rtol=1e-2, atol=3e-2),
       torch.bfloat16: dict(rtol=2e-2, atol=1.5e-1), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def random_groups(M, E, skew=None):
    """offsets [E + 1] of M rows over E experts; skew: 'empty' leaves experts 0 and E-1 empty, 'one' puts all in one."""
    if skew == "one":
        e = torch.full((M,), E // 2)
    else:
        lo, hi = (1, max(1, E - 1)) if skew == "empty" and E > 2 else (0, E)
        e = torch.randint(lo, hi, (M,))
    return plan_offsets(torch.sort(e).values, E)


def check_against_loop(backend, dtype, M, K, N, E, skew=None, gather=False, w_layout="contiguous", bias=False):
    offsets = random_groups(M, E, skew)
    T = max(1, M // 2 + 1)
    gi = torch.randint(0, T, (M,)) if gather else None
    x0 = torch.randn(T if gather else M, K)
    if w_layout == "transposed":      # a [E, N, K] parameter viewed as [E, K, N]
        w0 = torch.randn(E, N, K).transpose(1, 2)
    elif w_layout == "strided":       # every other column of a wider tensor
        w0 = torch.randn(E, K, 2 * N)[:, :, ::2]
    else:
        w0 = torch.randn(E, K, N)
    x = x0.to(dtype).requires_grad_(True)
    w = w0.to(dtype).requires_grad_(True)
    b = torch.randn(E, N, dtype=dtype, requires_grad=True) if bias else None
    out = grouped_mm(x, w, offsets, gather_index=gi, bias=b, backend=backend)
    assert out.shape == (M, N) and out.dtype == dtype
    ref = grouped_mm_loop(x.detach(), w.detach(), offsets, gi, None if b is None else b.detach())
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    # backward against autograd through the float64 loop
    dy = torch.randn(M, N, dtype=torch.float64)
    out.backward(dy.to(dtype))
    xr = x.detach().double().requires_grad_(True)
    wr = w.detach().double().requires_grad_(True)
    br = None if b is None else b.detach().double().requires_grad_(True)
    (grouped_mm_loop(xr, wr, offsets, gi, br) * dy).sum().backward()
    torch.testing.assert_close(x.grad.double(), xr.grad, **TOL[dtype])
    torch.testing.assert_close(w.grad.double(), wr.grad, **TOL[dtype])
    if b is not None:
        torch.testing.assert_close(b.grad.double(), br.grad, **TOL[dtype])
    counts = offsets.diff()
    for e in range(E):
        if counts[e] == 0:
            assert torch.count_nonzero(w.grad[e]) == 0 and not w.grad[e].isnan().any(), "empty expert: dW exactly 0"
            assert b is None or torch.count_nonzero(b.grad[e]) == 0


@pytest.mark.parametrize("M,K,N,E", [(1, 8, 8, 1), (7, 5, 3, 3), (70, 100, 24, 4), (130, 40, 100, 5), (33, 17, 66, 9)])
@pytest.mark.parametrize("gather", [False, True])
def test_grouped_mm_fp32(backend, M, K, N, E, gather):
    check_against_loop(backend, torch.float32, M, K, N, E, gather=gather)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_grouped_mm_half(backend, dtype):
    check_against_loop(backend, dtype, 45, 24, 40, 3, gather=True, bias=True)


@pytest.mark.parametrize("skew", ["empty", "one"])
def test_grouped_mm_skew(backend, skew):
    check_against_loop(backend, torch.float32, 66, 12, 20, 6, skew=skew, gather=True, bias=True)


@pytest.mark.parametrize("gather", [False, True])
def test_grouped_mm_bias(backend, gather):
    check_against_loop(backend, torch.float32, 75, 30, 70, 4, gather=gather, bias=True)


@pytest.mark.parametrize("w_layout", ["transposed", "strided"])
def test_grouped_mm_weight_views(backend, w_layout):
    check_against_loop(backend, torch.float32, 50, 20, 12, 3, w_layout=w_layout, gather=True)


def test_grouped_mm_wide_k(backend):
    """K not a multiple of the block nor of 8, larger than one K tile."""
    check_against_loop(backend, torch.float32, 9, 100, 6, 2)


def test_grouped_mm_m0(backend):
    x = torch.randn(0, 5, requires_grad=True)
    w = torch.randn(3, 5, 4, requires_grad=True)
    out = grouped_mm(x, w, torch.zeros(4, dtype=torch.int64), backend=backend)
    assert out.shape == (0, 4)
    out.sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))
    out = grouped_mm(torch.randn(3, 5), w, torch.zeros(4, dtype=torch.int64),
                     gather_index=torch.zeros(0, dtype=torch.int64), backend=backend)
    assert out.shape == (0, 4)


def test_grouped_mm_with_plan(backend):
    """The model's use: gather by plan.row_tokens, unpermute back to [T, k, N]."""
    T, E, k, K, N = 21, 5, 2, 12, 7
    plan = topk_route(torch.randn(T, E), k, backend=backend)
    x = torch.randn(T, K)
    w = torch.randn(E, K, N)
    y = plan.unpermute(grouped_mm(x, w, plan.offsets, gather_index=plan.row_tokens, backend=backend))
    ref = torch.stack([torch.stack([x[t] @ w[e] for e in plan.expert_ids[t].tolist()]) for t in range(T)])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_grouped_mm_repeat_bitwise(backend):
    offsets = random_groups(90, 4)
    x = torch.randn(50, 30, requires_grad=True)
    w = torch.randn(4, 30, 20, requires_grad=True)
    gi = torch.randint(0, 50, (90,))
    dy = torch.randn(90, 20)
    results = []
    for _ in range(2):
        x.grad = w.grad = None
        out = grouped_mm(x, w, offsets, gather_index=gi, backend=backend)
        out.backward(dy)
        results.append((out.detach(), x.grad, w.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("gather", [False, True])
def test_grouped_mm_gradcheck_torch(gather):
    offsets = torch.tensor([0, 2, 2, 5])
    x = torch.randn(4 if gather else 5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    gi = torch.tensor([3, 0, 1, 3, 2]) if gather else None
    fn = lambda a, ww, bb: grouped_mm(a, ww, offsets, gather_index=gi, bias=bb, backend="torch")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("change,name", [
    (dict(x=torch.randn(5)), "x"), (dict(x=torch.ones(5, 4, dtype=torch.int64)), "x"),
    (dict(w=torch.randn(3, 5, 2)), "w"), (dict(w=torch.randn(3, 4)), "w"),
    (dict(w=torch.randn(3, 4, 2, dtype=torch.float16)), "w"),
    (dict(offsets=torch.tensor([0, 2, 5])), "offsets"), (dict(offsets=torch.tensor([0.0, 2, 2, 5])), "offsets"),
    (dict(offsets=torch.tensor([0, 3, 2, 5])), "offsets"), (dict(offsets=torch.tensor([0, 2, 2, 4])), "offsets"),
    (dict(gather_index=torch.tensor([0, 1, 2, 3, 9])), "gather_index"),
    (dict(gather_index=torch.tensor([0.0, 1, 2, 3, 4])), "gather_index"),
    (dict(x=torch.randn(5, 4, device="meta")), "w is on"),
    (dict(bias=torch.randn(3, 3)), "bias"), (dict(bias=torch.randn(3, 2, dtype=torch.float64)), "bias"),
])
def test_grouped_mm_errors(backend, change, name):
    args = dict(x=torch.randn(5, 4), w=torch.randn(3, 4, 2), offsets=torch.tensor([0, 2, 2, 5]), gather_index=None,
                bias=None)
    args.update(change)
    with pytest.raises(ValueError, match=name):
        grouped_mm(args.pop("x"), args.pop("w"), args.pop("offsets"), backend=backend, **args)


def test_grouped_mm_large_tiles(backend):
    """M > 2048 selects the large tile configuration."""
    check_against_loop(backend, torch.float32, 2100, 9, 70, 3, gather=True, bias=True)


def test_grouped_mm_noncontiguous_x(backend):
    """x as a column-strided view and as a transposed view; dy non-contiguous too."""
    offsets = random_groups(40, 3)
    w = torch.randn(3, 12, 10)
    for x in (torch.randn(40, 24)[:, ::2], torch.randn(12, 40).t()):
        x = x.requires_grad_(True)
        out = grouped_mm(x, w, offsets, backend=backend)
        torch.testing.assert_close(out.double(), grouped_mm_loop(x.detach(), w, offsets), rtol=1e-5, atol=1e-4)
        out.backward(torch.randn(10, 40).t())
        assert x.grad.shape == x.shape


def test_grouped_mm_many_experts(backend):
    """E = 256 (most experts empty: 100 rows leave about 2 in 3 empty, 300 left only 1 in 3), rows gathered."""
    check_against_loop(backend, torch.float32, 100, 10, 12, 256, gather=True, bias=True)


def test_grouped_mm_wide_layers(backend):
    """K, N >= 128 select the tensor-core dW tiles (and not multiples of the block)."""
    check_against_loop(backend, torch.float16, 70, 130, 129, 2, gather=True)


def test_scatter_rows_padded_matches_index_add():
    """The deterministic scatter-add used by the torch fallback on GPUs (run here on the CPU)."""
    from kernels.grouped import scatter_rows_padded

    src, index = torch.randn(50, 7), torch.randint(0, 12, (50,))
    torch.testing.assert_close(scatter_rows_padded(src, index, 15), torch.zeros(15, 7).index_add_(0, index, src))
    assert scatter_rows_padded(src[:0], index[:0], 4).shape == (4, 7)



def test_native_grouped_path_choice():
    """The torch fallback hands products to torch._grouped_mm when it takes their layout (CPU, fp32/fp16/bf16,
    one unit stride, the other 16-byte aligned) and loops otherwise; the cases above run both paths
    (e.g. K, N = 100, 24: native; 5, 3 or fp64: the loop) against the float64 loop."""
    from kernels.grouped import _native_grouped

    x = torch.randn(10, 16)
    assert _native_grouped(x, torch.randn(2, 16, 8))
    assert _native_grouped(x, torch.randn(2, 8, 16).transpose(1, 2))  # dX: a transposed weight view
    assert _native_grouped(x.t(), torch.randn(10, 8))  # dW: x^T [K, M] against dy [M, N]
    assert _native_grouped(x.half(), torch.randn(2, 16, 8).half())
    assert not _native_grouped(x, torch.randn(2, 16, 5))  # rows of 20 bytes
    assert not _native_grouped(x, torch.randn(2, 16, 16)[:, :, ::2])  # no unit stride
    assert not _native_grouped(x.double(), torch.randn(2, 16, 8).double())  # float64: the loop
