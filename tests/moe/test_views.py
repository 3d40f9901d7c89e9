"""Views kept in a record (moe.views) and their pictures (moe.view_plots): the gate's regions on 2-D data
against the nearest-prototype rule, linear experts' weights and prototypes on images against the model's
own parameters; the full configuration name (moe.naming)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import moe.train
from moe.config import Config
from moe.naming import full_name, wrapped
from moe.view_plots import png_bytes, record_figures
from moe.views import GRID, decode, encode, views


def model_and_data(**fields):
    cfg = Config(**fields)
    data = moe.train.checked_data(cfg, None)
    return moe.train.initial_model(cfg, data, data.x_train), data


def test_gate_regions_follow_the_nearest_prototype():
    model, data = model_and_data(dataset="gm6", router="prototype", experts=4, n_train=120, n_test=60)
    v = views(model, data, torch.device("cpu"))["gate_regions"]
    grid = np.asarray(v["expert"])
    assert grid.shape == (GRID, GRID) and len(v["points"]["x"]) == 60
    xs, ys = np.linspace(*v["x_range"], GRID), np.linspace(*v["y_range"], GRID)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # row i: y = ys[i]
    protos = model.router.prototypes.detach().numpy()
    nearest = ((pts[:, None, :] - protos[None]) ** 2).sum(-1).argmin(1).reshape(GRID, GRID)
    assert (grid == nearest).mean() > 0.995  # ties on a boundary aside (the range is rounded to 4 decimals)
    x, y = np.asarray(v["points"]["x"]), np.asarray(v["points"]["y"])
    assert v["x_range"][0] <= x.min() and x.max() <= v["x_range"][1] and v["y_range"][0] <= y.min()


def test_linear_expert_weights_and_prototypes_as_images(fake_mnist_root):
    model, data = model_and_data(dataset="mnist", data_root=str(fake_mnist_root), router="prototype", experts=3)
    v = views(model, data, torch.device("cpu"))
    assert "gate_regions" not in v
    w = decode(v["expert_weights"])
    assert w.shape == (3, 10, 28, 28)
    ref = model.experts.experts[2].weight[7].detach().view(28, 28).numpy()  # nn.Linear weight [C, D]
    assert np.abs(w[2, 7] - ref).max() <= np.abs(model.experts.experts[2].weight.detach().numpy()).max() / 127 + 1e-6
    p = decode(v["prototypes"])
    assert p.shape == (3, 28, 28)
    np.testing.assert_allclose(p[1], model.router.prototypes[1].detach().view(28, 28).numpy(), atol=1 / 127 + 1e-6)
    model2, _ = model_and_data(dataset="mnist", data_root=str(fake_mnist_root), expert="mlp", experts=2)
    assert views(model2, data, torch.device("cpu")) == {}  # no linear experts, no prototypes


def test_encode_decode_round_trip():
    a = torch.randn(2, 3, 5)
    np.testing.assert_allclose(decode(encode(a)), a.numpy(), atol=a.abs().max().item() / 127 + 1e-6)


def test_record_figures_draw_every_view_of_a_run():
    rec = moe.train.run({"dataset": "gm6", "n_train": 120, "n_test": 60, "epochs": 2, "experts": 3})
    assert rec["views"]["gate_regions"]["size"] == GRID
    figs = record_figures(rec, "t")
    assert set(figs) == {"curves", "gate_regions"}
    for fig in figs.values():
        img = imread(io.BytesIO(png_bytes(fig)))
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 0.01


@pytest.mark.parametrize("fields, name", [
    ({"router": "softmax", "gate": "mlp", "experts": 8, "seed": 3}, "softmax[gate=mlp,expert=linear,experts=8]"),
    ({"router": "hash", "lr_ratio": 100.0, "epochs": 10}, "hash[expert=linear,experts=4,lr_ratio=100,epochs=10]"),
    ({"router": "topk", "top_k": 2, "data_root": "/x", "threads": 2}, "topk[gate=linear,expert=linear,experts=4,k=2]"),
])
def test_full_name_states_the_model_and_every_changed_field(fields, name):
    assert full_name(Config(**fields).to_dict()) == name


def test_wrapped_breaks_after_commas():
    text = wrapped("softmax[gate=mlp,expert=linear,experts=8,lr_ratio=100,epochs=10]", 20)
    assert text.replace("\n", "") == "softmax[gate=mlp,expert=linear,experts=8,lr_ratio=100,epochs=10]"
    assert all(len(line) <= 20 for line in text.splitlines()[:-1])
