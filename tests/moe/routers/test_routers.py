"""Each router's formula on a tiny hand-computed case, plus a contract every registered router meets."""
import math
import re

import pytest
import torch

from moe.model import build_model
from moe.routers import ROUTERS, capacity_slots
from moe.routers.topk import NOISE_EPSILON, smooth_load
from moe.validate import from_dict
from tests.helpers import config_problem

LN3 = math.log(3)


def router(name, input_shape=(1,), n_experts=2, **fields):
    cfg = from_dict({"router": name, "experts": n_experts, **fields})
    return ROUTERS.get(name)(cfg, input_shape, n_experts)


def set_linear(gate, weight, bias):
    with torch.no_grad():
        gate.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        gate.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_softmax_divides_by_the_temperature():
    r = router("softmax", temperature=2.0)
    set_linear(r.gate, [[1.0], [0.0]], [0.0, 0.0])
    out = r(torch.tensor([[2 * LN3]]))  # logits (2 ln 3, 0) / 2 -> p = (3/4, 1/4)
    assert torch.allclose(out.probs, torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(out.dense_weights(), torch.tensor([[0.75, 0.25]]))
    r.temperature = 1.0  # a regime may change it between epochs: p = (9/10, 1/10)
    assert torch.allclose(r(torch.tensor([[2 * LN3]])).probs, torch.tensor([[0.9, 0.1]]))


def test_mlp_gate_is_a_one_hidden_layer_network():
    r = router("softmax", gate="mlp", gate_hidden=2)
    set_linear(r.gate[0], [[1.0], [-1.0]], [0.0, 0.0])  # h = relu(x, -x)
    set_linear(r.gate[2], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    out = r(torch.tensor([[LN3], [-LN3]]))  # logits (ln 3, 0) and (0, ln 3)
    assert torch.allclose(out.probs, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))


def cnn_gate_by_hand(gate, x):
    """The cnn gate written out with torch.nn.functional and the module's own weights."""
    F = torch.nn.functional
    conv1, conv2, out = gate[0], gate[3], gate[-1]
    h = F.max_pool2d(F.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=1)), 2)
    h = F.relu(F.conv2d(h, conv2.weight, conv2.bias, padding=1)).mean((2, 3))  # global average pool [T, G]
    return h @ out.weight.T + out.bias


def test_cnn_gate_is_a_small_convolutional_network_on_the_image():
    torch.manual_seed(0)
    r = router("softmax", input_shape=(2, 9, 7), n_experts=3, dataset="mnist", gate="cnn", gate_hidden=4, temperature=2.0)
    convs = [m for m in r.gate.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(2, 4, (3, 3)), (4, 4, (3, 3))]
    x = torch.randn(5, 2, 9, 7)
    out = r(x)
    assert out.logits.shape == (5, 3) and torch.allclose(out.probs.sum(1), torch.ones(5))
    assert torch.allclose(out.logits, cnn_gate_by_hand(r.gate, x) / 2.0, atol=1e-6)


def test_cnn_gate_sees_the_spatial_structure():
    """A blob moved by an even offset, away from the borders, gives the same logits (convolutions, 2 x 2
    pool, global average); the same pixels in a random order do not: a gate on flattened pixels would
    see neither property."""
    torch.manual_seed(0)
    r = router("softmax", input_shape=(1, 20, 20), n_experts=3, dataset="mnist", gate="cnn", gate_hidden=4)
    blob = torch.rand(3, 3)
    image, moved = torch.zeros(2, 1, 20, 20), torch.zeros(1, 1, 20, 20)
    image[0, 0, 6:9, 6:9] = moved[0, 0, 8:11, 10:13] = blob  # its receptive field never reaches a border
    image[1] = image[0].flatten()[torch.randperm(400)].view(1, 20, 20)  # the same pixels, shuffled
    logits, moved_logits = r(image).logits, r(moved).logits
    assert torch.allclose(logits[0], moved_logits[0], atol=1e-6)
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)


