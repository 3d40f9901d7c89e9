"""planted: generated data whose labels come from known sub-problems (modules), the planted ground truth that a
gate's partition can be scored against (module_nmi, module_ari in ``moe.scoring.scores``).

After InterpretCC (its synthetic OpenXAI tasks) and MoE-X, which score against planted ground truth: that
separates a gate that recovers the sub-problems from one that copies the labels.

Letters: M modules (``planted_modules``), C = 8 classes, e the entanglement (``planted_entanglement``), F = 6
feature dimensions, D = 2 + F inputs.

Each sample x = [z, u] belongs to one module m (uniform over the M modules):
- z [2], the context, says which sub-problem the sample is: z = R (cos 2 pi m / M, sin 2 pi m / M) + 0.15 eps
  (R = 1; z = 0.15 eps for M = 1), M points on a circle, so a linear gate can route by module;
- its class c is drawn uniformly from the module's classes S_m(e), and u = P[m, c] + 0.5 eps' with each
  module's own class prototypes P[m, c] ~ 2 N(0, I_F): the same class looks different in each module, so one
  linear expert per module solves the task and no single linear expert does.

The knob: module m owns the block of classes B_m = {c : floor(c M / C) = m} and uses the |S_m| = |B_m| +
round(e (C - |B_m|)) classes that follow cyclically from the first of its block. e = 0: each module owns
whole classes (the class determines the module: a gate that copies the labels also recovers the modules);
e = 1: every module uses every class (the class says nothing of the module). Between, the windows overlap;
when M divides C every class is used by equally many modules (balanced classes).

4,000 training and 1,000 test samples, all from ``data_seed`` (prototypes and samples; the same data for every
model seed). Module m of each sample is stored (``Dataset.module_train``, ``module_test``).
"""
from __future__ import annotations

import math

import torch

from moe.config import MAX_PLANTED_MODULES, Config
from moe.data.base import DATASETS, Dataset, shaped

N_CLASSES = MAX_PLANTED_MODULES  # 8: planted_modules is at most the class count
N_FEATURES, N_TRAIN, N_TEST = 6, 4000, 1000
RADIUS, CONTEXT_NOISE, PROTOTYPE_SCALE, FEATURE_NOISE = 1.0, 0.15, 2.0, 0.5


def module_classes(n_modules: int, entanglement: float, n_classes: int = N_CLASSES) -> list[list[int]]:
    """S_m(e) for every module: its own block of classes and the next round(e (C - |B_m|)) classes, cyclically."""
    out = []
    for m in range(n_modules):
        block = [c for c in range(n_classes) if c * n_modules // n_classes == m]
        size = len(block) + round(entanglement * (n_classes - len(block)))
        out.append([(block[0] + i) % n_classes for i in range(size)])
    return out


def generate(seed: int, n_modules: int, entanglement: float, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x [n, 2 + F] float32, y int64 [n], module int64 [n]); the prototypes are drawn first from ``seed``,
    so the training and test splits (drawn one after the other from one generator) share them."""
    g = torch.Generator().manual_seed(seed)
    prototypes = PROTOTYPE_SCALE * torch.randn(n_modules, N_CLASSES, N_FEATURES, generator=g, dtype=torch.float64)
    angle = 2 * math.pi * torch.arange(n_modules, dtype=torch.float64) / n_modules
    centres = RADIUS * torch.stack([angle.cos(), angle.sin()], 1) if n_modules > 1 else torch.zeros(1, 2, dtype=torch.float64)
    classes = module_classes(n_modules, entanglement)
    module = torch.arange(n) % n_modules  # balanced modules
    module = module[torch.randperm(n, generator=g)]
    sizes = torch.tensor([len(s) for s in classes])
    table = torch.tensor([s + [0] * (N_CLASSES - len(s)) for s in classes])  # [M, C] padded class lists
    pick = (torch.rand(n, generator=g, dtype=torch.float64) * sizes[module]).long().clamp_max(sizes[module] - 1)
    y = table[module, pick]
    z = centres[module] + CONTEXT_NOISE * torch.randn(n, 2, generator=g, dtype=torch.float64)
    u = prototypes[module, y] + FEATURE_NOISE * torch.randn(n, N_FEATURES, generator=g, dtype=torch.float64)
    return torch.cat([z, u], 1).float(), y, module


@DATASETS.register("planted")
@shaped(n_classes=N_CLASSES, input_shape=(2 + N_FEATURES,))
def load_planted(root=None, seed: int = Config.data_seed, planted_modules: int = Config.planted_modules,
                 planted_entanglement: float = Config.planted_entanglement) -> Dataset:
    """planted: 4,000 train / 1,000 test samples of 8 classes in R^8, M planted modules, entanglement e."""
    if not 1 <= planted_modules <= N_CLASSES or not 0 <= planted_entanglement <= 1:
        raise ValueError(f"planted: planted_modules must be in [1, {N_CLASSES}] and planted_entanglement in [0, 1], "
                         f"got {planted_modules} and {planted_entanglement}")
    x, y, module = generate(seed, planted_modules, planted_entanglement, N_TRAIN + N_TEST)
    return Dataset("planted", x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:],
                   class_names=[f"class {c}" for c in range(N_CLASSES)],
                   module_train=module[:N_TRAIN], module_test=module[N_TRAIN:],
                   module_names=[f"module {m}" for m in range(planted_modules)],
                   options={"planted_modules": planted_modules, "planted_entanglement": float(planted_entanglement)})


load_planted.options = ("planted_modules", "planted_entanglement")  # the config fields it reads (dataset_options)
