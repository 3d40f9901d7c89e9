"""moe.scoring.ablation: removing one expert at a time, on hand-built models with known answers and against a per-sample
reference computed from the router's probabilities and every expert's own prediction."""
import math

import pytest
import torch

from moe.scoring import ablation
from moe.data import Dataset
from moe.training.evaluate import eval_order, evaluate, predict
from moe.model import build_model
from moe.routers import ROUTERS, Router, Routing
from moe.validate import from_dict

C = 3


def owner_model(router="switch", **fields):
    """3 classes at x = 2 e_c + noise, 3 linear experts: the gate sends class c to expert c (logit 5), its next
    choice is expert (c + 1) mod 3 (logit 1); expert e always predicts class e. Expert c owns class c exactly."""
    cfg = from_dict({"router": router, "experts": 3, "expert": "linear", **fields})
    model = build_model(cfg, (3,), C)
    with torch.no_grad():
        gate = model.router.gate
        gate.weight.copy_(2.5 * torch.eye(3) + 0.5 * torch.roll(torch.eye(3), 1, 0))
        gate.bias.zero_()
        for e, lin in enumerate(model.experts.experts):
            lin.weight.zero_()
            lin.bias.copy_(torch.nn.functional.one_hot(torch.tensor(e), C).float() * 5)
    return model.eval()


