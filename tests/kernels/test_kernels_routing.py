"""topk_route and RoutingPlan against a per-token Python loop, on both backends."""
import pytest
import torch

from kernels import RoutingPlan, topk_route
from kernels_reference import route_loop

TOL = {torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5, torch.float64: 1e-12}


def check_plan(plan: RoutingPlan, n_experts: int):
    """The plan's invariants, recomputed by loops from expert_ids alone."""
    T, k = plan.expert_ids.shape
    ids = plan.expert_ids.tolist()
    valid = [(t * k + j, e) for t in range(T) for j, e in enumerate(ids[t]) if e >= 0]
    counts = [sum(1 for _, e in valid if e == x) for x in range(n_experts)]
    assert plan.counts.tolist() == counts
    assert plan.offsets.tolist() == [sum(counts[:x]) for x in range(n_experts + 1)]
    assert plan.order.tolist() == [s for s, _ in sorted(valid, key=lambda se: (se[1], se[0]))]
    assert plan.row_tokens.tolist() == [s // k for s, _ in sorted(valid, key=lambda se: (se[1], se[0]))]
    assert plan.row_experts.tolist() == sorted(e for _, e in valid)
    for dtype_name, t in (("counts", plan.counts), ("offsets", plan.offsets), ("order", plan.order)):
        assert t.dtype == torch.int64, dtype_name
    w = plan.weights.tolist()
    for t in range(T):
        for j in range(k):
            if ids[t][j] < 0:
                assert w[t][j] == 0
        valid_w = [(w[t][j], -ids[t][j]) for j in range(k) if ids[t][j] >= 0]
        assert valid_w == sorted(valid_w, reverse=True), "rows by descending weight, ties to the lower expert"


def assert_route(plan, logits, k, renormalize=True):
    ids, weights = route_loop(logits, k, renormalize)
    assert plan.expert_ids.tolist() == ids
    assert plan.weights.dtype == torch.float32
    torch.testing.assert_close(plan.weights.double(), torch.tensor(weights, dtype=torch.float64).view(-1, k),
                               rtol=1e-5, atol=1e-6)
    check_plan(plan, logits.shape[1])


@pytest.mark.parametrize("T,E,k", [(6, 1, 1), (1, 4, 1), (5, 3, 2), (37, 8, 2), (64, 7, 3), (20, 6, 6), (9, 256, 4), (3, 256, 256)])
@pytest.mark.parametrize("renormalize", [True, False])
def test_topk_matches_loop(backend, T, E, k, renormalize):
    logits = torch.randn(T, E) * 3
    plan = topk_route(logits, k, renormalize=renormalize, backend=backend)
    assert_route(plan, logits, k, renormalize)
    assert plan.k == k and plan.n_tokens == T and plan.n_experts == E


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_topk_half_logits(backend, dtype):
    logits = (torch.randn(33, 10) * 2).to(dtype)
    assert_route(topk_route(logits, 3, backend=backend), logits.float(), 3)


def test_topk_t0(backend):
    plan = topk_route(torch.zeros(0, 5), 2, backend=backend)
    assert plan.expert_ids.shape == (0, 2) and plan.weights.shape == (0, 2)
    assert plan.counts.tolist() == [0] * 5 and plan.offsets.tolist() == [0] * 6 and plan.order.numel() == 0


def test_topk_ties_and_equal_logits(backend):
    logits = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0], [0.5] * 5, [3.0, 3.0, -1.0, 3.0, -1.0]])
    plan = topk_route(logits, 3, backend=backend)
    assert plan.expert_ids.tolist() == [[1, 2, 4], [0, 1, 2], [0, 1, 3]]
    assert_route(plan, logits, 3)
    equal = torch.zeros(70, 6)  # all tokens tie everywhere -> all to experts 0, 1
    plan = topk_route(equal, 2, backend=backend)
    assert plan.counts.tolist() == [70, 70, 0, 0, 0, 0]
    assert_route(plan, equal, 2)
    # k = E (the dense routers: one stable sort, not k rounds of max): ties and -0.0 = 0.0 keep the lower expert first
    dense = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0], [0.5] * 5, [0.0, -0.0, 3.0, -0.0, 0.0]])
    plan = topk_route(dense, 5, renormalize=False, backend=backend)
    assert plan.expert_ids.tolist() == [[1, 2, 4, 0, 3], [0, 1, 2, 3, 4], [2, 0, 1, 3, 4]]
    assert_route(plan, dense, 5, renormalize=False)


