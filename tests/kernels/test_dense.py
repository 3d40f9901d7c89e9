"""kernels.dense: the dense plan's expert matmul is bitwise the grouped fallback's, output and every gradient."""
import pytest
import torch

from kernels import dense_applies, dense_expert_mm, grouped_mm, topk_route


@pytest.mark.parametrize("T,K,N,E", [(1, 3, 2, 2), (32, 2, 6, 4), (31, 784, 10, 10), (64, 169, 12, 5), (7, 30, 7, 1)])
def test_bitwise_equal_to_grouped(T, K, N, E):
    g = torch.Generator().manual_seed(T * 1000 + K)
    x = torch.randn(T, K, generator=g)
    plan = topk_route(torch.randn(T, E, generator=g), E, renormalize=False, backend="torch")
    assert plan.dense and dense_applies(x, plan)
    lin = [torch.nn.Linear(K, N) for _ in range(E)]
    dy = torch.randn(E * T, N, generator=g)
    ours = dense_expert_mm(x, [m.weight for m in lin], [m.bias for m in lin])
    ours.backward(dy)
    got = [m.weight.grad.clone() for m in lin] + [m.bias.grad.clone() for m in lin]
    for m in lin:
        m.weight.grad = m.bias.grad = None
    w = torch.stack([m.weight for m in lin]).transpose(1, 2)
    b = torch.stack([m.bias for m in lin])
    ref = grouped_mm(x, w, plan.offsets, gather_index=plan.row_tokens, bias=b, backend="torch")
    ref.backward(dy)
    expected = [m.weight.grad for m in lin] + [m.bias.grad for m in lin]
    assert torch.equal(ours, ref)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


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
