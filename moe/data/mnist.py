"""MNIST, Fashion-MNIST and the seed paper's 12-class combination, in torchvision's layout.

Files live in torchvision's layout under the data root (``--data-root``, env ``MOE_DATA``, else
``~/.cache/moe-interp-bench``): ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` and the
same under ``ROOT/FashionMNIST/raw/``. Missing files are downloaded by torchvision's own loaders when the network
allows (set ``MOE_OFFLINE=1`` to never try); otherwise :class:`DataNotFoundError` says where they must go.

Files that are there (checked: :func:`check_raw_files`) are read here, as torchvision's loaders read them (uint8
images, int64 labels; ``tests/moe/data/test_data.py`` holds the two equal): importing torchvision costs about 1.3 s
of CPU (its models import ``torch._dynamo`` and sympy), paid by every process that loads the data, each trial worker
of a sweep included, for four files whose format is a header of sizes and then the bytes.
"""
from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import numpy as np
import torch

from moe.config import Config
from moe.data.base import DATASETS, Dataset, shaped

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DOWNLOAD_TIMEOUT_S = 30


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are missing and could not be downloaded; the message says where they go."""


class DataFileError(ValueError):
    """A dataset file is there but damaged or not what its name says; the message names the file and the fault."""


IDX_MAGIC = {"images": 2051, "labels": 2049}  # big-endian: 0x00000803 (uint8, 3 dims), 0x00000801 (uint8, 1 dim)
IMAGE_SIDE = 28
N_CLASSES = 10


def _idx_header(path: Path, kind: str) -> tuple[int, ...]:
    """The dimensions in an IDX file's header, after checking its magic number and its size against them."""
    ndim = 3 if kind == "images" else 1
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4 + 4 * ndim)
    if len(head) < 4:
        raise DataFileError(f"{path}: {size} bytes, too short for an IDX file (4-byte magic number, then sizes)")
    (magic,) = struct.unpack(">I", head[:4])
    if magic != IDX_MAGIC[kind]:
        other = next((k for k, m in IDX_MAGIC.items() if m == magic), None)
        what = f"holds {other}" if other else f"has magic number {magic:#010x}, not an IDX {kind} file"
        raise DataFileError(f"{path}: expected {kind} (magic {IDX_MAGIC[kind]:#010x}), but the file {what}")
    if len(head) < 4 + 4 * ndim:
        raise DataFileError(f"{path}: {size} bytes, too short for the header of an IDX {kind} file")
    dims = struct.unpack(f">{ndim}I", head[4:])
    expected = 4 + 4 * ndim + int(torch.tensor(dims).prod())
    if size != expected:
        raise DataFileError(f"{path}: {size} bytes, but its header {list(dims)} needs {expected} "
                            f"({'truncated' if size < expected else 'extra bytes'}: a damaged or partial copy?)")
    return dims


def check_raw_files(folder: str, root: Path) -> bool:
    """Check the four IDX files of ``ROOT/folder/raw`` before any loader reads them, when all are there (True; False
    when one is missing): magic numbers (images not swapped with labels), sizes against the headers, 28 x 28 images,
    as many labels as images, labels in 0-9. Raises :class:`DataFileError` naming the file and the fault."""
    raw = root / folder / "raw"
    paths = [raw / name for name in RAW_FILES]
    if not all(p.is_file() for p in paths):
        return False  # missing files: torchvision downloads them or says where they go
    for split in ("train", "t10k"):
        images, labels = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
        n, h, w = _idx_header(images, "images")
        (m,) = _idx_header(labels, "labels")
        if (h, w) != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataFileError(f"{images}: images of {h} x {w} pixels; {folder} images are {IMAGE_SIDE} x {IMAGE_SIDE}")
        if n != m:
            raise DataFileError(f"{labels}: {m} labels for the {n} images of {images.name}; the counts must match")
        top = max(labels.read_bytes()[8:], default=0)
        if top >= N_CLASSES:
            raise DataFileError(f"{labels}: label {top} out of range; {folder} labels are 0-{N_CLASSES - 1}")
    return True


def _missing_message(folder: str, root: Path, reason: str) -> str:
    raw = root / folder / "raw"
    return (
        f"dataset files not found: {folder} needs the four IDX files {', '.join(RAW_FILES)} in {raw}/ "
        f"(torchvision's layout: ROOT/{folder}/raw/*-ubyte, with ROOT = --data-root, env MOE_DATA, or "
        f"~/.cache/moe-interp-bench). They could not be downloaded ({reason}). Get them on a machine with "
        f"network access, e.g. `python -c \"import torchvision; torchvision.datasets.{folder}('ROOT', download=True)\"`, "
        f"and copy ROOT/{folder}/raw/ here; gzipped files must be unpacked. Then pass --data-root ROOT."
    )


