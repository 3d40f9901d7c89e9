"""Damaged MNIST-family files: each is refused on load with one line naming the file and the fault,
distinct from 'not found' (issue #12)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import moe.training.loop
from moe.data import load_dataset
from moe.data.mnist import DataFileError, DataNotFoundError
from tests.helpers import make_fake_mnist, write_idx

RAW = ("MNIST", "raw")


def raw(root: Path) -> Path:
    return root.joinpath(*RAW)


def damage_three_bytes(root):
    (raw(root) / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    return "train-images-idx3-ubyte", "3 bytes, too short"


def damage_magic(root):
    p = raw(root) / "t10k-labels-idx1-ubyte"
    p.write_bytes(struct.pack(">I", 1234) + p.read_bytes()[4:])
    return "t10k-labels-idx1-ubyte", "magic number 0x000004d2, not an IDX labels file"


def damage_swapped(root):
    a, b = raw(root) / "train-images-idx3-ubyte", raw(root) / "train-labels-idx1-ubyte"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    return "train-images-idx3-ubyte", "expected images (magic 0x00000803), but the file holds labels"


def damage_truncated(root):
    p = raw(root) / "train-images-idx3-ubyte"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return "train-images-idx3-ubyte", "truncated"


def damage_counts(root):
    write_idx(raw(root), "t10k", np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10)
    labels = np.arange(19, dtype=np.uint8) % 10  # a consistent label file of 19
    (raw(root) / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 19) + labels.tobytes())
    return "t10k-labels-idx1-ubyte", "19 labels for the 20 images"


def damage_label_range(root):
    images, labels = np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10
    labels[3] = 200
    write_idx(raw(root), "t10k", images, labels)
    return "t10k-labels-idx1-ubyte", "label 200 out of range"


def damage_small_images(root):
    write_idx(raw(root), "train", np.zeros((60, 5, 5), np.uint8), np.arange(60) % 10)
    return "train-images-idx3-ubyte", "images of 5 x 5 pixels"


DAMAGES = [damage_three_bytes, damage_magic, damage_swapped, damage_truncated, damage_counts,
           damage_label_range, damage_small_images]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__[7:])
def test_a_damaged_file_is_named_with_its_fault(tmp_path, damage):
    make_fake_mnist(tmp_path, "MNIST")
    name, fault = damage(tmp_path)
    with pytest.raises(DataFileError) as info:
        load_dataset("mnist", data_root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(raw(tmp_path) / name) + ": ")
    assert fault in message
    assert not isinstance(info.value, DataNotFoundError)  # damaged is not 'not found'


def test_intact_files_still_load(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")
    assert len(load_dataset("mnist", data_root=tmp_path).y_train) == 60


# not marked slow any more: in this process, refused before training (it was a moe.training.loop subprocess)
def test_moe_train_reports_a_damaged_file_in_one_line(tmp_path, capfd):
    """``python -m moe.training.loop``'s main, in this process (the damaged file is refused before training; capfd:
    what it or a library writes to the file descriptors, as a subprocess's pipes would hold)."""
    make_fake_mnist(tmp_path, "MNIST")
    damage_swapped(tmp_path)
    code = moe.training.loop.main(["--dataset", "mnist", "--data-root", str(tmp_path), "--epochs", "1", "--quiet"])
    err = capfd.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "holds labels" in err and "Traceback" not in err