def test_topk_neg_inf_logits(backend):
    inf = float("inf")
    logits = torch.tensor([[-inf, 1.0, -inf, 0.0], [-inf, -inf, -inf, 2.0], [0.0, -inf, 0.0, -inf]])
    plan = topk_route(logits, 3, backend=backend)
    assert plan.expert_ids.tolist() == [[1, 3, 0], [3, 0, 1], [0, 2, 1]]
    assert_route(plan, logits, 3)
    assert torch.isfinite(plan.weights).all()
    logits.requires_grad_(True)
    topk_route(logits, 2, backend=backend).weights.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_dense_routing_is_softmax(backend):
    logits = torch.randn(19, 5)
    plan = topk_route(logits, 5, renormalize=False, backend=backend)
    dense = torch.softmax(logits, -1).gather(1, plan.expert_ids)
    torch.testing.assert_close(plan.weights, dense)
    assert plan.counts.tolist() == [19] * 5


def test_all_tokens_to_one_expert(backend):
    logits = torch.randn(40, 6)
    logits[:, 4] = 50
    plan = topk_route(logits, 1, backend=backend)
    assert plan.counts.tolist() == [0, 0, 0, 0, 40, 0]
    assert plan.order.tolist() == list(range(40))
    assert_route(plan, logits, 1)


@pytest.mark.parametrize("renormalize", [True, False])
def test_topk_grad_matches_loop(backend, renormalize):
    logits = torch.randn(23, 7, requires_grad=True)
    g = torch.randn(23, 3)
    plan = topk_route(logits, 3, renormalize=renormalize, backend=backend)
    (plan.weights * g).sum().backward()
    # reference: the same selection, weights re-derived from a float64 softmax by autograd
    ref = logits.detach().double().requires_grad_(True)
    p = torch.softmax(ref, -1).gather(1, plan.expert_ids)
    w = p / p.sum(-1, keepdim=True) if renormalize else p
    (w * g.double()).sum().backward()
    torch.testing.assert_close(logits.grad.double(), ref.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("renormalize", [True, False])
def test_topk_gradcheck_torch(renormalize):
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda l: topk_route(l, 2, renormalize=renormalize, backend="torch").weights,
                                    (logits,))


def test_topk_repeat_bitwise(backend):
    logits = torch.randn(77, 12)
    a, b = topk_route(logits, 3, backend=backend), topk_route(logits, 3, backend=backend)
    for name in ("expert_ids", "weights", "counts", "offsets", "order"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_triton_matches_torch_bitwise_ids(backend):
    logits = torch.randn(50, 16)
    a, b = topk_route(logits, 4, backend=backend), topk_route(logits, 4, backend="torch")
    assert torch.equal(a.expert_ids, b.expert_ids) and torch.equal(a.order, b.order)
    torch.testing.assert_close(a.weights, b.weights)


# ---- unpermute / combine ---------------------------------------------------------------------
def test_unpermute_combine_match_loop(backend):
    T, E, k, N = 13, 5, 2, 4
    plan = topk_route(torch.randn(T, E, requires_grad=True), k, backend=backend)
    y = torch.randn(T * k, N, dtype=torch.float64, requires_grad=True)
    slots = plan.unpermute(y)
    out = plan.combine(y, backend=backend)
    rows = {s: i for i, s in enumerate(plan.order.tolist())}
    for t in range(T):
        ref = torch.zeros(N, dtype=torch.float64)
        for j in range(k):
            assert torch.equal(slots[t, j], y[rows[t * k + j]])
            ref = ref + plan.weights[t, j].double() * y[rows[t * k + j]]
        torch.testing.assert_close(out[t], ref)
    out.sum().backward()
    assert y.grad is not None


def test_combine_gradcheck_torch():
    T, E, k = 5, 4, 2
    logits = torch.randn(T, E, dtype=torch.float64, requires_grad=True)
    y = torch.randn(T * k, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda l, yy: topk_route(l, k, backend="torch").combine(yy)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits, y))


