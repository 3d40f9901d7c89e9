"""The seed code's own numbers, as data, to be set beside this harness's in each claim's section.

From the project's literature notes, section 'The seed code's own settings and saved results'
(yamsgithub/modular_deep_learning, branch xai_neurips_2021: its notebooks, saved outputs and checkpoint
histories). Each number keeps the note's line it comes from (``source``). A setting names the runs of our
sweep that correspond to it (``where``: a row filter of ``bench.reproduce.measures``) and the claims whose
sections show it. The cheating and expert-count claims have none: the seed code has no such experiment.

Split for split: the seed's saved I(E;Y) histories (``mutual_EY``) are on the training batches of the last epoch
and its notebooks' heat-maps on the test set; a test figure stands beside ours (always test), a training figure
is labelled as one. Our ``accuracy_after_<phase>`` is read on the validation split (``measures.phase_accuracy``),
the seed's on its test split: labelled so.

Quantities (``measure``): a column of runs.csv read as mean ± std over the matching ok runs (``accuracy``,
``accuracy_after_joint``, ``mi_bits`` = I(E;Y), ``h_expert_bits`` = H(E)), an allocation measure
(``{"expert_share": e}``), or ``"collapsed"`` (how many of the runs collapsed, ``measures.collapsed``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

LOG2_5, LOG2_6 = math.log2(5), math.log2(6)


@dataclass(frozen=True)
class SeedNumber:
    label: str  # the quantity in words
    measure: str | dict[str, Any]  # how our runs give it (module docstring)
    seed: str  # the seed code's number as it reports it
    source: str  # the line of the note it comes from
    where: dict[str, Any] = field(default_factory=dict)  # further rows filter, on top of the setting's


@dataclass(frozen=True)
class SeedSetting:
    sweep: str
    label: str  # the seed's experiment in words
    where: dict[str, Any]  # our runs that correspond to it
    claims: tuple[str, ...]  # the claims whose sections show it
    numbers: tuple[SeedNumber, ...]


LR = "gm6, lr asymmetry (2 linear experts, expert lrs 0.01 / 0.0001, gate 0.01, RMSprop momentum 0.9, 30 epochs, 10 runs)"
MNIST_SCRATCH = "MNIST from scratch, 5 experts, 5 runs"
MNIST_PAIRS = "MNIST, pre-trained pair experts, 5 splits"
FM_SCRATCH = "fmnist_mnist from scratch, 6 experts, 10 runs"
FM_PAIRS = "fmnist_mnist, pre-trained pair experts, 3 splits"

# the seed code's runs from scratch train the joint epochs only (not the matched total epochs): ours beside them alike
SEED_SCRATCH = {"regime": "frozen_gate", "epochs": "$min"}
SETTINGS: tuple[SeedSetting, ...] = (
    SeedSetting("lr_asymmetry", LR, {"lr_ratio": 100}, ("lr_asymmetry.fast_expert_wins",), (
        SeedNumber("test accuracy", "accuracy", "0.966 ± 0.014", f"{LR}: test accuracy 0.966 +- 0.014"),
        SeedNumber("runs collapsed (fast expert takes all)", "collapsed", "7 of 10",
                   f"{LR}: the fast expert takes all 2,400 training samples in 7 of 10 runs"),
        SeedNumber("share of the fast expert (seed: of the training samples; ours: of the test samples)",
                   {"expert_share": 0}, "0.950 (2,280 of 2,400 training samples)",
                   f"{LR}: mean samples per expert [2280, 120]"),
        SeedNumber("share of the slow expert (seed: training; ours: test)", {"expert_share": 1}, "0.050 (120 of 2,400 training samples)",
                   f"{LR}: mean samples per expert [2280, 120]"),
        SeedNumber("I(E;Y) bits", "mi_bits", "0 in the 7 collapsed runs, 0.40-0.62 in the other 3",
                   f"{LR}: in the other 3 the slow expert keeps about one cluster (I(E;Y) 0.40-0.62 bits)"),
    )),
    SeedSetting("pretrained_experts_mnist", MNIST_SCRATCH, SEED_SCRATCH,
                ("pretrained_experts_mnist.no_accuracy_advantage",), (
        SeedNumber("accuracy after joint training (seed: test split; ours: validation split)", "accuracy_after_joint",
                   "0.847 ± 0.035",
                   f"{MNIST_SCRATCH}: test accuracy 0.915 / 0.838 / 0.832 / 0.812 / 0.839 (mean 0.847 +- 0.035)",
                   {"refit_init": "same"}),
        SeedNumber("runs collapsed", "collapsed", "4 of 5",
                   f"{MNIST_SCRATCH}: in 4 of 5 runs the gate collapsed onto one expert", {"refit_init": "same"}),
        SeedNumber("I(E;Y) bits", "mi_bits", "0 in 4 runs, 1.41 in the fifth",
                   f"{MNIST_SCRATCH}: H(E) ~ 0, I(E;Y) = 0; the fifth used 4 experts, I(E;Y) = 1.41 bits",
                   {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, same init", "accuracy", "0.817 ± 0.087",
                   f"{MNIST_SCRATCH}: fresh experts under the frozen gate: 0.817 +- 0.087 (same init)",
                   {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, new init", "accuracy", "0.797 ± 0.086",
                   f"{MNIST_SCRATCH}: 0.797 +- 0.086 (new init)", {"refit_init": "new"}),
    )),
    SeedSetting("pretrained_experts_mnist", MNIST_PAIRS, {"regime": "pretrain_frozen_gate"},
                ("pretrained_experts_mnist.gate_follows_split", "pretrained_experts_mnist.no_accuracy_advantage"), (
        SeedNumber("accuracy after joint training (seed: test split; ours: validation split)", "accuracy_after_joint",
                   "0.921",
                   f"{MNIST_PAIRS}: test accuracy 0.927 / 0.927 / 0.914 / 0.929 / 0.907 (mean 0.921)",
                   {"refit_init": "same"}),
        SeedNumber("I(E;Y) bits, test split", "mi_bits", "1.83-1.92 (mean 1.88)",
                   f"{MNIST_PAIRS}: on the test set, from the notebook's saved test-allocation heat-maps "
                   "(mnist_classification.ipynb cell 54), I(E;Y) = 1.83-1.92 bits (mean 1.88)", {"refit_init": "same"}),
        SeedNumber("split NMI, test split", {"split_nmi": "$class_split"}, "0.78-0.82",
                   f"{MNIST_PAIRS}: split NMI 0.78-0.82 (split 1: 1.892 bits, NMI 0.805)", {"refit_init": "same"}),
        SeedNumber("I(E;Y) bits, seed: TRAINING batches of the last epoch (ours: test split; not comparable)", "mi_bits",
                   "2.25 ± 0.01 (training set)",
                   f"{MNIST_PAIRS}: I(E;Y) = 2.25 +- 0.01 bits is a TRAINING-set figure (mutual_EY)", {"refit_init": "same"}),
        SeedNumber("H(E) bits", "h_expert_bits", f"{LOG2_5:.2f} (log2 5: balanced)",
                   f"{MNIST_PAIRS}: usage balanced, H(E) = 2.32 (= log2 5)", {"refit_init": "same"}),
        SeedNumber("runs collapsed", "collapsed", "0 of 5 (usage balanced)", f"{MNIST_PAIRS}: usage balanced",
                   {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, same init", "accuracy", "0.922",
                   f"{MNIST_PAIRS}: fresh experts under that frozen gate: 0.922 (same init, masked pair experts)",
                   {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, new init", "accuracy", "0.909 ± 0.029",
                   f"{MNIST_PAIRS}: 0.909 +- 0.029 (new init, 10-class experts)", {"refit_init": "new"}),
    )),
    SeedSetting("pretrained_experts", FM_SCRATCH, SEED_SCRATCH,
                ("pretrained_experts.no_accuracy_advantage",), (
        SeedNumber("runs collapsed (>= 99% of test samples on one expert)", "collapsed", "5 of 10",
                   f"{FM_SCRATCH}: 5 of 10 runs send >= 99% of test samples to one expert", {"refit_init": "same"}),
    )),
    SeedSetting("pretrained_experts", FM_PAIRS, {"regime": "pretrain_frozen_gate"},
                ("pretrained_experts.gate_follows_split", "pretrained_experts.no_accuracy_advantage"), (
        SeedNumber("accuracy after joint training (seed: test split; ours: validation split)", "accuracy_after_joint",
                   "0.855 (0.790 / 0.875 / 0.901)",
                   f"{FM_PAIRS}: accuracy 0.790 / 0.875 / 0.901", {"refit_init": "same"}),
        SeedNumber("I(E;Y) bits, seed: most likely its TRAINING batches, no test figure found (ours: test split; not "
                   "comparable)", "mi_bits", "2.45 (training set, most likely)",
                   f"{FM_PAIRS}: I(E;Y) = 2.45 bits (most likely a training-set mutual_EY figure)", {"refit_init": "same"}),
        SeedNumber("H(E) bits", "h_expert_bits", f"{LOG2_6:.2f} (log2 6: balanced)", f"{FM_PAIRS}: H(E) = log2 6",
                   {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, same init", "accuracy", "0.854",
                   f"{FM_PAIRS}: fresh experts under the frozen gate: 0.854 (same init)", {"refit_init": "same"}),
        SeedNumber("accuracy, fresh experts under the frozen gate, new init", "accuracy", "0.831",
                   f"{FM_PAIRS}: 0.831 (new init)", {"refit_init": "new"}),
    )),
    SeedSetting("fmnist_mnist_joint", FM_SCRATCH, {"experts": 6}, ("fmnist_mnist_joint.no_reliable_separation",), (
        SeedNumber("runs collapsed (>= 99% of test samples on one expert)", "collapsed", "5 of 10",
                   f"{FM_SCRATCH}: 5 of 10 runs send >= 99% of test samples to one expert"),
        SeedNumber("fashion/digit separation I(G;E)/H(G)", {"separation": [0] * 6 + [1] * 6},
                   "1 of 10 runs separates digits from fashion, the others mix domains",
                   f"{FM_SCRATCH}: one separates digits from fashion; others mix domains"),
    )),
)
NO_SEED_CODE = ("cheating", "expert_count")  # sweeps without a seed-code experiment (Elazar & Taylor 2022: no code)


def for_claim(name: str) -> list[SeedSetting]:
    return [s for s in SETTINGS if name in s.claims]
