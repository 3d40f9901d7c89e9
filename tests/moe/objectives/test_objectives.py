"""Each objective and regulariser on a tiny hand-computed case."""
import math
import re
from types import SimpleNamespace

import pytest
import torch

from kernels import topk_route
from moe.model import build_model
from moe.objectives import OBJECTIVES, REGULARISERS, Loss
from moe.objectives.balance import cv_squared
from moe.objectives.similarity import sample_similarity_terms
from moe.routers import Routing
from moe.validate import from_dict
from tests.helpers import config_problem


def fixed_model(objective, p, q):
    """Two experts with constant outputs q_e (rows of q) and a constant softmax gate p, on 1-d inputs."""
    cfg = from_dict({"objective": objective, "experts": len(p), "router": "softmax"})
    model = build_model(cfg, (1,), len(q[0]))
    with torch.no_grad():
        model.router.gate.weight.zero_()
        model.router.gate.bias.copy_(torch.tensor(p).log())
        for expert, row in zip(model.experts.experts, q):
            expert.weight.zero_()
            expert.bias.copy_(torch.tensor(row).log())
    return model.requires_grad_(False)


def routing_of(probs):
    probs = torch.tensor(probs)
    return Routing(topk_route(probs.log(), probs.shape[1], renormalize=False), probs.log(), probs)


Q = [[0.8, 0.2], [0.2, 0.8]]
Y0 = torch.tensor([0])


def test_mixture_nll_by_hand():
    out = fixed_model("mixture_nll", [0.5, 0.5], Q)(torch.zeros(1, 1))
    assert float(OBJECTIVES.get("mixture_nll")(out, Y0)) == pytest.approx(-math.log(0.5 * 0.8 + 0.5 * 0.2), abs=1e-6)


def test_expectation_is_the_seed_codes_loss_by_hand():
    """-log(sum_e p_e q_e(y) + 1e-7): the mixture NLL where the mixture gives y a fair share, capped where it does not."""
    out = fixed_model("expectation", [0.5, 0.5], Q)(torch.zeros(1, 1))
    assert float(OBJECTIVES.get("expectation")(out, Y0)) == pytest.approx(-math.log(0.5 * 0.8 + 0.5 * 0.2 + 1e-7), abs=1e-6)
    tiny = [[1 - 1e-12, 1e-12], [1 - 1e-12, 1e-12]]  # both experts give class 1 probability 1e-12
    out = fixed_model("expectation", [0.5, 0.5], tiny)(torch.zeros(1, 1))
    y1 = torch.tensor([1])
    assert float(OBJECTIVES.get("expectation")(out, y1)) == pytest.approx(-math.log(1e-12 + 1e-7), rel=1e-4)  # ~16.1
    assert float(OBJECTIVES.get("mixture_nll")(out, y1)) == pytest.approx(-math.log(1e-12), rel=1e-4)  # ~27.6


def test_cooperative_blends_the_experts_before_the_loss():
    out = fixed_model("cooperative", [0.5, 0.5], Q)(torch.zeros(1, 1))
    assert float(OBJECTIVES.get("cooperative")(out, Y0)) == pytest.approx(math.log(2), abs=1e-6)  # equal blend: uniform
    out = fixed_model("cooperative", [0.75, 0.25], Q)(torch.zeros(1, 1))
    z0, z1 = 0.75 * math.log(0.8) + 0.25 * math.log(0.2), 0.75 * math.log(0.2) + 0.25 * math.log(0.8)
    expected = -(z0 - math.log(math.exp(z0) + math.exp(z1)))
    assert float(OBJECTIVES.get("cooperative")(out, Y0)) == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(out.log_probs.exp().sum(1), torch.ones(1))  # the prediction is that blend


def test_competitive_weighs_each_experts_own_loss():
    out = fixed_model("competitive", [0.25, 0.75], Q)(torch.zeros(1, 1))
    expected = 0.25 * -math.log(0.8) + 0.75 * -math.log(0.2)
    assert float(OBJECTIVES.get("competitive")(out, Y0)) == pytest.approx(expected, abs=1e-6)


def test_competitive_uses_only_the_routed_experts():
    cfg = from_dict({"objective": "competitive", "router": "topk", "top_k": 1, "experts": 3})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 4)
    out = model(torch.randn(5, 2))
    y = torch.tensor([0, 1, 2, 3, 0])
    w, logq = out.routing.plan.weights[:, 0], out.expert_log_probs[:, 0]
    assert torch.allclose(OBJECTIVES.get("competitive")(out, y), -(w * logq[torch.arange(5), y]).mean())


def test_cv_squared_uses_the_population_variance():
    assert float(cv_squared(torch.tensor([1.5, 0.5]))) == pytest.approx(0.25)  # var 0.25, mean 1
    assert float(cv_squared(torch.tensor([2.0]))) == 0.0