def test_attention_router_queries_the_cnn_gates_features():
    torch.manual_seed(0)
    r = router("attention", input_shape=(1, 8, 8), dataset="mnist", expert="cnn", expert_hidden=3, gate="cnn", gate_hidden=5)
    assert r.query.in_features == 5 and any(isinstance(m, torch.nn.Conv2d) for m in r.gate.modules())
    x, hidden = torch.randn(4, 1, 8, 8), torch.randn(4, 2, 3)
    h_g = torch.nn.functional.relu(r.gate[:4](x)).mean((2, 3))  # pooled features [T, G]
    q, k = r.query(h_g), r.key(hidden)
    assert torch.allclose(r(x, hidden).logits, torch.einsum("td,ted->te", q, k) / math.sqrt(3), atol=1e-6)


def test_topk_keeps_the_k_largest_and_renormalises():
    r = router("topk", n_experts=3, top_k=2)
    set_linear(r.gate, [[0.0], [0.0], [0.0]], [0.0, math.log(2), LN3])  # p = (1, 2, 3) / 6
    out = r(torch.zeros(1, 1))
    assert out.plan.expert_ids.tolist() == [[2, 1]]
    assert torch.allclose(out.plan.weights, torch.tensor([[3 / 5, 2 / 5]]))
    r1 = router("topk", n_experts=3, top_k=1)
    set_linear(r1.gate, [[0.0], [0.0], [0.0]], [0.0, math.log(2), LN3])
    out = r1(torch.zeros(1, 1))
    assert out.plan.expert_ids.tolist() == [[2]] and torch.allclose(out.plan.weights, torch.tensor([[0.5]]))  # raw p


def test_noisy_topk_adds_scaled_gaussian_noise_only_while_training():
    r = router("topk", n_experts=3, top_k=1, noisy_gate=True)
    set_linear(r.gate, [[1.0], [0.0], [-1.0]], [0.0, 0.0, 0.0])
    set_linear(r.noise, [[0.0], [0.0], [0.0]], [0.0, 1.0, 2.0])
    x = torch.tensor([[0.5], [-1.0]])
    torch.manual_seed(5)
    out = r(x)
    torch.manual_seed(5)
    eps = torch.randn(2, 3)
    clean = torch.tensor([[0.5, 0.0, -0.5], [-1.0, 0.0, 1.0]])
    std = torch.nn.functional.softplus(torch.tensor([0.0, 1.0, 2.0])) + NOISE_EPSILON
    assert torch.allclose(out.logits, clean + eps * std)
    assert out.load is not None and out.load.shape == (3,)
    r.eval()
    assert torch.allclose(r(x).logits, clean) and r(x).load is None


def test_smooth_load_by_hand():
    """Shazeer et al. eq. 10 with H = (2, 1, 0), clean = (1.5, 1, 0.5), noise std 1, k = 1:
    expert 0 is in the top 1, its threshold is the 2nd largest (1): Phi(0.5); experts 1 and 2 are out,
    their threshold is the largest (2): Phi(-1), Phi(-1.5)."""
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    load = smooth_load(torch.tensor([[1.5, 1.0, 0.5]]), torch.tensor([[2.0, 1.0, 0.0]]), torch.ones(1, 3), 1)
    assert load.tolist() == pytest.approx([phi(0.5), phi(-1.0), phi(-1.5)], abs=1e-6)


def test_switch_drops_the_overflow_in_batch_order():
    r = router("switch", capacity=1.0)  # capacity ceil(1 * 4 / 2) = 2 samples per expert
    set_linear(r.gate, [[1.0], [-1.0]], [0.0, 0.0])
    x = torch.tensor([[LN3 / 2], [LN3 / 2], [LN3 / 2], [-LN3 / 2]])  # p = (3/4, 1/4) x 3, then (1/4, 3/4)
    out = r(x)
    assert out.plan.expert_ids[:, 0].tolist() == [0, 0, -1, 1]  # the third sample for expert 0 overflows
    assert out.dropped().tolist() == [False, False, True, False]
    assert torch.allclose(out.plan.weights[:, 0], torch.tensor([0.75, 0.75, 0.0, 0.75]))
    unlimited = router("switch")
    unlimited.load_state_dict(r.state_dict())
    assert unlimited(x).plan.expert_ids[:, 0].tolist() == [0, 0, 0, 1] and not unlimited.batch_dependent


