"""Implicit experts: linear experts whose weights a shared generator makes from learned codes. They must equal
explicit linear experts holding the same generated weights (forward and every gradient), generate only the
routed experts' weights, size as E Z + generator, and train at E = 4,096."""
import math

import pytest
import torch

from kernels import RoutingPlan, topk_route
from moe.experts.implicit import ImplicitLinearExperts
from moe.experts.linear import LinearExperts
from moe.model import build_model
from moe.model import memory_estimate
from moe.validate import from_dict
from tests.helpers import config_problem


def banks(E=5, D=3, C=4, Z=2, H=6):
    cfg = from_dict({"experts": E, "expert": "implicit", "code_width": Z, "expert_hidden": H})
    torch.manual_seed(0)
    implicit = ImplicitLinearExperts(cfg, (D,), C).double()
    return cfg, implicit


def explicit_from(implicit: ImplicitLinearExperts, cfg) -> tuple[LinearExperts, torch.Tensor, torch.Tensor]:
    """Explicit linear experts whose nn.Linear weights are the generated W_e^T, b_e (leaf copies)."""
    W, b = implicit.weights()
    D, C = W.shape[1], W.shape[2]
    lin = LinearExperts(from_dict({"experts": cfg.experts}), (D,), C).double()
    with torch.no_grad():
        for e, m in enumerate(lin.experts):
            m.weight.copy_(W[e].T)
            m.bias.copy_(b[e])
    return lin, W, b


def test_the_generator_is_the_formula():
    cfg, bank = banks()
    g = bank.generator
    z = g.codes[2:3]
    flat = torch.relu(z @ g.hidden.weight.T + g.hidden.bias) @ g.out.weight.T + g.out.bias  # relu(z A + a) B + c
    W, b = bank.weights(torch.tensor([2]))
    assert torch.allclose(W[0], flat.view(4, 4)[:3]) and torch.allclose(b[0], flat.view(4, 4)[3])


@pytest.mark.parametrize("routed", ["dense", "one_per_sample", "some_experts_unused"])
def test_implicit_equals_explicit_linear_experts_with_the_same_weights_forward_and_gradients(routed):
    cfg, implicit = banks()
    explicit, _, _ = explicit_from(implicit, cfg)
    torch.manual_seed(1)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(7, 5, dtype=torch.float64)
    if routed == "dense":
        plan = topk_route(logits, 5, renormalize=False)
    else:
        experts = logits.argmax(1) if routed == "one_per_sample" else torch.tensor([0, 0, 3, 3, 3, 0, 3])
        plan = RoutingPlan.from_assignments(torch.arange(7), experts, torch.ones(7, dtype=torch.float64), 7, 5)
    g = torch.randn(plan.order.numel(), 4, dtype=torch.float64)
    out_i = implicit.forward_routed(x, plan)
    out_e = explicit.forward_routed(x, plan)
    assert torch.allclose(out_i, out_e, atol=1e-12)
    assert torch.allclose(implicit.forward_all(x), explicit.forward_all(x), atol=1e-12)
    # gradients: with respect to x, and to the generator's parameters through the generated weights
    dx_i, = torch.autograd.grad((out_i * g).sum(), [x])
    dx_e, = torch.autograd.grad((out_e * g).sum(), [x], retain_graph=True)
    assert torch.allclose(dx_i, dx_e, atol=1e-12)
    (out_e * g).sum().backward()
    params = list(implicit.generator.parameters())
    grads_i = torch.autograd.grad((implicit.forward_routed(x, plan) * g).sum(), params)
    # chain rule by hand: dL/dtheta = sum_e <dL/dW_e, dW_e/dtheta> + <dL/db_e, db_e/dtheta> with dL/dW_e from the explicit experts
    dW = torch.stack([m.weight.grad.T if m.weight.grad is not None else torch.zeros(3, 4, dtype=torch.float64)
                      for m in explicit.experts])
    db = torch.stack([m.bias.grad if m.bias.grad is not None else torch.zeros(4, dtype=torch.float64) for m in explicit.experts])
    W2, b2 = implicit.weights()
    grads_chain = torch.autograd.grad((W2 * dW).sum() + (b2 * db).sum(), params)
    for a, c in zip(grads_i, grads_chain):
        assert torch.allclose(a, c, atol=1e-12)
    unused = [e for e in range(5) if int(plan.counts[e]) == 0]
    if unused:  # an expert no sample reached gets no gradient on its code
        assert grads_i[0][unused].abs().max() == 0


def test_only_the_routed_experts_weights_are_generated(monkeypatch):
    cfg, bank = banks(E=50)
    seen = []
    forward = type(bank.generator).forward
    monkeypatch.setattr(type(bank.generator), "forward", lambda self, codes: (seen.append(len(codes)), forward(self, codes))[1])
    plan = RoutingPlan.from_assignments(torch.arange(4), torch.tensor([7, 7, 30, 2]), torch.ones(4, dtype=torch.float64), 4, 50)
    bank.forward_routed(torch.randn(4, 3, dtype=torch.float64), plan)
    assert seen == [3]


def test_parameters_grow_by_the_code_width_per_expert():
    sizes = {}
    for E in (10, 4096):
        cfg = from_dict({"dataset": "mnist", "experts": E, "expert": "implicit", "code_width": 16, "expert_hidden": 32})
        model = build_model(cfg, (1, 28, 28), 10)
        sizes[E] = sum(p.numel() for p in model.experts.parameters())
        D, C = 784, 10
        assert sizes[E] == E * 16 + 17 * 32 + 33 * (D + 1) * C
        params, _ = memory_estimate(cfg, (1, 28, 28), 10)
        assert params >= sizes[E] + E * (D + 1) * C  # the generated weights of the dense evaluation counted once
        assert model.experts.readable_parameters() == (D + 1) * C
    assert sizes[4096] - sizes[10] == (4096 - 10) * 16


def test_implicit_experts_rules():
    assert config_problem({"expert": "implicit", "lr_ratio": 10}).startswith("expert_lrs")
    assert config_problem({"expert": "implicit", "regime": "pretrain", "class_split": "contiguous"}).startswith("regime")
    assert config_problem({"expert": "implicit", "router": "attention"}).startswith("router")
    assert config_problem({"code_width": 0}).startswith("code_width")


@pytest.mark.slow
def test_4096_implicit_experts_train_an_epoch_on_gm6():
    from moe.training.loop import run
    record = run({"dataset": "gm6", "experts": 4096, "expert": "implicit", "routing": "hard", "epochs": 1,
                  "importance_loss": 0.1, "n_train": 1200, "n_test": 300, "batch_size": 64, "lr": 0.01,
                  "val_fraction": 0})  # all 1,200 samples trained on, as the accuracy bound was set for
    assert record["status"] == "ok"
    assert record["n_parameters"]["experts"] == 4096 * 16 + 17 * 32 + 33 * 3 * 6
    test = record["test"]
    assert test["accuracy"] > 0.5 and test["local_fidelity"] == 1.0
    assert math.isfinite(record["history"][0]["train_loss"])
    assert 1 <= test["experts_used"] <= 300
