"""Training regimes by name: each is a list of phases that ``moe.training.loop.run`` runs in order.

A phase trains the gate, the experts or both for some epochs; a ``pretrain`` phase trains each expert
alone on its own classes (no gate); a phase may first replace the experts by fresh ones. The run record's
history marks every epoch with its phase; the test scores are those of the model after the last phase.

- ``joint`` (default): gate and experts trained together (Jacobs et al. 1991).
- ``pretrain``: each expert first trained alone on its part of ``class_split`` (``pretrain_epochs``), then
  a fresh gate trained with the experts frozen (phase ``gate``, ``freeze_experts: true``) or with them
  (phase ``joint``) (Krishnamurthy & Watkins 2021, the seed paper's pre-trained experts).
- ``frozen_gate``: joint training, then the gate frozen and fresh experts (the same initial weights or a
  new draw, ``refit_init``) trained under it for ``refit_epochs`` (phase ``experts``; the seed paper's Figure 2).
- ``pretrain_frozen_gate``: the two above in sequence (pretrain, gate or joint, experts).

``mask_experts`` (pretrain regimes): each expert predicts only its classes of the split (a softmax over
them, exactly 0 elsewhere; ``moe.experts.base``), in pre-training and after, as the seed code's pair
experts; under the frozen gate, ``refit_init: same`` refits masked experts from their initial weights and
``refit_init: new`` a new draw of full C-class experts, as the seed code does.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from moe.registry import Registry, suggestion

REGIMES: Registry = Registry("regime")

# The seed paper's class splits, one pair per expert: fmnist_mnist (Fashion-MNIST 0-5, MNIST digits 4-9 as
# 6-11; 6 experts) and the seed code's five MNIST pair splits (5 experts).
SPLITS: dict[str, list[list[int]]] = {
    "fmnist_mnist": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]],
    "fmnist_mnist_2": [[0, 3], [1, 4], [2, 5], [6, 9], [7, 11], [8, 10]],
    "fmnist_mnist_3": [[0, 5], [1, 2], [3, 4], [6, 8], [7, 10], [9, 11]],
    "mnist_pairs_1": [[0, 1], [2, 5], [3, 4], [6, 9], [7, 8]],
    "mnist_pairs_2": [[0, 9], [1, 4], [2, 7], [3, 6], [5, 8]],
    "mnist_pairs_3": [[0, 3], [1, 2], [4, 7], [5, 9], [6, 8]],
    "mnist_pairs_4": [[0, 5], [1, 9], [2, 6], [3, 7], [4, 8]],
    "mnist_pairs_5": [[0, 4], [1, 8], [2, 9], [3, 6], [5, 7]],
}
CONTIGUOUS = "contiguous"  # classes 0..C-1 cut into E consecutive parts, the first C mod E one class larger
REFIT_INITS = ("same", "new")


@dataclass(frozen=True)
class Phase:
    name: str  # the history's 'phase': pretrain | joint | gate | experts
    epochs: int
    train_gate: bool
    train_experts: bool
    pretrain: bool = False  # each expert alone on its classes of the split, no gate
    reset_experts: str | None = None  # 'same' | 'new': start the phase with fresh experts


@REGIMES.register("joint")
def joint(cfg) -> list[Phase]:
    return [Phase("joint", cfg.epochs, True, True)]


@REGIMES.register("pretrain")
def pretrain(cfg) -> list[Phase]:
    return [Phase("pretrain", cfg.pretrain_epochs, False, True, pretrain=True),
            Phase("gate" if cfg.freeze_experts else "joint", cfg.epochs, True, not cfg.freeze_experts)]


@REGIMES.register("frozen_gate")
def frozen_gate(cfg) -> list[Phase]:
    return joint(cfg) + [_refit(cfg)]


@REGIMES.register("pretrain_frozen_gate")
def pretrain_frozen_gate(cfg) -> list[Phase]:
    return pretrain(cfg) + [_refit(cfg)]


def _refit(cfg) -> Phase:
    epochs = cfg.epochs if cfg.refit_epochs is None else cfg.refit_epochs
    return Phase("experts", epochs, False, True, reset_experts=cfg.refit_init)


def phases(cfg) -> list[Phase]:
    return REGIMES.get(cfg.regime, "regime")(cfg)


def uses_split(regime: str) -> bool:
    return regime.startswith("pretrain")


def resolve_split(cfg, n_classes: int) -> list[list[int]] | None:
    """The class split of ``cfg`` for data with ``n_classes`` classes (presets expanded); None if unused."""
    split = cfg.class_split
    if split is None:
        return None
    if split == CONTIGUOUS:
        sizes = [n_classes // cfg.experts + (e < n_classes % cfg.experts) for e in range(cfg.experts)]
        bounds = [sum(sizes[:e]) for e in range(cfg.experts + 1)]
        return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
    return SPLITS[split] if isinstance(split, str) else split


def class_owners(split: list[list[int]], n_classes: int) -> torch.Tensor:
    """int64 [n_classes]: the expert whose part of the split holds each class."""
    owners = torch.empty(n_classes, dtype=torch.long)
    for e, part in enumerate(split):
        owners[part] = e
    return owners


def split_problems(split: list[list[int]], n_experts: int, n_classes: int | None = None) -> list[str]:
    """Every class exactly once, one non-empty part per expert; n_classes None: check what is knowable without data."""
    problems = []
    if len(split) != n_experts:
        problems.append(f"class_split: needs one list of classes per expert ({n_experts}), got {len(split)}")
    if any(len(part) == 0 for part in split):
        problems.append(f"class_split: every expert needs at least one class, got {split}")
    flat = [c for part in split for c in part]
    repeated = sorted(c for c, n in Counter(flat).items() if n > 1)
    if repeated:
        problems.append(f"class_split: classes {repeated} appear more than once in {split}")
    if any(c < 0 for c in flat) or (n_classes is not None and any(c >= n_classes for c in flat)):
        problems.append(f"class_split: classes must lie in [0, {n_classes if n_classes is not None else 'n_classes'}), got {split}")
    top = n_classes if n_classes is not None else (max(flat) + 1 if flat else 0)
    missing = sorted(set(range(top)) - set(flat))
    if missing:
        problems.append(f"class_split: classes {missing} are left out of {split}")
    if len(problems) > 1:  # one field, one line
        problems = ["class_split: " + "; ".join(p.removeprefix("class_split: ") for p in problems)]
    return problems


def config_problems(cfg) -> list[str]:
    """The regime fields' own rules, checked before any data is loaded (the data-dependent rest: ``split_problems``;
    the rules involving the router or the dataset: ``moe.validate``)."""
    problems = []
    if cfg.regime not in REGIMES:
        return [REGIMES.unknown_message(cfg.regime, field="regime")]
    pretraining = uses_split(cfg.regime)
    if pretraining and cfg.class_split is None:
        problems.append(f"class_split: regime {cfg.regime!r} needs a class split: a list of class lists, one per expert, "
                        f"or one of: {', '.join([*SPLITS, CONTIGUOUS])}")
    elif not pretraining and cfg.class_split is not None:
        problems.append(f"class_split: only the pretrain regimes use a class split, got regime {cfg.regime!r}")
    elif isinstance(cfg.class_split, str) and cfg.class_split != CONTIGUOUS and cfg.class_split not in SPLITS:
        names = [*SPLITS, CONTIGUOUS]
        problems.append(f"class_split: unknown split {cfg.class_split!r}{suggestion(cfg.class_split, names)}; "
                        f"valid choices: {', '.join(names)}")
    elif isinstance(cfg.class_split, list):
        problems.extend(split_problems(cfg.class_split, cfg.experts))
    elif isinstance(cfg.class_split, str) and cfg.class_split in SPLITS:
        problems.extend(split_problems(SPLITS[cfg.class_split], cfg.experts))
    if cfg.mask_experts and not pretraining:
        problems.append(f"mask_experts: only the pretrain regimes have a class split to mask the experts by, "
                        f"got regime {cfg.regime!r}; valid regimes for it: {', '.join(r for r in REGIMES.in_order() if uses_split(r))}")
    if cfg.freeze_experts and not pretraining:
        problems.append(f"freeze_experts: only the pretrain regimes train a gate over frozen experts, got regime {cfg.regime!r}")
    check = lambda ok, message: ok or problems.append(message)  # noqa: E731
    check(cfg.pretrain_epochs >= 1, f"pretrain_epochs: must be >= 1, got {cfg.pretrain_epochs}")
    check(cfg.refit_epochs is None or cfg.refit_epochs >= 1, f"refit_epochs: must be >= 1 or null, got {cfg.refit_epochs}")
    check(cfg.refit_init in REFIT_INITS, f"refit_init: unknown choice {cfg.refit_init!r}; valid choices: {', '.join(REFIT_INITS)}")
    return problems
