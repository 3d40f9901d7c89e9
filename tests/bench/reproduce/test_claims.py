"""Claim verdicts on hand-made runs tables: for every claim a table built to support it and one built to
refute it; thresholds applied as stated (at the boundary, and moved); NaN values, non-ok rows, empty
selections; the runs.csv round trip (JSON allocations, blank cells)."""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pandas as pd
import pytest

from bench.reproduce import claims
from bench.reproduce import engine
from bench.reproduce import measures as M
from bench.reproduce import verdict_page
from bench.sweep.spec import available, load
from moe.config import FIELD_TYPES, Config
from moe.regimes import SPLITS
from moe.scoring.scores import DIRECTIONS
from moe.scoring.token_scores import table_columns

from runs_frames import frame, run_row, shares

RATIOS = [1, 3, 10, 30, 100]


# ---------------------------------------------------------------------------------------------------
# One supporting and one refuting runs table per claim
# ---------------------------------------------------------------------------------------------------

def scipy_spearmanr(x, y):
    """scipy's Spearman correlation, the reference: scipy.stats imported at the first call, not when the file is
    collected (about 1 s of every pytest-xdist worker's start)."""
    from scipy import stats

    return stats.spearmanr(x, y)


def lr_frame(fast_share_by_ratio: dict[int, float], seeds: int = 3) -> pd.DataFrame:
    rows = []
    for r, s in fast_share_by_ratio.items():
        for seed in range(seeds):
            rows.append(run_row(len(rows), f"softmax[lr_ratio={r}]", seed=seed, lr_ratio=float(r), accuracy=0.98,
                                allocation=shares(s + 0.02 * (seed - (seeds - 1) / 2))))
    return frame(rows)


def split_allocation(follows: bool, split: str = "fmnist_mnist") -> np.ndarray:
    """[C, E]: each class to the expert of its part of the split (fmnist_mnist: class c to expert c // 2), or
    spread evenly."""
    parts = SPLITS[split]
    classes, experts = sum(len(p) for p in parts), len(parts)
    a = np.full((classes, experts), 10)
    if follows:
        a = np.zeros((classes, experts), dtype=int)
        for e, part in enumerate(parts):
            a[part, e] = 10 * experts
    return a


def pretrained_frame(follows: bool, joint_acc: float, pre_acc: float, split: str = "fmnist_mnist",
                     short_acc: float | None = None) -> pd.DataFrame:
    """Runs from scratch at matched total epochs (40 joint epochs, accuracy ``joint_acc``) and with the joint epochs
    only (20, ``short_acc``: by default the same), and pre-trained runs (20 + 20 epochs, ``pre_acc``), 3 seeds each."""
    rows = []
    short_acc = joint_acc if short_acc is None else short_acc
    for regime, epochs, acc, alloc in (("frozen_gate", 20, short_acc, split_allocation(False, split)),
                                       ("frozen_gate", 40, joint_acc, split_allocation(False, split)),
                                       ("pretrain_frozen_gate", 20, pre_acc, split_allocation(follows, split))):
        for init in ("same", "new"):
            for seed in range(3):
                name = f"softmax[{'epochs=40,' if epochs == 40 else ''}regime={regime},refit_init={init}]"
                rows.append(run_row(len(rows), name, seed=seed, regime=regime, epochs=epochs, pretrain_epochs=20,
                                    refit_init=init, accuracy=acc + 0.002 * seed, accuracy_after_joint=acc - 0.01 + 0.002 * seed,
                                    class_split=split if regime == "pretrain_frozen_gate" else None, allocation=alloc))
    return frame(rows)


def test_no_accuracy_advantage_is_judged_at_matched_epochs_and_the_short_runs_are_only_shown_beside():
    claim = claims.by_name()["pretrained_experts.no_accuracy_advantage"]
    judged = engine.evaluate(claim, pretrained_frame(True, 0.90, 0.89, short_acc=0.99))  # short runs: +0.10, beside
    assert judged.status == engine.SUPPORTED
    assert [o.verdict for o in judged.outcomes] == [engine.SUPPORTED, engine.SUPPORTED, engine.CONTRADICTED, engine.CONTRADICTED]
    assert [o.condition.beside for o in judged.outcomes] == [False, False, True, True]
    assert set(judged.outcomes[0].configurations) == {"softmax[epochs=40,regime=frozen_gate,refit_init=same]",
                                                      "softmax[regime=pretrain_frozen_gate,refit_init=same]"}
    assert judged.outcomes[0].stat.value == pytest.approx(0.01) and judged.outcomes[2].stat.value == pytest.approx(0.10)
    assert [c["beside"] for c in judged.to_dict()["conditions"]] == [False, False, True, True]  # reproduction.json
    assert "INCONCLUSIVE (the conditions beside the verdict left out);" in "\n".join(verdict_page.claim_section(judged))
    assert engine.evaluate(claim, pretrained_frame(True, 0.99, 0.89, short_acc=0.88)).status == engine.CONTRADICTED
    without = pretrained_frame(True, 0.90, 0.89)
    without = without[without["epochs"] == 20]  # no runs at matched epochs (a directory of the paper's setup): undecided
    assert engine.evaluate(claim, without).status == engine.INCONCLUSIVE


