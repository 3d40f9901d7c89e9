"""``cnn`` experts: a small convolutional stem and a two-layer head, one module per expert (image inputs)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from moe.config import ConfigError
from moe.experts.base import EXPERTS, ExpertBank


class SmallCNN(nn.Module):
    """conv 3x3 (F filters) -> relu -> max-pool 2 -> flatten -> linear (H) -> relu -> linear (C)."""

    def __init__(self, input_shape: tuple[int, int, int], filters: int, hidden: int, n_classes: int):
        super().__init__()
        c, h, w = input_shape
        self.stem = nn.Sequential(nn.Conv2d(c, filters, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(filters * ((h - 2) // 2) * ((w - 2) // 2), hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stem(x))


@EXPERTS.register("cnn")
class CNNExperts(ExpertBank):
    """E small CNNs, the seed code's MNIST experts (Krishnamurthy & Watkins 2021: one 3x3 filter, 2x2
    max-pool, 169 -> 5 -> 10, i.e. expert_channels 1 and expert_hidden 5):
    logits_e(x) = W2_e relu(W1_e flatten(maxpool(relu(conv_e(x))))) (+ biases).

    The hidden state h_e(x) (width expert_hidden) is the input of the last layer, as in the AAAI 2022
    attentive gate. Torch path only: each expert runs on its own rows of the routing plan (a loop over
    experts, never over samples). Inputs must be images [channels, height, width], height and width >= 4.
    """

    @classmethod
    def input_problems(cls, cfg, input_shape: tuple[int, ...]) -> list[str]:
        if len(input_shape) != 3 or min(input_shape[1:]) < 4:
            return [f"expert: cnn experts need image inputs [channels, height, width] of at least 4 x 4; "
                    f"dataset {cfg.dataset!r} gives {list(input_shape)}"]
        return []

    def __init__(self, cfg, input_shape: tuple[int, ...], n_classes: int):
        if problems := self.input_problems(cfg, input_shape):
            raise ConfigError(problems)
        super().__init__([SmallCNN(input_shape, cfg.expert_channels, cfg.expert_hidden, n_classes) for _ in range(cfg.experts)])
        self.hidden_size = cfg.expert_hidden

    @classmethod
    def hidden_width(cls, cfg) -> int:
        return cfg.expert_hidden

    @classmethod
    def activation_width(cls, cfg, input_shape: tuple[int, ...], n_classes: int) -> int:
        """The convolution's feature map [F, h - 2, w - 2] too (it dwarfs the hidden state)."""
        spatial = (input_shape[-2] - 2) * (input_shape[-1] - 2) if len(input_shape) == 3 else 1
        return cfg.expert_channels * max(spatial, 1) + cfg.expert_hidden + n_classes

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        bounds = plan.offsets.tolist()
        rows = [expert(x[plan.row_tokens[a:b]]) for expert, a, b in zip(self.experts, bounds, bounds[1:])]
        return torch.cat(rows)  # [A, C]

    def hidden_all(self, x: Tensor) -> Tensor:
        return torch.stack([expert.stem(x) for expert in self.experts], 1)  # [T, E, H]

    def all_logits(self, x: Tensor) -> Tensor:
        return torch.stack([expert(x) for expert in self.experts], 1)  # [T, E, C]