def _torchvision_split(cls, folder: str, root: Path, train: bool):
    """One split through torchvision's loader, downloading at most once if files are missing."""
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass  # torchvision: "Dataset not found"
    if os.environ.get("MOE_OFFLINE"):
        raise DataNotFoundError(_missing_message(folder, root, "MOE_OFFLINE is set")) from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # no network, a mirror down, a proxy: all end the same way
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}"
        raise DataNotFoundError(_missing_message(folder, root, reason)) from None
    finally:
        socket.setdefaulttimeout(previous)


# torchvision's class names of each folder (its datasets' ``classes``)
CLASSES = {"MNIST": ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
                     "8 - eight", "9 - nine"],
           "FashionMNIST": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                            "Ankle boot"]}


def read_split(folder: str, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images [N, 28, 28], int64 labels [N]) of one split's IDX files (``split``: train or t10k), checked
    by :func:`check_raw_files` before: the bytes after each header."""
    raw = root / folder / "raw"
    images = np.fromfile(raw / f"{split}-images-idx3-ubyte", dtype=np.uint8, offset=16)
    labels = np.fromfile(raw / f"{split}-labels-idx1-ubyte", dtype=np.uint8, offset=8)
    return torch.from_numpy(images).view(-1, IMAGE_SIDE, IMAGE_SIDE), torch.from_numpy(labels).long()


def _load(folder: str, root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    def images(data):  # uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1]
        return data.unsqueeze(1).float().div_(255)

    if check_raw_files(folder, root):  # all there and checked: read here
        (xtr, ytr), (xte, yte) = read_split(folder, root, "train"), read_split(folder, root, "t10k")
        return images(xtr), ytr, images(xte), yte, list(CLASSES[folder])
    import torchvision  # only to download (or to say where the files go): see the module's docstring

    cls = getattr(torchvision.datasets, folder)  # the class is named like its folder
    train = _torchvision_split(cls, folder, root, train=True)
    test = _torchvision_split(cls, folder, root, train=False)
    return images(train.data), train.targets.long(), images(test.data), test.targets.long(), list(train.classes)


@DATASETS.register("mnist")
@shaped(n_classes=10, input_shape=(1, 28, 28))
def load_mnist(root: Path, seed: int = Config.data_seed) -> Dataset:
    """MNIST (LeCun et al. 1998): 10 digit classes, 28 x 28 grey images."""
    xtr, ytr, xte, yte, names = _load("MNIST", root)
    return Dataset("mnist", xtr, ytr, xte, yte, class_names=[str(c) for c in range(10)])


@DATASETS.register("fmnist")
@shaped(n_classes=10, input_shape=(1, 28, 28))
def load_fmnist(root: Path, seed: int = Config.data_seed) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 10 clothing classes, 28 x 28 grey images."""
    xtr, ytr, xte, yte, names = _load("FashionMNIST", root)
    return Dataset("fmnist", xtr, ytr, xte, yte, class_names=names)


FASHION_CLASSES = (0, 1, 2, 3, 4, 5)  # t-shirt, trouser, pullover, dress, coat, sandal -> labels 0-5
DIGIT_CLASSES = (4, 5, 6, 7, 8, 9)  # MNIST digits 4-9 -> labels 6-11


@DATASETS.register("fmnist_mnist")
@shaped(n_classes=12, input_shape=(1, 28, 28))
def load_fmnist_mnist(root: Path, seed: int = Config.data_seed) -> Dataset:
    """The seed paper's 12 classes (Krishnamurthy & Watkins 2021): Fashion-MNIST 0-5 keep labels 0-5,
    MNIST digits 4-9 become labels 6-11; grouping {fashion: 0, digits: 1}."""
    f = load_fmnist(root)
    m = load_mnist(root)

    def combine(xf, yf, xm, ym):
        keep_f = torch.isin(yf, torch.tensor(FASHION_CLASSES))
        keep_m = torch.isin(ym, torch.tensor(DIGIT_CLASSES))
        x = torch.cat([xf[keep_f], xm[keep_m]])
        y = torch.cat([yf[keep_f], ym[keep_m] - DIGIT_CLASSES[0] + len(FASHION_CLASSES)])
        return x, y

    xtr, ytr = combine(f.x_train, f.y_train, m.x_train, m.y_train)
    xte, yte = combine(f.x_test, f.y_test, m.x_test, m.y_test)
    names = [f.class_names[c] for c in FASHION_CLASSES] + [f"digit {d}" for d in DIGIT_CLASSES]
    return Dataset("fmnist_mnist", xtr, ytr, xte, yte, class_names=names,
                   grouping=[0] * len(FASHION_CLASSES) + [1] * len(DIGIT_CLASSES), group_names=["fashion", "digits"])
