"""The ``seed`` budget of every reproduction sweep: the seed code's settings (moe.config presets), splits and
run counts, as the literature note states them; and the seed code's numbers (seed_results) name real sweeps,
claims and columns."""
from __future__ import annotations

from collections import Counter

import pytest

from bench.reproduce import claims
from bench.reproduce import runner
from bench.reproduce import seed_results as S
from bench.reproduce.measures import MEASURES
from bench.sweep.spec import load, validate
from moe.config import FIELD_TYPES, PRESETS
from moe.scoring.scores import DIRECTIONS
from moe.validate import from_dict
from tests.helpers import make_fake_mnist


def seed_trials(name: str) -> list[dict]:
    """Every trial of the sweep's seed budget, as the complete config a run will use."""
    sweep = load(name, runner.budget_overrides("seed", name))
    return [from_dict(t.config).to_dict() for t in validate(sweep)]


def assert_preset(cfg: dict, preset: str, *skip: str) -> None:
    want = {k: v for k, v in PRESETS[preset].items() if k not in skip}
    assert {k: cfg[k] for k in want} == want


def test_every_reproduction_sweep_has_a_seed_budget():
    for name in runner.SWEEPS:
        assert "seed" in load(name).budgets, name


def test_lr_asymmetry_seed_budget():
    trials = seed_trials("lr_asymmetry")
    at_100 = [t for t in trials if t["lr_ratio"] == 100]
    assert len(at_100) == 10 and sorted(t["seed"] for t in at_100) == list(range(10))
    for t in at_100:  # gate 0.01, experts 0.01 / 0.0001, RMSprop momentum 0.9, 30 epochs, 2 linear experts
        assert_preset(t, "seed_gm6", "gate_lr", "lr_ratio")
        assert t["gate_lr"] == 0.01 and from_dict(t).expert_learning_rates() == pytest.approx([0.01, 0.0001])
        assert (t["experts"], t["n_train"], t["n_test"]) == (2, None, None)


def test_mnist_class_split_seed_budget():
    trials = seed_trials("pretrained_experts_mnist")
    scratch = [t for t in trials if t["regime"] == "frozen_gate" and t["epochs"] == 20]
    matched = [t for t in trials if t["regime"] == "frozen_gate" and t["epochs"] == 40]  # 20 pre-training + 20 joint
    pairs = [t for t in trials if t["regime"] == "pretrain_frozen_gate"]
    assert len(scratch) == 10 and sorted({t["seed"] for t in scratch}) == [0, 1, 2, 3, 4]  # 5 runs x 2 refit inits
    assert len(matched) == 10 and sorted({t["seed"] for t in matched}) == [0, 1, 2, 3, 4] and len(trials) == 30
    assert {(t["pretrain_epochs"], t["epochs"]) for t in pairs} == {(20, 20)}
    assert Counter(t["class_split"] for t in pairs) == {f"mnist_pairs_{k}": 2 for k in range(1, 6)}  # 1 run per split
    assert all(t["mask_experts"] for t in pairs) and not any(t["mask_experts"] for t in scratch)
    for t in trials:
        assert_preset(t, "seed_mnist", *(("epochs",) if t in matched else ()))
        assert t["refit_epochs"] == 20


def test_fmnist_mnist_seed_budgets():
    trials = seed_trials("pretrained_experts")
    scratch = [t for t in trials if t["regime"] == "frozen_gate" and t["epochs"] == 20]
    matched = [t for t in trials if t["regime"] == "frozen_gate" and t["epochs"] == 40]  # 20 pre-training + 20 joint
    pairs = [t for t in trials if t["regime"] == "pretrain_frozen_gate"]
    for runs in (scratch, matched):  # the seed code's 10 runs from scratch, each with both refit inits
        assert Counter(t["seed"] for t in runs) == {s: 2 for s in range(10)}
    assert len(trials) == 52 and {(t["pretrain_epochs"], t["epochs"]) for t in pairs} == {(20, 20)}
    # per split, seeds 0 and 1 (twice the seed code's one run, so that the splits pooled have an interval)
    assert Counter(t["class_split"] for t in pairs) == {"fmnist_mnist": 4, "fmnist_mnist_2": 4, "fmnist_mnist_3": 4}
    assert all(t["mask_experts"] for t in pairs)
    for t in trials:
        assert_preset(t, "seed_fmnist_mnist", *(("epochs",) if t in matched else ()))
    joint = seed_trials("fmnist_mnist_joint")
    assert len(joint) == 10 and all(t["experts"] == 6 and t["regime"] == "joint" for t in joint)
    for t in joint:
        assert_preset(t, "seed_fmnist_mnist")


