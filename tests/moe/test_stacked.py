"""moe.training.stacked: S seeds trained as one stacked model give the records of S separate moe.training.loop.run calls, within
1e-5 (floats, relative above 1) and exactly (integers: allocations, assignments), for every component that
supports stacking; a configuration that does not is refused one line per field; a diverging seed makes every
seed run separately."""

import numpy as np
import pytest

import moe.training.loop
from moe.config import ConfigError
from moe.data import load_dataset
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
    cfg = {"dataset": "gm6", "router": "softmax", "expert": "linear", "epochs": 3, "n_train": 600, "n_test": 200, **fields}
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
