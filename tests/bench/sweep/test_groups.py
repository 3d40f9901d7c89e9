"""bench.sweep.groups: which trials train together as a seed group (--stack-seeds off | auto | on), the refusal
of unsupported configurations one line per problem, and a seed group through real Ray Tune: one record per seed,
each within 1e-5 of the separate run."""
from __future__ import annotations

import json

import pytest

import moe.training.loop
from bench import pipeline
from bench.sweep import groups, runner
from bench.sweep.spec import SweepError, Trial


def trial(index, seed, **config):
    return Trial(index, f"{config.get('router', 'softmax')}[experts={config.get('experts', 2)}]",
                 {"dataset": "gm6", "experts": 2, **config, "seed": seed})


TRIALS = [trial(0, 0), trial(1, 1), trial(2, 0, router="switch"), trial(3, 1, router="switch"), trial(4, 0, experts=3)]


def test_units_by_mode():
    assert groups.units(TRIALS, "off") == [[t] for t in TRIALS]
    auto = groups.units(TRIALS, "auto")
    assert [[t.index for t in u] for u in auto] == [[0, 1], [2], [3], [4]]  # switch is not stacked: its seeds alone
    assert groups.units(TRIALS[:2] + TRIALS[4:], True) == [TRIALS[:2], [TRIALS[4]]]
    with pytest.raises(SweepError) as err:
        groups.units(TRIALS, "on")
    assert err.value.problems == ["--stack-seeds on: router: stacked seeds support the routers softmax, topk, hash, "
                                  "expert_choice, got 'switch' (configuration switch[experts=2]); --stack-seeds auto groups only the configurations "
                                  "it supports"]
    with pytest.raises(SweepError, match="valid choices: off, auto, on"):
        groups.units(TRIALS, "always")


def test_auto_leaves_hard_routing_alone():
    """The stacked forward mixes every expert: a softmax router with hard or gumbel routing (one expert per sample)
    must train each seed on its own, or its records would be those of soft routing."""
    hard = [trial(0, 0, routing="hard"), trial(1, 1, routing="hard"), trial(2, 0, routing="gumbel"), trial(3, 1, routing="gumbel"),
            trial(4, 0), trial(5, 1)]
    assert [[t.index for t in u] for u in groups.units(hard, "auto")] == [[0], [1], [2], [3], [4, 5]]


def test_unit_dicts_and_members():
    unit = groups.unit_dict(TRIALS[:2])
    assert unit["index"] == 0 and [m["index"] for m in unit["members"]] == [0, 1]
    assert groups.member_indices({"trial": unit}) == [0, 1]
    assert groups.member_indices({"trial": groups.unit_dict([TRIALS[4]])}) == [4]


def test_runner_refusals(sweep_file):
    with pytest.raises(SweepError, match="asha"):
        pipeline.run_sweep(sweep_file(), stack_seeds="on", scheduler="asha")
    with pytest.raises(SweepError, match="faults"):
        pipeline.run_sweep(sweep_file(), stack_seeds="on", faults={0: "raise"})


@pytest.mark.ray
def test_seed_group_through_ray(ray_local, sweep_file, tmp_path):
    path = sweep_file(grid=[{"router": ["softmax"], "seed": [0, 1, 2]}], budget={"epochs": 2, "n_train": 300, "n_test": 100})
    out = tmp_path / "out"
    runs = pipeline.run_sweep(path, out=out, stack_seeds="on", quiet=True)
    assert list(runs["status"]) == ["ok"] * 3 and list(runs["seed"]) == [0, 1, 2]
    recs = {int(p.stem): json.loads(p.read_text()) for p in (out / "records").glob("*.json")}
    assert sorted(recs) == [0, 1, 2] and all(r["bench"]["group"] == [0, 1, 2] for r in recs.values())
    cfg = {k: v for k, v in recs[1]["config"].items()}
    alone = moe.training.loop.run(cfg)
    assert abs(alone["test"]["accuracy"] - recs[1]["test"]["accuracy"]) <= 1e-5
    for mine, theirs in zip(recs[1]["history"], alone["history"]):
        assert abs(mine["train_loss"] - theirs["train_loss"]) <= 1e-5 * max(1.0, abs(theirs["train_loss"]))


def test_the_command_line_stacks_seeds_by_default_except_under_asha():
    assert groups.default_mode(None, None) == "auto" and groups.default_mode(None, "fifo") == "auto"
    assert groups.default_mode(None, "asha") == "off"  # ASHA stops trials on per-epoch reports
    assert groups.default_mode("off", None) == "off" and groups.default_mode("on", "asha") == "on"  # (refused later)
    with pytest.raises(SweepError, match="valid choices: off, auto, on"):
        groups.default_mode("sometimes", None)