def test_the_sweeps_without_seed_code_run_their_small_budget_under_the_seed_budget():
    for name in S.NO_SEED_CODE:  # the seed and small reproductions read the same runs of these sweeps
        assert runner.budget_overrides("seed", name) == runner.budget_overrides("small", name) != {}


def test_seed_numbers_name_real_sweeps_claims_and_columns():
    catalogue = claims.by_name()
    columns = set(FIELD_TYPES) | set(DIRECTIONS) | {"mi_bits", "h_expert_bits", "accuracy_after_joint"}
    for setting in S.SETTINGS:
        assert setting.sweep in runner.SWEEPS and setting.sweep not in S.NO_SEED_CODE
        assert setting.claims and all(catalogue[c].sweep == setting.sweep for c in setting.claims)
        assert set(setting.where) <= set(FIELD_TYPES)
        for num in setting.numbers:
            assert num.seed and num.source and set(num.where) <= set(FIELD_TYPES)
            m = num.measure
            assert m == "collapsed" or (m in columns if isinstance(m, str) else next(iter(m)) in MEASURES), num.label
    assert {c for s in S.SETTINGS for c in s.claims} >= {"lr_asymmetry.fast_expert_wins",
                                                        "pretrained_experts_mnist.gate_follows_split",
                                                        "fmnist_mnist_joint.no_reliable_separation"}


def test_seed_budget_on_a_smaller_mnist_takes_all_its_digits_and_says_so(tmp_path):
    """The seed budget asks for the first 10,048 MNIST training images; data files with fewer (here 60) give
    n_train = all of them, with a note for the report, instead of a refusal of every trial."""
    make_fake_mnist(tmp_path, "MNIST", n_train_per_class=6, n_test_per_class=300)
    plan = runner.budget_overrides("seed", "pretrained_experts_mnist")
    fitted, notes = runner.fit_to_data("pretrained_experts_mnist", plan, str(tmp_path))
    assert fitted == {**plan, "n_train": 60}  # n_test 2,000 <= 3,000 test images: left
    assert len(notes) == 1 and "10,048" in notes[0] and "all 60 are taken" in notes[0]
    assert runner.fit_to_data("lr_asymmetry", {}, str(tmp_path)) == ({}, [])  # gm6 needs no files
    assert runner.fit_to_data("pretrained_experts_mnist", plan, str(tmp_path / "missing")) == (plan, [])


def test_a_first_subset_split_over_sources_says_when_one_source_is_short(tmp_path):
    """fmnist_mnist's first n take n / 2 from each source; with too few digits the trials get fewer samples than
    the budget asks, though the combined dataset holds enough: the note gives the count per source."""
    make_fake_mnist(tmp_path, "FashionMNIST", n_train_per_class=100, n_test_per_class=2)  # 600 of classes 0-5
    make_fake_mnist(tmp_path, "MNIST", n_train_per_class=3, n_test_per_class=2)  # 18 of digits 4-9
    plan = {**runner.budget_overrides("seed", "fmnist_mnist_joint"), "n_train": 60, "n_test": 10}
    fitted, notes = runner.fit_to_data("fmnist_mnist_joint", plan, str(tmp_path))
    assert fitted == plan  # 60 <= 618 samples: nothing capped
    assert notes == ["`n_train`: the budget asks for 60 training samples of fmnist_mnist (first subset); the data "
                     "files here give 48 (30 fashion + 18 digits)"]
