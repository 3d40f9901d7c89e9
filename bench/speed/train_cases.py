"""The shapes of the training-speed benchmark (``python -m bench.speed.train_speed``) and the bare torch loop
each is timed against.

A shape is a ``moe.training.loop`` config (the model, objective, optimizer and batch size) and a training-set size.
The bare loop is the same model written in a few obvious lines: the gate as an ``nn.Sequential``, the experts
as stacked weights [E, D, C] (linear) or a list of modules (the seed code's CNN), the dense softmax mixture
log sum_e p_e q_e, the same optimizer with one parameter group, shuffled mini-batches of the same size; no
statistics, no checks. Its FLOPs (``torch.utils.flop_counter``: forward, backward) are the work both do.

Letters: T samples in a batch, D input features, C classes, E experts, G gate width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from bench.speed.lm_speed import LM_SHAPE
from moe.data import Dataset, load_dataset
from moe.registry import suggestion

# name -> (moe.training.loop config fields, n_train, n_test): the benchmark's three shapes
SHAPES: dict[str, tuple[dict[str, Any], int, int]] = {
    "gm6[expert=linear,gate=linear,E=4]": (
        dict(dataset="gm6", experts=4, expert="linear", router="softmax", gate="linear", batch_size=32,
             optimizer="adam", lr=0.01), 2400, 600),
    "mnist[expert=linear,gate=mlp32,E=10]": (
        dict(dataset="mnist", experts=10, expert="linear", router="softmax", gate="mlp", gate_hidden=32,
             batch_size=32, optimizer="adam", lr=0.01), 4000, 1000),
    "mnist[preset=seed_mnist,expert=seed_cnn,gate=seed_cnn,E=5]": (
        dict(preset="seed_mnist"), 2000, 1000),
}


def shape_names(only: str | None = None) -> list[str]:
    """The shapes whose name contains ``only`` (all when None); an ``only`` matching none is an error."""
    names = [n for n in (*SHAPES, LM_SHAPE) if only is None or only in n]
    if not names:
        raise ValueError(f"--only {only!r}: no shape's name contains it{suggestion(only, (*SHAPES, LM_SHAPE))}; "
                         f"valid shapes: {', '.join((*SHAPES, LM_SHAPE))}")
    return names


def config_of(name: str, data_root: str | None, n_train: int | None = None) -> dict[str, Any]:
    fields, default_train, n_test = SHAPES[name]
    cfg = {**fields, "n_train": n_train or default_train, "n_test": n_test, "epochs": 1, "threads": None,
           "subset": "stratified"}
    if data_root is not None:
        cfg["data_root"] = data_root
    return cfg


def generated_mnist(n_train: int = 8000, n_test: int = 2000, seed: int = 0) -> Dataset:
    """Data of MNIST's shape and type (pixels in [0, 1], 10 balanced classes), for machines without the files:
    the speed of a training loop does not depend on what the pixels show."""
    g = torch.Generator().manual_seed(seed)
    return Dataset("mnist", torch.rand(n_train, 1, 28, 28, generator=g), torch.arange(n_train) % 10,
                   torch.rand(n_test, 1, 28, 28, generator=g), torch.arange(n_test) % 10, [str(c) for c in range(10)])


def dataset_for(cfg: dict[str, Any], data_root: str | None) -> Dataset:
    """The shape's dataset: gm6 is embedded; MNIST from ``data_root`` when given, else generated."""
    name = "mnist" if cfg.get("preset") == "seed_mnist" else cfg["dataset"]
    if name == "mnist" and data_root is None:
        return generated_mnist()
    return load_dataset(name, data_root=data_root)


