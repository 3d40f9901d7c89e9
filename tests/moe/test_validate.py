"""Validation before any work: unknown names, bad values, every problem at once, and the rules between
components (the dataset's declared shape against the class split, the experts and the gate)."""
import pytest

from moe.config import ConfigError
from moe.validate import from_dict


def problems(values):
    with pytest.raises(ConfigError) as info:
        from_dict(values)
    return info.value.problems


@pytest.mark.parametrize("values,field,choices", [
    ({"dataset": "gm66"}, "dataset", ["gm6", "mnist", "fmnist", "fmnist_mnist"]),
    ({"router": "sofmax"}, "router", ["softmax", "topk", "switch", "expert_choice", "hash", "attention", "prototype", "linear"]),
    ({"expert": "linar"}, "expert", ["linear", "mlp", "cnn"]),
    ({"objective": "nll"}, "objective", ["mixture_nll", "cooperative", "competitive"]),
    ({"regime": "jont"}, "regime", ["joint", "pretrain", "frozen_gate", "pretrain_frozen_gate"]),
    ({"gate": "deep"}, "gate", ["linear", "mlp", "cnn"]),
    ({"optimizer": "adagrad"}, "optimizer", ["adam", "sgd", "rmsprop"]),
])
def test_unknown_names_list_the_valid_choices(values, field, choices):
    (line,) = problems(values)
    assert line.startswith(f"{field}:") and all(c in line for c in choices)


@pytest.mark.parametrize("values,field", [
    ({"experts": 0}, "experts"),
    ({"experts": 2, "top_k": 3}, "top_k"),
    ({"top_k": 0}, "top_k"),
    ({"lr": 0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"gate_lr": 0.0}, "gate_lr"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"experts": 3, "expert_lrs": [0.1, 0.1]}, "expert_lrs"),
    ({"lr_ratio": 0.5}, "lr_ratio"),
    ({"experts": "four"}, "experts"),
    ({"n_train": 0}, "n_train"),
    ({"capacity": 0}, "capacity"),
    ({"temperature_min": 0}, "temperature_min"),
    ({"importance_loss": -0.1}, "importance_loss"),
    ({"gate_hidden": 0}, "gate_hidden"),
    ({"expert_channels": 0}, "expert_channels"),
    ({"pretrain_epochs": 0}, "pretrain_epochs"),
    ({"noisy_gate": "maybe"}, "noisy_gate"),
])
def test_bad_values_name_the_field(values, field):
    lines = problems(values)
    assert len(lines) == 1 and lines[0].startswith(f"{field}:")


def test_every_problem_reported_at_once_and_unknown_keys_suggest():
    lines = problems({"experts": 0, "epochs": 0, "lrr": 0.1})
    assert any(l.startswith("lrr: unknown config key (did you mean 'lr'?)") for l in lines)
    assert {l.split(":")[0] for l in lines} == {"lrr"}  # unknown keys stop before value checks
    lines = problems({"experts": 0, "epochs": 0})
    assert [l.split(":")[0] for l in lines] == ["experts", "epochs"]


@pytest.mark.parametrize("values,field,words", [
    ({"expert": "cnn"}, "expert", "image inputs"),  # gm6 is 2-D points
    ({"gate": "cnn"}, "gate", "image inputs"),
    ({"gate": "cnn", "router": "topk", "top_k": 2}, "gate", "valid choices for it: linear, mlp"),
    ({"regime": "pretrain", "experts": 3, "class_split": [[0, 1], [2, 3], [4]]}, "class_split", "[5] are left out"),
    ({"regime": "pretrain", "experts": 6, "class_split": "fmnist_mnist"}, "class_split", "[0, 6)"),
])
def test_rules_that_need_the_datas_shape_are_checked_before_loading_it(values, field, words):
    (line,) = problems(values)
    assert line.startswith(f"{field}:") and words in line


def test_a_split_valid_for_the_dataset_passes():
    cfg = from_dict({"dataset": "fmnist_mnist", "regime": "pretrain", "experts": 6, "class_split": "fmnist_mnist",
                     "expert": "cnn"})
    assert cfg.class_split == "fmnist_mnist"
    assert from_dict({"dataset": "mnist", "gate": "cnn"}).gate == "cnn"
