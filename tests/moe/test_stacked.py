"""moe.training.stacked: S seeds trained as one stacked model give the records of S separate moe.training.loop.run calls, within
1e-5 (floats, relative above 1) and exactly (integers: allocations, assignments), for every component that
supports stacking; a configuration that does not is refused one line per field; a diverging seed makes every
seed run separately."""

import numpy as np
import torch
import pytest

import moe.training.loop
from moe.config import ConfigError
from moe.data import load_dataset
import moe.training.stacked as stacked_module
from moe.training.stacked import problems, train_stacked
from moe.validate import from_dict
from moe.records.record_diff import largest

SKIP = ("timing", "versions", "epoch_s", "stacked", "started_at")  # when, not what: the rest of provenance compares


def assert_close_records(stacked, separate, tol=1e-5):
    """Every leaf within ``tol`` (moe.records.record_diff: absolute up to 1, relative above); the int8 weight images of
    ``views`` within one quantisation step (weights 1e-8 apart can round to neighbouring steps)."""
    for s, (a, b) in enumerate(zip(stacked, separate)):
        worst = largest(a, b, skip=SKIP, one_step_views=True)
        assert worst[1] <= tol, f"seed {s}: {worst}"


CASES = [dict(gate="linear", objective="mixture_nll", optimizer="adam", experts=4),
         dict(gate="mlp", gate_hidden=8, objective="mixture_nll", optimizer="rmsprop", momentum=0.9, lr_ratio=10, experts=3),
         dict(gate="linear", objective="expectation", optimizer="sgd", momentum=0.9, experts=2, gate_lr=0.05),
         dict(gate="mlp", gate_hidden=8, objective="expectation", optimizer="adam", weight_decay=0.01, experts=2,
              temperature=2.0, temperature_decay=0.5),
         dict(router="topk", top_k=1, gate="linear", objective="mixture_nll", optimizer="adam", experts=4, lr_ratio=100),
         dict(router="topk", top_k=2, gate="mlp", gate_hidden=8, objective="mixture_nll", optimizer="rmsprop", momentum=0.9,
              experts=5),
         dict(router="topk", top_k=3, gate="linear", objective="mixture_nll", optimizer="adam", experts=3),  # k = E: renormalised
         dict(router="hash", gate="linear", objective="mixture_nll", optimizer="adam", experts=4, lr_ratio=100),
         dict(router="expert_choice", gate="linear", objective="mixture_nll", optimizer="adam", experts=4, lr_ratio=100),
         dict(router="expert_choice", gate="mlp", gate_hidden=8, objective="expectation", optimizer="sgd", momentum=0.9,
              experts=3, capacity=0.5)]  # capacity 0.5: half the samples go to no expert


@pytest.mark.parametrize("fields", CASES, ids=[f"{c.get('router', 'softmax')}{c.get('top_k', '')}-{c['gate']}-{c['objective']}-{c['optimizer']}"
                                               for c in CASES])
def test_equal_to_separate_runs(fields):
    cfg = {"dataset": "gm6", "router": "softmax", "expert": "linear", "epochs": 3, "n_train": 300, "n_test": 200, **fields}
    seeds = [0, 1, 5]
    stacked = train_stacked(cfg, seeds)
    separate = [moe.training.loop.run({**cfg, "seed": s}) for s in seeds]
    assert [r["seed"] for r in stacked] == seeds and all(r["stacked"] == {"seeds": 3, "fallback": None} for r in stacked)
    assert_close_records(stacked, separate)