def test_importance_load_switch_and_z_loss_by_hand():
    out = SimpleNamespace(routing=routing_of([[0.5, 0.5], [1.0, 0.0]]))
    assert float(REGULARISERS.get("importance").fn(out, None)) == pytest.approx(0.25, abs=1e-6)  # importance (1.5, 0.5)
    routing = routing_of([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])  # f = (2/3, 1/3), P = (0.6, 0.4)
    out = SimpleNamespace(routing=routing)
    assert float(REGULARISERS.get("switch").fn(out, None)) == pytest.approx(2 * (2 / 3 * 0.6 + 1 / 3 * 0.4), abs=1e-6)
    routing.load = torch.tensor([3.0, 1.0])  # a router's smooth load wins over the counts
    assert float(REGULARISERS.get("load").fn(out, None)) == pytest.approx(0.25, abs=1e-6)
    routing = Routing(topk_route(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), 1), torch.tensor([[0.0, 0.0], [1.0, 1.0]]), None)
    z = float(REGULARISERS.get("z").fn(SimpleNamespace(routing=routing), None))
    assert z == pytest.approx((math.log(2) ** 2 + (1 + math.log(2)) ** 2) / 2, abs=1e-6)
    counts = SimpleNamespace(routing=Routing(topk_route(torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]), 1),
                                             torch.zeros(3, 2), torch.zeros(3, 2)))
    assert float(REGULARISERS.get("load").fn(counts, None)) == pytest.approx(1 / 9, abs=1e-6)  # counts (2, 1)


def test_sample_similarity_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # d = 5
    same, diff = sample_similarity_terms(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), x)
    assert (float(same), float(diff)) == pytest.approx((0.0, 2 * 5 / 2 / 4))  # separated: all distance between experts
    same, diff = sample_similarity_terms(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), x)
    assert (float(same), float(diff)) == pytest.approx((2 * 5 / 2, 0.0))  # together: all distance within expert 0


def test_sample_similarity_matches_the_papers_loops():
    torch.manual_seed(0)
    p, x = torch.softmax(torch.randn(6, 3), 1), torch.randn(6, 1, 2, 2)
    flat = x.flatten(1)
    B, E = p.shape
    same = diff = 0.0
    for i in range(B):
        for j in range(B):
            d = float((flat[i] - flat[j]).norm())
            for e in range(E):
                for f in range(E):
                    if e == f:
                        same += float(p[i, e] * p[j, f]) * d
                    else:
                        diff += float(p[i, e] * p[j, f]) * d
    got = sample_similarity_terms(p, x)
    assert float(got[0]) == pytest.approx(same / E, rel=1e-5)
    assert float(got[1]) == pytest.approx(diff / (E * E - E) / B ** 2, rel=1e-5)
    out = SimpleNamespace(routing=SimpleNamespace(probs=p))
    loss = Loss(from_dict({"similarity_same": 0.5, "similarity_diff": 2.0}))
    terms = {r.name: c * r.fn(out, x) for r, c in loss.terms}
    assert float(sum(terms.values())) == pytest.approx(0.5 * same / E - 2.0 * diff / (E * E - E) / B ** 2, rel=1e-5)


def test_router_matching_kl_by_hand():
    out = SimpleNamespace(routing=routing_of([[0.75, 0.25]]), reference=routing_of([[0.5, 0.5]]))
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(p_match || p_gate)
    assert float(REGULARISERS.get("match").fn(out, None)) == pytest.approx(expected, abs=1e-6)


def test_router_matching_pulls_both_routers():
    cfg = from_dict({"router": "softmax", "gate": "mlp", "match_router": "prototype", "match_loss": 1.0, "experts": 3})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 4)
    x = torch.randn(8, 2)
    loss, terms = Loss(cfg)(model(x), x, torch.zeros(8, dtype=torch.long))
    assert set(terms) == {"task", "match"} and float(terms["match"]) > 0
    loss.backward()
    assert model.router.gate[0].weight.grad.abs().sum() > 0 and model.match_router.prototypes.grad.abs().sum() > 0


def test_loss_adds_only_the_regularisers_that_are_on():
    cfg = from_dict({"router": "topk", "top_k": 2, "experts": 3, "importance_loss": 0.1, "z_loss": 1e-3})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 4)
    x, y = torch.randn(8, 2), torch.zeros(8, dtype=torch.long)
    out = model(x)
    loss, terms = Loss(cfg)(out, x, y)
    assert set(terms) == {"task", "importance", "z"}
    assert loss.item() == pytest.approx(float(terms["task"] + 0.1 * terms["importance"] + 1e-3 * terms["z"]), rel=1e-6)
    assert Loss(from_dict({})).terms == []


@pytest.mark.parametrize("values,field", [
    ({"load_loss": 0.1}, "load_loss"),
    ({"router": "topk", "top_k": 2, "load_loss": 0.1}, "load_loss"),  # no noise: the load has no gradient
    ({"match_router": "linear"}, "match_loss"),
    ({"match_loss": 1.0}, "match_loss"),
    ({"match_router": "softmax", "match_loss": 1.0}, "match_router"),
    ({"experts": 1, "top_k": 1, "similarity_diff": 0.1}, "similarity_diff"),
    ({"z_loss": -1.0}, "z_loss"),
    ({"objective": "coop"}, "objective"),
])
def test_invalid_regulariser_settings_fail_before_training(values, field):
    assert config_problem(values).startswith(f"{field}:")


def test_noisy_topk_with_the_load_loss_is_valid():
    from_dict({"router": "topk", "top_k": 2, "experts": 4, "noisy_gate": True, "load_loss": 0.1})


@pytest.mark.parametrize("name", OBJECTIVES.names() + [f"reg:{n}" for n in REGULARISERS.names()])
def test_every_objective_and_regulariser_names_its_source_and_formula(name):
    fn = REGULARISERS.get(name[4:]).fn if name.startswith("reg:") else OBJECTIVES.get(name)
    doc = fn.__doc__ or ""
    module_doc = __import__(fn.__module__, fromlist=["_"]).__doc__ or ""
    assert re.search(r"(19|20)\d\d", doc + module_doc) and re.search(r"[=]|sum|log|KL", doc), name
