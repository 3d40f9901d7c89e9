"""Each expert type's formula on a tiny hand-computed case; routed evaluation agrees with evaluating every expert."""
import re

import pytest
import torch

from kernels import RoutingPlan, topk_route
from moe.config import ConfigError
from moe.experts import EXPERTS
from moe.validate import from_dict


def bank(name, input_shape, n_classes, **fields):
    cfg = from_dict({"expert": name, **fields})
    return EXPERTS.get(name)(cfg, input_shape, n_classes)


def test_linear_expert_by_hand():
    b = bank("linear", (2,), 3, experts=2)
    with torch.no_grad():
        b.experts[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # nn.Linear: [C, D]
        b.experts[0].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
        b.experts[1].weight.zero_(), b.experts[1].bias.fill_(5.0)
    out = b.forward_all(torch.tensor([[2.0, 3.0]]))  # x W_0 + b_0 = (2, 4, 7); expert 1 = (5, 5, 5)
    assert out.tolist() == [[[2.0, 4.0, 7.0], [5.0, 5.0, 5.0]]]
    assert b.hidden_width(from_dict({})) == 0


def test_mlp_expert_by_hand():
    b = bank("mlp", (1,), 2, experts=1, expert_hidden=2)
    net = b.experts[0]
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]])), net[2].bias.zero_()
    x = torch.tensor([[2.0], [-1.0]])  # h = relu(x, -x) = (2, 0) and (0, 1)
    assert b.hidden_all(x).tolist() == [[[2.0, 0.0]], [[0.0, 1.0]]]
    assert b.forward_all(x).tolist() == [[[2.0, 6.0]], [[2.0, 4.0]]]


def test_cnn_expert_by_hand():
    """conv 3x3 of ones on a 4x4 image of ones = 9 everywhere (2x2), max-pool -> 9, hidden (9, 18), logits (9, 18, 27)."""
    b = bank("cnn", (1, 4, 4), 3, dataset="mnist", experts=1, expert_hidden=2, expert_channels=1)
    net = b.experts[0]
    conv, _, _, _, fc, _ = net.stem
    with torch.no_grad():
        conv.weight.fill_(1.0), conv.bias.zero_()
        fc.weight.copy_(torch.tensor([[1.0], [2.0]])), fc.bias.zero_()
        net.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])), net.head.bias.zero_()
    x = torch.ones(1, 1, 4, 4)
    assert b.hidden_all(x).tolist() == [[[9.0, 18.0]]]
    assert b.forward_all(x).tolist() == [[[9.0, 18.0, 27.0]]]


def test_cnn_matches_the_seed_codes_mnist_expert_shape():
    """One 3x3 filter, 2x2 pool: 28 -> 26 -> 13, 169 -> 5 -> 10."""
    net = bank("cnn", (1, 28, 28), 10, dataset="mnist", experts=1, expert_hidden=5).experts[0]
    assert net.stem[0].out_channels == 1 and net.stem[4].in_features == 169 and net.stem[4].out_features == 5
    assert net.head.out_features == 10


def test_cnn_needs_images():
    with pytest.raises(ConfigError, match=r"^expert: cnn experts need image inputs"):
        bank("cnn", (2,), 6)


@pytest.mark.parametrize("name,shape", [("linear", (3,)), ("mlp", (3,)), ("cnn", (1, 6, 6))])
@pytest.mark.parametrize("k", [1, 2])
def test_routed_rows_equal_every_expert_on_every_sample(name, shape, k):
    torch.manual_seed(0)
    b = bank(name, shape, 4, dataset="mnist" if name == "cnn" else "gm6", experts=3, expert_hidden=5)
    x = torch.randn(7, *shape)
    plan = topk_route(torch.randn(7, 3), k)
    routed = b.forward_routed(x, plan)  # [A, C] in the plan's expert-grouped order
    dense = b.forward_all(x)  # [T, E, C]
    assert torch.allclose(routed, dense[plan.row_tokens, plan.row_experts], atol=1e-5)


def test_an_expert_with_no_rows_is_fine():
    b = bank("cnn", (1, 6, 6), 4, dataset="mnist", experts=3)
    plan = RoutingPlan.from_assignments(torch.tensor([0, 1]), torch.tensor([2, 2]), torch.ones(2), 2, 3)
    assert b.forward_routed(torch.randn(2, 1, 6, 6), plan).shape == (2, 4)


@pytest.mark.parametrize("name", EXPERTS.names())
def test_every_expert_names_its_source_and_formula(name):
    doc = EXPERTS.get(name).__doc__
    assert doc and re.search(r"(19|20)\d\d", doc) and "logits" in doc