def test_image_inputs_mlp_gate():
    """MNIST-shaped inputs [1, 28, 28] through the flattened mlp gate and linear experts."""
    rng = np.random.default_rng(0)
    data = {"name": "mnist", "class_names": [str(c) for c in range(10)], "grouping": None, "group_names": None,
            "x_train": rng.random((300, 1, 28, 28), dtype=np.float32), "y_train": np.arange(300) % 10,
            "x_test": rng.random((100, 1, 28, 28), dtype=np.float32), "y_test": np.arange(100) % 10}
    for cfg in ({"dataset": "mnist", "experts": 5, "gate": "mlp", "gate_hidden": 16, "epochs": 2},
                {"dataset": "mnist", "experts": 10, "epochs": 2}):  # 10 experts: some weight images a step apart
        stacked = train_stacked(cfg, [3, 4], data=data)
        assert_close_records(stacked, [moe.training.loop.run({**cfg, "seed": s}, data=data) for s in (3, 4)])


def test_refusals_name_each_field():
    cfg = from_dict({"dataset": "gm6", "router": "switch", "expert": "mlp", "z_loss": 0.1, "regime": "frozen_gate"})
    lines = problems(cfg)
    assert [line.split(":")[0] for line in lines] == ["router", "expert", "regime", "z_loss"]
    assert "softmax, topk, hash, expert_choice" in lines[0]
    noisy, = problems(from_dict({"dataset": "gm6", "router": "topk", "top_k": 2, "noisy_gate": True}))
    assert noisy.startswith("noisy_gate:")
    with pytest.raises(ConfigError) as err:
        train_stacked(cfg, [0, 1])
    assert err.value.problems == lines
    with pytest.raises(ValueError, match="distinct"):
        train_stacked({"dataset": "gm6"}, [1, 1])
    for routing in ("hard", "gumbel"):  # one expert per sample: the stacked forward mixes them all, so it must refuse
        line, = problems(from_dict({"dataset": "gm6", "router": "softmax", "routing": routing}))
        assert line.startswith("routing:") and routing in line and "soft" in line


def test_a_diverging_seed_falls_back_to_separate_runs():
    data = load_dataset("gm6").to_numpy()
    data["x_train"] = data["x_train"].copy()
    data["x_train"][:] = np.nan  # the gate's logits are NaN at once: every seed diverges
    cfg = {"dataset": "gm6", "epochs": 2}
    stacked = train_stacked(cfg, [0, 1], data=data)
    separate = [moe.training.loop.run({**cfg, "seed": s}, data=data) for s in (0, 1)]
    assert all(r["stacked"]["fallback"] == "non-finite gate logits in training" for r in stacked)
    assert [r["status"] for r in stacked] == [r["status"] for r in separate] == ["diverged", "diverged"]
    assert_close_records(stacked, separate, tol=0.0)


def stepwise_stats(steps, S, E):
    """The reference: each statistic reduced step by step (the loop SeedStats replaces), in float64/float32 as a run."""
    loss = torch.zeros(S, dtype=torch.float64)
    task = torch.zeros(S, dtype=torch.float32)
    correct, dropped = torch.zeros(S, dtype=torch.long), torch.zeros(S, dtype=torch.long)
    top, pairs = torch.zeros(S, E, dtype=torch.long), torch.zeros(S, E, dtype=torch.long)
    weight, nll_sum = torch.zeros(S, E, dtype=torch.float64), torch.zeros(S, E, dtype=torch.float64)
    seen = 0
    for losses, mixed, ids, w, expert_lp, y in steps:
        B = ids.shape[1]
        loss += losses.double() * B
        task = task + losses.float() * B
        correct += (mixed.argmax(2) == y).sum(1)
        valid, at = ids >= 0, ids.clamp_min(0)
        first = ids[..., 0]
        top += (torch.nn.functional.one_hot(first.clamp_min(0), E) * (first >= 0)[..., None]).sum(1)
        dropped += (first < 0).sum(1)
        weight += torch.zeros(S, B, E).scatter_add(2, at, torch.where(valid, w, 0)).sum(1).double()
        nll = -expert_lp.gather(3, y[:, :, None, None].expand(-1, -1, E, 1))[..., 0]
        nll_sum.scatter_add_(1, at.flatten(1), torch.where(valid, nll.gather(2, at), 0).flatten(1).double())
        pairs.scatter_add_(1, at.flatten(1), valid.flatten(1).long())
        seen += B
    return [{"train_loss": float(loss[s]) / seen, "train_accuracy": int(correct[s]) / seen,
             "loss_task": float(task[s]) / seen, "expert_share": (top[s].double() / seen).tolist(),
             "expert_weight": (weight[s] / seen).tolist(),
             "expert_loss": [float(v / c) if c > 0 else None for v, c in zip(nll_sum[s].tolist(), pairs[s].tolist())],
             "dropped": int(dropped[s]) / seen} for s in range(S)]