@pytest.mark.parametrize("unused", [False, True])
def test_combine_grads_match_loop(backend, unused):
    """combine's output, dy and dweights against a per-slot loop in float64; unused slots via from_assignments."""
    T, E, N = 9, 4, 37
    if unused:
        tok = torch.tensor([0, 0, 1, 3, 3, 3, 5, 8])
        plan = RoutingPlan.from_assignments(tok, torch.tensor([1, 2, 0, 0, 3, 2, 1, 3]), torch.rand(8), T, E,
                                            backend=backend)
    else:
        plan = topk_route(torch.randn(T, E), 3, backend=backend)
    w = plan.weights.detach().clone().requires_grad_(True)
    plan.weights = w
    y = torch.randn(plan.order.numel(), N, requires_grad=True)
    g = torch.randn(T, N)
    out = plan.combine(y, backend=backend)
    out.backward(g)
    rows = plan.slot_rows.tolist()
    yd, wd = y.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    ref = torch.stack([sum((wd[t, j] * yd[rows[t][j]] for j in range(plan.k) if rows[t][j] >= 0),
                           torch.zeros(N, dtype=torch.float64)) for t in range(T)])
    ref.backward(g.double())
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y.grad.double(), yd.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad.double(), wd.grad, rtol=1e-5, atol=1e-5)
    if unused:
        assert torch.equal(out[2], torch.zeros(N)) and torch.equal(w.grad[plan.expert_ids < 0], torch.zeros(
            int((plan.expert_ids < 0).sum())))


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)])
def test_combine_half(backend, dtype, tol):
    """fp32 accumulation, one rounding to the half type on store (bf16 keeps 8 bits: 2**-8 relative)."""
    plan = topk_route(torch.randn(20, 5), 2, backend=backend)
    y = torch.randn(40, 24).to(dtype)
    out = plan.combine(y, backend=backend)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), plan.combine(y.float(), backend="torch"), rtol=tol, atol=tol)


# ---- from_assignments ------------------------------------------------------------------------
def test_from_assignments_expert_choice(backend):
    T, E, cap = 11, 4, 3
    scores = torch.softmax(torch.randn(T, E), -1)
    top = scores.topk(cap, dim=0).indices          # [cap, E]: each expert picks cap tokens
    token_ids = top.t().flatten()
    expert_ids = torch.arange(E).repeat_interleave(cap)
    w = scores[token_ids, expert_ids].clone().requires_grad_(True)
    plan = RoutingPlan.from_assignments(token_ids, expert_ids, w, T, E, backend=backend)
    per_token = torch.bincount(token_ids, minlength=T)
    assert plan.k == max(1, int(per_token.max())) and plan.n_tokens == T
    check_plan(plan, E)
    got = {(t, e): plan.weights[t, j].item() for t in range(T) for j, e in enumerate(plan.expert_ids[t].tolist())
           if e >= 0}
    assert got == {(t, e): v for t, e, v in zip(token_ids.tolist(), expert_ids.tolist(), w.tolist())}
    plan.weights.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_from_assignments_edge_cases(backend):
    empty = RoutingPlan.from_assignments(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                                         torch.zeros(0), 4, 3, backend=backend)
    assert empty.expert_ids.tolist() == [[-1]] * 4 and empty.k == 1 and empty.order.numel() == 0
    assert empty.counts.tolist() == [0, 0, 0]
    # hash routing with ties in weight: lower expert first; token 2 unused
    plan = RoutingPlan.from_assignments(torch.tensor([0, 0, 1, 3, 0]), torch.tensor([2, 1, 0, 2, 3]),
                                        torch.tensor([0.5, 0.5, 1.0, 1.0, 0.7]), 4, 4, backend=backend)
    assert plan.expert_ids.tolist() == [[3, 1, 2], [0, -1, -1], [-1, -1, -1], [2, -1, -1]]
    check_plan(plan, 4)
    y = torch.randn(5, 2)
    torch.testing.assert_close(plan.combine(y)[2], torch.zeros(2))


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,name", [
    ((torch.randn(4, 3), 0), "k"), ((torch.randn(4, 3), 4), "k"), ((torch.randn(4, 3), 1.5), "k"),
    ((torch.randn(4), 1), "logits"), ((torch.ones(4, 3, dtype=torch.int64), 1), "logits"),
    ((torch.tensor([[0.0, float("nan")]]), 1), "NaN"), ((torch.tensor([[0.0, float("inf")]]), 1), "inf"),
    ((torch.full((2, 3), float("-inf")), 1), "-inf"), ((torch.randn(3, 0), 1), "logits"),
])
def test_topk_errors(backend, args, name):
    with pytest.raises(ValueError, match=name):
        topk_route(*args, backend=backend)


def test_backend_errors(monkeypatch):
    with pytest.raises(ValueError, match="backend.*did you mean 'triton'"):
        topk_route(torch.randn(3, 3), 1, backend="triton2")
    monkeypatch.setenv("MOE_KERNELS", "cuda")
    with pytest.raises(ValueError, match="MOE_KERNELS"):
        topk_route(torch.randn(3, 3), 1)
    monkeypatch.setenv("MOE_KERNELS", "torch")
    assert topk_route(torch.randn(3, 3), 1).k == 1


