"""Hard routing (routing: hard | gumbel) and the Sinkhorn router: one expert per sample in the forward pass, the
straight-through gradients against a hand computation and finite differences, the balanced assignment."""
import math

import pytest
import torch

from moe.model import build_model
from moe.objectives import Loss
from moe.routers.sinkhorn import sinkhorn_log
from moe.routers.straight_through import dense_routing, straight_through_term
from moe.validate import from_dict
from tests.helpers import config_problem


def model_of(**fields):
    cfg = from_dict({"dataset": "gm6", "experts": 3, **fields})
    torch.manual_seed(0)
    return cfg, build_model(cfg, (2,), 6).double()


def test_hard_routing_sends_each_sample_to_its_argmax_with_weight_one():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]], requires_grad=True)
    r = dense_routing(logits, "hard", 1.0, training=True)
    assert r.plan.k == 1 and r.plan.expert_ids[:, 0].tolist() == [1, 0]
    assert r.plan.weights.tolist() == [[1.0], [1.0]] and not r.plan.weights.requires_grad
    dense = r.dense_weights()  # value one-hot, gradient of the softmax (straight-through)
    assert torch.equal(dense.detach(), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    (dense[:, 2].sum()).backward()
    p = logits.detach().softmax(-1)
    expected = -p * p[:, 2:3] + torch.nn.functional.one_hot(torch.tensor([2, 2]), 3) * p[:, 2:3]
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_soft_routing_is_unchanged_by_the_new_field():
    logits = torch.tensor([[0.1, 2.0, -1.0]])
    r = dense_routing(logits, "soft", 1.0, training=True)
    assert r.relaxed is None and r.plan.k == 3
    assert torch.allclose(r.dense_weights(), logits.softmax(-1))


def test_hard_model_output_is_the_routed_expert_alone_and_only_it_gets_gradient():
    cfg, model = model_of(routing="hard")
    x = torch.rand(5, 2, dtype=torch.float64)
    model.train()
    out = model(x)
    e = out.routing.plan.expert_ids[:, 0]
    log_q = torch.log_softmax(model.experts.forward_all(x), -1)  # [T, E, C]
    assert torch.allclose(out.log_probs, log_q[torch.arange(5), e], atol=1e-12)
    out.log_probs[:, 0].sum().backward()
    for k, expert in enumerate(model.experts.experts):
        routed = bool((e == k).any())
        assert (expert.weight.grad is not None and expert.weight.grad.abs().sum() > 0) == routed


def test_straight_through_gradient_matches_the_hand_formula_and_finite_differences():
    """d(-log p(y|x)) / d logit_j = p_j (l_j - sum_e p_e l_e), l_e = -log q_e(y|x): the gradient of the surrogate
    sum_e p_e(logits) l_e, checked in closed form and by central differences of that surrogate."""
    cfg, model = model_of(routing="hard", temperature=1.0)
    x = torch.rand(4, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    model.train()
    gate = model.router.gate
    out = model(x)
    loss = -out.log_probs.gather(1, y[:, None]).sum()
    (g_logits,) = torch.autograd.grad(loss, out.routing.logits, retain_graph=True)
    with torch.no_grad():
        logits = gate(x)
        p = logits.softmax(-1)
        l = -torch.log_softmax(model.experts.forward_all(x), -1)[torch.arange(4), :, y]  # [T, E]
    hand = p * (l - (p * l).sum(1, keepdim=True))
    assert torch.allclose(g_logits, hand, atol=1e-10)
    surrogate = lambda z: (z.softmax(-1) * l).sum()  # noqa: E731
    eps, fd = 1e-6, torch.zeros_like(logits)
    for t in range(4):
        for j in range(3):
            d = torch.zeros_like(logits)
            d[t, j] = eps
            fd[t, j] = (surrogate(logits + d) - surrogate(logits - d)) / (2 * eps)
    assert torch.allclose(g_logits, fd, atol=1e-7)


def test_straight_through_term_is_zero_in_value():
    s = torch.rand(3, 4, requires_grad=True)
    term = straight_through_term(s, torch.randn(3, 4, 5))
    assert torch.equal(term, torch.zeros(3, 5))


def test_gumbel_draws_with_the_seeded_noise_and_passes_the_gumbel_softmax_gradient():
    logits = torch.tensor([[0.5, 0.0, -0.5], [1.0, 1.0, 1.0]], requires_grad=True)
    T = 0.5
    torch.manual_seed(3)
    r = dense_routing(logits, "gumbel", T, training=True)
    torch.manual_seed(3)
    g = -torch.empty_like(logits).exponential_().log()
    perturbed = logits.detach() + g / T
    assert r.plan.expert_ids[:, 0].tolist() == perturbed.argmax(1).tolist()
    assert torch.allclose(r.relaxed, perturbed.softmax(-1))
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    (r.relaxed * w).sum().backward()
    s = perturbed.softmax(-1)
    hand = s * (w - (s * w).sum(1, keepdim=True))  # Jacobian of softmax(logits + G / T) with respect to logits
    assert torch.allclose(logits.grad, hand, atol=1e-6)
    evaluated = dense_routing(logits.detach(), "gumbel", T, training=False)  # no noise when evaluating
    assert evaluated.plan.expert_ids[:, 0].tolist() == logits.detach().argmax(1).tolist()


def test_gumbel_choice_is_a_sample_of_the_gates_softmax_whatever_the_temperature():
    """argmax(g(x) + G) ~ softmax(g(x)) (the Gumbel-max trick); the router's logits are g(x) / T."""
    torch.manual_seed(0)
    T = 2.0
    logits = (torch.log(torch.tensor([[0.6, 0.3, 0.1]])) / T).expand(20000, 3)
    freq = torch.bincount(dense_routing(logits, "gumbel", T, training=True).assignment(), minlength=3) / 20000
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.015)


def test_importance_loss_reaches_the_gate_under_hard_routing():
    cfg, model = model_of(routing="hard", importance_loss=1.0)
    model.train()
    x = torch.rand(16, 2, dtype=torch.float64)
    out = model(x)
    _, terms = Loss(cfg)(out, x, torch.zeros(16, dtype=torch.long))
    from moe.objectives.balance import importance
    importance(out, x).backward()
    assert model.router.gate.weight.grad.abs().sum() > 0


def test_routing_field_rules():
    assert "routing" in config_problem({"router": "topk", "routing": "hard"})
    assert "competitive" in config_problem({"routing": "hard", "objective": "competitive"})
    assert "routing" in config_problem({"routing": "sharp"})
    for name in ("softmax", "linear", "prototype"):
        assert from_dict({"router": name, "routing": "gumbel"}).routing == "gumbel"


def test_sinkhorn_plan_has_unit_rows_and_balanced_columns():
    torch.manual_seed(0)
    logits = torch.randn(12, 3) * 3 + torch.tensor([4.0, 0.0, 0.0])  # the gate prefers expert 0
    pi = sinkhorn_log(logits).exp()
    assert torch.allclose(pi.sum(1), torch.ones(12), atol=1e-5)
    assert torch.allclose(pi.sum(0), torch.full((3,), 4.0), atol=0.05)


def test_sinkhorn_router_balances_in_training_and_is_greedy_in_evaluation():
    cfg, model = model_of(router="sinkhorn", experts=4)
    with torch.no_grad():  # four directions, and a bias that makes expert 0 the greedy choice of most samples
        model.router.gate.weight.copy_(torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [-6.0, -6.0]]))
        model.router.gate.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 7.0]))
    torch.manual_seed(0)
    x = torch.rand(40, 2, dtype=torch.float64)
    greedy = model.router.gate(x).argmax(1)
    assert int(torch.bincount(greedy, minlength=4).max()) >= 20
    model.train()
    train_counts = torch.bincount(model.router(x).assignment(), minlength=4)
    assert int(train_counts.max()) <= 13 and int(train_counts.min()) >= 5, train_counts  # 10 each, about (greedy: 30 on one)
    model.eval()
    assert torch.equal(model.router(x).assignment(), greedy)
    assert "routing" in config_problem({"router": "sinkhorn", "routing": "hard"})


@pytest.mark.slow
def test_balancing_prevents_the_collapse_the_same_model_shows_without_it():
    """gm6, 2 linear experts with the seed paper's learning-rate asymmetry (lr_ratio 100, RMSprop): the fast
    expert takes every sample (collapse, as in 7 of the seed code's 10 runs); the same model with the
    importance loss or with the Sinkhorn router keeps both experts in use."""
    from moe.training.loop import run
    base = {"dataset": "gm6", "experts": 2, "n_train": 1200, "n_test": 300, "epochs": 5, "optimizer": "rmsprop",
            "lr": 0.01, "lr_ratio": 100, "momentum": 0.9, "seed": 0}
    plain = run(base)["test"]
    assert plain["collapsed"] == 1.0, plain["busiest_share"]
    for balancing in ({"importance_loss": 1.0}, {"router": "sinkhorn"}):
        balanced = run({**base, **balancing})["test"]
        assert balanced["collapsed"] == 0.0 and balanced["experts_used"] == 2, (balancing, balanced["busiest_share"])
