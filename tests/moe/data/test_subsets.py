"""Subsets as the seed code took them (the first n in file order; fmnist_mnist: the first n/2 of each source)
beside stratified ones, and the seed code's input normalisation."""
import pytest
import torch

from moe.data import first_subset, load_dataset, load_for_config, normalized, prepare, subset
from moe.training.loop import run_data
from moe.validate import from_dict
from tests.helpers import config_problem, make_fake_mnist


def test_first_subset_takes_the_first_n_in_file_order(tmp_path):
    raw = make_fake_mnist(tmp_path, "MNIST", seed=3)  # 60 train, 20 test images, labels shuffled
    full = load_dataset("mnist", data_root=tmp_path)
    d = load_dataset("mnist", data_root=tmp_path, n_train=17, n_test=5, how="first")
    images, labels = raw["train"]
    assert torch.equal(d.y_train, torch.from_numpy(labels[:17]).long())
    assert torch.equal(d.x_train, full.x_train[:17]) and torch.equal(d.x_test, full.x_test[:5])
    # independent of data_seed, unlike the stratified subset
    assert torch.equal(load_dataset("mnist", data_root=tmp_path, n_train=17, how="first", seed=5).y_train, d.y_train)
    strat = load_dataset("mnist", data_root=tmp_path, n_train=20)
    assert torch.bincount(strat.y_train).tolist() == [2] * 10  # the stratified default is unchanged
    assert len(load_dataset("mnist", data_root=tmp_path, n_train=1000, how="first").y_train) == 60  # n >= N: all


def test_fmnist_mnist_first_takes_half_from_each_source(fake_mnist_root):
    full = load_dataset("fmnist_mnist", data_root=fake_mnist_root)  # 36 fashion then 36 digits (train)
    d = subset(full, 10, 4, how="first")
    fashion = torch.nonzero(full.y_train < 6).flatten()
    digits = torch.nonzero(full.y_train >= 6).flatten()
    assert torch.equal(d.y_train, torch.cat([full.y_train[fashion[:5]], full.y_train[digits[:5]]]))
    assert torch.equal(d.x_train, torch.cat([full.x_train[fashion[:5]], full.x_train[digits[:5]]]))
    assert (d.y_test < 6).sum() == 2 and (d.y_test >= 6).sum() == 2
    odd = subset(full, 7, None, how="first")  # the first group takes the extra one
    assert (odd.y_train < 6).sum() == 4 and (odd.y_train >= 6).sum() == 3
    # the seed's sizes, on indices alone: 5,024 of each source for 10,048, 1,000 of each for 2,000
    y = torch.cat([torch.arange(6).repeat(1000), 6 + torch.arange(6).repeat(1000)])  # 6,000 fashion, then 6,000 digits
    groups = torch.tensor([0] * 6 + [1] * 6)
    idx = first_subset(y, 10_048, groups)
    assert idx.tolist() == list(range(5024)) + list(range(6000, 6000 + 5024))
    assert first_subset(y, 2000, groups).tolist() == list(range(1000)) + list(range(6000, 7000))


def test_normalize_seed_maps_pixels_to_minus_one_one(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")
    d = load_dataset("mnist", data_root=tmp_path)
    n = normalized(d, "seed")
    assert torch.equal(n.x_train, (d.x_train - 0.5) / 0.5) and torch.equal(n.x_test, (d.x_test - 0.5) / 0.5)
    assert float(n.x_train.min()) >= -1 and float(n.x_train.max()) <= 1 and float(n.x_train.min()) < 0
    assert normalized(d, "none") is d
    assert float(d.x_train.min()) >= 0  # the loaded dataset is left as it was


def test_a_config_gets_its_subsets_and_normalisation_both_ways(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")
    cfg = from_dict({"dataset": "mnist", "data_root": str(tmp_path), "n_train": 11, "n_test": 3, "subset": "first",
                     "normalize": "seed"})
    loaded = load_for_config(cfg)  # loaded for the config
    passed = run_data(cfg, load_dataset("mnist", data_root=tmp_path).to_numpy())  # or passed in by a sweep driver
    own = run_data(cfg, None)  # or loaded by the run itself (normalised once, not twice)
    full = load_dataset("mnist", data_root=tmp_path)
    first = (full.x_train[:11] - 0.5) / 0.5  # the first 11, normalised, then split into training and validation
    for d in (loaded, passed, own, prepare(full, cfg)):
        val = d.val_indices.tolist()
        assert len(val) == 1 and torch.equal(d.x_val, first[val])  # 10% of 11, rounded
        assert torch.equal(d.x_train, first[[i for i in range(11) if i not in val]]) and torch.equal(d.y_test, full.y_test[:3])


@pytest.mark.parametrize("field,value,choices", [("subset", "firsts", "stratified, first"), ("normalize", "mean", "none, seed")])
def test_bad_subset_and_normalize_values_are_one_line(field, value, choices):
    assert config_problem({field: value}) == f"{field}: unknown choice {value!r}; valid choices: {choices}"