def test_expert_choice_each_expert_takes_its_top_samples():
    r = router("expert_choice", temperature=1.0)  # c = 1: each expert takes ceil(4 / 2) = 2 samples
    set_linear(r.gate, [[1.0], [-1.0]], [0.0, 0.0])
    # S[:, 0] = sigmoid(2x): expert 0 takes the two largest x, expert 1 the two smallest
    x = torch.tensor([[2.0], [1.0], [-0.5], [-1.0]])
    out = r(x)
    s = torch.sigmoid(2 * x[:, 0])
    expected = torch.stack([torch.tensor([s[0], s[1], 0, 0]), torch.tensor([0, 0, 1 - s[2], 1 - s[3]])], 1)
    assert torch.allclose(out.dense_weights(), expected)  # raw scores, not renormalised
    wide = router("expert_choice", capacity=1.5)  # 3 samples each: sample 1 and 2 get two experts
    wide.load_state_dict(r.state_dict())
    taken = (wide(x).dense_weights() > 0).sum(1)
    assert taken.tolist() == [1, 2, 2, 1]
    narrow = router("expert_choice", capacity=0.5)  # 1 sample each: samples 1 and 2 get none
    narrow.load_state_dict(r.state_dict())
    assert narrow(x).dropped().tolist() == [False, True, True, False]


def test_capacity_slots():
    assert capacity_slots(1.0, 32, 8) == 4 and capacity_slots(1.25, 32, 8) == 5 and capacity_slots(1.0, 30, 8) == 4
    assert capacity_slots(0.01, 32, 8) == 1 and capacity_slots(10.0, 32, 8) == 32


def test_hash_is_a_fixed_balanced_bucketing_of_a_random_projection():
    r = router("hash", input_shape=(2,), n_experts=4, seed=3)
    assert list(r.parameters()) == []  # nothing to learn
    x = torch.rand(20000, 2)
    h = torch.frac(x.double() @ r.projection * 4096.0) % 1.0
    assert torch.equal(r.bucket(x), (h * 4).long())  # floor(E * hash) by hand
    out = r(x)
    assert torch.equal(out.assignment(), (h * 4).long()) and torch.all(out.plan.weights == 1)
    share = torch.bincount(out.assignment(), minlength=4).double() / len(x)
    assert torch.allclose(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)  # balanced
    same, other = router("hash", input_shape=(2,), n_experts=4, seed=3), router("hash", input_shape=(2,), n_experts=4, seed=4)
    assert torch.equal(same(x).assignment(), out.assignment()) and not torch.equal(other(x).assignment(), out.assignment())


def test_attention_router_by_hand():
    r = router("attention", input_shape=(2,), expert="mlp", expert_hidden=2)  # gate linear: Q = x W_q, d = 2
    with torch.no_grad():
        r.query.weight.copy_(torch.eye(2))
        r.key.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[1.0, 0.0]])
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])  # h_0 = (1, 0), h_1 = (0, 3): K = (2, 0), (0, 3)
    out = r(x, hidden)
    assert torch.allclose(out.logits, torch.tensor([[2 / math.sqrt(2), 0.0]]))  # Q.K_e / sqrt(d)
    assert torch.allclose(out.dense_weights(), torch.softmax(out.logits, 1))  # dense
    with pytest.raises(ValueError, match="hidden"):
        r(x)


