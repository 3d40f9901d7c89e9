"""The validation split (``val_fraction``): carved out of the (subsetted) training data, stratified and seeded by
the data seed, disjoint from the samples the model trains on and from the test split; every epoch reports its
scores, the test split is scored once, at the end, and the record keeps both."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from moe.scoring.scores import SCORE_KEYS
from moe.config import Config
from moe.data import Dataset, hold_out, load_dataset, prepare, subset, validation_size
from moe.training.loop import run

SMALL = {"dataset": "gm6", "n_train": 240, "n_test": 120, "epochs": 2}


def numbered(counts: list[int], n_test: int = 50) -> Dataset:
    """A dataset whose inputs are the samples' ids (training i: x = i; test j: x = 10**6 + j), in class blocks
    of the given sizes, shuffled so that the classes interleave in file order."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    x = torch.arange(len(y), dtype=torch.float32)[:, None]
    y_test = torch.arange(n_test) % len(counts)
    return Dataset("numbered", x, y, 10**6 + torch.arange(n_test, dtype=torch.float32)[:, None], y_test,
                   [f"c{c}" for c in range(len(counts))])


def ids(x: torch.Tensor) -> set[int]:
    return set(x[:, 0].long().tolist())


def config(**fields) -> Config:
    return dataclasses.replace(Config(), **fields)


@pytest.mark.parametrize("how", ["stratified", "first"])
@pytest.mark.parametrize("n_train", [None, 700])
def test_validation_is_disjoint_from_training_and_test_and_covers_the_training_subset(how, n_train):
    data = numbered([500, 300, 200])
    cfg = config(n_train=n_train, subset=how, val_fraction=0.1, data_seed=3)
    pool = subset(data, n_train, None, 3, how=how)  # the training subset the split is carved from
    out = prepare(data, cfg)
    train, val, test = ids(out.x_train), ids(out.x_val), ids(out.x_test)
    assert not train & val and not val & test and not train & test
    assert train | val == ids(pool.x_train) and len(val) == len(out.y_val) == round(0.1 * len(pool.y_train))
    assert ids(pool.x_train[out.val_indices]) == val  # val_indices: positions in the training subset
    assert torch.equal(out.y_val, pool.y_train[out.val_indices])
    if how == "first" and n_train is not None:
        assert max(val) < n_train  # carved out of the first n_train, not taken from the samples after them
    assert out.describe()["n_val"] == len(val) and out.describe()["n_train"] == len(train)


def test_validation_keeps_the_class_proportions():
    out = hold_out(numbered([500, 300, 200]), 0.1, seed=0)
    assert torch.bincount(out.y_val).tolist() == [50, 30, 20]
    assert torch.bincount(out.y_train).tolist() == [450, 270, 180]
    odd = hold_out(numbered([7, 5, 3]), 0.2, seed=0)  # 3 of 15: the largest remainders (1.4, 1.0, 0.6) -> 1, 1, 1
    assert torch.bincount(odd.y_val, minlength=3).tolist() == [1, 1, 1]


def test_the_same_data_seed_gives_the_same_split_another_seed_another():
    data = numbered([500, 300, 200])
    a, b, c = (prepare(data, config(val_fraction=0.1, data_seed=s)) for s in (4, 4, 5))
    assert torch.equal(a.val_indices, b.val_indices) and a.val_fingerprint() == b.val_fingerprint()
    assert not torch.equal(a.val_indices, c.val_indices) and a.val_fingerprint() != c.val_fingerprint()
    assert len(a.val_fingerprint()) == 16
    # the model seed is not a data seed: the split is the data's, whatever the run's seed
    assert torch.equal(prepare(data, config(val_fraction=0.1, data_seed=4, seed=9)).val_indices, a.val_indices)
    assert prepare(data, config(val_fraction=0.1, data_seed=Config().data_seed)).val_fingerprint() is not None


@pytest.mark.parametrize("n,fraction,expected", [(240, 0.1, 24), (10048, 0.1, 1005), (6, 0.1, 1), (11, 0.1, 1),
                                                 (3, 0.5, 1), (7, 0.5, 3), (1, 0.5, 0), (500, 0.0, 0), (100, 0.29, 29)])
