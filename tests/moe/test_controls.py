"""moe.training.controls: the positive control (a mixture that cheats by construction) scores a cheating index ~1 with
constant experts, the negative control (a hash router) ~0, and a collapsed router NaN with the reason
"collapsed", all through moe.training.evaluate, the scoring of every run record."""
from __future__ import annotations

import json
import math

import pytest
import torch

from moe.training import controls
from moe.data import load_dataset
from moe.scoring.scores import SCORE_KEYS, cheating_undefined


@pytest.fixture(scope="module")
def gm6():
    return load_dataset("gm6")


@pytest.fixture(scope="module")
def results(gm6):
    return controls.run_controls("gm6", epochs=10, data=gm6)


@pytest.mark.slow  # trains the controls
def test_the_positive_control_cheats(results):
    s = results["cheater"]
    assert s["accuracy"] > 0.85  # the router alone classifies gm6 about as well as a linear model
    assert s["cheating_index"] >= 0.9
    assert s["expert_prediction_entropy"] == 0.0  # every expert a constant on its samples
    assert s["router_only_accuracy"] >= s["accuracy"] - 0.01
    assert s["collapsed"] == 0.0 and cheating_undefined(s) is None


@pytest.mark.slow  # trains the controls
def test_the_negative_control_does_not(results):
    s = results["hash"]
    assert s["accuracy"] > 0.5  # the experts learned something, so the index is defined
    assert s["cheating_index"] <= 0.1
    assert s["nmi"] < 0.02  # the hash ignores the class
    assert s["expert_prediction_entropy"] > 0.5  # each expert predicts many classes
    assert s["collapsed"] == 0.0 and s["near_chance"] == 0.0


@pytest.mark.slow  # trains the controls
def test_the_collapsed_control_is_undefined_whatever_its_accuracy(results):
    s = results["collapsed"]
    assert s["accuracy"] > 0.8  # a good single linear model ...
    assert s["busiest_share"] == 1.0 and s["collapsed"] == 1.0
    assert math.isnan(s["cheating_index"]) and cheating_undefined(s) == "collapsed"  # ... is not 'honest'


@pytest.mark.slow  # trains the controls
def test_controls_are_scored_like_every_run(results):
    want = set(SCORE_KEYS[None] + SCORE_KEYS["weights"] + SCORE_KEYS["expert_preds"] + SCORE_KEYS["ablation"]
               + SCORE_KEYS["expert_parameters"]) | {"loss"}
    for name in controls.CONTROLS:
        assert set(results[name]) == want, name  # gm6 has no grouping of its classes


def test_same_seed_same_numbers(gm6):
    cfg = controls.control_config("cheater", "gm6", n_classes=6, epochs=1)
    a, b = controls.cheater(cfg, gm6), controls.cheater(cfg, gm6)
    assert a["test"] == pytest.approx(b["test"], nan_ok=True) and a["allocation"] == b["allocation"]


def test_the_constant_experts_are_frozen_constants(gm6):
    cfg = controls.control_config("cheater", "gm6", n_classes=6)
    model = controls._built(cfg, gm6, torch.device("cpu"))
    controls.hold_constant(model)
    preds = model.experts.forward_all(gm6.x_test).argmax(-1)  # [N, E]
    assert (preds == torch.arange(6)).all()
    assert not any(p.requires_grad for p in model.experts.parameters())


@pytest.mark.slow  # trains the controls
def test_table_and_json(results, capsys, gm6, monkeypatch):
    text = controls.markdown(results)
    lines = text.splitlines()
    assert lines[0].startswith("| control | accuracy |") and len([ln for ln in lines if ln.startswith("| ")]) == 4
    assert "| collapsed |" in text and "docs/scores.md" in text
    monkeypatch.setattr(controls, "run_controls", lambda *a, **k: results)
    assert controls.main(["--dataset", "gm6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["control"] for r in rows] == list(controls.CONTROLS)
    assert rows[2]["cheating_undefined"] == "collapsed" and rows[2]["cheating_index"] is None
    assert rows[2]["expected"] == controls.EXPECTED["collapsed"] and "NaN" in rows[2]["expected"]


@pytest.mark.parametrize("argv,words", [
    (["--dataset", "mnistt"], "did you mean 'mnist'"),
    (["--dataset", "mnist", "--data-root", "/nowhere/at/all"], "dataset files not found"),
    (["--epochs", "0"], "epochs"),
])
def test_bad_input_is_one_error_line(capsys, argv, words):
    assert controls.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1


def test_images_take_the_black_box_gate(fake_mnist_root):
    cfg = controls.control_config("cheater", "mnist", n_classes=10, data_root=str(fake_mnist_root))
    assert cfg.gate == "mlp" and cfg.experts == 10 and cfg.router == "softmax"
    out = controls.run_controls("mnist", epochs=1, data_root=str(fake_mnist_root))
    assert out["cheater"]["expert_prediction_entropy"] == 0.0
    assert cheating_undefined(out["collapsed"]) == "collapsed"