def owner_data(n_per_class=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(n_per_class)
    x = 2 * torch.nn.functional.one_hot(y, C).float() + 0.1 * torch.randn(len(y), C, generator=g)
    return x, y


@pytest.mark.parametrize("router", ["switch", "topk", "softmax", "linear"])
def test_removing_the_owner_of_a_class_costs_that_class_only(router):
    x, y = owner_data()
    model = owner_model(router)
    abl = ablation.ablate(model, x, y, C, batch_size=16)
    # the next expert predicts its own class: the owned class drops from 1 to 0, the others do not move
    assert torch.allclose(abl.matrix, torch.eye(3, dtype=torch.float64))
    assert abl.rule == ablation.RULE_REROUTED


def test_the_next_expert_sets_the_accuracy_of_the_rerouted_class():
    x, y = owner_data()
    model = owner_model("switch")
    with torch.no_grad():  # expert 1 (class 0's next choice) now classifies by the input: right on class 0 too
        model.experts.experts[1].weight.copy_(5 * torch.eye(3))
        model.experts.experts[1].bias.zero_()
    d = ablation.ablate(model, x, y, C, batch_size=64).matrix
    assert d[0].tolist() == [0.0, 0.0, 0.0]  # removing expert 0 costs nothing: expert 1 gets class 0 right
    assert d[1].tolist() == [0.0, 1.0, 0.0] and d[2].tolist() == [0.0, 0.0, 1.0]


def reference_top1(model, x, y, e):
    """Per sample: the highest-probability expert other than e, and its own prediction."""
    routing = model.router(x)
    probs = routing.probs.masked_fill(torch.nn.functional.one_hot(torch.tensor(e), probs_n(routing)).bool(), -1)
    chosen = probs.argmax(1)
    preds = model.experts.forward_all(x).argmax(-1)
    return preds.gather(1, chosen[:, None])[:, 0] == y


def probs_n(routing):
    return routing.probs.shape[1]


def class_acc(right, y):
    return torch.stack([right[y == c].double().mean() for c in range(int(y.max()) + 1)])


def random_model(router, experts=4, seed=0, **fields):
    torch.manual_seed(seed)
    cfg = from_dict({"router": router, "experts": experts, "expert": "linear", **fields})
    return build_model(cfg, (5,), 4).eval()


def random_data(n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 4, (n,), generator=g)


@torch.no_grad()
@pytest.mark.parametrize("router", ["switch", "topk"])
def test_top1_ablation_matches_the_next_choice_reference(router):
    model, (x, y) = random_model(router), random_data()
    d = ablation.ablate(model, x, y, 4, batch_size=64).matrix
    full = class_acc(model(x).log_probs.argmax(1) == y, y)
    for e in range(4):
        assert torch.allclose(d[e], full - class_acc(reference_top1(model, x, y, e), y), atol=1e-12)


@torch.no_grad()
@pytest.mark.parametrize("router", ["softmax", "soft", "prototype"])
def test_dense_ablation_renormalises_over_the_other_experts(router):
    model, (x, y) = random_model(router, soft_slots=2) if router == "soft" else random_model(router), random_data()
    d = ablation.ablate(model, x, y, 4, batch_size=64).matrix
    probs = model.router(x).probs  # [T, E]
    log_q = torch.log_softmax(model.experts.forward_all(x), -1)  # [T, E, C]
    full = class_acc(model(x).log_probs.argmax(1) == y, y)
    for e in range(4):
        w = probs.clone()
        w[:, e] = 0
        w = w / w.sum(1, keepdim=True)
        pred = (w[..., None] * log_q.exp()).sum(1).argmax(1)
        assert torch.allclose(d[e], full - class_acc(pred == y, y), atol=1e-12)


@torch.no_grad()
def test_topk2_ablation_takes_the_next_best_into_the_freed_slot():
    model, (x, y) = random_model("topk", top_k=2), random_data()
    d = ablation.ablate(model, x, y, 4, batch_size=64).matrix
    logits = model.router(x).logits
    log_q = torch.log_softmax(model.experts.forward_all(x), -1)
    full = class_acc(model(x).log_probs.argmax(1) == y, y)
    for e in range(4):
        masked = logits.clone()
        masked[:, e] = -math.inf
        top = masked.topk(2, 1)
        w = torch.zeros_like(logits).scatter(1, top.indices, top.values.softmax(1))  # renormalised over the two
        pred = (w[..., None] * log_q.exp()).sum(1).argmax(1)
        assert torch.allclose(d[e], full - class_acc(pred == y, y), atol=1e-12)


@torch.no_grad()
def test_hash_ablation_sends_the_bucket_to_the_next_expert_in_hash_order():
    model, (x, y) = random_model("hash"), random_data()
    d = ablation.ablate(model, x, y, 4, batch_size=64).matrix
    bucket = model.router.bucket(x)
    preds = model.experts.forward_all(x).argmax(-1)
    full = class_acc(preds.gather(1, bucket[:, None])[:, 0] == y, y)
    for e in range(4):
        moved = torch.where(bucket == e, (bucket + 1) % 4, bucket)
        assert torch.allclose(d[e], full - class_acc(preds.gather(1, moved[:, None])[:, 0] == y, y), atol=1e-12)
    # two removed: e.g. experts 1 and 2 -> bucket 1 goes to 3
    model.router.removed = torch.tensor([False, True, True, False])
    assert model.router.next_present(torch.tensor([0, 1, 2, 3])).tolist() == [0, 3, 3, 3]
    model.router.removed = None


@torch.no_grad()
def test_expert_choice_ablation_leaves_the_removed_column_empty():
    model, (x, y) = random_model("expert_choice", batch_size=50), random_data()
    removed = torch.tensor([True, False, False, False])
    order = eval_order(model, len(x))
    with ablation.without_experts(model, removed) as wrapper:
        out = model(x[order][:50])
        assert not (out.routing.plan.expert_ids == 0).any()
    assert not wrapper.ignored and model.router.removed is None and not isinstance(model.router, ablation._WithoutExperts)
    abl = ablation.ablate(model, x, y, 4, batch_size=50, order=order)
    assert abl.matrix.shape == (4, 4) and abl.rule == ablation.RULE_REROUTED


def test_one_expert_has_no_next_choice_and_many_experts_are_skipped():
    model, (x, y) = random_model("softmax", experts=1), random_data()
    abl = ablation.ablate(model, x, y, 4, batch_size=64)
    full = class_acc(model(x).log_probs.argmax(1) == y, y)
    assert torch.allclose(abl.matrix, full[None].double()) and "no other expert" in abl.rule
    skipped = ablation.ablate(random_model("softmax", experts=5), x, y, 4, batch_size=64, max_experts=4)
    assert skipped.matrix is None and skipped.rule.startswith("skipped: 5 experts > 4")


def test_a_router_that_ignores_the_removal_has_the_experts_slots_dropped():
    class Stubborn(Router):  # builds its plan from unmasked logits
        def forward(self, x, expert_hidden=None):
            from kernels import topk_route
            logits = self.gate(x)
            return Routing(topk_route(logits, 1, renormalize=False), logits, logits.softmax(-1))

    model, (x, y) = random_model("switch"), random_data()
    stubborn = Stubborn(from_dict({"router": "switch", "experts": 4}), (5,), 4)
    stubborn.gate = model.router.gate
    model.router = stubborn
    abl = ablation.ablate(model, x, y, 4, batch_size=64)
    assert abl.rule == ablation.RULE_DROPPED
    assignment = model.router(x).plan.expert_ids[:, 0]
    full = class_acc(model(x).log_probs.argmax(1) == y, y)
    for e in range(4):  # its samples go to no expert and count as wrong
        right = (model(x).log_probs.argmax(1) == y) & (assignment != e)
        assert torch.allclose(abl.matrix[e], full - class_acc(right, y), atol=1e-12)


def test_evaluate_records_the_ablation_and_its_scores(monkeypatch):
    x, y = owner_data()
    data = Dataset("toy", x, y, x, y, class_names=["a", "b", "c"])
    fields = evaluate(owner_model("topk", top_k=2), data, torch.device("cpu"), 16)
    assert fields["ablation"] is not None and len(fields["ablation"]) == 3 and len(fields["ablation"][0]) == 3
    assert fields["ablation_rule"] == ablation.RULE_REROUTED
    assert fields["test"]["causal_specialisation"] == pytest.approx(1.0)
    assert len(fields["coactivation"]) == 3  # k = 2: a table
    one = evaluate(owner_model("switch"), data, torch.device("cpu"), 16)
    assert one["coactivation"] is None  # k = 1
    import moe.training.evaluate
    monkeypatch.setattr(moe.training.evaluate, "MAX_COACTIVATION_EXPERTS", 2)  # beyond the cap (64 experts): no E x E table
    assert evaluate(owner_model("topk", top_k=2), data, torch.device("cpu"), 16)["coactivation"] is None
    assert one["test"]["causal_agreement"] == pytest.approx(1.0)
    p = predict(owner_model("switch"), x)
    assert p["assignment"].tolist() == y.tolist()  # the hand-built gate routes class c to expert c


def test_routers_registered_here_all_honour_the_removal():
    x, y = random_data(n=64)
    for name in ("softmax", "linear", "topk", "switch", "expert_choice", "hash", "soft", "prototype"):
        model = random_model(name, batch_size=64)
        abl = ablation.ablate(model, x, y, 4, batch_size=64, order=eval_order(model, len(x)))
        assert abl.rule == ablation.RULE_REROUTED, name
    assert "soft" in ROUTERS