def test_validation_size_rounds_half_up_at_least_one_at_most_half(n, fraction, expected):
    assert validation_size(n, fraction) == expected


def test_val_fraction_zero_is_no_validation_split():
    data = numbered([50, 30, 20])
    out = prepare(data, config(val_fraction=0.0))
    assert out.x_val is None and out.y_val is None and torch.equal(out.x_train, data.x_train)
    assert out.describe()["n_val"] == 0 and out.describe()["val_indices_sha256"] is None
    with pytest.raises(ValueError, match="already has a validation split"):  # a prepared dataset is not split twice
        hold_out(hold_out(data, 0.1), 0.1)


@pytest.fixture(scope="module")
def gm6():
    return load_dataset("gm6")


def test_the_model_never_trains_on_the_validation_samples(gm6):
    """NaN inputs on exactly the validation samples: training stays finite (it never sees them); the first
    validation score after epoch 1 meets them. NaN on one other training sample: training itself meets it."""
    cfg = config(**{**SMALL, "n_train": None})
    val = prepare(gm6, cfg).val_indices  # n_train None: positions in the loaded training split
    poisoned = dataclasses.replace(gm6, x_train=gm6.x_train.clone())
    poisoned.x_train[val] = math.nan
    rec = run(cfg, data=poisoned)
    assert rec["status"] == "diverged" and rec["diverged"]["epoch"] == 1
    assert "validation" in rec["diverged"]["reason"] and math.isfinite(rec["history"][0]["train_loss"])
    assert 0 <= rec["test"]["accuracy"] <= 1 and rec["validation"] == {}  # the test split's scores stand
    other = dataclasses.replace(gm6, x_train=gm6.x_train.clone())
    other.x_train[next(i for i in range(len(gm6.y_train)) if i not in set(val.tolist()))] = math.nan
    assert "training" in run(cfg, data=other)["diverged"]["reason"]


def test_the_record_keeps_both_and_the_history_only_validation(gm6):
    rec = run(SMALL, data=gm6)
    split = prepare(gm6, config(**SMALL))
    assert rec["dataset"]["n_val"] == 24 and rec["dataset"]["val_indices_sha256"] == split.val_fingerprint()
    # the same scores, but the causal ones of the ablation, which runs on the test split only
    # the test split's causal scores (ablation) and cross-fitted ones (learned on the validation allocation) aside
    assert set(rec["validation"]) == set(rec["test"]) - set(SCORE_KEYS["ablation"]) - set(SCORE_KEYS["fit_allocation"])
    assert 0 <= rec["validation"]["accuracy"] <= 1
    for h in rec["history"]:
        assert {"val_accuracy", "val_loss"} <= set(h) and not any(k.startswith("test") for k in h)
    last = rec["history"][-1]
    assert (last["val_accuracy"], last["val_loss"]) == (rec["validation"]["accuracy"], rec["validation"]["loss"])


def test_without_a_validation_split_the_record_has_no_validation_block(gm6):
    rec = run({**SMALL, "val_fraction": 0}, data=gm6)
    assert rec["status"] == "ok" and rec["validation"] is None and rec["dataset"]["n_val"] == 0
    assert rec["validation_allocation"] is None and "cheating_score" not in rec["test"]  # nothing to cross-fit on
    assert rec["dataset"]["n_train"] == 240 and 0 <= rec["test"]["accuracy"] <= 1
    assert not any(k.startswith(("val_", "test")) for h in rec["history"] for k in h)


def test_resumed_runs_keep_the_validation_numbers_bitwise(gm6):
    states = []
    whole = run({**SMALL, "epochs": 3}, data=gm6, on_state=states.append)
    resumed = run({**SMALL, "epochs": 3}, data=gm6, state=states[0])
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_s"} for h in r["history"]]  # noqa: E731
    assert strip(resumed) == strip(whole) and resumed["validation"] == whole["validation"] and resumed["test"] == whole["test"]
