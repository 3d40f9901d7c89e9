"""Views kept in a record (moe.records.model_views) and their pictures (moe.pictures.view_plots): the gate's regions on 2-D data
against the nearest-prototype rule, linear experts' weights and prototypes on images against the model's
own parameters; the full configuration name (moe.records.naming)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import moe.training.loop
from moe.config import Config
from moe.records.naming import full_name, wrapped
from moe.pictures.view_plots import png_bytes, record_figures
from moe.records.model_views import GRID, decode, encode, views


def model_and_data(**fields):
    cfg = Config(**fields)
    data = moe.training.loop.checked_data(cfg, None)
    return moe.training.loop.initial_model(cfg, data, data.x_train), data


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


@pytest.mark.parametrize("fields", [dict(router="softmax"), dict(router="topk", top_k=2, noisy_gate=True),
                                    dict(router="expert_choice", capacity=0.5), dict(router="hash"),
                                    dict(router="attention", expert="mlp"), dict(router="sinkhorn", match_router="prototype")],
                         ids=lambda f: f["router"])
def test_the_gate_regions_are_the_routing_of_the_whole_model(fields):
    """gate_regions routes the grid with the gate alone (``MixtureOfExperts.route``): the assignment of the model's
    forward, batch by batch (expert choice: batch-dependent), also for a router that reads the experts' hidden states."""
    model, data = model_and_data(dataset="gm6", experts=4, n_train=120, n_test=60, **fields)
    model.eval()
    grid = torch.randn(300, 2) * 3
    with torch.no_grad():
        for batch in grid.split(64):
            torch.manual_seed(1)
            routed = model.route(batch).assignment()
            torch.manual_seed(1)
            assert torch.equal(routed, model(batch).routing.assignment())
    v = views(model, data, torch.device("cpu"), batch=1024)
    model.route = lambda x: model(x).routing  # the whole forward, as before
    assert v == views(model, data, torch.device("cpu"), batch=1024) and len(v["gate_regions"]["expert"]) == GRID


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
    rec = moe.training.loop.run({"dataset": "gm6", "n_train": 120, "n_test": 60, "epochs": 2, "experts": 3})
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


def test_image_views_of_many_experts_keep_the_busiest(fake_mnist_root):
    """Beyond MAX_EXPERTS experts the record keeps the busiest ones on the test split (a few kB, not E x C x 784 bytes)
    and the pictures say which; a record written before that is drawn from its first MAX_EXPERTS experts."""
    from moe.pictures.view_plots import busiest, expert_weights_figure, shown
    from moe.records.model_views import MAX_EXPERTS, shown_experts
    E = MAX_EXPERTS + 5
    model, data = model_and_data(dataset="mnist", data_root=str(fake_mnist_root), experts=E)
    assignment = [E - 1] * 5 + [3] * 4 + [7] * 4 + [-1] * 2  # expert E-1 busiest, then 3 and 7 tied (lower first)
    keep = shown_experts(E, assignment)
    assert keep[:3] == [E - 1, 3, 7] and len(keep) == MAX_EXPERTS and keep[3:] == [e for e in range(E) if e not in (3, 7, E - 1)][:MAX_EXPERTS - 3]
    assert shown_experts(MAX_EXPERTS, assignment) is None  # few experts: all of them
    v = views(model, data, torch.device("cpu"), assignment=assignment)["expert_weights"]
    assert v["experts"] == keep and v["of"] == E and v["shape"][0] == MAX_EXPERTS
    w = decode(v)
    ref = model.experts.experts[E - 1].weight[2].detach().view(28, 28).numpy()
    assert np.abs(w[0, 2] - ref).max() <= np.abs(model.experts.experts[E - 1].weight.detach().numpy()).max() / 127 + 1e-6
    arrays, labels, note = shown(v)
    assert labels == keep and f"busiest of {E}" in note
    assert views(model, data, torch.device("cpu"))["expert_weights"]["experts"] == list(range(MAX_EXPERTS))  # no assignment
    from moe.records.model_views import encode
    arrays, labels, note = shown(encode(torch.randn(E, 10, 28, 28)))  # every expert, as records before the cap held them
    assert len(arrays) == MAX_EXPERTS and labels == list(range(MAX_EXPERTS)) and f"first {MAX_EXPERTS} of {E}" in note
    assert len(expert_weights_figure(v).axes) == MAX_EXPERTS * 10
    shares = np.zeros((3, 40))
    shares[:, 5], shares[:, 30], shares[:, 2] = 0.5, 0.3, 0.2
    assert busiest(shares, 3) == [2, 5, 30] and busiest(np.ones((2, 4))) == [0, 1, 2, 3]


def test_top_indices_without_torch_match_a_stable_torch_sort():
    """moe.records.view_codes.top_indices (numpy, for the torch-free drawing code) picks what a stable descending torch
    sort picks: the n largest, largest first, ties to the lower index (which experts a record's image views keep)."""
    from moe.records.view_codes import top_indices

    assert top_indices([1, 3, 3, 0, 3], 2) == [1, 2]
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        values = torch.randint(0, 4, (int(torch.randint(1, 60, (1,), generator=gen)),), generator=gen)
        n = int(torch.randint(1, 25, (1,), generator=gen))
        expected = torch.sort(values.double(), descending=True, stable=True).indices[:n].tolist()
        assert top_indices(values, n) == top_indices(values.tolist(), n) == expected
