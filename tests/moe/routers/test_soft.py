"""The soft router (Soft MoE's combine weights, one sample per sequence): its weights by hand."""
import math

import torch

from moe.routers import ROUTERS
from moe.validate import from_dict


def soft(n_experts=3, slots=2, input_shape=(4,), **fields):
    cfg = from_dict({"router": "soft", "experts": n_experts, "soft_slots": slots, **fields})
    return ROUTERS.get("soft")(cfg, input_shape, n_experts)


def test_an_experts_weight_is_the_sum_of_its_slots_combine_weights():
    torch.manual_seed(0)
    r = soft(temperature=1.0)
    with torch.no_grad():
        r.scale.fill_(3.0)
    x = torch.randn(5, 4)
    phi = r.phi / r.phi.norm(dim=0, keepdim=True)  # [d, E p], columns of unit length
    slot_logits = 3.0 * (x / x.norm(dim=1, keepdim=True)) @ phi  # [T, E p]: scaled cosine similarities
    combine = slot_logits.softmax(-1).view(5, 3, 2).sum(-1)  # [T, E]
    out = r(x)
    assert torch.allclose(out.probs, combine, atol=1e-6)
    assert torch.allclose(out.dense_weights(), combine, atol=1e-6)  # dense: every expert every sample


def test_one_slot_is_a_cosine_similarity_softmax_and_the_temperature_divides():
    torch.manual_seed(1)
    r = soft(n_experts=2, slots=1, input_shape=(2,), temperature=2.0)
    with torch.no_grad():
        r.phi.copy_(torch.tensor([[1.0, 0.0], [0.0, 5.0]]))  # slot 0 along x1, slot 1 along x2 (the norm drops the 5)
        r.scale.fill_(math.log(3) * 2)
    out = r(torch.tensor([[7.0, 0.0]]))  # cosines (1, 0) * 2 ln 3 / T = (ln 3, 0) -> (3/4, 1/4)
    assert torch.allclose(out.probs, torch.tensor([[0.75, 0.25]]))


def test_the_soft_router_trains_its_slots_and_scale():
    torch.manual_seed(2)
    r = soft()
    r(torch.randn(8, 4)).probs[:, 0].sum().backward()
    assert r.phi.grad is not None and r.phi.grad.abs().sum() > 0 and r.scale.grad is not None


def test_the_soft_router_takes_a_gate_network_and_states_its_source():
    r = soft(gate="mlp", gate_hidden=5)
    assert r.phi.shape == (5, 6)
    assert r(torch.randn(3, 4)).probs.shape == (3, 3)
    doc = ROUTERS.get("soft").__doc__
    assert "Puigcerver" in doc and "2308.00951" in doc and "adaptation" in doc
