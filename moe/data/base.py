"""The datasets' base: the :class:`Dataset` type, the ``DATASETS`` registry, loading, subsets (stratified or
the first n, the seed code's way), the validation split (:func:`hold_out`) and input normalisation;
:func:`prepare` applies a config's subsets, validation split and normalisation to a loaded dataset.

Each dataset gives train/test tensors, class names and, where one exists, a grouping of classes.
``load_dataset(name, ...)`` is the one entry point; adding a dataset is adding one function registered
with ``@DATASETS.register("name")`` that returns a :class:`Dataset`, in a file imported by
``moe/data/__init__.py``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from moe.config import NORMALIZATIONS, SUBSETS, Config
from moe.registry import Registry


@dataclass
class Dataset:
    """Tensors and metadata. Inputs are float32 ([N, 2] for gm6, [N, 1, 28, 28] in [0, 1] for images).

    The validation split (``x_val``, ``y_val``; None when there is none) exists only once :func:`hold_out`
    carved it out of the training data (``moe.data.prepare``): ``val_indices`` are its samples' positions in
    the training data it was carved from, and ``x_train`` / ``y_train`` are the rest."""

    name: str
    x_train: Tensor
    y_train: Tensor  # int64 [N_train]
    x_test: Tensor
    y_test: Tensor  # int64 [N_test]
    class_names: list[str]
    grouping: list[int] | None = None  # group id of each class (e.g. fashion = 0, digits = 1)
    group_names: list[str] | None = None
    x_val: Tensor | None = None
    y_val: Tensor | None = None  # int64 [N_val]
    val_indices: Tensor | None = None  # int64 [N_val]: positions in the (subsetted) training data before the split
    # planted ground truth (moe.data.planted): the module (sub-problem) of each sample, and the generator's knobs
    module_train: Tensor | None = None  # int64 [N_train]
    module_test: Tensor | None = None  # int64 [N_test]
    module_val: Tensor | None = None  # int64 [N_val]
    module_names: list[str] | None = None
    options: dict | None = None  # the config fields the loader read (DATASETS loader attribute ``options``)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict:
        """The metadata stored in a run record."""
        return {"name": self.name, "class_names": self.class_names, "grouping": self.grouping,
                "group_names": self.group_names, "n_train": len(self.y_train), "n_test": len(self.y_test),
                "n_val": 0 if self.y_val is None else len(self.y_val), "val_indices_sha256": self.val_fingerprint(),
                "input_shape": list(self.input_shape),
                **{k: v for k in ("module_names", "options") if (v := getattr(self, k)) is not None}}

    def val_fingerprint(self) -> str | None:
        """sha256 (first 16 hex digits) of the validation split's positions (little-endian int64); None without one."""
        if self.val_indices is None:
            return None
        return hashlib.sha256(self.val_indices.numpy().astype("<i8").tobytes()).hexdigest()[:16]

    def to_numpy(self) -> dict:
        """Arrays for Ray's object store (numpy is shared zero-copy; tensors would be pickled by value): a loaded
        dataset, before its validation split is carved (a run carves its own)."""
        if self.y_val is not None:
            raise ValueError("to_numpy: a dataset with a validation split (a prepared one); pass the loaded dataset")
        meta = {"name": self.name, "class_names": self.class_names, "grouping": self.grouping, "group_names": self.group_names,
                "module_names": self.module_names, "options": self.options}
        arrays = {k: getattr(self, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
        arrays.update({k: t.numpy() for k in ("module_train", "module_test") if (t := getattr(self, k)) is not None})
        return {**meta, **arrays}

    @classmethod
    def from_numpy(cls, d: dict) -> "Dataset":
        arrays = {k: torch.from_numpy(d[k].copy()) for k in ("x_train", "y_train", "x_test", "y_test", "module_train",
                                                             "module_test") if d.get(k) is not None}
        return cls(name=d["name"], class_names=d["class_names"], grouping=d["grouping"], group_names=d["group_names"],
                   module_names=d.get("module_names"), options=d.get("options"), **arrays)


DATASETS: Registry = Registry("dataset")


def shaped(n_classes: int, input_shape: tuple[int, ...]):
    """Declare a loader's class count and input shape, known without loading it, so that a config is
    checked against them before any data is read (``moe.validate``)."""
    def mark(loader):
        loader.n_classes, loader.input_shape = n_classes, tuple(input_shape)
        return loader

    return mark


def dataset_options(name: str, values) -> dict:
    """The config fields a registered dataset's loader reads (its attribute ``options``, a tuple of field names,
    e.g. the planted dataset's knobs), from ``values`` (a Config or a mapping; a missing field: its default)."""
    names = getattr(DATASETS.get(name), "options", ()) if name in DATASETS else ()
    get = values.get if isinstance(values, dict) else (lambda k, d: getattr(values, k, d))
    return {k: get(k, getattr(Config, k)) for k in names}


def declared_input_shape(dataset: str) -> tuple[int, ...] | None:
    """The input shape a registered dataset declares (:func:`shaped`), known without loading it."""
    return getattr(DATASETS.get(dataset), "input_shape", None) if dataset in DATASETS else None


def default_data_root() -> Path:
    """``$MOE_DATA`` if set, else ``~/.cache/moe-interp-bench``."""
    return Path(os.environ.get("MOE_DATA") or Path.home() / ".cache" / "moe-interp-bench").expanduser()


def stratified_subset(y: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Indices of ``n`` samples keeping class proportions (largest-remainder rounding), random within classes.

    Returned in increasing order, so the subset keeps the original sample order.
    """
    if n >= len(y):
        return torch.arange(len(y))
    counts = torch.bincount(y)
    exact = counts.double() * n / len(y)
    take = exact.floor().long()
    remainder = n - int(take.sum())
    if remainder:
        # the classes with the largest fractional parts get one more (ties: lower class)
        frac_order = torch.sort(-(exact - take), stable=True).indices
        take[frac_order[:remainder]] += 1
    # one random key per sample; within each class keep the `take[c]` smallest keys
    keys = torch.rand(len(y), generator=generator, dtype=torch.float64)
    by_class = torch.argsort(y * 2.0 + keys, stable=True)  # sorted by class, random inside
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(y)) - starts[y[by_class]]
    chosen = by_class[rank < take[y[by_class]]]
    return torch.sort(chosen).values


def first_subset(y: Tensor, n: int, groups: Tensor | None = None) -> Tensor:
    """Indices of the first ``n`` samples in file order (the seed code's subsets: its data loaders read the
    first 10,048 training and the first 2,000 test images).

    ``groups`` [G] (a dataset made of several source datasets, e.g. fmnist_mnist's Fashion-MNIST and MNIST
    parts; the group of sample i is ``groups[y[i]]``): the first n // G samples of each group in file order,
    the first n mod G groups one more, a group with fewer taking all it has (the total is then below n).
    fmnist_mnist with n = 10,048: its first 5,024 Fashion-MNIST samples of classes 0-5 and its first 5,024
    MNIST samples of digits 4-9 (n = 2,000: 1,000 and 1,000), as the seed code took them. In increasing order.
    """
    if n >= len(y):
        return torch.arange(len(y))
    if groups is None:
        return torch.arange(n)
    group = groups[y]  # [N]
    n_groups = int(groups.max()) + 1
    parts = []
    for gid in range(n_groups):
        share = n // n_groups + (gid < n % n_groups)
        parts.append(torch.nonzero(group == gid).flatten()[:share])
    return torch.sort(torch.cat(parts)).values


def load_dataset(name: str, *, data_root: str | os.PathLike | None = None, n_train: int | None = None,
                 n_test: int | None = None, seed: int = Config.data_seed, how: str = Config.subset,
                 options: dict | None = None) -> Dataset:
    """Load a registered dataset, then take subsets of ``n_train`` / ``n_test`` samples (``how``: :func:`subset`).
    ``options``: the config fields its loader reads (:func:`dataset_options`), passed to it as keywords."""
    loader = DATASETS.get(name, field="dataset")
    root = Path(data_root).expanduser() if data_root else default_data_root()
    if getattr(loader, "text", False):  # a text dataset (moe.data.text): split by document, no subsets here
        return loader(root=root, seed=seed)
    return subset(loader(root=root, seed=seed, **(options or {})), n_train, n_test, seed, how=how)


def subset(data: Dataset, n_train: int | None, n_test: int | None, seed: int = Config.data_seed,
           how: str = Config.subset) -> Dataset:
    """Subsets of the train and test splits (a no-op for None or sizes >= the split): ``how = 'stratified'``:
    class proportions kept, random within classes (:func:`stratified_subset`, seeded by ``seed``);
    ``'first'``: the first n in file order, per source dataset where the dataset has a grouping
    (:func:`first_subset`; ``seed`` unused)."""
    if how not in SUBSETS:
        raise ValueError(f"subset: unknown choice {how!r}; valid choices: {', '.join(SUBSETS)}")
    g = torch.Generator().manual_seed(seed)
    groups = None if data.grouping is None else torch.tensor(data.grouping)
    take = (lambda y, n: stratified_subset(y, n, g)) if how == "stratified" else (lambda y, n: first_subset(y, n, groups))  # noqa: E731
    out = dataclasses.replace(data)
    if n_train is not None:
        idx = take(data.y_train, n_train)
        out.x_train, out.y_train = data.x_train[idx], data.y_train[idx]
        out.module_train = None if data.module_train is None else data.module_train[idx]
    if n_test is not None:
        idx = take(data.y_test, n_test)
        out.x_test, out.y_test = data.x_test[idx], data.y_test[idx]
        out.module_test = None if data.module_test is None else data.module_test[idx]
    return out


def normalized(data: Dataset, how: str = Config.normalize) -> Dataset:
    """The inputs normalised: ``'none'`` leaves them; ``'seed'`` is the seed code's torchvision
    ``Normalize((0.5,), (0.5,))``: x -> (x - 0.5) / 0.5, pixels [0, 1] -> [-1, 1] (new tensors: the caller's stay)."""
    if how not in NORMALIZATIONS:
        raise ValueError(f"normalize: unknown choice {how!r}; valid choices: {', '.join(NORMALIZATIONS)}")
    if how == "none":
        return data
    x_val = None if data.x_val is None else (data.x_val - 0.5) / 0.5
    return dataclasses.replace(data, x_train=(data.x_train - 0.5) / 0.5, x_test=(data.x_test - 0.5) / 0.5, x_val=x_val)


VAL_SEED_SALT = 0x7A11_DA7E  # the validation draw's seed is data_seed XOR this: not the subsets' draw


def validation_size(n: int, fraction: float) -> int:
    """Samples held out of n training samples: fraction x n rounded half up, at least 1 and at most n // 2
    (0 when fraction is 0 or n < 2)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, math.floor(fraction * n + 0.5)), n // 2)


def hold_out(data: Dataset, fraction: float, seed: int = Config.data_seed) -> Dataset:
    """The validation split carved out of the training data: :func:`validation_size` samples, stratified
    (class proportions, :func:`stratified_subset`), random within classes, seeded by ``seed`` (the data seed,
    XOR :data:`VAL_SEED_SALT`); the training data keeps the others, in their order. Whatever ``subset`` took
    the training data (the first n included), the split is drawn the same way from it. ``fraction`` 0: none."""
    if data.y_val is not None:
        raise ValueError("hold_out: the dataset already has a validation split")
    n_val = validation_size(len(data.y_train), fraction)
    if n_val == 0:
        return data
    val = stratified_subset(data.y_train, n_val, torch.Generator().manual_seed(seed ^ VAL_SEED_SALT))
    keep = torch.ones(len(data.y_train), dtype=torch.bool)
    keep[val] = False
    train = torch.nonzero(keep).flatten()
    modules = {} if data.module_train is None else {"module_train": data.module_train[train], "module_val": data.module_train[val]}
    return dataclasses.replace(data, x_train=data.x_train[train], y_train=data.y_train[train],
                               x_val=data.x_train[val], y_val=data.y_train[val], val_indices=val, **modules)


def prepare(data: Dataset, cfg) -> Dataset:
    """A loaded dataset as a :class:`moe.config.Config` asks for it: its subsets (``n_train``, ``n_test``,
    ``subset``, ``data_seed``), its validation split carved out of the training subset (``val_fraction``,
    ``data_seed``: :func:`hold_out`), then its normalisation (``normalize``)."""
    sub = subset(data, cfg.n_train, cfg.n_test, cfg.data_seed, how=cfg.subset)
    return normalized(hold_out(sub, cfg.val_fraction, cfg.data_seed), cfg.normalize)


def load_for_config(cfg) -> Dataset:
    """The dataset a :class:`moe.config.Config` asks for: loaded, then :func:`prepare`."""
    return prepare(load_dataset(cfg.dataset, data_root=cfg.data_root, seed=cfg.data_seed,
                                options=dataset_options(cfg.dataset, cfg)), cfg)
