"""The planted dataset: its modules and classes follow the entanglement knob, the module of every sample travels
with it (subsets, Ray's numpy form), and the knobs reach the loader from the config."""
import pytest
import torch

from moe.scoring import metrics as m
from moe.config import ConfigError
from moe.data import DATASETS, Dataset, dataset_options, load_dataset, load_for_config, subset
from moe.data.planted import N_CLASSES, N_TEST, N_TRAIN, module_classes
from moe.training.loop import run_data
from moe.validate import from_dict


def test_entanglement_zero_gives_each_module_whole_classes_and_one_every_class():
    assert module_classes(4, 0.0) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(sorted(s) == list(range(N_CLASSES)) for s in module_classes(4, 1.0))
    half = module_classes(4, 0.5)  # 2 + round(0.5 * 6) = 5 classes each, cyclically from the block
    assert half[3] == [6, 7, 0, 1, 2] and all(len(s) == 5 for s in half)
    assert module_classes(3, 0.0) == [[0, 1, 2], [3, 4, 5], [6, 7]]  # M need not divide C
    assert module_classes(1, 0.0) == [list(range(8))]


def table(data: Dataset) -> torch.Tensor:
    return m.contingency(data.y_test, data.module_test)


def test_the_class_determines_the_module_only_without_entanglement():
    clean = load_dataset("planted", options={"planted_modules": 4, "planted_entanglement": 0.0})
    tangled = load_dataset("planted", options={"planted_modules": 4, "planted_entanglement": 1.0})
    assert (table(clean) > 0).sum(1).tolist() == [1] * N_CLASSES  # each class in one module
    assert (table(tangled) > 0).all()  # every class in every module
    assert m.nmi(table(tangled)) < 0.05
    # H(module | class) = 0: I = H(module) = log 4, NMI = 2 log 4 / (log 4 + log 8) = 0.8 (about: sampled sizes)
    assert m.nmi(table(clean)) == pytest.approx(0.8, abs=0.01)
    for data in (clean, tangled):
        assert data.x_train.shape == (N_TRAIN, 8) and data.x_test.shape == (N_TEST, 8)
        both = torch.cat([data.module_train, data.module_test])
        assert data.module_train.shape == (N_TRAIN,) and both.bincount().tolist() == [(N_TRAIN + N_TEST) // 4] * 4
        for mod, classes in enumerate(module_classes(4, data.options["planted_entanglement"])):
            assert set(data.y_train[data.module_train == mod].tolist()) == set(classes)


def test_the_context_tells_the_module_and_everything_comes_from_the_data_seed():
    a = load_dataset("planted", seed=3, options={"planted_modules": 4, "planted_entanglement": 0.5})
    b = load_dataset("planted", seed=3, options={"planted_modules": 4, "planted_entanglement": 0.5})
    c = load_dataset("planted", seed=4, options={"planted_modules": 4, "planted_entanglement": 0.5})
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.module_test, b.module_test)
    assert not torch.equal(a.x_train, c.x_train)
    angle = torch.atan2(a.x_test[:, 1], a.x_test[:, 0])  # the context z points at the module's angle 2 pi m / 4
    nearest = torch.round(angle / (torch.pi / 2)).long() % 4
    assert (nearest == a.module_test).double().mean() > 0.99


def test_modules_travel_with_subsets_and_the_numpy_form():
    data = load_dataset("planted", options={"planted_modules": 2, "planted_entanglement": 0.0})
    small = subset(data, 400, 100, seed=1)
    assert len(small.module_train) == 400 and len(small.module_test) == 100
    # at entanglement 0 the class determines the module: modules 0 / 1 own classes 0-3 / 4-7
    assert torch.equal(small.module_test, (small.y_test >= 4).long())
    back = Dataset.from_numpy(small.to_numpy())
    assert torch.equal(back.module_test, small.module_test) and back.options == small.options
    assert small.describe()["options"] == {"planted_modules": 2, "planted_entanglement": 0.0}
    assert "options" not in load_dataset("gm6").describe()  # other datasets' records are unchanged


def test_the_config_knobs_reach_the_loader_and_a_mismatched_dataset_is_refused():
    cfg = from_dict({"dataset": "planted", "planted_modules": 3, "planted_entanglement": 0.25, "n_test": 90})
    assert dataset_options("planted", cfg) == {"planted_modules": 3, "planted_entanglement": 0.25}
    assert dataset_options("gm6", cfg) == {}
    data = load_for_config(cfg)
    assert data.module_names == ["module 0", "module 1", "module 2"] and len(data.module_test) == 90
    other = load_dataset("planted", options={"planted_modules": 3, "planted_entanglement": 0.5})
    with pytest.raises(ValueError, match="made with"):
        run_data(cfg, other.to_numpy())


@pytest.mark.parametrize("field,value", [("planted_modules", 9), ("planted_modules", 0), ("planted_entanglement", 1.5),
                                         ("planted_entanglement", -0.1), ("soft_slots", 0), ("soft_slots", 65)])
def test_bad_knobs_are_one_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        from_dict({"dataset": "planted", field: value})
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(f"{field}:")


def test_the_planted_loader_declares_its_shape_and_options():
    loader = DATASETS.get("planted")
    assert loader.n_classes == N_CLASSES and loader.input_shape == (8,)
    assert loader.options == ("planted_modules", "planted_entanglement")
