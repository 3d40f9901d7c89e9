"""The seed papers' findings as data: the catalogue of claims that ``python -m bench.reproduce`` judges.

Each claim names a sweep of ``sweeps/``, one or more conditions (a statistic of the sweep's runs table,
a comparison, a threshold: ``bench.reproduce.engine``) and where the papers show the finding. Collapsed runs
(one expert takes >= 99% of the test samples) are left out of a claim's statistics unless the claim keeps
them (``keep_collapsed``); each claim's note says which, and why.
"""
from __future__ import annotations

from typing import Any

from bench.reproduce.claim_types import Claim, ClaimError, Condition

FASHION_DIGITS = [0] * 6 + [1] * 6  # fmnist_mnist: Fashion-MNIST classes 0-5, MNIST digits 4-9 as 6-11
# The black box of the cheating claims: a learned router (softmax or the Sinkhorn balanced assignment)
# with an MLP or CNN gate (cnn, lenet), not matched to an interpretable router, kept in use by balancing (an
# auxiliary loss or Sinkhorn) and competent (beats a single linear model on validation accuracy:
# bench.reproduce.measures.competent), soft or hard routing alike. Version 1 read unbalanced MLP gates after 5
# epochs, so its verdict measured collapse and underfitting, not cheating.
BLACK_BOX = {"router": ["softmax", "sinkhorn"], "gate": ["mlp", "cnn", "lenet"], "match_router": None,
             "balancing": ["importance", "switch", "load", "sinkhorn"], "competent": True, "experts": {">": 1}}
# The family whose accuracy the expert-count claim follows: one of many linear experts per input (hard routing)
# under a balanced black-box MLP router, E = 1 to 1,024 (the abstract's setting, in this project's reading).
EXPERT_COUNT_FAMILY = {"router": "softmax", "gate": "mlp", "importance_loss": 0.1, "routing": "hard",
                       "expert": "linear", "match_router": None}
SINGLE_LINEAR = {"experts": 1}  # one linear expert: a single linear model
ONE_REFIT = "same"  # the refit inits of a seed share its joint phase and gate: read one of them for what precedes the refit
FAST_SHARE = {"expert_share": 0}  # expert 0 has the largest learning rate (moe.config: expert 0 fastest)


# The premise of the remedies below (defined first so that they can name it).
BLACK_BOX_CHEATS = Claim(
    name="cheating.black_box_router_cheats", sweep="cheating",
    text="A black-box router over linear experts solves the task itself: the experts become constant.",
    source="Implicit Mixture of Interpretable Experts (Elazar & Taylor 2022)",
    conditions=(
        Condition("mean", {"measure": "cheating_index", "where": BLACK_BOX}, ">=", 0.8,
                  "mean cheating index of the competent, balanced black-box routers"),
        Condition("mean", {"measure": "expert_prediction_entropy", "where": BLACK_BOX}, "<=", 0.2,
                  "mean expert prediction entropy of the competent, balanced black-box routers"),
    ),
    note="Cheating index 1: the router alone is as accurate as the mixture; expert prediction entropy 0: every "
         "expert predicts one class on its samples (docs/scores.md). The black box: softmax or Sinkhorn routers with "
         "an MLP or CNN gate (cnn, lenet), soft or hard routing, kept in use by balancing (importance or Switch loss, "
         "or Sinkhorn), in configurations that are competent: mean validation accuracy at least one point above a "
         "single linear model's (this project's operationalisation; the rows below name every configuration read). "
         "Collapsed runs are left out: a router that sends everything to one expert solves nothing (its cheating "
         "index is undefined).")


