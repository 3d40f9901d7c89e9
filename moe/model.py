"""The mixture-of-experts classifier: a router builds a routing plan, the expert bank evaluates the routed
(sample, expert) pairs, and the experts are combined in log space.

Letters: T samples, C classes, E experts, k slots per sample, A routed assignments.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from moe import regimes
from moe.config import EVAL_BATCH, MEMORY_CAP, Config, ConfigError
from moe.data import DATASETS
from moe.experts import EXPERTS
from moe.objectives import combine_mode
from moe.routers import ROUTERS, Routing
from moe.routers.straight_through import straight_through_term
from moe.validate import as_config

COMBINES = ("mixture", "product")


@dataclass
class MoEOutput:
    log_probs: Tensor  # [T, C] the model's log-probabilities (the mixture log sum_j w_tj q_{e_tj}(. | x_t) by default)
    expert_log_probs: Tensor  # [T, k, C] log q_e(. | x) of each slot's expert (0 in unused slots)
    routing: Routing
    reference: Routing | None = None  # the interpretable router's routing, when the gate is matched to one


class MixtureOfExperts(nn.Module):
    """p(y | x) = sum_e p_e(x) q_e(y | x), with q_e = softmax(f_e(x)) and p the router's weights
    (Jacobs et al. 1991). Only the experts in the routing plan are evaluated; a sample that no expert
    took (expert-choice routing, a capacity limit) gets the uniform distribution 1 / C.

    ``combine = 'product'`` (the cooperative objective) instead blends the experts' log-probabilities:
    p(y | x) = softmax_y(sum_e p_e(x) log q_e(y | x)). ``match_router``, when given, is an interpretable
    router evaluated alongside the gate (router matching); it does not route.

    Hard routing (``routing.relaxed`` set: one expert per sample, weight 1): while training with gradients,
    ``moe.routers.straight_through.straight_through_term`` (value 0) carries the gate's straight-through
    gradient; it reads every expert's log-probabilities, without gradient.
    """

    def __init__(self, router: nn.Module, experts: nn.Module, n_classes: int, combine: str = "mixture",
                 match_router: nn.Module | None = None):
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.router, self.experts, self.n_classes, self.combine = router, experts, n_classes, combine
        self.match_router = match_router

    def forward(self, x: Tensor) -> MoEOutput:
        router, experts = self.router, self.experts
        hidden = experts.hidden_all(x) if router.needs_expert_hidden else None
        routing = router(x, hidden)
        plan = routing.plan
        slots = plan.unpermute(torch.log_softmax(experts.forward_routed(x, plan), -1))  # [T, k, C]
        if self.combine == "product":  # unused slots have weight 0 and log q = 0: no expert -> uniform
            log_probs = torch.log_softmax((plan.weights[..., None] * slots).sum(1), -1)
        elif plan.dense:  # every slot holds an expert: nothing to mask (the same values and gradients as below)
            log_probs = torch.logsumexp(plan.weights.clamp_min(1e-30).log()[..., None] + slots, 1)  # [T, C]
        else:
            valid = plan.expert_ids >= 0  # [T, k]
            log_w = torch.where(valid, plan.weights.clamp_min(1e-30).log(), -math.inf)  # no inf * 0 in backward
            mixed = torch.logsumexp(log_w[..., None] + slots, 1)  # [T, C]
            uniform = torch.full_like(mixed, -math.log(self.n_classes))
            log_probs = torch.where(valid.any(1, keepdim=True), mixed, uniform)
        if routing.relaxed is not None and self.training and torch.is_grad_enabled():
            with torch.no_grad():
                log_q_all = torch.log_softmax(self.experts.forward_all(x), -1)  # [T, E, C]
            log_probs = log_probs + straight_through_term(routing.relaxed, log_q_all)
        reference = self.match_router(x, hidden) if self.match_router is not None else None
        return MoEOutput(log_probs, slots, routing, reference)

    def route(self, x: Tensor):
        """The routing of ``x`` (the router's output, as ``forward`` has it in ``MoEOutput.routing``), without the
        experts' outputs: what a view of the gate needs."""
        hidden = self.experts.hidden_all(x) if self.router.needs_expert_hidden else None
        return self.router(x, hidden)

    def gate_modules(self) -> list[nn.Module]:
        """The modules of the routing side (the gate and its matched interpretable router)."""
        return [m for m in (self.router, self.match_router) if m is not None]

    def set_temperature(self, temperature: float) -> None:
        for m in self.gate_modules():
            m.temperature = temperature

    def init_from_data(self, x: Tensor, generator: torch.Generator) -> None:
        """Data-dependent initialisation of the routers (prototypes) from training inputs x."""
        for m in self.gate_modules():
            m.init_from_data(x, generator)


def build_experts(cfg, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The expert bank; with ``mask_experts``, each expert restricted to its classes of the split."""
    bank = EXPERTS.get(cfg.expert, "expert")(cfg, input_shape, n_classes)
    if cfg.mask_experts:
        bank.mask_classes(regimes.resolve_split(cfg, n_classes), n_classes)
    return bank


def parameter_counts(model: MixtureOfExperts) -> dict[str, int]:
    """Trainable-size of the model: ``total``, ``gate`` (the router side: gate and matched router) and ``experts``
    (all of them). The seed code's models: 35,501 (MNIST, 5 experts), 33,544 (fmnist_mnist, 6 experts)."""
    count = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    return {"total": count([model]), "gate": count(model.gate_modules()), "experts": count([model.experts])}


def build_model(cfg, input_shape: tuple[int, ...], n_classes: int) -> MixtureOfExperts:
    """Router, experts (and a matched interpretable router) from the registries, sized for the data."""
    experts = build_experts(cfg, input_shape, n_classes)
    router = ROUTERS.get(cfg.router, "router")(cfg, input_shape, cfg.experts)
    match = ROUTERS.get(cfg.match_router, "match_router")(cfg, input_shape, cfg.experts) if cfg.match_router else None
    return MixtureOfExperts(router, experts, n_classes, combine_mode(cfg), match)


def checked_config(config: Config | dict[str, Any] | None) -> Config:
    """``moe.validate.as_config`` (every rule of the fields and between them), then the model's estimated memory
    against ``MEMORY_CAP`` (:func:`memory_problems`): what a run checks before any work."""
    cfg = as_config(config)
    if problems := memory_problems(cfg):
        raise ConfigError(problems)
    return cfg


class _NoDrawsOnMeta(torch.overrides.TorchFunctionMode):
    """Inside a build on the meta device: the random draws of the modules' initialisations (``torch.randn``, ``rand``,
    ``Tensor.normal_``, ``uniform_``) and their scaling by a number (``randn(...) / s``) give or leave a meta tensor
    of the shape and dtype without computing. A meta tensor has no values; torch computes these on it through Python
    code that imports sympy and ``torch._dynamo`` (about 1.3 s of CPU, once per process: a sweep's checks, a trial's
    first config)."""

    FACTORIES = (torch.randn, torch.rand)
    FILLS = (torch.Tensor.normal_, torch.Tensor.uniform_)
    SCALINGS = (torch.Tensor.div, torch.Tensor.mul)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FILLS and isinstance(args[0], Tensor) and args[0].is_meta:
            return args[0]
        if (func in self.SCALINGS and not kwargs and len(args) == 2 and isinstance(args[0], Tensor) and args[0].is_meta
                and args[0].is_floating_point() and type(args[1]) in (int, float)):
            return torch.empty(args[0].shape, dtype=args[0].dtype)  # (empty_like on meta: the Python code again)
        if func in self.FACTORIES and kwargs.get("device") is None:  # the meta device's context places them
            return torch.empty(*args, **{k: v for k, v in kwargs.items() if k != "generator"})
        return func(*args, **kwargs)


def memory_estimate(cfg: Config, input_shape: tuple[int, ...], n_classes: int) -> tuple[int, int]:
    """(parameters, activations) of a run, in floats: the parameters of the model (one expert built on the meta
    device, no memory, times E; the router and its matched router), and the activations of one batch through
    every expert (the dense evaluation ``forward_all``): T x E x the expert's activation width, plus the gate's
    T x its width, with T the larger of the training batch (at most n_train) and the evaluation batch."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]), _NoDrawsOnMeta():
        one = build_experts(dataclasses.replace(cfg, experts=1, mask_experts=False), input_shape, n_classes)  # a mask adds no weights
        routers = [ROUTERS.get(name)(cfg, input_shape, cfg.experts) for name in (cfg.router, cfg.match_router) if name]
    bank = EXPERTS.get(cfg.expert)
    if hasattr(bank, "estimated_parameters"):  # experts that share weights (implicit): not E times one expert
        params = bank.estimated_parameters(cfg, input_shape, n_classes)
    else:
        params = cfg.experts * sum(p.numel() for p in one.parameters())
    params += sum(p.numel() for r in routers for p in r.parameters())
    batch = max(EVAL_BATCH, cfg.batch_size if cfg.n_train is None else min(cfg.batch_size, cfg.n_train))
    gate_width = 0
    if ROUTERS.get(cfg.router).uses_gate_network and cfg.gate != "linear":
        gate_width = cfg.gate_hidden * (math.prod(input_shape[1:]) if cfg.gate in ("cnn", "lenet") else 1)
    width = cfg.experts * EXPERTS.get(cfg.expert).activation_width(cfg, input_shape, n_classes) + gate_width
    return params, batch * width


def memory_problems(cfg: Config) -> list[str]:
    """4 bytes x (parameters + activations) of :func:`memory_estimate` against ``MEMORY_CAP`` (4 GiB), for a
    dataset that declares its shape; the message names the fields that size the model."""
    loader = DATASETS.get(cfg.dataset)
    n_classes, input_shape = getattr(loader, "n_classes", None), getattr(loader, "input_shape", None)
    if n_classes is None or input_shape is None:
        return []
    params, activations = memory_estimate(cfg, input_shape, n_classes)
    need = 4 * (params + activations)
    if need <= MEMORY_CAP:
        return []
    sizes = {"experts": cfg.experts, "expert_hidden": cfg.expert_hidden, "expert_channels": cfg.expert_channels,
             "code_width": cfg.code_width, "gate_hidden": cfg.gate_hidden, "batch_size": cfg.batch_size}
    blame = max(sizes, key=lambda name: sizes[name] / getattr(Config, name))  # the most enlarged of the sizes
    return [f"{blame}: the model is too large: estimated {need / 2**30:.1f} GiB (4 bytes x ({params:,} parameters + "
            f"{activations:,} activations of one batch)) exceeds the cap of {MEMORY_CAP / 2**30:g} GiB; lower experts "
            f"({cfg.experts}), expert_hidden ({cfg.expert_hidden}), expert_channels ({cfg.expert_channels}), code_width ({cfg.code_width}), gate_hidden "
            f"({cfg.gate_hidden}) or batch_size ({cfg.batch_size})"]
