"""``seed_cnn`` experts: the seed code's tiny MNIST CNN, layer for layer (one module per expert, image inputs)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from moe.config import ConfigError
from moe.experts.base import EXPERTS, ExpertBank

SEED_WIDTHS = (5, 10)  # the seed code's two hidden layers


def conv_pool_width(input_shape: tuple[int, int, int], kernel: int) -> int:
    """Width of flatten(maxpool_2(conv_{kernel x kernel, 1 filter, no padding}(x))): 28 x 28 -> 13 x 13 = 169 (3 x 3),
    12 x 12 = 144 (5 x 5)."""
    _, h, w = input_shape
    return ((h - kernel + 1) // 2) * ((w - kernel + 1) // 2)


class SeedCNN(nn.Module):
    """conv(C -> 1, 3 x 3) -> relu -> maxpool 2 -> flatten (169 on MNIST) -> FC 5 -> relu -> FC 10 -> relu -> FC C."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        first, second = SEED_WIDTHS
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], 1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(conv_pool_width(input_shape, 3), first), nn.ReLU(),
                                  nn.Linear(first, second), nn.ReLU())
        self.head = nn.Linear(second, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stem(x))


@EXPERTS.register("seed_cnn")
class SeedCNNExperts(ExpertBank):
    """E copies of the seed code's MNIST expert (yamsgithub/modular_deep_learning, branch xai_neurips_2021;
    Krishnamurthy & Watkins 2021): logits_e(x) = W3 relu(W2 relu(W1 flatten(maxpool_2(relu(conv_e(x)))))) (+ biases),
    conv 1 -> 1 filter 3 x 3, widths 169 -> 5 -> 10 -> C; its softmax is the expert's output. 1,030 parameters
    for C = 10 (conv 10, 850, 60, 110), 1,052 for C = 12. ``expert_hidden`` and ``expert_channels`` do not apply.

    The hidden state h_e(x) is the input of the last layer (width 10). Torch path only: each expert runs on its
    own rows of the routing plan (a loop over experts, never over samples). Inputs: images [C, H, W], H, W >= 4.
    """

    @classmethod
    def input_problems(cls, cfg, input_shape: tuple[int, ...]) -> list[str]:
        if len(input_shape) != 3 or min(input_shape[1:]) < 4:
            return [f"expert: seed_cnn experts need image inputs [channels, height, width] of at least 4 x 4; "
                    f"dataset {cfg.dataset!r} gives {list(input_shape)}"]
        return []

    def __init__(self, cfg, input_shape: tuple[int, ...], n_classes: int):
        if problems := self.input_problems(cfg, input_shape):
            raise ConfigError(problems)
        super().__init__([SeedCNN(input_shape, n_classes) for _ in range(cfg.experts)])
        self.hidden_size = SEED_WIDTHS[-1]

    @classmethod
    def hidden_width(cls, cfg) -> int:
        return SEED_WIDTHS[-1]

    def routed_logits(self, x: Tensor, plan) -> Tensor:
        if plan.dense:  # every sample to every expert, in order: each expert's rows are x itself (no gather, no sync)
            return torch.cat([expert(x) for expert in self.experts])  # [E * T, C]
        bounds = plan.offsets.tolist()
        rows = [expert(x[plan.row_tokens[a:b]]) for expert, a, b in zip(self.experts, bounds, bounds[1:])]
        return torch.cat(rows)  # [A, C]

    def hidden_all(self, x: Tensor) -> Tensor:
        return torch.stack([expert.stem(x) for expert in self.experts], 1)  # [T, E, 10]

    def all_logits(self, x: Tensor) -> Tensor:
        return torch.stack([expert(x) for expert in self.experts], 1)  # [T, E, C]