def _remedy(name: str, remedy: dict[str, Any], words: str) -> Claim:
    remedy = {**remedy, "experts": {">": 1}}  # a mixture (one expert is the single linear model)
    return Claim(
        name=f"cheating.{name}", sweep="cheating",
        text=f"With {words}, the cheating index drops below the black-box router's while accuracy stays above "
             "a single linear model's.",
        source="Implicit Mixture of Interpretable Experts (Elazar & Taylor 2022)",
        conditions=(
            Condition("difference", {"measure": "cheating_index", "a": BLACK_BOX, "b": remedy, "by": "experts",
                                     "reduce": "min"}, ">=", 0.1,
                      f"smallest drop of the mean cheating index from the black-box router to {words}, over expert counts"),
            Condition("difference", {"measure": "accuracy", "a": remedy, "b": SINGLE_LINEAR, "by": "experts",
                                     "reduce": "min"}, ">", 0.0,
                      f"smallest accuracy margin of {words} over a single linear model, over expert counts",
                      shift=0.01),
        ),
        note="A remedy presupposes cheating: when the black-box router does not cheat, there is nothing to "
             "remedy and the verdict is PREMISE FAILED. Collapsed runs are left out (their cheating index is "
             "undefined); a single linear model cannot collapse. Sensitivity of the accuracy margin: the zero "
             "threshold moved by one accuracy point either way.",
        premises=(BLACK_BOX_CHEATS,))


