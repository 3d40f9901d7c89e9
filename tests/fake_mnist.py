"""Tiny IDX files in torchvision's layout (numpy only: the test session's conftest imports this, and a parallel run's
controller process, which runs no test, then never imports torch)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """torchvision's raw layout: ``{split}-images-idx3-ubyte`` (magic 2051) and ``{split}-labels-idx1-ubyte`` (2049)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    (folder / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def make_fake_mnist(root: Path, folder: str, n_train_per_class: int = 6, n_test_per_class: int = 2, seed: int = 0) -> dict:
    """Write a tiny 10-class IDX dataset; each image's first pixel encodes its label (pixel = 10 * label + 5)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, per_class in (("train", n_train_per_class), ("t10k", n_test_per_class)):
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        images[:, 0, 0] = 10 * labels + 5
        write_idx(root / folder / "raw", split, images, labels)
        out[split] = (images, labels)
    return out