@pytest.mark.parametrize("flush", [None, 500])
def test_seed_stats_equal_step_by_step_sums(flush, monkeypatch):
    """SeedStats reduces once per epoch (or per flush) what each step kept: every statistic bitwise the step-by-step
    sums, with steps of unequal sizes and slot widths (expert choice: -1 slots) and a flush inside the epoch."""
    if flush:
        monkeypatch.setattr(stacked_module, "FLUSH_FLOATS", flush)
    g = torch.Generator().manual_seed(0)
    S, E, C = 2, 5, 4
    steps = []
    for B, k in [(16, 2), (16, 3), (16, 1), (16, 3)] * 10 + [(7, 2)]:
        ids = torch.randint(-1, E, (S, B, k), generator=g)
        w = torch.rand(S, B, k, generator=g) * (ids >= 0)
        steps.append((torch.rand(S, generator=g) * 3 + 0.1, torch.randn(S, B, C, generator=g), ids, w,
                      torch.randn(S, B, E, C, generator=g).log_softmax(-1), torch.randint(0, C, (S, B), generator=g)))
    stats = stacked_module.SeedStats(S, E, torch.device("cpu"))
    for step in steps:
        stats.add(*step)
    stats.finish()
    assert [stats.of(s) for s in range(S)] == stepwise_stats(steps, S, E)


@pytest.mark.parametrize("capacity", [1.0, 0.5, 2.0])
def test_stacked_expert_choice_equals_each_seeds_plan(capacity):
    """The stacked expert-choice slots [S, B, width] are each seed's RoutingPlan.from_assignments slots (the
    kernels' plan), padded to the widest seed: the same integers and weights, and the same gradient into the
    scores."""
    from kernels import RoutingPlan
    from moe.routers.base import capacity_slots

    g = torch.Generator().manual_seed(1)
    S, B, E = 3, 24, 4
    logits = torch.randn(S, B, E, generator=g)
    logits[1, :6] = 0.0  # ties: equal scores in a column
    scores = logits.softmax(-1).requires_grad_(True)
    stack = stacked_module.StackedMixture.__new__(stacked_module.StackedMixture)
    stack.capacity = capacity
    ids, w = stack.expert_choice(scores)
    k = capacity_slots(capacity, B, E)
    ref_scores = scores.detach().clone().requires_grad_(True)
    plans = []
    for s in range(S):
        weight, token = ref_scores[s].topk(k, dim=0)
        expert = torch.arange(E).expand(k, -1)
        plans.append(RoutingPlan.from_assignments(token.T.flatten(), expert.T.flatten(), weight.T.flatten(), B, E))
    width = max(p.k for p in plans)
    ref_ids = torch.stack([torch.nn.functional.pad(p.expert_ids, (0, width - p.k), value=-1) for p in plans])
    ref_w = torch.stack([torch.nn.functional.pad(p.weights, (0, width - p.k)) for p in plans])
    assert torch.equal(ids, ref_ids) and torch.equal(w.detach(), ref_w.detach())
    upstream = torch.randn(w.shape, generator=g)
    (w * upstream).sum().backward()
    (ref_w * upstream).sum().backward()
    assert torch.equal(scores.grad, ref_scores.grad)
