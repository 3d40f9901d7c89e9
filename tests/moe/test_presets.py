"""The seed code's models and settings as named presets: parameter counts, precedence, records."""
import json
from dataclasses import replace

import pytest
from torch import nn

from moe.config import PRESETS, Config, ConfigError, load_file
from moe.model import build_model, parameter_counts
from moe.training.loop import main, run
from moe.validate import from_dict, validate_config
from tests.helpers import config_problem


def conv(k: int) -> int:
    """One k x k filter on one channel, with its bias."""
    return k * k + 1


def fc(a: int, b: int) -> int:
    return a * b + b


def seed_counts(n_experts: int, n_classes: int, gate_kernel: int) -> tuple[int, int]:
    """The seed code's layer list counted by hand (literature note): expert conv 3x3 -> 169 -> 5 -> 10 -> C,
    gate conv k x k -> (28 - k + 1) // 2 squared -> 128 -> 64 -> E."""
    expert = conv(3) + fc(169, 5) + fc(5, 10) + fc(10, n_classes)
    side = (28 - gate_kernel + 1) // 2
    gate = conv(gate_kernel) + fc(side * side, 128) + fc(128, 64) + fc(64, n_experts)
    return n_experts * expert, gate


@pytest.mark.parametrize("preset,n_classes,total", [("seed_mnist", 10, 35_501), ("seed_fmnist_mnist", 12, 33_544)])
def test_preset_parameter_counts_equal_the_seed_codes(preset, n_classes, total):
    cfg = from_dict({"preset": preset})
    model = build_model(cfg, (1, 28, 28), n_classes)
    experts, gate = seed_counts(cfg.experts, n_classes, 5 if preset == "seed_fmnist_mnist" else 3)
    assert experts + gate == total
    assert parameter_counts(model) == {"total": total, "gate": gate, "experts": experts}
    # layer for layer: one 3x3 filter per expert, 169 -> 5 -> 10 -> C; the gate's flattened width 169 or 144
    widths = [(m.in_features, m.out_features) for m in model.experts.experts[0].modules() if isinstance(m, nn.Linear)]
    assert widths == [(169, 5), (5, 10), (10, n_classes)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [1] * (cfg.experts + 1)
    gate_widths = [(m.in_features, m.out_features) for m in model.router.modules() if isinstance(m, nn.Linear)]
    assert gate_widths == [(169 if preset == "seed_mnist" else 144, 128), (128, 64), (64, cfg.experts)]


def test_presets_hold_the_seed_settings_and_all_validate():
    mnist = from_dict({"preset": "seed_mnist"})
    assert (mnist.dataset, mnist.experts, mnist.expert, mnist.gate, mnist.router) == ("mnist", 5, "seed_cnn", "seed_cnn", "softmax")
    assert (mnist.optimizer, mnist.lr, mnist.momentum, mnist.batch_size, mnist.epochs) == ("rmsprop", 1e-3, 0.9, 32, 20)
    assert (mnist.n_train, mnist.n_test, mnist.subset, mnist.normalize) == (10048, 2000, "first", "seed")
    assert mnist.objective == "expectation" and mnist.temperature == 1.0
    fm = from_dict({"preset": "seed_fmnist_mnist"})
    assert (fm.dataset, fm.experts, fm.gate, fm.batch_size) == ("fmnist_mnist", 6, "seed_cnn5", 64)
    gm6 = from_dict({"preset": "seed_gm6"})
    assert (gm6.dataset, gm6.expert, gm6.gate, gm6.lr, gm6.epochs, gm6.optimizer) == ("gm6", "linear", "linear", 1e-2, 30, "rmsprop")
    for name in PRESETS:
        assert set(PRESETS[name]) <= set(Config().to_dict())
        from_dict({"preset": name})  # every preset is a valid config


def test_explicit_fields_override_the_preset_cli_over_file(tmp_path, capsys):
    assert Config.from_preset("seed_mnist", lr=0.5).lr == 0.5
    assert from_dict({"preset": "seed_mnist", "batch_size": 8}).batch_size == 8
    assert from_dict({"batch_size": 8, "preset": "seed_mnist"}).batch_size == 8  # the key order does not matter
    assert from_dict({"preset": None}) == from_dict({})
    (tmp_path / "c.yaml").write_text("preset: seed_mnist\nepochs: 3\nbatch_size: 16\n")
    values = {**load_file(tmp_path / "c.yaml"), "batch_size": "4"}  # what main() builds: the file, then the flags
    cfg = from_dict(values)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.expert) == (3, 4, 1e-3, "seed_cnn")


def test_unknown_preset_is_one_line_naming_the_choices(capsys):
    assert config_problem({"preset": "seed_mnst"}) == (
        "preset: unknown preset 'seed_mnst' (did you mean 'seed_mnist'?); valid choices: seed_mnist, seed_fmnist_mnist, seed_gm6, text_lm")
    assert main(["--preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: preset: unknown preset 'nope'") and err.count("\n") == 1
    with pytest.raises(ConfigError, match="preset: unknown preset 'x'"):
        validate_config(replace(Config(), preset="x"))  # a Config built directly is checked too


def test_seed_gates_and_expert_need_images():
    assert config_problem({"gate": "seed_cnn"}).startswith("gate: the seed_cnn gate needs image inputs")
    assert "at least 6 x 6" in config_problem({"gate": "seed_cnn5"})
    assert config_problem({"expert": "seed_cnn"}).startswith("expert: seed_cnn experts need image inputs")


def test_the_record_has_the_resolved_preset_and_the_parameter_counts(fake_mnist_root):
    cfg = {"preset": "seed_mnist", "data_root": str(fake_mnist_root), "epochs": 1, "n_train": 30, "n_test": 10}
    record = run(cfg)
    assert record["status"] == "ok"
    assert record["n_parameters"] == {"total": 35_501, "gate": 30_351, "experts": 5_150}
    c = record["config"]
    assert (c["preset"], c["expert"], c["gate"], c["optimizer"], c["lr"], c["subset"], c["normalize"], c["n_train"]) == (
        "seed_mnist", "seed_cnn", "seed_cnn", "rmsprop", 1e-3, "first", "seed", 30)
    assert record["dataset"]["n_test"] == 10  # the first 30 training images: 27 trained on, 3 held out (val_fraction 0.1)
    assert (record["dataset"]["n_train"], record["dataset"]["n_val"]) == (27, 3)
    again = run(json.loads(json.dumps(record["config"])))  # the record's config gives the same run again
    assert again["test"]["accuracy"] == record["test"]["accuracy"] and again["history"][0]["train_loss"] == record["history"][0]["train_loss"]


def test_every_record_counts_its_parameters():
    record = run({"dataset": "gm6", "experts": 3, "epochs": 1, "n_train": 60, "n_test": 30})
    # linear experts 3 x (2 x 6 + 6), linear gate 2 x 3 + 3
    assert record["n_parameters"] == {"total": 3 * 18 + 9, "gate": 9, "experts": 54}