# ---- the bare loop ------------------------------------------------------------------------------
def bare_gate(kind: str, input_shape: tuple[int, ...], E: int, hidden: int) -> nn.Module:
    D = math.prod(input_shape)
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(D, E))
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(D, hidden), nn.ReLU(), nn.Linear(hidden, E))
    if kind == "seed_cnn":  # conv 3x3 -> relu -> pool -> 169 -> 128 -> 64 -> E
        side = (input_shape[1] - 2) // 2
        return nn.Sequential(nn.Conv2d(input_shape[0], 1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(side * side, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, E))
    raise ValueError(f"no bare gate for {kind!r}")


class BareLinearExperts(nn.Module):
    def __init__(self, E: int, D: int, C: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(E, D, C) / math.sqrt(D))
        self.b = nn.Parameter(torch.zeros(E, C))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("td,edc->tec", x.flatten(1), self.w) + self.b  # [T, E, C]


class BareSeedCNNExperts(nn.Module):
    def __init__(self, E: int, input_shape: tuple[int, ...], C: int):
        super().__init__()
        side = (input_shape[1] - 2) // 2
        self.experts = nn.ModuleList(nn.Sequential(nn.Conv2d(input_shape[0], 1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                                   nn.Linear(side * side, 5), nn.ReLU(), nn.Linear(5, 10), nn.ReLU(),
                                                   nn.Linear(10, C)) for _ in range(E))

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([e(x) for e in self.experts], 1)  # [T, E, C]


class BareMixture(nn.Module):
    """log p(y | x) = logsumexp_e(log softmax(gate(x))_e + log softmax(f_e(x))_y)."""

    def __init__(self, gate: nn.Module, experts: nn.Module):
        super().__init__()
        self.gate, self.experts = gate, experts

    def forward(self, x: Tensor) -> Tensor:
        log_w = torch.log_softmax(self.gate(x), -1)  # [T, E]
        return torch.logsumexp(log_w[..., None] + torch.log_softmax(self.experts(x), -1), 1)  # [T, C]


@dataclass
class BareLoop:
    """The bare loop of one shape: model, optimizer, data on the device, batch size, objective."""

    model: BareMixture
    optimizer: torch.optim.Optimizer
    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    batch_size: int
    expectation: bool
    generator: torch.Generator

    def loss(self, log_p: Tensor, y: Tensor) -> Tensor:
        picked = log_p.gather(1, y[:, None])
        if self.expectation:  # the seed code's -log(p + 1e-7)
            picked = torch.logaddexp(picked, picked.new_tensor(math.log(1e-7)))
        return -picked.mean()

    def epoch(self) -> None:
        self.model.train()
        for idx in torch.randperm(len(self.y), generator=self.generator).to(self.y.device).split(self.batch_size):
            loss = self.loss(self.model(self.x[idx]), self.y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        correct = sum(int((self.model(xb).argmax(1) == yb).sum())
                      for xb, yb in zip(self.x_test.split(1024), self.y_test.split(1024)))
        return correct / len(self.y_test)

    def step_flops(self) -> float:
        """FLOPs of one training step on a full batch (forward and backward), counted by torch."""
        x, y = self.x[: self.batch_size], self.y[: self.batch_size]
        with FlopCounterMode(display=False) as counter:
            self.loss(self.model(x), y).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())


def bare_loop(cfg, data: Dataset, device: torch.device) -> BareLoop:
    """The bare loop of a validated ``moe.config.Config`` and its prepared data."""
    torch.manual_seed(cfg.seed)
    shape, C, E = data.input_shape, data.n_classes, cfg.experts
    gate = bare_gate(cfg.gate, shape, E, cfg.gate_hidden)
    if cfg.expert == "linear":
        experts = BareLinearExperts(E, math.prod(shape), C)
    elif cfg.expert == "seed_cnn":
        experts = BareSeedCNNExperts(E, shape, C)
    else:
        raise ValueError(f"no bare experts for {cfg.expert!r}")
    model = BareMixture(gate, experts).to(device)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    elif cfg.optimizer == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return BareLoop(model, opt, data.x_train.to(device), data.y_train.to(device), data.x_test.to(device),
                    data.y_test.to(device), cfg.batch_size, cfg.objective == "expectation",
                    torch.Generator().manual_seed(cfg.seed))
