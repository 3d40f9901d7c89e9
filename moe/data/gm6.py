"""gm6: the seed paper's generated 2-D data (Krishnamurthy & Watkins 2021; ``helper/datagen.gm_kmc``).

6 isotropic Gaussian clusters of 500 points. Centres are picked k-means++-style from 1,000 points
uniform in the unit disk (the first uniformly, each next with probability proportional to its squared
distance to the nearest chosen centre); variance 0.06 x the smallest squared distance between two
centres; points rescaled by (x + 1) / 2; label = cluster; stratified 80/20 split. Everything seeded.
"""
from __future__ import annotations

import torch

from moe.config import Config
from moe.data.base import DATASETS, Dataset, shaped

N_REFERENCE, N_CLUSTERS, N_PER_CLUSTER, VARIANCE_FACTOR, TEST_SHARE = 1000, 6, 500, 0.06, 0.2


def generate(seed: int = Config.data_seed, n_clusters: int = N_CLUSTERS, n_per_cluster: int = N_PER_CLUSTER):
    """Return (x [n_clusters * n_per_cluster, 2] float32, y int64, centres [n_clusters, 2] in disk coordinates)."""
    g = torch.Generator().manual_seed(seed)
    # reference points uniform in the unit disk: radius sqrt(U) makes the density uniform in area
    radius = torch.rand(N_REFERENCE, generator=g, dtype=torch.float64).sqrt()
    angle = torch.rand(N_REFERENCE, generator=g, dtype=torch.float64) * 2 * torch.pi
    ref = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
    # k-means++ seeding
    chosen = [int(torch.randint(N_REFERENCE, (1,), generator=g))]
    for _ in range(n_clusters - 1):
        d2 = torch.cdist(ref, ref[chosen]).pow(2).min(1).values
        chosen.append(int(torch.multinomial(d2 / d2.sum(), 1, generator=g)))
    centres = ref[chosen]
    d2 = torch.cdist(centres, centres).pow(2)
    variance = VARIANCE_FACTOR * d2[~torch.eye(n_clusters, dtype=torch.bool)].min()
    noise = torch.randn(n_clusters, n_per_cluster, 2, generator=g, dtype=torch.float64) * variance.sqrt()
    x = (centres[:, None, :] + noise).reshape(-1, 2)
    y = torch.arange(n_clusters).repeat_interleave(n_per_cluster)
    return ((x + 1) / 2).float(), y, centres


def stratified_split(y: torch.Tensor, test_share: float, g: torch.Generator):
    """(train indices, test indices): the first round(test_share * n_c) of a random permutation of each class go to test."""
    train, test = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(test_share * len(idx))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


@DATASETS.register("gm6")
@shaped(n_classes=N_CLUSTERS, input_shape=(2,))
def load_gm6(root=None, seed: int = Config.data_seed) -> Dataset:
    """gm6: 2,400 train / 600 test points in [0, 1]^2 (approximately), 6 classes, no grouping."""
    x, y, _ = generate(seed)
    train, test = stratified_split(y, TEST_SHARE, torch.Generator().manual_seed(seed + 1))
    return Dataset("gm6", x[train], y[train], x[test], y[test], class_names=[f"cluster {c}" for c in range(N_CLUSTERS)])
