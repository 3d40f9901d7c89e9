import numpy as np
import pytest
import torch

from moe.data import DATASETS, load_dataset, stratified_subset
from moe.data.gm6 import N_CLUSTERS, generate
from moe.data.mnist import DataNotFoundError
from tests.helpers import make_fake_mnist


def test_gm6_sizes_split_and_seeding():
    d = load_dataset("gm6")
    assert d.x_train.shape == (2400, 2) and d.x_test.shape == (600, 2)
    assert torch.bincount(d.y_train).tolist() == [400] * 6 and torch.bincount(d.y_test).tolist() == [100] * 6
    again = load_dataset("gm6")
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.y_test, again.y_test)
    other = load_dataset("gm6", seed=1)
    assert not torch.equal(d.x_train, other.x_train)
    # train and test are disjoint parts of one sample of 3,000 points
    x, _, _ = generate(0)
    assert torch.equal(torch.sort(torch.cat([d.x_train, d.x_test])[:, 0]).values, torch.sort(x[:, 0]).values)


def test_gm6_follows_the_generative_recipe():
    x, y, centres = generate(seed=3, n_per_cluster=20000)
    assert (centres.norm(dim=1) <= 1).all()  # centres are reference points in the unit disk
    d2 = torch.cdist(centres, centres).pow(2)
    variance = 0.06 * d2[~torch.eye(N_CLUSTERS, dtype=torch.bool)].min()
    disk = x.double() * 2 - 1  # undo the (x + 1) / 2 rescaling
    for c in range(N_CLUSTERS):
        pts = disk[y == c]
        assert torch.allclose(pts.mean(0), centres[c], atol=0.01)
        # isotropic: the per-coordinate variance is the stated variance (sampling error ~1%)
        assert torch.allclose(pts.var(0), variance.expand(2), rtol=0.05)


def test_stratified_subset_keeps_proportions():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    g = torch.Generator().manual_seed(0)
    idx = stratified_subset(y, 10, g)
    assert torch.bincount(y[idx]).tolist() == [5, 3, 2]
    assert len(set(idx.tolist())) == 10 and torch.all(idx[1:] > idx[:-1])
    idx7 = stratified_subset(y, 7, torch.Generator().manual_seed(0))  # 3.5, 2.1, 1.4 -> 4, 2, 1
    assert torch.bincount(y[idx7]).tolist() == [4, 2, 1]
    a = stratified_subset(y, 10, torch.Generator().manual_seed(1))
    b = stratified_subset(y, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_subsetting_through_load_dataset():
    d = load_dataset("gm6", n_train=60, n_test=12)
    assert torch.bincount(d.y_train).tolist() == [10] * 6 and torch.bincount(d.y_test).tolist() == [2] * 6


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fmnist", "FashionMNIST")])
def test_mnist_family_through_torchvision(tmp_path, name, folder):
    written = make_fake_mnist(tmp_path, folder)
    d = load_dataset(name, data_root=tmp_path)
    images, labels = written["train"]
    assert d.x_train.shape == (60, 1, 28, 28) and d.x_train.dtype == torch.float32
    assert torch.equal(d.y_train, torch.from_numpy(labels.astype(np.int64)))
    assert torch.allclose(d.x_train[:, 0], torch.from_numpy(images).float() / 255)
    assert len(d.class_names) == 10 and d.grouping is None
    if name == "fmnist":
        assert d.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize("folder", ["MNIST", "FashionMNIST"])
def test_files_that_are_there_are_read_as_torchvisions_loader_reads_them(tmp_path, folder):
    """The files are read here, without importing torchvision (moe.data.mnist; test_trial_imports: not imported): the
    same tensors and class names as torchvision's own dataset class gives for the same files."""
    import torchvision

    from moe.data.mnist import CLASSES, read_split

    make_fake_mnist(tmp_path, folder, seed=3)
    for train, split in ((True, "train"), (False, "t10k")):
        theirs = getattr(torchvision.datasets, folder)(str(tmp_path), train=train, download=False)
        x, y = read_split(folder, tmp_path, split)
        assert x.dtype == theirs.data.dtype == torch.uint8 and torch.equal(x, theirs.data)
        assert y.dtype == torch.int64 and torch.equal(y, theirs.targets.long())
        assert CLASSES[folder] == list(theirs.classes)


def test_data_root_from_environment(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path, "MNIST")
    monkeypatch.setenv("MOE_DATA", str(tmp_path))
    assert len(load_dataset("mnist").y_test) == 20


def test_fmnist_mnist_relabels_and_groups(fake_mnist_root):
    d = load_dataset("fmnist_mnist", data_root=fake_mnist_root)
    assert d.n_classes == 12 and d.grouping == [0] * 6 + [1] * 6 and d.group_names == ["fashion", "digits"]
    # the first pixel encodes the source label: 10 * label + 5
    source = torch.round(d.x_train[:, 0, 0, 0] * 255).long() // 10
    fashion = d.y_train < 6
    assert torch.equal(source[fashion], d.y_train[fashion])  # fashion classes 0-5 keep their labels
    assert torch.equal(source[~fashion] + 2, d.y_train[~fashion])  # digits 4-9 -> 6-11
    assert torch.bincount(d.y_train).tolist() == [6] * 12  # 6 per class from each source
    assert d.class_names[6] == "digit 4" and d.class_names[1] == "Trouser"


def test_missing_files_give_one_clear_paragraph(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", data_root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg and "--data-root" in msg
    assert "\n" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no torchvision traceback chained


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match=r"dataset: unknown dataset 'gm7' \(did you mean 'gm6'\?\); valid choices: .*mnist"):
        load_dataset("gm7")
    assert {"gm6", "mnist", "fmnist", "fmnist_mnist"} <= set(DATASETS)
