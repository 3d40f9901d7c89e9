"""kernels.dense: the dense plan's expert matmul (one product over all experts) against the grouped fallback (one
product per expert) and a float64 per-expert reference, output and every gradient."""
import pytest
import torch

from kernels import dense_applies, dense_expert_mm, grouped_mm, topk_route


@pytest.mark.parametrize("T,K,N,E", [(1, 3, 2, 2), (32, 2, 6, 4), (31, 784, 10, 10), (64, 169, 12, 5), (7, 30, 7, 1)])
def test_matches_grouped_and_a_float64_reference(T, K, N, E):
    g = torch.Generator().manual_seed(T * 1000 + K)
    x = torch.randn(T, K, generator=g)
    plan = topk_route(torch.randn(T, E, generator=g), E, renormalize=False, backend="torch")
    assert plan.dense and dense_applies(x, plan)
    lin = [torch.nn.Linear(K, N) for _ in range(E)]
    dy = torch.randn(E * T, N, generator=g)
    ours = dense_expert_mm(x, [m.weight for m in lin], [m.bias for m in lin])
    ours.backward(dy)
    got = [m.weight.grad.clone() for m in lin] + [m.bias.grad.clone() for m in lin]
    assert all(m.weight.grad.shape == (N, K) and m.weight.grad.is_contiguous() for m in lin)  # nn.Linear's layout
    for m in lin:
        m.weight.grad = m.bias.grad = None
    w = torch.stack([m.weight for m in lin]).transpose(1, 2)
    b = torch.stack([m.bias for m in lin])
    ref = grouped_mm(x, w, plan.offsets, gather_index=plan.row_tokens, bias=b, backend="torch")
    ref.backward(dy)
    grouped = [m.weight.grad for m in lin] + [m.bias.grad for m in lin]
    # float64, expert by expert and element by element from the definitions: out_e = x w_e^T + b_e,
    # dw_e = dy_e^T x, db_e = sum_t dy_e
    x64, dy64 = x.double(), dy.double().view(E, T, N)
    exact_out = torch.cat([x64 @ m.weight.double().t() + m.bias.double() for m in lin])
    exact = [dy64[e].t() @ x64 for e in range(E)] + [dy64[e].sum(0) for e in range(E)]
    scale = lambda t: 1e-6 * max(1.0, float(t.detach().abs().max()))  # noqa: E731  float32 rounding of a K-term sum
    assert (ours.double() - exact_out).abs().max() <= scale(exact_out) * K ** 0.5
    assert (ours - ref).abs().max() <= scale(ref) * K ** 0.5
    for a, c, e in zip(got, grouped, exact):
        assert (a.double() - e).abs().max() <= scale(e) * T ** 0.5
        assert (a - c).abs().max() <= scale(c) * T ** 0.5
    assert all(torch.equal(a, c) for a, c in zip(got[E:], grouped[E:]))  # the bias sums: the same reduction


def test_dx_and_applies():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, requires_grad=True)
    plan = topk_route(torch.randn(5, 3, generator=g), 3, renormalize=False, backend="torch")
    assert not dense_applies(x, plan)  # x needs a gradient: the grouped path
    assert not topk_route(torch.randn(5, 3, generator=g), 2, backend="torch").dense  # k < E: not dense
    lin = [torch.nn.Linear(3, 4) for _ in range(3)]
    dy = torch.randn(15, 4, generator=g)
    dense_expert_mm(x, [m.weight for m in lin], [m.bias for m in lin]).backward(dy)
    expected = sum(dy[e * 5:(e + 1) * 5] @ lin[e].weight for e in range(3))
    assert torch.allclose(x.grad, expected, atol=1e-6)
    with pytest.raises(ValueError, match="one per expert"):
        dense_expert_mm(x.detach(), [lin[0].weight], [])


@pytest.mark.parametrize("T,E", [(0, 3), (1, 1), (5, 3), (33, 10)])
def test_dense_plan_is_the_general_plan(T, E):
    from kernels.plan import build_plan

    g = torch.Generator().manual_seed(T + E)
    plan = topk_route(torch.randn(T, E, generator=g), E, renormalize=False, backend="torch")
    general = build_plan(plan.expert_ids, plan.weights, E, T * E, "torch")
    assert plan.dense and not general.dense
    for name in ("expert_ids", "counts", "offsets", "order", "slot_rows", "row_tokens", "row_experts"):
        assert torch.equal(getattr(plan, name), getattr(general, name)), name


def test_no_tokens_gives_zero_gradients():
    lin = [torch.nn.Linear(3, 2) for _ in range(2)]
    out = dense_expert_mm(torch.zeros(0, 3), [m.weight for m in lin], [m.bias for m in lin])
    assert out.shape == (0, 2)
    dw, db = torch.autograd.grad(out, [lin[0].weight, lin[1].bias], torch.zeros(0, 2), allow_unused=True)
    assert dw is None or torch.equal(dw, torch.zeros(2, 3))
    assert db is None or torch.equal(db, torch.zeros(2))


def test_a_dense_plan_made_under_inference_mode_leaves_later_training_intact():
    """The dense plans' shared constants are never inference tensors: a plan first made under inference_mode (an
    evaluation) must not break a later training step of the same shape (grouped_mm saves the offsets for backward)."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(6, 3, generator=g), torch.randn(4, 3, 2, generator=g, requires_grad=True)
    logits = torch.randn(6, 4, generator=g)
    with torch.inference_mode():
        topk_route(logits, 4, renormalize=False, backend="torch")
    plan = topk_route(logits, 4, renormalize=False, backend="torch")
    grouped_mm(x, w, plan.offsets, gather_index=plan.row_tokens, backend="torch").sum().backward()
    assert w.grad is not None and not plan.offsets.is_inference()
