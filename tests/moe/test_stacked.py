"""moe.stacked: S seeds trained as one stacked model give the records of S separate moe.train.run calls, within
1e-5 (floats, relative above 1) and exactly (integers: allocations, assignments), for every component that
supports stacking; a configuration that does not is refused one line per field; a diverging seed makes every
seed run separately."""
import math

import numpy as np
import pytest

import moe.train
from moe.config import ConfigError
from moe.data import load_dataset
from moe.stacked import problems, train_stacked
from moe.validate import from_dict
from moe.views import decode

SKIP = ("timing", "versions", "epoch_s", "stacked", "started_at")  # when, not what: the rest of provenance compares


def differences(a, b, path=""):
    """(path, relative difference) of every leaf; inf where integers, strings or shapes differ. The weight images of
    ``views`` are int8 quantisations (moe.views): weights 1e-8 apart can round to neighbouring steps, so they
    compare decoded, within one step."""
    if path.endswith((".views.expert_weights", ".views.prototypes")) and isinstance(a, dict) and isinstance(b, dict):
        da, db = decode(a), decode(b)
        step = max(max(a["scale"]), max(b["scale"])) / 127
        yield path, 0.0 if da.shape == db.shape and np.abs(da - db).max() <= step * 1.001 else math.inf
    elif isinstance(a, dict):
        assert a.keys() - set(SKIP) == b.keys() - set(SKIP), path
        for k in a.keys() - set(SKIP):
            yield from differences(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            yield from differences(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        yield path, 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b) / max(1.0, abs(b))
    else:
        yield path, 0.0 if a == b else math.inf


def assert_close_records(stacked, separate, tol=1e-5):
    for s, (a, b) in enumerate(zip(stacked, separate)):
        worst = max(differences(a, b), key=lambda kv: kv[1])
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
    separate = [moe.train.run({**cfg, "seed": s}) for s in seeds]
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
        assert_close_records(stacked, [moe.train.run({**cfg, "seed": s}, data=data) for s in (3, 4)])


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
    separate = [moe.train.run({**cfg, "seed": s}, data=data) for s in (0, 1)]
    assert all(r["stacked"]["fallback"] == "non-finite gate logits in training" for r in stacked)
    assert [r["status"] for r in stacked] == [r["status"] for r in separate] == ["diverged", "diverged"]
    assert_close_records(stacked, separate, tol=0.0)
