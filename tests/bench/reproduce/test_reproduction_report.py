"""REPRODUCTION.md from hand-made results (no Ray): verdicts with their numbers and thresholds, a sweep that
did not run, the figures of every sweep drawn from hand-made runs tables and records, atomic writes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.reproduce import claims
from bench.reproduce import engine
from bench.reproduce import measures as M
from bench.reproduce import verdict_page
from bench.reproduce.figures import PLOTS
from bench.reproduce.results import Reproduction, SweepResult

from runs_frames import frame, run_row, shares
from test_claims import balancing_frame, cheating_frame, count_frame, joint_frame, lr_frame, pretrained_frame

MISSING = ("dataset 'mnist': cannot load it: dataset files not found: MNIST needs the four IDX files ... "
           "Then pass --data-root ROOT.")


def lr_records(runs: pd.DataFrame, epochs: int = 3) -> list[dict]:
    out = []
    for _, r in runs.iterrows():
        s0 = json.loads(r["allocation"])[0][0] / 100
        hist = [{"epoch": e + 1, "expert_share": [0.5 + (s0 - 0.5) * (e + 1) / epochs, 0.5 - (s0 - 0.5) * (e + 1) / epochs]}
                for e in range(epochs)]
        out.append({"status": "ok", "config": {"lr_ratio": r["lr_ratio"]}, "history": hist,
                    "dataset": {"class_names": ["c0"]}, "bench": {"index": int(r["index"])}})
    return out


def reproduction(tmp_path: Path) -> Reproduction:
    runs = lr_frame({1: 0.5, 3: 0.6, 10: 0.7, 30: 0.8, 100: 0.9})
    lr = SweepResult("lr_asymmetry", runs, overrides={"seed": [0, 1]}, wall_s=12.0, description="gm6 lr test", version=2,
                     notes=["`n_train`: the data files here hold 8,000"])
    lr.figures = PLOTS["lr_asymmetry"](runs, lr_records(runs), tmp_path / "figures")
    cheat = SweepResult("cheating", None, reason=MISSING, overrides={"data_root": "/nowhere"})
    results = {"lr_asymmetry": lr, "cheating": cheat}
    chosen = claims.for_sweep("lr_asymmetry") + claims.for_sweep("cheating")
    verdicts = [engine.evaluate(c, results[c.sweep].runs, results[c.sweep].reason) for c in chosen]
    return Reproduction(tmp_path, "small", results, verdicts, 75.0, "/nowhere")


def test_report_states_numbers_thresholds_and_verdicts(tmp_path):
    rep = reproduction(tmp_path)
    path = verdict_page.write_report(rep)
    text = path.read_text()
    assert path == tmp_path / "REPRODUCTION.md"
    assert "2 supported, 0 contradicted, 0 inconclusive, 0 premise failed, 1 not run." in text
    # the summary table: one row per condition, value with its interval and threshold side by side
    assert ("| `lr_asymmetry.fast_expert_wins` | **SUPPORTED** | mean test share of the fast expert at the largest "
            "lr ratio | 0.900 [0.880, 0.920] | > 0.5 | SUPPORTED | 0 |") in text
    assert "| `cheating.black_box_router_cheats` | **NOT RUN** |" in text
    # per claim: the statistic, n, the threshold in words, the verdict
    assert "### `lr_asymmetry.share_grows_with_ratio`: SUPPORTED" in text
    # a trend: rho over the 15 runs, judged by its permutation test (no interval)
    assert ("over all runs = **0.982 [permutation p = 0.0001]** (n = 15; no collapsed runs); threshold > 0 (above 0): "
            "**SUPPORTED**.") in text
    assert "Sensitivity (threshold moved by 25% of itself): none (a trend is judged by its permutation test" in text
    assert "| `lr_asymmetry.fast_expert_wins` | **SUPPORTED** |" in text
    # which configurations each statistic reads; what the runner changed to fit the data
    assert "  Reads 1 configuration: `softmax[lr_ratio=100]`." in text
    assert "  Reads 5 configurations: `softmax[lr_ratio=1]`, " in text
    assert "**Data**: `n_train`: the data files here hold 8,000." in text
    # the seed code's numbers beside ours, at the seed's ratio 100
    assert "| runs collapsed (fast expert takes all) | 7 of 10 | 0 of 3 |" in text
    assert "| test accuracy | 0.966 ± 0.014 | 0.980 ± 0.000 (3 runs, 0.98-0.98) |" in text
    # per configuration numbers and the figures, linked relative to the report
    # the one uncertainty rule: 3 runs give the bootstrap interval (shares 0.88, 0.90, 0.92: each end has
    # probability 1/27 > 2.5%, so the interval is the runs' range)
    assert "| `softmax[lr_ratio=100]` | 3/3 | 0.980 [0.980, 0.980] | 0.900 [0.880, 0.920] |" in text
    assert "![Each expert's share of the training samples against epoch" in text
    assert "(figures/lr_asymmetry_share_by_epoch.png)" in text and "(figures/lr_asymmetry_share_by_ratio.png)" in text
    # a sweep that did not run: its reason once, its claims NOT RUN
    assert text.count(MISSING) == 1 and "**The sweep did not run**" in text
    assert "### `cheating.black_box_router_cheats`: NOT RUN" in text
    assert "Budget **small**" in text and "wall time of this call 1:15" in text
    # the same verdicts as data
    data = json.loads((tmp_path / "reproduction.json").read_text())
    first = data["claims"][0]
    assert first["verdict"] == "SUPPORTED" and first["conditions"][0]["value"] == pytest.approx(0.9)
    assert first["conditions"][0]["interval"] == pytest.approx([0.88, 0.92]) and first["conditions"][0]["verdict"] == "SUPPORTED"
    assert first["conditions"][0]["threshold"] == 0.5 and first["conditions"][0]["op"] == ">"
    assert first["conditions"][0]["configurations"] == ["softmax[lr_ratio=100]"]
    assert data["sweeps"]["lr_asymmetry"]["notes"] == ["`n_train`: the data files here hold 8,000"]
    assert data["sweeps"]["cheating"]["reason"] == MISSING
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_an_undefined_statistic_is_reported_with_its_reason(tmp_path):
    runs = lr_frame({1: 0.5, 100: 0.9})  # two ratios: no rank correlation
    res = SweepResult("lr_asymmetry", runs)
    verdicts = [engine.evaluate(c, runs) for c in claims.for_sweep("lr_asymmetry")]
    text = verdict_page.render(Reproduction(tmp_path, "small", {"lr_asymmetry": res}, verdicts, 1.0, None))
    assert "### `lr_asymmetry.share_grows_with_ratio`: INCONCLUSIVE" in text
    assert ("= undefined (n = 6; no collapsed runs); threshold > 0 (above 0): **INCONCLUSIVE** — needs at "
            "least 3 values") in text
    assert "| undefined | > 0 | INCONCLUSIVE | 0 |" in text


def test_numbers_table_uses_ok_runs_and_counts_the_rest():
    runs = frame([run_row(0, "a", accuracy=0.5, allocation=shares(0.2)), run_row(1, "a", accuracy=0.7, allocation=shares(0.4)),
                  run_row(2, "a", status="error", accuracy=math.nan), run_row(3, "b", accuracy=0.9)])
    table = verdict_page.numbers_table(runs, ["accuracy", {"expert_share": 0}])
    assert "| configuration | ok runs | accuracy | share of expert 0 |" in table
    # fewer than 3 runs: no interval (no ± either), the range and n
    assert "| `a` | 2/3 | 0.600 (range 0.500–0.700, n = 2) | 0.300 (range 0.200–0.400, n = 2) |" in table
    assert "| `b` | 1/1 | 0.900 (n = 1) | – |" in table


@pytest.mark.parametrize("name, runs", [
    ("pretrained_experts", pretrained_frame(True, 0.9, 0.9)),
    ("fmnist_mnist_joint", joint_frame(False)),
    ("cheating", cheating_frame(0.95, 0.05, 0.5, 0.965)),
    ("remedies", cheating_frame(0.95, 0.05, 0.5, 0.965)),
    ("balancing", balancing_frame(True).assign(val_dead_experts=0.0)),
    ("expert_count", count_frame({e: 0.9 + 0.01 * i for i, e in enumerate([1, 2, 4, 8])}, {1: 0.1, 2: 0.2, 4: 0.3, 8: 0.4})),
])
def test_every_sweep_draws_its_figures(name, runs, tmp_path):
    if name in ("cheating", "remedies", "expert_count"):  # these read allocations for their heat-maps
        runs["allocation"] = json.dumps(np.eye(10, dtype=int).tolist())
    for col in ("nmi",):
        runs[col] = 0.5
    figs = PLOTS[name](runs, [], tmp_path)
    assert figs and all(p.is_file() and p.stat().st_size > 1000 and p.suffix == ".png" for _, p in figs)
    assert all(caption for caption, _ in figs)


def test_no_ok_runs_no_figures(tmp_path):
    runs = frame([run_row(0, "a", status="error", lr_ratio=1.0, experts=2, accuracy=math.nan)])
    for name, plot in PLOTS.items():
        assert plot(runs, [], tmp_path) == [], name


def test_report_states_open_verdicts_failed_premises_collapsed_runs_and_seed_numbers(tmp_path):
    from bench.reproduce.engine import evaluate_all

    cheat = cheating_frame(0.40, 0.60, 0.3, 0.965)  # the black box does not cheat: the remedies' premise fails
    joint = joint_frame(False)
    one = np.zeros((12, 6), dtype=int)
    one[:, 0] = 5
    joint = pd.concat([joint, frame([run_row(9, "softmax[experts=6]", seed=1, experts=6, accuracy=0.5, allocation=one)])],
                      ignore_index=True)
    lr = lr_frame({1: 0.5, 3: 0.52, 10: 0.54, 30: 0.56, 100: 0.5})
    lr.loc[lr.index[-1], "allocation"] = "[[55, 45]]"  # ratio 100: fast shares 0.48, 0.50, 0.55: interval [0.48, 0.55]
    results = {"cheating": SweepResult("cheating", cheat), "fmnist_mnist_joint": SweepResult("fmnist_mnist_joint", joint),
               "lr_asymmetry": SweepResult("lr_asymmetry", lr), "remedies": SweepResult("remedies", cheat)}
    chosen = (claims.for_sweep("lr_asymmetry") + claims.for_sweep("fmnist_mnist_joint") + claims.for_sweep("cheating")
              + claims.for_sweep("remedies"))
    verdicts = evaluate_all(chosen, lambda s: (results[s].runs, ""))
    text = verdict_page.render(Reproduction(tmp_path, "small", results, verdicts, 1.0, None))
    assert "### `remedies.linear_router`: PREMISE FAILED" in text
    assert ("Verdict: **PREMISE FAILED**: the premise `cheating.black_box_router_cheats` is CONTRADICTED, and this claim "
            "presupposes it") in text
    assert "| `cheating.black_box_router_cheats` | **CONTRADICTED** |" in text
    # an open verdict says what would decide it: n (h / d)^2 = 3 (0.03 / 0.01)^2, about 27 runs
    o = {x.claim.name: x for x in verdicts}["lr_asymmetry.fast_expert_wins"].outcomes[0]
    assert o.verdict == "INCONCLUSIVE" and o.seeds_needed in (27, 28)  # (27 up to rounding of 0.51 - 0.48)
    assert ("**INCONCLUSIVE** — the interval straddles the threshold; about "
            f"{int(o.seeds_needed)} runs per configuration (now 3) would decide it.") in text
    assert "### `lr_asymmetry.fast_expert_wins`: INCONCLUSIVE" in text
    # collapsed runs left out and counted, beside the statistic and in the numbers table
    assert "1 collapsed run left out" in text and "| 1 (left out) |" in text
    assert "| `softmax[experts=6]` | 2/2 (1 collapsed) |" in text
    assert "The seed code has no such experiment" in text
    assert "| runs collapsed (>= 99% of test samples on one expert) | 5 of 10 | 1 of 2 |" in text


def test_cheating_numbers_say_which_configurations_are_competent_and_alive():
    text = verdict_page.numbers_table(M.with_derived(cheating_frame(0.95, 0.05, 0.5, 0.965)), verdict_page.NUMBERS["cheating"])
    head, _, *rows = text.splitlines()
    assert "| val_accuracy | val_experts_alive | accuracy | cheating_score |" in head
    by_name = {r.split(" | ")[0].strip("| `"): r for r in rows}
    bb = "[router=softmax,gate=lenet,gate_hidden=16,routing=soft,match_router=None,experts=10]"
    assert "| 0.970 [0.970, 0.970] | 10.000 [10.000, 10.000] | 0.970 [0.970, 0.970] | 0.950 [0.950, 0.950] |" in by_name[bb]
    dead = "[router=softmax,gate=lenet,gate_hidden=8,routing=soft,match_router=None,experts=10]"
    assert "| 7.000 [7.000, 7.000] |" in by_name[dead]  # 7 of 10 alive: left out of the black boxes


def test_seed_numbers_stand_split_for_split_and_labels_say_which_split():
    from bench.reproduce import seed_results
    numbers = [n for s in seed_results.SETTINGS for n in s.numbers]
    for n in numbers:  # a training-set figure says so in its label; a validation reading says so
        if "training set" in n.seed or "mutual_EY" in n.source:
            assert "TRAINING" in n.label and "not comparable" in n.label, n.label
        if n.measure == "accuracy_after_joint":
            assert "ours: validation split" in n.label and not n.label.startswith("test"), n.label
    pairs = [s for s in seed_results.SETTINGS if s.label == seed_results.MNIST_PAIRS][0]
    test_mi = [n for n in pairs.numbers if n.label == "I(E;Y) bits, test split"]
    assert len(test_mi) == 1 and test_mi[0].seed.startswith("1.83-1.92")  # the seed's test heat-maps, not 2.25
    assert M.measure_name("accuracy_after_joint") == "validation accuracy after the joint phase"
    # the split NMI of each run against its own split, in both pre-trained sweeps' numbers
    assert {"split_nmi": "$class_split"} in verdict_page.NUMBERS["pretrained_experts"]
    assert {"split_nmi": "$class_split"} in verdict_page.NUMBERS["pretrained_experts_mnist"]


def test_an_mnist_sweep_says_which_images_test_is(tmp_path):
    runs = pretrained_frame(True, 0.90, 0.89, "mnist_pairs_2").assign(dataset="mnist")
    lines = verdict_page.sweep_section(SweepResult("pretrained_experts_mnist", runs), [], tmp_path, "small")
    assert any(line.startswith("**Test split**: ") and "MNIST *training* images" in line for line in lines)
    gm6 = lr_frame({1: 0.5, 100: 0.9}).assign(dataset="gm6")
    assert not any("Test split" in line for line in verdict_page.sweep_section(SweepResult("lr_asymmetry", gm6), [], tmp_path, "small"))


def test_a_sweep_trained_at_several_commits_says_so(tmp_path):
    runs = lr_frame({1: 0.5, 100: 0.9})
    one = verdict_page.sweep_section(SweepResult("lr_asymmetry", runs.assign(git="abc1234")), [], tmp_path, "small")
    assert not any(line.startswith("**Code**") for line in one)
    mixed = runs.assign(git=["abc1234"] * (len(runs) - 1) + ["def5678"])
    lines = verdict_page.sweep_section(SweepResult("lr_asymmetry", mixed), [], tmp_path, "small")
    assert (f"**Code**: its runs were trained at several commits (git abc1234: {len(runs) - 1} runs; git def5678: 1 run); "
            "each run's provenance is in runs.csv.") in lines
