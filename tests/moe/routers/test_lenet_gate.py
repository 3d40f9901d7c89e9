"""The lenet gate: LeNet-5's feature extractor as a black-box image router."""
import torch

from moe.routers import gate_features, gate_network
from tests.helpers import config_problem


def test_lenet_features_keep_the_spatial_layout():
    features, width = gate_features("lenet", (1, 28, 28), 4)
    assert width == 2 * 4 * 4 * 4  # 2G channels of 4 x 4 after two 5 x 5 convolutions and two 2 x 2 pools
    assert features(torch.rand(3, 1, 28, 28)).shape == (3, width)
    assert gate_network("lenet", (1, 16, 16), 5, 2)(torch.rand(2, 1, 16, 16)).shape == (2, 5)


def test_lenet_gate_needs_images_of_side_16():
    assert config_problem({"dataset": "gm6", "gate": "lenet"}).startswith("gate: the lenet gate needs image inputs")