def _pretrained(sweep: str, words: str) -> tuple[Claim, Claim]:
    """The two class-split findings (Figures 3 and 4), on fmnist_mnist or on MNIST."""
    return (
        Claim(
            name=f"{sweep}.gate_follows_split", sweep=sweep,
            text="With experts pre-trained on the class split, the gate's allocation matches the split.",
            source="Krishnamurthy & Watkins 2021, Figure 3",
            conditions=(Condition("mean", {"measure": {"split_nmi": "$class_split"},
                                           "where": {"regime": "pretrain_frozen_gate", "refit_init": ONE_REFIT}},
                                  ">=", 0.7, "mean NMI between split part and expert, pre-trained runs"),),
            note=f"{words}; each run is scored against its own split; the allocation is the final one, under the "
                 "frozen gate. Each gate counts once: the two refit inits of a seed share its gate (their allocations "
                 "are equal), so only the 'same' refit runs are read. Collapsed runs count: a gate that sends "
                 "everything to one expert does not follow the split, and leaving it out would hide the evidence "
                 "against the claim.",
            keep_collapsed=True),
        Claim(
            name=f"{sweep}.no_accuracy_advantage", sweep=sweep,
            text="The uninterpretable decomposition of joint training brings no accuracy advantage over the "
                 "pre-trained split.",
            source="Krishnamurthy & Watkins 2021, Figure 4",
            conditions=(
                Condition("difference", {"measure": "accuracy_after_joint",
                                         "a": {"regime": "frozen_gate", "refit_init": ONE_REFIT},
                                         "b": {"regime": "pretrain_frozen_gate", "refit_init": ONE_REFIT}}, "<=", 0.02,
                          "accuracy advantage of joint training over pre-trained experts, before the gate is frozen "
                          "(validation accuracy at the end of the joint phase)"),
                Condition("difference", {"measure": "accuracy", "a": {"regime": "frozen_gate"},
                                         "b": {"regime": "pretrain_frozen_gate"}, "by": "refit_init",
                                         "reduce": "max"}, "<=", 0.02,
                          "largest accuracy advantage of joint training over pre-trained experts after fresh "
                          "experts were trained under the frozen gate, over the refit inits"),
            ),
            note="Before: the validation accuracy at the end of the joint phase (gate and experts trained together, from "
                 "scratch or from the pre-trained experts), read once per seed (the 'same' refit runs: both refit "
                 "inits share the joint phase). After: the final accuracy, once fresh experts (same or "
                 "new initialisation) were trained under the frozen gate. Collapsed runs are left out: a collapsed "
                 "joint run has no decomposition at all, and the claim is about the decomposition joint training "
                 "finds (leaving them out makes the claim harder to support, not easier)."),
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="lr_asymmetry.fast_expert_wins", sweep="lr_asymmetry",
        text="The expert with the higher learning rate captures most samples.",
        source="Krishnamurthy & Watkins 2021, Figure 5",
        conditions=(Condition("mean", {"measure": FAST_SHARE, "where": {"lr_ratio": "$max"}}, ">", 0.5,
                              "mean test share of the fast expert at the largest lr ratio"),),
        note="Share: the fast expert's column of the test allocation (top-weight expert of each test sample). "
             "Collapsed runs count: the fast expert taking every sample is the finding itself (7 of 10 runs in the "
             "seed code).",
        keep_collapsed=True),
    Claim(
        name="lr_asymmetry.share_grows_with_ratio", sweep="lr_asymmetry",
        text="The fast expert's share of samples grows with the learning-rate ratio.",
        source="Krishnamurthy & Watkins 2021, Figure 5",
        conditions=(Condition("rank_correlation", {"measure": FAST_SHARE, "x": "lr_ratio"}, ">", 0, "trend: "
                              "Spearman's rho of the lr ratio with the fast expert's share over all runs"),),
        note="A trend test over runs: Spearman's rho over every run (not over the level means, whose rho is discrete "
             "and capped at 1), SUPPORTED when a one-sided permutation test finds it above 0 (p < 0.025). Collapsed runs "
             "count: a run in which the fast expert took everything is "
             "the far end of the share this claim follows.",
        keep_collapsed=True),
    *_pretrained("pretrained_experts", "fmnist_mnist, splits such as [[0,1],[2,3],[4,5],[6,7],[8,9],[10,11]]"),
    *_pretrained("pretrained_experts_mnist", "MNIST, the seed code's five pair splits mnist_pairs_1..5"),
    Claim(
        name="fmnist_mnist_joint.no_reliable_separation", sweep="fmnist_mnist_joint",
        text="Joint training does not reliably separate fashion from digits.",
        source="Krishnamurthy & Watkins 2021, Figure 1",
        conditions=(Condition("mean", {"measure": {"separation": FASHION_DIGITS}}, "<", 0.75,
                              "mean fashion/digit separation I(G;E)/H(G) over the joint runs (every expert count of the sweep)"),),
        note="Separation 1: no expert takes both fashion and digits. partition_nmi is shown beside it. Collapsed "
             "runs are left out: a run that sends everything to one expert trivially does not separate, so "
             "counting it would support the claim by default; the claim asks whether the runs that do split, "
             "split by domain (the seed code: 5 of 10 runs collapsed, their count is shown beside the statistic)."),
    BLACK_BOX_CHEATS,
    _remedy("prototype_router_remedy", {"router": "prototype"}, "a prototype router"),
    _remedy("linear_router_remedy", {"router": "linear"}, "a linear router"),
    _remedy("router_matching_remedy", {"router": "softmax", "gate": "mlp", "match_router": ["linear", "prototype"]},
            "router matching"),
    Claim(
        name="expert_count.accuracy_grows_with_experts", sweep="expert_count",
        text="Accuracy grows with the number of linear experts under a black-box router.",
        source="Implicit Mixture of Interpretable Experts (Elazar & Taylor 2022)",
        conditions=(Condition("rank_correlation", {"measure": "accuracy", "x": "experts",
                                                   "where": EXPERT_COUNT_FAMILY}, ">", 0,
                              "trend: Spearman's rho of the expert count with the accuracy over all runs of one linear "
                              "expert per input under a balanced black-box MLP router"),),
        note="The family: softmax router, MLP gate, importance loss 0.1, hard routing (one expert per input, the "
             "abstract's setting), explicit linear experts, E = 1 to 1,024 (E = 1: a single linear model). "
             "Collapsed runs count: a configuration's accuracy includes its failures to use its experts, and "
             "leaving them out would favour the large expert counts.",
        keep_collapsed=True,
    ),
    Claim(
        name="expert_count.accuracy_interpretability_tradeoff", sweep="expert_count",
        text="Accuracy is bought with interpretability: the more accurate configurations cheat more.",
        source="Implicit Mixture of Interpretable Experts (Elazar & Taylor 2022)",
        conditions=(Condition("correlation", {"x": "accuracy", "y": "cheating_index",
                                              "where": {"experts": {">": 1}}}, ">=", 0.5,
                              "Spearman correlation across configurations (E > 1) of mean accuracy and mean "
                              "cheating index"),),
        note="Collapsed runs are left out: their cheating index is undefined.",
    ),
)

