"""The routers' base: the :class:`Routing` every router returns, the :class:`Router` base class, the
``ROUTERS`` registry and the gate networks (linear, mlp, cnn) the learned routers are built on.

Every router, learned or not, returns a :class:`Routing` whose ``plan`` is the kernels' routing plan;
the expert layer consumes only that plan.

Letters: T samples, D input features, E experts, k experts per sample, H expert hidden width.

Adding a router is adding one small file that registers a :class:`Router` subclass with
``@ROUTERS.register("name")`` and one import line in ``moe/routers/__init__.py``. A router may define
``config_problems(cfg) -> list[str]`` for its own configuration rules (checked before training); rules
that involve another component (the dataset's input shape, the experts' hidden state) live in
``moe.validate``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kernels import RoutingPlan
from moe.config import GATES, ConfigError
from moe.registry import Registry

ROUTERS: Registry = Registry("router")


@dataclass
class Routing:
    plan: RoutingPlan  # which experts each sample goes to, with which weights
    logits: Tensor  # [T, E] gate logits after the temperature
    probs: Tensor  # [T, E] the gate's full distribution softmax(logits) (before any top-k or capacity)
    load: Tensor | None = None  # [E] a differentiable expected load, where the router has one (noisy top-k)
    relaxed: Tensor | None = None  # [T, E] hard routing (one slot, weight 1): the soft weights whose gradient stands in for the one-hot (straight-through; moe.routers.straight_through)

    def dense_weights(self) -> Tensor:
        """[T, E] the routing weights actually used to mix the experts, zero for experts not routed to.
        Hard routing: the one-hot of the plan, differentiable straight-through (h + s - sg(s), s = ``relaxed``),
        so that the balancing losses reach the gate."""
        p = self.plan
        valid = p.expert_ids >= 0
        out = torch.zeros(p.n_tokens, p.n_experts, dtype=p.weights.dtype, device=p.weights.device)
        out = out.scatter_add(1, p.expert_ids.clamp_min(0), torch.where(valid, p.weights, 0))
        if self.relaxed is not None:
            out = out + (self.relaxed - self.relaxed.detach()).to(out.dtype)
        return out

    def assignment(self) -> Tensor:
        """[T] the expert with the largest routing weight (-1 for a sample no expert took)."""
        return self.plan.expert_ids[:, 0]

    def dropped(self) -> Tensor:
        """[T] bool: samples that no expert took (capacity overflow, expert choice)."""
        return self.plan.expert_ids[:, 0] < 0


class NonFiniteError(ArithmeticError):
    """The gate produced NaN or infinite logits: the run has diverged."""


def check_finite(logits: Tensor) -> Tensor:
    """The logits, or NonFiniteError when one is NaN or infinite: their sum (one op and one sync) is finite only if
    every logit is; a sum that overflows from finite logits is confirmed element by element."""
    if not math.isfinite(float(logits.detach().sum())) and not bool(torch.isfinite(logits).all()):
        raise NonFiniteError("gate logits are NaN or infinite")
    return logits


SEED_GATE_KERNELS = {"seed_cnn": 3, "seed_cnn5": 5}  # the seed code's CNN gates: convolution kernel size
SEED_GATE_WIDTHS = (128, 64)  # ... and their two hidden layers
IMAGE_GATES = ("cnn", *SEED_GATE_KERNELS, "lenet")  # gate networks that read the image [C, H, W] itself, not its flattened pixels
MIN_SIDE = {"cnn": 2, **{g: k + 1 for g, k in SEED_GATE_KERNELS.items()}, "lenet": 16}  # their smallest image side (conv, then 2 x 2 pool)


def gate_network(kind: str, input_shape: tuple[int, ...], n_out: int, hidden: int) -> nn.Module:
    """The gate g: ``linear``: x W + b; ``mlp`` and ``cnn`` (black-box gates): h_g W + b on the hidden state
    h_g of :func:`gate_features` (width ``hidden``). It takes :func:`gate_input` of the samples."""
    if kind == "linear":
        return nn.Linear(math.prod(input_shape), n_out)
    features, width = gate_features(kind, input_shape, hidden)
    return nn.Sequential(*features, nn.Linear(width, n_out))


def gate_features(kind: str, input_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int]:
    """The gate's hidden state h_g (the input of its last layer) and its width.

    - ``linear``: h_g = x, the flattened input (width D).
    - ``mlp``: h_g = relu(x W_1 + b_1) (width G = hidden); the black-box router of the Implicit Mixture of
      Interpretable Experts (Elazar & Taylor 2022, arXiv 2212.00471).
    - ``cnn``: the other black-box router the reproduction of that paper allows ('an MLP or CNN'), a small
      convolutional gate for images [C, H, W] in the style of the project's cnn experts
      (``moe/experts/cnn.py``, after Krishnamurthy & Watkins 2021), G = hidden filters:
      h_g = avgpool(relu(conv_2(maxpool_2(relu(conv_1(x)))))), conv_1: C -> G and conv_2: G -> G, both
      3 x 3 with padding 1; the global average pool (Lin, Chen & Yan 2014, 'Network in network') keeps h_g
      at width G for any image size, so the gate stays small.
    - ``seed_cnn`` / ``seed_cnn5``: the seed code's MNIST / fmnist_mnist gate (yamsgithub/modular_deep_learning,
      Krishnamurthy & Watkins 2021), layer for layer: h_g = relu(W_2 relu(W_1 flatten(maxpool_2(relu(conv(x)))))),
      conv C -> 1 filter, 3 x 3 (``seed_cnn``: 169 on MNIST) or 5 x 5 (``seed_cnn5``: 144), no padding,
      W_1: -> 128, W_2: 128 -> 64 (width 64, fixed: ``hidden`` does not apply). With the last layer 64 -> E:
      30,351 parameters for E = 5 on 28 x 28 images (10 + 21,760 + 8,256 + 325), 27,232 for the 5 x 5 gate, E = 6.
    - ``lenet``: the feature extractor of LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998), G = hidden:
      h_g = flatten(maxpool_2(relu(conv_2(maxpool_2(relu(conv_1(x))))))), conv_1: C -> G and conv_2: G -> 2G,
      both 5 x 5 without padding; width 2G x 4 x 4 on 28 x 28 images (sides >= 16). Unlike ``cnn`` it keeps
      where each feature is (no global pool): a black-box router strong enough to classify MNIST by itself.
    """
    if kind == "linear":
        return nn.Identity(), math.prod(input_shape)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(math.prod(input_shape), hidden), nn.ReLU()), hidden
    if kind == "cnn":
        if not is_image(input_shape):
            raise ValueError(f"the cnn gate needs image inputs [channels, height, width] of at least 2 x 2, got {list(input_shape)}")
        return nn.Sequential(nn.Conv2d(input_shape[0], hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten()), hidden  # [T, G]
    if kind == "lenet":
        if not is_image(input_shape, MIN_SIDE[kind]):
            raise ValueError(f"the lenet gate needs image inputs [channels, height, width] of at least 16 x 16, got {list(input_shape)}")
        side = lambda n: ((n - 4) // 2 - 4) // 2  # noqa: E731  (two 5 x 5 convolutions, each followed by a 2 x 2 pool)
        return nn.Sequential(nn.Conv2d(input_shape[0], hidden, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(hidden, 2 * hidden, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()), \
            2 * hidden * side(input_shape[1]) * side(input_shape[2])  # [T, 2G x 4 x 4] on 28 x 28
    if kind in SEED_GATE_KERNELS:
        if not is_image(input_shape, MIN_SIDE[kind]):
            raise ValueError(f"the {kind} gate needs image inputs [channels, height, width] of at least "
                             f"{MIN_SIDE[kind]} x {MIN_SIDE[kind]}, got {list(input_shape)}")
        k, (_, h, w) = SEED_GATE_KERNELS[kind], input_shape
        first, second = SEED_GATE_WIDTHS
        return nn.Sequential(nn.Conv2d(input_shape[0], 1, k), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(((h - k + 1) // 2) * ((w - k + 1) // 2), first), nn.ReLU(),
                             nn.Linear(first, second), nn.ReLU()), second  # [T, 64]
    raise ValueError(f"unknown gate network {kind!r}")


def gate_input(kind: str, x: Tensor) -> Tensor:
    """What a gate network reads: the images [T, C, H, W] for an image gate (cnn), else the flattened
    input [T, D]. The one place where the gate's view of the input is decided."""
    return x if kind in IMAGE_GATES else x.flatten(1)