def joint_frame(separated: bool) -> pd.DataFrame:
    rows = []
    for e in (2, 3, 4, 5, 6):
        a = np.full((12, e), 5)
        if separated:  # fashion classes to the first expert(s), digits to the others
            a = np.zeros((12, e), dtype=int)
            half = max(1, e // 2)
            a[:6, :half] = 5
            a[6:, half:] = 5
        rows.append(run_row(len(rows), f"softmax[experts={e}]", experts=e, accuracy=0.8, allocation=a,
                            partition_nmi=0.5))
    return frame(rows)


def cheating_frame(bb_cs: float, bb_ent: float, remedy_cs: float, remedy_acc: float) -> pd.DataFrame:
    """Rows of both cheating sweeps: the premise's black boxes (lenet and MLP gates, soft and hard, E 10 and 20, 2
    seeds; competent: validation accuracy 0.97 >= 0.96, every expert alive), the four remedies at E 10 and 20, and
    three decoys the filters must leave out whatever they score (cheating score 0): an incompetent black box
    (validation accuracy 0.95), a black box with dead experts, and a near-collapsed linear router."""
    rows = []
    bb_drop = 0.005 if bb_ent <= 0.2 else 0.1  # constant experts lose little when the experts are constant

    def add(fields, cs, ent, drop, acc, val_acc=None, dead=0.0, seeds=3, experts=(10, 20)):
        name = ",".join(f"{k}={v}" for k, v in fields.items())
        for e in experts:
            for seed in range(seeds):
                rows.append(run_row(len(rows), f"[{name},experts={e}]", seed=seed, experts=e, cheating_score=cs,
                                    expert_prediction_entropy=ent, constant_experts_drop=drop, accuracy=acc,
                                    val_accuracy=acc if val_acc is None else val_acc, val_dead_experts=dead,
                                    expert="linear", importance_loss=0.1, **fields))

    for gate in ("lenet", "mlp"):
        for routing in ("soft", "hard"):
            add({"router": "softmax", "gate": gate, "gate_hidden": 16, "routing": routing, "match_router": None},
                bb_cs, bb_ent, bb_drop, 0.97)
    add({"router": "softmax", "gate": "mlp", "gate_hidden": 32, "routing": "soft", "match_router": None},
        0.0, 0.9, 0.2, 0.95)  # incompetent
    add({"router": "softmax", "gate": "lenet", "gate_hidden": 8, "routing": "soft", "match_router": None},
        0.0, 0.9, 0.2, 0.97, dead=0.3, experts=(10,))  # 7 of 10 experts alive
    for fields in ({"router": "linear", "gate": "linear", "match_router": None},
                   {"router": "prototype", "gate": "linear", "match_router": None},
                   {"router": "softmax", "gate": "lenet", "gate_hidden": 16, "routing": "soft", "match_router": "linear"},
                   {"router": "softmax", "gate": "lenet", "gate_hidden": 16, "routing": "soft",
                    "match_router": "prototype"}):
        add(fields, remedy_cs, 0.5, 0.1, remedy_acc)
    add({"router": "linear", "gate": "linear", "gate_hidden": 8, "match_router": None}, 0.0, 0.5, 0.1, 0.97,
        dead=0.8)  # near-collapsed: 2 of 10 alive
    return frame(rows)


def balancing_frame(rising: bool, dead_below: float | None = None) -> pd.DataFrame:
    """The balancing sweep at E = 10, every expert alive; with ``dead_below``, the weights under it keep only 3 of
    10 experts alive and cheat little (0.1), whatever ``rising`` says of the others."""
    rows = []
    weights = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
    for i, w in enumerate(weights):
        for seed in range(3):
            cs = 0.4 + 0.1 * (i if rising else len(weights) - 1 - i) + 0.01 * seed
            dead = dead_below is not None and w < dead_below
            rows.append(run_row(len(rows), f"softmax[importance_loss={w}]", seed=seed, experts=10, importance_loss=w,
                                cheating_score=0.1 + 0.01 * seed if dead else cs, accuracy=0.97,
                                val_dead_experts=0.7 if dead else 0.0))
    return frame(rows)


def test_balancing_reads_only_configurations_with_every_expert_alive():
    """Near-collapse caps the cheating score: low weights with 3 of 10 experts alive and a low score would make a
    falling trend look like a rising one if they were pooled."""
    claim = next(c for c in claims.CLAIMS if c.name == "balancing.cheating_grows_with_balancing")
    runs = M.with_derived(balancing_frame(False, dead_below=0.1))  # alive weights 0.1-1 fall; dead ones cheat little
    pooled = scipy_spearmanr(runs["importance_loss"], runs["cheating_score"]).statistic
    assert pooled > 0  # over every run the trend would rise
    v = engine.evaluate(claim, runs)
    assert v.status == engine.CONTRADICTED and v.outcomes[0].stat.n == 9  # 3 alive weights x 3 seeds
    assert engine.evaluate(claim, M.with_derived(balancing_frame(True, dead_below=0.1))).status == engine.SUPPORTED


def count_frame(acc_by_e: dict[int, float], cs_by_e: dict[int, float]) -> pd.DataFrame:
    """The expert-count family (claims.EXPERT_COUNT_FAMILY) with explicit linear experts, and implicit experts a
    little less accurate; the parameters in use grow with E (785 x 10 per expert)."""
    rows = []
    for expert, shift in (("linear", 0.0), ("implicit", -0.01)):
        family = {**claims.EXPERT_COUNT_FAMILY, "expert": expert}
        for e, acc in acc_by_e.items():
            for seed in range(3):
                rows.append(run_row(len(rows), f"softmax[expert={expert},experts={e}]", seed=seed, experts=e,
                                    accuracy=acc + shift, cheating_score=cs_by_e[e] + shift,
                                    used_expert_parameters=7850 * e, **family))
    return frame(rows)


def text_frame(learned_domain: float, depth_gain: float, saturated: float, seeds: int = 3) -> pd.DataFrame:
    """The text sweep's rows: learned top-k (k 1, 2; Switch loss 0.01) and hash at E 4-32, three seeds."""
    rows = []
    for e in (4, 8, 16, 32):
        for router, k in (("topk", 1), ("topk", 2), ("hash", 1)):
            for seed in range(seeds):
                learned = router == "topk"
                rows.append(run_row(len(rows), f"{router}[k={k},experts={e}]", seed=seed, router=router, top_k=k, experts=e,
                                    switch_loss=0.01 if learned else 0.0,
                                    val_domain_specialisation_layer1=(learned_domain if learned else 0.0) + 0.004 * seed,
                                    vocabulary_specialisation_depth_gain=(depth_gain if learned else 0.0) + 0.004 * seed,
                                    saturated_before_end=saturated if learned else 1.0))
    return frame(rows)


E = [1, 2, 4, 8, 16, 32, 64]
FRAMES = {
    "text.domain_specialisation_beyond_hash": (lambda: text_frame(0.2, 0.1, 1.0), lambda: text_frame(0.01, 0.1, 1.0)),
    "text.vocabulary_specialisation_grows_with_depth": (lambda: text_frame(0.2, 0.1, 1.0), lambda: text_frame(0.2, -0.1, 1.0)),
    "text.saturation_before_end": (lambda: text_frame(0.2, 0.1, 1.0), lambda: text_frame(0.2, 0.1, 0.0)),
    "lr_asymmetry.fast_expert_wins": (lambda: lr_frame(dict(zip(RATIOS, [0.5, 0.6, 0.7, 0.8, 0.9]))),
                                      lambda: lr_frame(dict(zip(RATIOS, [0.5, 0.45, 0.4, 0.35, 0.3])))),
    "lr_asymmetry.share_grows_with_ratio": (lambda: lr_frame(dict(zip(RATIOS, [0.5, 0.6, 0.7, 0.8, 0.9]))),
                                            lambda: lr_frame(dict(zip(RATIOS, [0.9, 0.8, 0.7, 0.6, 0.5])))),
    "pretrained_experts.gate_follows_split": (lambda: pretrained_frame(True, 0.90, 0.90),
                                              lambda: pretrained_frame(False, 0.90, 0.90)),
    "pretrained_experts.no_accuracy_advantage": (lambda: pretrained_frame(True, 0.90, 0.89),
                                                 lambda: pretrained_frame(True, 0.95, 0.85)),
    "pretrained_experts_mnist.gate_follows_split": (lambda: pretrained_frame(True, 0.90, 0.90, "mnist_pairs_2"),
                                                    lambda: pretrained_frame(False, 0.90, 0.90, "mnist_pairs_2")),
    "pretrained_experts_mnist.no_accuracy_advantage": (lambda: pretrained_frame(True, 0.90, 0.89, "mnist_pairs_3"),
                                                       lambda: pretrained_frame(True, 0.95, 0.85, "mnist_pairs_3")),
    "fmnist_mnist_joint.no_reliable_separation": (lambda: joint_frame(False), lambda: joint_frame(True)),
    "cheating.black_box_router_cheats": (lambda: cheating_frame(0.95, 0.05, 0.5, 0.965),
                                         lambda: cheating_frame(0.40, 0.60, 0.3, 0.965)),
    **{f"remedies.{n}": (lambda: cheating_frame(0.95, 0.05, 0.5, 0.965), lambda: cheating_frame(0.95, 0.05, 0.5, 0.90))
       for n in ("prototype_router", "linear_router", "matching_to_linear", "matching_to_prototype")},
    "balancing.cheating_grows_with_balancing": (lambda: balancing_frame(True), lambda: balancing_frame(False)),
    "expert_count.accuracy_grows_with_experts": (
        lambda: count_frame(dict(zip(E, [0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96])), dict(zip(E, [0.5] * 7))),
        lambda: count_frame(dict(zip(E, [0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.90])), dict(zip(E, [0.5] * 7)))),
    "expert_count.accuracy_interpretability_tradeoff": (  # accuracy steps wider than the families' shift: every
        # configuration's rank agrees, so the resampled configurations keep the sign of the correlation
        lambda: count_frame(dict(zip(E, np.linspace(0.60, 0.90, 7))), dict(zip(E, [0.5] * 7))),
        lambda: count_frame(dict(zip(E, np.linspace(0.90, 0.60, 7))), dict(zip(E, [0.5] * 7)))),
}


def test_every_claim_has_a_supporting_and_a_refuting_table():
    assert set(FRAMES) == set(claims.by_name())


@functools.cache
def supported_premise(name: str) -> engine.Verdict:
    """A premise's verdict on its own supporting table: judged once per test process (the same table, the same
    verdict: the engine's bootstrap and permutation tests are seeded), not once per claim and table that presuppose it."""
    return engine.evaluate(claims.by_name()[name], FRAMES[name][0]())


def judge(claim: engine.Claim, runs: pd.DataFrame) -> engine.Verdict:
    """The claim's verdict, its premises from another sweep judged on their own supporting tables."""
    premises = {p.name: supported_premise(p.name) for p in claim.premises if p.sweep != claim.sweep}
    return engine.evaluate(claim, runs, premises=premises)


@pytest.mark.parametrize("name", list(FRAMES))
def test_verdicts_follow_the_numbers(name):
    claim = claims.by_name()[name]
    support, refute = FRAMES[name]
    yes, no = judge(claim, support()), judge(claim, refute())
    assert yes.status == engine.SUPPORTED, [(o.condition.label, o.stat) for o in yes.outcomes]
    assert no.status == engine.CONTRADICTED, [(o.condition.label, o.stat) for o in no.outcomes]
    assert all(not math.isnan(o.stat.value) for o in yes.outcomes)


@pytest.mark.parametrize("name", list(FRAMES))
def test_the_same_tables_survive_a_runs_csv_round_trip(name, tmp_path):
    claim = claims.by_name()[name]
    for make, want in zip(FRAMES[name], (engine.SUPPORTED, engine.CONTRADICTED)):
        path = tmp_path / "runs.csv"
        make().to_csv(path, index=False)
        assert judge(claim, pd.read_csv(path)).status == want


def test_stated_values_of_the_statistics():
    # fast share at ratio 100: seeds 0.88, 0.90, 0.92 -> 0.90; Spearman over the 15 runs (scipy's, ties averaged)
    runs = lr_frame(dict(zip(RATIOS, [0.5, 0.6, 0.7, 0.8, 0.9])))
    v = engine.evaluate(claims.by_name()["lr_asymmetry.fast_expert_wins"], runs)
    assert v.outcomes[0].stat.value == pytest.approx(0.90) and v.outcomes[0].stat.n == 3
    v = engine.evaluate(claims.by_name()["lr_asymmetry.share_grows_with_ratio"], runs)
    share = M.measure_values(runs, claims.FAST_SHARE)
    assert v.outcomes[0].stat.value == pytest.approx(scipy_spearmanr(runs["lr_ratio"], share)[0])
    assert v.outcomes[0].stat.detail["mean at lr_ratio=30"] == pytest.approx(0.8)
    # accuracy advantage of joint training, before the refit and after it (the larger over refit inits)
    runs = pretrained_frame(True, 0.95, 0.85)
    runs.loc[(runs["regime"] == "frozen_gate") & (runs["refit_init"] == "new"), "accuracy"] += 0.05
    v = engine.evaluate(claims.by_name()["pretrained_experts.no_accuracy_advantage"], runs)
    assert [o.stat.value for o in v.outcomes] == pytest.approx([0.10, 0.15, 0.10, 0.15])  # matched, then beside
    # split NMI 1 for the split itself, separation 1 for perfectly separated groups whatever E
    assert M.split_nmi(split_allocation(True).astype(float), M._split_of("fmnist_mnist")) == pytest.approx(1.0)
    assert M.split_nmi(split_allocation(False).astype(float), M._split_of("fmnist_mnist")) == pytest.approx(0.0)
    sep = M.measure_values(joint_frame(True), {"separation": claims.FASHION_DIGITS})
    assert sep.tolist() == pytest.approx([1.0] * 5)
    # remedy: drop 0.95 - 0.5 at both E, accuracy difference 0.965 - 0.97
    v = judge(claims.by_name()["remedies.prototype_router"], cheating_frame(0.95, 0.05, 0.5, 0.965))
    assert [o.stat.value for o in v.outcomes] == pytest.approx([0.45, -0.005])
    # the pooled mean weighs configurations equally: one black box scoring 0.55 on 2 runs, the other 7 at 0.95
    runs = cheating_frame(0.95, 0.05, 0.5, 0.965)
    one = runs["name"] == runs["name"].iloc[0]
    runs.loc[one, "cheating_score"] = 0.55
    v = engine.evaluate(claims.BLACK_BOX_CHEATS, runs)
    assert v.outcomes[0].stat.value == pytest.approx((0.55 + 7 * 0.95) / 8)
    assert v.outcomes[0].stat.detail["configurations pooled"] == 8 and v.outcomes[0].stat.n == 24


def test_thresholds_are_applied_as_stated_not_hard_coded():
    claim = claims.by_name()["lr_asymmetry.fast_expert_wins"]
    runs = lr_frame({1: 0.5, 100: 0.9})  # shares 0.88, 0.90, 0.92 at the largest ratio: mean 0.90, interval [0.88, 0.92]
    cond = claim.conditions[0]
    at = lambda op, thr: engine.evaluate(dataclasses.replace(claim, conditions=(dataclasses.replace(cond, op=op, threshold=thr),)), runs)  # noqa: E731
    assert at(">", 0.5).status == engine.SUPPORTED
    assert at(">", 0.95).status == engine.CONTRADICTED
    # the point value alone (holds) against the boundary
    assert at(">=", 0.9).outcomes[0].holds and not at(">", 0.9).outcomes[0].holds
    assert at("<", 0.95).outcomes[0].holds and not at("<=", 0.89).outcomes[0].holds
    # the interval against the boundary: [0.88, 0.92] (3 runs: each extreme has probability 1/27 > 2.5%)
    assert at(">=", 0.88).status == engine.SUPPORTED and at(">", 0.88).status == engine.INCONCLUSIVE
    assert at(">=", 0.9).status == engine.INCONCLUSIVE and at("<", 0.95).status == engine.SUPPORTED
    assert at("<=", 0.88).status == engine.INCONCLUSIVE and at("<", 0.88).status == engine.CONTRADICTED


def test_nan_values_are_left_out_and_counted():
    runs = cheating_frame(0.95, 0.05, 0.5, 0.965)
    runs.loc[(runs["seed"] == 1), "cheating_score"] = math.nan  # (the decoys' NaN are not read)
    out = engine.evaluate(claims.by_name()["cheating.black_box_router_cheats"], runs).outcomes[0]
    assert out.stat.value == pytest.approx(0.95) and out.stat.n == 16
    assert out.stat.detail["NaN values left out"] == 8


def test_all_nan_or_no_matching_runs_is_inconclusive_with_a_reason():
    claim = claims.by_name()["cheating.black_box_router_cheats"]
    runs = cheating_frame(0.95, 0.05, 0.5, 0.965)
    runs["cheating_score"] = math.nan
    v = engine.evaluate(claim, runs)
    assert v.status == engine.INCONCLUSIVE and v.outcomes[0].reason == "every value is NaN"
    assert math.isnan(v.outcomes[0].stat.value) and v.outcomes[0].stat.note == "every value is NaN"
    v = engine.evaluate(claim, runs[runs["router"] == "prototype"])
    assert v.status == engine.INCONCLUSIVE and v.outcomes[0].stat.note == "no ok run matches"
    v = engine.evaluate(claims.by_name()["lr_asymmetry.share_grows_with_ratio"], lr_frame({1: 0.5, 100: 0.9}))
    assert v.status == engine.INCONCLUSIVE and "at least 3 values" in v.outcomes[0].stat.note


def test_only_ok_rows_count():
    runs = lr_frame(dict(zip(RATIOS, [0.5, 0.6, 0.7, 0.8, 0.9])))
    bad = [run_row(100 + i, "softmax[lr_ratio=100]", status=s, lr_ratio=100.0, allocation=shares(0.0))
           for i, s in enumerate(("error", "diverged", "stopped"))]
    runs = pd.concat([runs, frame(bad)], ignore_index=True)
    v = engine.evaluate(claims.by_name()["lr_asymmetry.fast_expert_wins"], runs)
    assert v.outcomes[0].stat.value == pytest.approx(0.90) and v.runs == {"ok": 15, "error": 1, "diverged": 1, "stopped": 1}


def test_a_missing_side_of_a_comparison_is_undefined():
    runs = cheating_frame(0.95, 0.05, 0.5, 0.965)
    runs = runs[~((runs["router"] == "prototype") & (runs["experts"] == 20))]
    out = judge(claims.by_name()["remedies.prototype_router"], runs).outcomes[0]
    assert math.isnan(out.stat.value) and "experts=20" in out.stat.note


def test_not_run_when_the_sweep_did_not_run():
    v = engine.evaluate(claims.by_name()["cheating.black_box_router_cheats"], None, "dataset 'mnist': files missing")
    assert v.status == engine.NOT_RUN and v.reason == "dataset 'mnist': files missing" and v.outcomes == []


def test_where_filters():
    runs = frame([run_row(i, "x", experts=e, match_router=m, lr_ratio=r)
                  for i, (e, m, r) in enumerate([(1, None, 1.0), (2, "linear", 3.0), (4, "prototype", 3.0)])])
    assert M.select(runs, {"match_router": None})["index"].tolist() == [0]
    assert M.select(runs, {"match_router": ["linear", "prototype"]})["index"].tolist() == [1, 2]
    assert M.select(runs, {"experts": {">": 1}})["index"].tolist() == [1, 2]
    assert M.select(runs, {"lr_ratio": "$max"})["index"].tolist() == [1, 2]
    assert M.select(runs, {"lr_ratio": "$min"})["index"].tolist() == [0]
    assert M.select(runs, {"no_such_column": 1}).empty and len(M.select(runs, {"no_such_column": None})) == 3
    with pytest.raises(M.ClaimError, match="unknown operator"):
        M.select(runs, {"experts": {"~": 1}})


def test_black_box_routers_are_competent_alive_balanced_lenet_or_mlp_gates_without_matching():
    from bench.reproduce.figures import family

    gates = [("softmax", "mlp", None), ("softmax", "lenet", None), ("softmax", "linear", None),
             ("softmax", "mlp", "linear"), ("prototype", "linear", None), ("sinkhorn", "lenet", None)]
    rows = [run_row(i, f"c{i}", router=r, gate=g, match_router=m, experts=10, importance_loss=0.1, val_accuracy=0.97,
                    val_dead_experts=0.0) for i, (r, g, m) in enumerate(gates)]
    rows += [run_row(6, "unbalanced", router="softmax", gate="mlp", match_router=None, experts=10, importance_loss=0.0,
                     val_accuracy=0.97, val_dead_experts=0.0),
             run_row(7, "incompetent", router="softmax", gate="lenet", match_router=None, experts=10,
                     importance_loss=0.1, val_accuracy=0.955, val_dead_experts=0.0),
             run_row(8, "dead", router="softmax", gate="lenet", match_router=None, experts=10, importance_loss=0.1,
                     val_accuracy=0.97, val_dead_experts=0.1),  # 9 of 10 experts alive on the validation split
             run_row(9, "dead", router="softmax", gate="lenet", match_router=None, experts=10, importance_loss=0.1,
                     val_accuracy=0.97, val_dead_experts=0.0),  # its configuration still has one run with 9
             run_row(10, "few experts", router="softmax", gate="mlp", match_router=None, experts=5, importance_loss=0.1,
                     val_accuracy=0.97, val_dead_experts=0.0)]
    runs = M.with_derived(frame(rows))
    assert M.select(runs, claims.BLACK_BOX)["index"].tolist() == [0, 1]
    assert runs["config_val_alive"].tolist()[8:10] == [9, 9] and runs["val_experts_alive"].tolist()[8:10] == [9, 10]
    assert runs["balancing"].tolist()[5:7] == ["sinkhorn", "none"]
    assert [family(row) for _, row in runs.iloc[:5].iterrows()] == [
        "black box (MLP gate, balanced)", "black box (LENET gate, balanced)", "softmax (linear gate)",
        "MLP gate matched to linear", "prototype router"]
    assert [family(row) for _, row in runs.iloc[5:7].iterrows()] == ["Sinkhorn (LENET gate)", "black box (MLP gate)"]


def test_competence_filters_read_the_validation_split_only():
    """Nothing that selects reads the test split: every filter of every claim names config fields or derived
    columns computed from validation scores, never a test score."""
    test_scores = set(DIRECTIONS) - {"val_" + k for k in DIRECTIONS}
    for claim in claims.CLAIMS:
        for cond in claim.conditions:
            for key in ("a", "b", "where"):
                for col in cond.params.get(key) or {}:
                    assert col not in test_scores, (claim.name, key, col)
                    assert col in FIELD_TYPES or col in {"balancing", "competent", "config_val_accuracy",
                                                         "config_val_alive", "epochs_before_refit"}, (claim.name, col)
    runs = M.with_derived(frame([run_row(i, "a", experts=10, val_accuracy=v, accuracy=t, val_dead_experts=0.0)
                                 for i, (v, t) in enumerate([(0.97, 0.50), (0.95, 0.50)])]))
    assert runs["config_val_accuracy"].tolist() == pytest.approx([0.96, 0.96])  # validation, not test accuracy


def test_competence_reads_validation_accuracy_against_the_single_linear_model():
    rows = [run_row(i, n, experts=e, val_accuracy=v, accuracy=t) for i, (n, e, v, t) in enumerate([
        ("single", 1, 0.90, 0.99), ("single", 1, 0.92, 0.99),  # baseline: mean validation accuracy 0.91
        ("a", 10, 0.93, 0.50), ("a", 10, 0.91, 0.50),  # mean 0.92 >= 0.91 + 0.01: competent, whatever its test accuracy
        ("b", 10, 0.919, 0.99), ("b", 10, 0.919, 0.99)])]  # 0.919 < 0.92: not, though its test accuracy is high
    rows.append(run_row(6, "a", status="error", experts=10, val_accuracy=0.0))  # failed runs do not count
    got = M.competent(frame(rows))
    assert got.tolist()[:6] == [False, False, True, True, False, False]
    assert M.competent(frame([run_row(0, "a", experts=10, val_accuracy=0.9)])).isna().all()  # no baseline: blank


def test_every_claim_filter_matches_configurations_of_its_sweep():
    """The rows a claim reads exist in its sweep (version 2 of cheating and expert_count included): each
    ``where`` / ``a`` / ``b`` filter, on the config fields alone, matches at least one trial of the sweep file."""
    defaults = dataclasses.asdict(Config())
    tables = {name: M.with_derived(frame([run_row(t.index, t.name, **{**defaults, **t.config})
                                          for t in load(name).trials()]))
              for name in {c.sweep for c in claims.CLAIMS}}
    for claim in claims.CLAIMS:
        runs = tables[claim.sweep]
        for cond in claim.conditions:
            for key in ("a", "b", "where"):
                where = {k: v for k, v in (cond.params.get(key) or {}).items()
                         if k in FIELD_TYPES or k == "balancing"}  # (competent needs results)
                assert len(M.select(runs, M.resolve_extremes(where, runs))), (claim.name, key, where)


def test_bad_claims_fail_loudly():
    runs = lr_frame({1: 0.5})
    with pytest.raises(M.ClaimError, match="unknown statistic"):
        engine.evaluate_condition(engine.Condition("median", {}, ">", 0, "x"), runs)
    with pytest.raises(M.ClaimError, match="unknown comparison"):
        engine.evaluate_condition(engine.Condition("mean", {"measure": "accuracy"}, "!=", 0, "x"), runs)
    with pytest.raises(M.ClaimError, match="measure"):
        M.measure_values(runs, {"entropy_of": 1})


def test_claims_are_consistent_with_the_sweeps_and_the_config():
    """Every claim reads an existing sweep file, known statistics and operators, and real columns."""
    sweeps = available()
    columns = set(FIELD_TYPES) | set(DIRECTIONS) | {"name", "status", "allocation"}
    columns |= {f"accuracy_after_{phase}" for phase in ("pretrain", "joint", "gate", "experts")}  # M.with_phase_accuracy
    columns |= {"balancing", "competent", "val_experts_alive", "config_val_accuracy", "config_val_alive",
                "epochs_before_refit"}  # with_derived
    columns |= table_columns(2)  # the language model's (sweeps/text.yaml: two MoE layers)
    for claim in claims.CLAIMS:
        assert claim.sweep in sweeps, claim.name
        load(claim.sweep)
        for cond in claim.conditions:
            assert cond.statistic in engine.STATISTICS and cond.op in M.OPS and isinstance(cond.threshold, (int, float))
            for key in ("a", "b", "where"):
                assert set(cond.params.get(key) or {}) <= columns, (claim.name, key)
            for key in ("measure", "x", "y"):
                m = cond.params.get(key)
                assert m is None or (m in columns if isinstance(m, str) else next(iter(m)) in M.MEASURES), (claim.name, key)


def test_phase_accuracy_joins_the_last_test_accuracy_of_each_phase():
    records = [{"bench": {"index": 0}, "history": [
                   {"phase": "joint", "test_accuracy": 0.5}, {"phase": "joint", "test_accuracy": 0.7},
                   {"phase": "experts", "test_accuracy": 0.8}]},
               {"bench": {"index": 1}, "history": [{"phase": "pretrain", "test_accuracy": 0.6},
                                                   {"phase": "joint", "test_accuracy": None}]},
               {"status": "error", "history": []}]
    runs = frame([run_row(0, "a", accuracy=0.8), run_row(1, "b", accuracy=0.6), run_row(2, "c", status="error")])
    runs.attrs["out"] = "somewhere"
    out = M.with_phase_accuracy(runs, records)
    assert out["accuracy_after_joint"].tolist()[:1] == [0.7] and math.isnan(out["accuracy_after_joint"][1])
    assert out["accuracy_after_experts"][0] == 0.8 and out["accuracy_after_pretrain"][1] == 0.6
    assert list(out["index"]) == [0, 1, 2] and out.attrs["out"] == "somewhere"
    assert M.with_phase_accuracy(runs, []) is runs


def test_what_precedes_the_refit_is_read_once_per_seed():
    """The two refit inits of a seed share its joint phase and gate: the split NMI and the accuracy after the
    joint phase count each seed once (n = 3 seeds, not 6 rows), so the interval is not narrowed by copies."""
    runs = pretrained_frame(True, 0.90, 0.89)
    follows = engine.evaluate(claims.by_name()["pretrained_experts.gate_follows_split"], runs).outcomes[0]
    assert follows.stat.n == 3 and set(follows.configurations) == {"softmax[regime=pretrain_frozen_gate,refit_init=same]"}
    before, after = engine.evaluate(claims.by_name()["pretrained_experts.no_accuracy_advantage"], runs).outcomes[:2]
    assert before.stat.n == 6  # 3 seeds on each side
    assert after.stat.n == 12  # after the refit: both inits, each its own runs


def test_a_sweep_run_with_another_concurrency_can_be_continued():
    from bench.reproduce.continuation import same_settings as _same
    assert _same({"n_train": 384, "resources.max_concurrent": 1}, {"n_train": 384})
    assert not _same({"n_train": 384, "resources.cpu": 2}, {"n_train": 384})