# Token-level mixtures (sweeps/text.yaml): OLMoE's analyses (Muennighoff et al. 2024, arXiv 2409.02060, sec. 5) at a
# CPU's scale, a 2-block byte-level MoE language model on the King James Bible, genre as the domain.
TEXT_LEARNED = {"router": "topk", "switch_loss": 0.01}  # the learned top-k routers of the E x k grid
TEXT_HASH = {"router": "hash"}  # the control: routing independent of domain and token
_OLMOE = "OLMoE (Muennighoff et al. 2024, arXiv 2409.02060), sec. 5"
TEXT_CLAIMS = (
    Claim(
        name="text.domain_specialisation_beyond_hash", sweep="text",
        text="Experts specialise by domain: a domain's tokens go to its favourite expert more often than chance, "
             "beyond the hash router.",
        source=_OLMOE,
        conditions=(Condition("difference", {"measure": "val_domain_specialisation_layer1", "a": TEXT_LEARNED,
                                             "b": TEXT_HASH, "by": "experts", "reduce": "min"}, ">=", 0.05,
                              "domain specialisation of the last MoE layer, learned top-k minus hash, at the "
                              "least favourable expert count"),),
        note="Domain specialisation (docs/scores.md): the mean over the genres of the largest share of a genre's "
             "validation tokens on one expert, against the same with the routings shuffled (0: none, 1: every genre "
             "on its own expert); OLMoE reads the shares against the uniform k/E, this project against the shuffle, "
             "which an unbalanced router cannot beat without specialising. The learned routers: top-1 and top-2 with "
             "the Switch loss 0.01, E 4 to 32; the difference is taken per E and the smallest is judged. The "
             "threshold 0.05 (5% of the way from shuffled to perfect) is this project's.",
    ),
    Claim(
        name="text.vocabulary_specialisation_grows_with_depth", sweep="text",
        text="Vocabulary specialisation is higher in the later MoE layer than in the earlier one.",
        source=_OLMOE,
        conditions=(Condition("mean", {"measure": "vocabulary_specialisation_depth_gain", "where": TEXT_LEARNED},
                              ">=", 0.02, "mean over the learned top-k runs of vocabulary specialisation, last MoE "
                                          "layer minus first"),),
        note="Vocabulary specialisation: the occurrence-weighted share of a byte's occurrences on its most frequent "
             "expert, against the shuffled routings (docs/scores.md); two MoE layers here (OLMoE has 16). The "
             "threshold 0.02 is this project's.",
    ),
    Claim(
        name="text.saturation_before_end", sweep="text",
        text="Router saturation reaches 0.9 before training ends.",
        source=_OLMOE,
        conditions=(Condition("mean", {"measure": "saturated_before_end", "where": TEXT_LEARNED}, ">=", 0.8,
                              "share of the learned top-k runs' MoE layers whose saturation reached 0.9 at one of "
                              "the 7 points of training before the last"),),
        note="Router saturation: the share of the final model's top-k choices already made at a point of training, "
             "on 32 fixed validation windows, at 8 evenly spaced points (docs/scores.md). One epoch at the small "
             "budget (384 windows of 128 bytes): a short training, where OLMoE reads checkpoints of 5 trillion "
             "tokens.",
    ),
)
CLAIMS = CLAIMS + TEXT_CLAIMS


def by_name() -> dict[str, Claim]:
    out: dict[str, Claim] = {}
    for c in CLAIMS:
        if c.name in out:
            raise ClaimError(f"claim {c.name!r} is defined twice")
        out[c.name] = c
    return out


def for_sweep(sweep: str) -> list[Claim]:
    return [c for c in CLAIMS if c.sweep == sweep]


def sweeps() -> list[str]:
    """The sweeps the claims read, in claim order."""
    return list(dict.fromkeys(c.sweep for c in CLAIMS))