def is_image(input_shape: tuple[int, ...], min_side: int = 2) -> bool:
    """[channels, height, width], each side >= min_side (2: room for the cnn gate's 2 x 2 max-pool)."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= min_side


def gate_input_problems(kind: str, input_shape: tuple[int, ...] | None, dataset: str) -> list[str]:
    """An image gate on inputs that are not images (``input_shape`` None: not known, nothing to check)."""
    if kind not in IMAGE_GATES or input_shape is None or is_image(input_shape, MIN_SIDE[kind]):
        return []
    fits = [g for g in GATES if g not in IMAGE_GATES]
    side = MIN_SIDE[kind]
    return [f"gate: the {kind} gate needs image inputs [channels, height, width] of at least {side} x {side}; dataset {dataset!r} "
            f"gives {list(input_shape)}; valid choices for it: {', '.join(fits)}"]


class Router(nn.Module):
    """Base: a gate network g (cfg.gate: linear, mlp or cnn) on :func:`gate_input` of x, logits = g(x) / T.

    ``temperature`` is a plain attribute, so a training regime can decay it between epochs.
    """

    needs_expert_hidden = False  # True: forward() also receives the experts' hidden states [T, E, H]
    batch_dependent = False  # True: a sample's routing depends on the rest of its batch (evaluate in training-size batches)
    uses_gate_network = True  # False: the router ignores cfg.gate (it must stay 'linear')
    learned = True  # False: a fixed router without parameters (hash)
    removed: Tensor | None = None  # [E] bool: experts removed by an ablation (moe.scoring.ablation); None: all present

    def without_removed(self, logits: Tensor) -> Tensor:
        """The logits with the removed experts' set to -inf, so that the router's own rule picks its next choice
        (an ablation, ``moe.scoring.ablation``); the logits themselves when no expert is removed."""
        return logits if self.removed is None else logits.masked_fill(self.removed.to(logits.device), -math.inf)
    routing_modes: tuple[str, ...] = ("soft",)  # the values of cfg.routing it supports (the dense routers: soft, hard, gumbel)

    def __init__(self, cfg, input_shape: tuple[int, ...], n_experts: int):
        super().__init__()
        self.n_experts = n_experts
        self.temperature = cfg.temperature
        self.routing_mode = cfg.routing
        self.gate_kind = cfg.gate if self.uses_gate_network else "linear"  # an interpretable router stays linear
        raise_gate_input_problems(self.gate_kind, input_shape, cfg.dataset)
        self.gate = gate_network(self.gate_kind, input_shape, n_experts, cfg.gate_hidden)

    def gate_logits(self, x: Tensor) -> Tensor:
        logits = self.gate(gate_input(self.gate_kind, x))
        if self.temperature != 1.0:  # x / 1 is x, and so is its gradient: no op to run
            logits = logits / self.temperature
        return self.without_removed(check_finite(logits))  # [T, E]

    def forward(self, x: Tensor, expert_hidden: Tensor | None = None) -> Routing:
        raise NotImplementedError

    def init_from_data(self, x: Tensor, generator: torch.Generator) -> None:
        """Data-dependent initialisation before training (x: training inputs); most routers have none."""

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        """The router's own rules (``moe.validate`` checks the gate against the dataset's input shape)."""
        problems = []
        if not cls.uses_gate_network and cfg.gate != "linear":
            problems.append(f"gate: the {cfg.router} router has no gate network to replace; gate must be 'linear', got {cfg.gate!r}")
        if cfg.routing not in cls.routing_modes:
            dense = [n for n in ROUTERS.names() if len(ROUTERS.get(n).routing_modes) > 1]
            problems.append(f"routing: the {cfg.router} router supports routing {', '.join(cls.routing_modes)} only; "
                            f"{cfg.routing!r} needs one of the routers {', '.join(dense)}")
        elif cfg.routing != "soft" and cfg.objective == "competitive":  # it reads the weights, the constant 1 here
            problems.append(f"routing: {cfg.routing} routing trains the gate through the mixture's log-probabilities "
                            f"(straight-through), which the competitive objective does not read; use objective "
                            f"mixture_nll, expectation or cooperative, or routing soft")
        return problems


def raise_gate_input_problems(kind: str, input_shape: tuple[int, ...], dataset: str) -> None:
    """The config rule, checked again on the shape of the data actually loaded or passed in."""
    if problems := gate_input_problems(kind, input_shape, dataset):
        raise ConfigError(problems)


def capacity_slots(capacity: float, n_tokens: int, n_experts: int) -> int:
    """Samples an expert may take from a batch: ceil(c * T / E), at least 1 and at most T."""
    return max(1, min(n_tokens, math.ceil(round(capacity * n_tokens / n_experts, 9))))