def test_prototype_router_by_hand():
    r = router("prototype", input_shape=(2,), temperature=0.5)
    with torch.no_grad():
        r.prototypes.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    out = r(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # d^2 = (1, 1) and (2, 0); logits -d^2 / 0.5
    assert torch.allclose(out.logits, torch.tensor([[-2.0, -2.0], [-4.0, 0.0]]))
    assert torch.allclose(out.probs[0], torch.tensor([0.5, 0.5]))
    assert out.probs.detach()[1, 1].item() == pytest.approx(1 / (1 + math.exp(-4)))
    x = torch.arange(10.0).view(5, 2)
    r.init_from_data(x, torch.Generator().manual_seed(0))
    rows = {tuple(p) for p in r.prototypes.tolist()}
    assert len(rows) == 2 and rows <= {tuple(v) for v in x.tolist()}  # two distinct training samples


def test_linear_router_is_a_linear_softmax_gate_even_beside_a_black_box():
    r = router("linear")
    set_linear(r.gate, [[1.0], [0.0]], [0.0, 0.0])
    assert torch.allclose(r(torch.tensor([[LN3]])).probs, torch.tensor([[0.75, 0.25]]))
    cfg = from_dict({"router": "softmax", "gate": "mlp", "match_router": "linear", "match_loss": 1.0})
    model = build_model(cfg, (2,), 6)
    assert isinstance(model.router.gate, torch.nn.Sequential) and isinstance(model.match_router.gate, torch.nn.Linear)


@pytest.mark.parametrize("values,field,text", [
    ({"router": "attention", "expert": "linear"}, "router", "hidden state"),
    ({"router": "expert_choice", "capacity": 0}, "capacity", "> 0"),
    ({"router": "switch", "capacity": -1.0}, "capacity", "> 0"),
    ({"router": "hash", "importance_loss": 0.1}, "importance_loss", "hash"),
    ({"router": "hash", "gate": "mlp"}, "gate", "hash"),
    ({"router": "prototype", "gate": "mlp"}, "gate", "prototype"),
    ({"router": "linear", "gate": "mlp"}, "gate", "linear"),
    ({"router": "hash", "gate": "cnn", "dataset": "mnist"}, "gate", "hash"),
    ({"router": "prototype", "gate": "cnn", "dataset": "mnist"}, "gate", "prototype"),
    ({"gate": "cnn"}, "gate", "valid choices for it: linear, mlp"),  # gm6's inputs are 2-D points
    ({"router": "attention", "expert": "mlp", "gate": "cnn"}, "gate", "image inputs"),
    ({"gate": "deep"}, "gate", "linear, mlp, cnn"),
])
def test_invalid_router_combinations_fail_before_training(values, field, text):
    line = config_problem(values)
    assert line.startswith(f"{field}:") and text in line


def test_attention_with_hidden_experts_is_valid():
    from_dict({"router": "attention", "expert": "mlp"})
    from_dict({"router": "attention", "expert": "cnn", "dataset": "mnist"})
    from_dict({"router": "attention", "expert": "cnn", "dataset": "mnist", "gate": "cnn"})


def test_a_cnn_gate_built_for_non_image_data_is_refused():
    """The config rule checked again on the loaded data, e.g. a dataset passed in by a caller."""
    from moe.config import ConfigError

    cfg = from_dict({"router": "softmax", "gate": "cnn", "dataset": "mnist"})
    with pytest.raises(ConfigError, match="^gate: .*image inputs"):
        build_model(cfg, (2,), 6)


@pytest.mark.parametrize("name", ROUTERS.names())
def test_every_router_names_its_source_and_returns_a_consistent_plan(name):
    cls = ROUTERS.get(name)
    assert cls.__doc__ and re.search(r"(19|20)\d\d", cls.__doc__), f"{name}: docstring must name its source (with a year)"
    extra = {"expert": "mlp", "expert_hidden": 4} if name == "attention" else {}
    cfg = from_dict({"router": name, "experts": 3, "top_k": 2, **extra})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 4)
    x = torch.rand(10, 2)
    out = model(x)
    w = out.routing.dense_weights()
    assert w.shape == (10, 3) and torch.isfinite(w).all() and (w >= 0).all()
    assert torch.allclose(out.routing.probs.sum(1), torch.ones(10))
    assert torch.isfinite(out.log_probs).all() and out.log_probs.shape == (10, 4)
    if cls.learned:
        (-out.log_probs[:, 0].mean()).backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.router.parameters())


def test_a_cnn_gate_trains_on_images(fake_mnist_root, monkeypatch):
    """A short run on tiny fake MNIST (10 classes): the loss falls, training accuracy beats chance and
    the convolutional gate itself learns (its first convolution moves)."""
    from moe.training import loop as train

    cfg = from_dict({"dataset": "mnist", "data_root": str(fake_mnist_root), "router": "softmax", "gate": "cnn",
                     "gate_hidden": 4, "experts": 2, "epochs": 6, "batch_size": 16})
    torch.manual_seed(cfg.seed)
    initial = build_model(cfg, (1, 28, 28), 10).router.gate[0].weight.detach().clone()
    built, original = [], train.build_model
    monkeypatch.setattr(train, "build_model", lambda *a: built.append(original(*a)) or built[-1])  # keep the trained model
    rec = train.run(cfg)
    losses = [h["train_loss"] for h in rec["history"]]
    assert rec["status"] == "ok" and losses[-1] < losses[0]
    assert rec["history"][-1]["train_accuracy"] > 0.2  # chance: 0.1
    assert not torch.allclose(built[0].router.gate[0].weight.detach().cpu(), initial)
