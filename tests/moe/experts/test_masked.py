"""Masked experts (``mask_experts``, the seed code's pair experts): exactly zero probability outside an expert's
classes, no gradient into them, every objective finite; masked in pre-training and after, refit 'same' masked
and 'new' full; the seed code's MNIST pair splits."""
import pytest
import torch
from torch import nn

from kernels import RoutingPlan
from moe.training.checkpoint import TrainState
from moe.config import Config
from moe.experts import EXPERTS
from moe.experts.base import MASKED_LOG_PROB
from moe.model import build_model
from moe.objectives import OBJECTIVES, Loss
from moe.regimes import SPLITS
from moe.training.loop import fresh_experts, run
from moe.validate import from_dict
from tests.helpers import config_problem

SPLIT = [[0, 1], [2], [3, 4]]  # 3 experts, 5 classes
SHAPES = {"linear": (7,), "mlp": (7,), "cnn": (1, 8, 8), "seed_cnn": (1, 8, 8)}


def masked_bank(kind: str):
    torch.manual_seed(0)
    bank = EXPERTS.get(kind)(Config(expert=kind, experts=3, expert_hidden=4), SHAPES[kind], 5)
    bank.mask_classes(SPLIT, 5)
    return bank


def last_linear(expert: nn.Module) -> nn.Linear:
    return [m for m in expert.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_a_masked_expert_gives_exactly_zero_probability_outside_its_classes(kind):
    bank = masked_bank(kind)
    x = torch.randn(6, *SHAPES[kind])
    out = bank.forward_all(x)  # [T, E, C]
    probs = out.softmax(-1)
    logits = bank.all_logits(x)  # the unmasked logits
    for e, own in enumerate(SPLIT):
        other = [c for c in range(5) if c not in own]
        assert torch.all(probs[:, e, other] == 0)  # exactly zero
        assert torch.all(out[:, e, other] == MASKED_LOG_PROB)
        assert torch.allclose(probs[:, e, own], logits[:, e, own].softmax(-1), atol=1e-6)  # a softmax over its classes
    assert torch.allclose(torch.log_softmax(out, -1), out, atol=1e-5)  # log-probabilities: log_softmax gives them back
    # the routed path agrees with the dense one, row by row
    experts = torch.tensor([2, 0, 1, 0, 2, 1])
    plan = RoutingPlan.from_assignments(torch.arange(6), experts, torch.ones(6), 6, 3)
    routed = bank.forward_routed(x, plan)
    dense = out[plan.row_tokens, experts[plan.row_tokens]]
    assert torch.allclose(routed, dense, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_no_gradient_leaks_into_the_classes_an_expert_does_not_own(kind):
    bank = masked_bank(kind)
    x = torch.randn(6, *SHAPES[kind])
    weights = torch.randn(6, 3, 5)  # a loss that reads every output, the masked ones included
    (torch.log_softmax(bank.forward_all(x), -1) * weights).sum().backward()
    for e, own in enumerate(SPLIT):
        head = last_linear(bank.experts[e])
        other = [c for c in range(5) if c not in own]
        assert torch.all(head.weight.grad[other] == 0) and torch.all(head.bias.grad[other] == 0)
        if len(own) > 1:  # (a softmax over one class is constant: nothing to learn)
            assert head.weight.grad[own].abs().sum() > 0  # its own classes do learn


@pytest.mark.parametrize("objective", ["mixture_nll", "expectation", "competitive", "cooperative"])
@pytest.mark.parametrize("router", ["softmax", "topk"])
def test_every_objective_stays_finite_with_masked_experts(objective, router):
    cfg = from_dict({"dataset": "gm6", "experts": 3, "regime": "pretrain", "class_split": [[0, 1], [2, 3], [4, 5]],
                     "mask_experts": True, "objective": objective, "router": router, "top_k": 1})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 6)
    x, y = torch.rand(64, 2), torch.arange(64) % 6  # top-1 routing sends many samples to an expert that cannot predict them
    out = model(x)
    loss, _ = Loss(cfg)(out, x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if objective == "expectation":  # the seed's cap: a sample no routed expert can predict costs -log(1e-7)
        assert float(OBJECTIVES.get("expectation")(out, y).detach()) <= 16.2
    if router == "softmax" and objective != "cooperative":  # a dense mixture: every class owned by a routed expert
        assert torch.isfinite(out.log_probs).all() and torch.allclose(out.log_probs.exp().sum(1), torch.ones(64), atol=1e-5)


def masked_config(**fields):
    return from_dict({"dataset": "gm6", "experts": 3, "regime": "pretrain_frozen_gate", "class_split": [[0, 1], [2, 3], [4, 5]],
                      "mask_experts": True, "n_train": 120, "n_test": 60, "epochs": 1, "pretrain_epochs": 1,
                      "refit_epochs": 2, **fields})


def test_refit_same_is_masked_and_new_is_full():
    cfg = masked_config()
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 6)
    initial = {k: v.clone() for k, v in model.experts.state_dict().items()}
    mask = model.experts.class_mask.clone()
    assert mask.tolist() == [[c in part for c in range(6)] for part in cfg.class_split]
    fresh_experts(cfg, model, initial, "new", (2,), 6)
    assert model.experts.class_mask.all()  # full 6-class experts
    assert model.experts.forward_all(torch.rand(4, 2)).softmax(-1).gt(0).all()
    fresh_experts(cfg, model, initial, "same", (2,), 6)
    assert torch.equal(model.experts.class_mask, mask)  # masked again, from the same initial weights
    assert all(torch.equal(v, initial[k]) for k, v in model.experts.state_dict().items())


@pytest.mark.parametrize("refit_init", ["same", "new"])
def test_masked_in_pretraining_and_after_and_as_refit_init_says(refit_init):
    """The mask is part of the saved state after every epoch: masked through pretrain and gate phases; in the
    refit phase masked ('same') or full ('new'); a run resumed inside the refit phase ends exactly the same."""
    cfg = masked_config(refit_init=refit_init)
    states = []
    record = run(cfg, on_state=states.append)
    assert record["status"] == "ok" and [h["phase"] for h in record["history"]] == ["pretrain", "joint", "experts", "experts"]
    masks = [TrainState.from_bytes(s).model["experts.class_mask"] for s in states]
    owned = torch.tensor([[c in part for c in range(6)] for part in cfg.class_split])
    assert torch.equal(masks[0], owned) and torch.equal(masks[1], owned)  # pretrain, then joint: masked
    assert all(torch.equal(m, owned if refit_init == "same" else torch.ones_like(owned)) for m in masks[2:])
    resumed = run(cfg, state=states[2])  # after the first refit epoch
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_s"} for h in r["history"]]  # noqa: E731
    assert strip(resumed) == strip(record) and resumed["test"] == record["test"]


def test_unmasked_runs_have_no_mask_and_mask_experts_needs_a_class_split():
    torch.manual_seed(0)
    model = build_model(from_dict({"dataset": "gm6", "experts": 3}), (2,), 6)
    assert not model.experts.masked and "experts.class_mask" not in model.state_dict()
    assert config_problem({"mask_experts": True}) == (
        "mask_experts: only the pretrain regimes have a class split to mask the experts by, got regime 'joint'; "
        "valid regimes for it: pretrain, pretrain_frozen_gate")


@pytest.mark.parametrize("name", [f"mnist_pairs_{i}" for i in range(1, 6)])
def test_the_seed_codes_mnist_pair_splits(name):
    split = SPLITS[name]
    assert len(split) == 5 and all(len(p) == 2 for p in split) and sorted(c for p in split for c in p) == list(range(10))
    cfg = from_dict({"preset": "seed_mnist", "regime": "pretrain_frozen_gate", "class_split": name, "mask_experts": True})
    assert cfg.class_split == name
    assert "class_split: needs one list of classes per expert (4), got 5" in config_problem(
        {"dataset": "mnist", "experts": 4, "regime": "pretrain", "class_split": name})