def test_triton_on_cpu_without_interpreter_is_clear():
    from kernels._common import interpreting
    if interpreting():
        pytest.skip("this process interprets Triton")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        topk_route(torch.randn(3, 3), 1, backend="triton")


def test_from_assignments_errors():
    t, e, w = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0.5, 0.5])
    cases = [((t, e, w, 1, 2), "token_ids"), ((t, e, w, 2, 1), "expert_ids"), ((t, e, w[:1], 2, 2), "weights"),
             ((t.float(), e, w, 2, 2), "token_ids"), ((t, e, torch.tensor([0.1, float("nan")]), 2, 2), "weights"),
             ((t, e, w, 2, 0), "n_experts"), ((t, e, w, -1, 2), "n_tokens")]
    for args, name in cases:
        with pytest.raises(ValueError, match=name):
            RoutingPlan.from_assignments(*args)


def test_topk_huge_finite_logits(backend):
    """Finite logits whose sum overflows take the careful check, not an error."""
    logits = torch.tensor([[3e38, 3e38, 1.0, -3e38], [1.0, 2.0, 3e38, 3e38]])
    plan = topk_route(logits, 2, backend=backend)
    assert plan.expert_ids.tolist() == [[0, 1], [2, 3]]
    torch.testing.assert_close(plan.weights, torch.full((2, 2), 0.5))


def test_unpermute_and_from_assignments_gradcheck_torch():
    tok, exp = torch.tensor([0, 0, 1, 3, 2]), torch.tensor([1, 2, 0, 2, 1])
    w = torch.tensor([0.3, 0.6, 1.0, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def fn(ww, yy):
        plan = RoutingPlan.from_assignments(tok, exp, ww, 5, 3, backend="torch")
        return plan.unpermute(yy) * plan.weights.unsqueeze(-1), plan.combine(yy)

    assert torch.autograd.gradcheck(fn, (w, y))


def test_combine_repeat_bitwise(backend):
    plan = topk_route(torch.randn(40, 6), 3, backend=backend)
    y = torch.randn(120, 33, requires_grad=True)
    g = torch.randn(40, 33)
    runs = []
    for _ in range(2):
        y.grad = None
        out = plan.combine(y, backend=backend)
        out.backward(g)
        runs.append((out.detach(), y.grad))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_renormalized_weights_leave_unchosen_logits_exactly_zero_gradient(backend):
    """The analytic gradient on a logit not chosen is 0 (w = p_S / sum p_S does not depend on it); autograd through the
    softmax leaves rounding noise there, which Adam and RMSprop scale to full steps. Both backends give exact zeros."""
    logits = (torch.randn(64, 9) * 4).requires_grad_(True)
    plan = topk_route(logits, 3, backend=backend)
    (plan.weights * torch.randn(64, 3)).sum().backward()
    chosen = torch.zeros(64, 9, dtype=torch.bool).scatter_(1, plan.expert_ids, True)
    assert (logits.grad[~chosen] == 0).all() and (logits.grad[chosen] != 0).any()


@pytest.mark.parametrize("T,E", [(0, 3), (1, 1), (7, 1), (32, 4), (33, 10), (16, 64)])
def test_dense_route_is_topk_route_bitwise(T, E):
    """dense_route (no validation pass) gives topk_route(k = E, renormalize=False)'s plan and weight gradients,
    bitwise, ties included (logits rounded to a coarse grid tie often)."""
    from kernels import dense_route

    g = torch.Generator().manual_seed(T * 100 + E)
    for dtype in (torch.float32, torch.float64):
        base = (torch.randn(T, E, generator=g) * 4).round() / 4  # many ties
        grads = torch.randn(T, E, generator=g)
        plans, dlogits = [], []
        for route in (lambda x: topk_route(x, E, renormalize=False, backend="torch"), lambda x: dense_route(x, backend="torch")):
            x = base.to(dtype).requires_grad_(True)
            plan = route(x)
            (plan.weights * grads.to(plan.weights.dtype).gather(1, plan.expert_ids)).sum().backward()
            plans.append(plan)
            dlogits.append(x.grad)
        a, b = plans
        assert b.dense and b.k == E
        for name in ("expert_ids", "weights", "counts", "offsets", "order", "slot_rows"):
            assert getattr(a, name).dtype == getattr(b, name).dtype and torch.equal(getattr(a, name), getattr(b, name)), name
        assert torch.equal(dlogits[0], dlogits[1])
