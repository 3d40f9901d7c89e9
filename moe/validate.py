"""Validation of a config before any work starts: every rule a :class:`moe.config.Config` must satisfy,
each bad field one line of a :class:`moe.config.ConfigError` that names the field and the valid choices.

Three kinds of rule, checked in this order:
- the registered names (dataset, expert, router, objective) and each component's own rules
  (``config_problems(cfg)`` of a router class, e.g. the hash router's);
- the rules between components, which no single component can check alone: they live here, below
  (the gate and the experts against the dataset's input shape, the class split against its classes,
  the router against the experts' hidden state, the load loss against the router, frozen experts
  against a fixed router);
- the ranges of the numeric fields and the choices of the fields that name no registry.

``from_dict`` parses (``moe.config.parse``) and validates; ``as_config`` accepts a Config or a dict.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from moe import regimes
from moe.config import (DEVICES, GATES, LOSS_COEFFICIENTS, NORMALIZATIONS, OPTIMIZERS, PRESETS, SUBSETS, Config, ConfigError,
                        parse)
from moe.data import DATASETS, declared_input_shape
from moe.experts import EXPERTS
from moe.objectives import OBJECTIVES
from moe.objectives import base as objectives
from moe.objectives import matching
from moe.registry import Registry
from moe.routers import ROUTERS, gate_input_problems


def registries() -> dict[str, Registry]:
    """Config field -> registry of names valid for it."""
    return {"dataset": DATASETS, "expert": EXPERTS, "router": ROUTERS, "objective": OBJECTIVES}


def from_dict(values: dict[str, Any], *, validate: bool = True) -> Config:
    """Build a Config from a mapping: unknown keys and wrong types (``moe.config.parse``), then, unless
    ``validate`` is false, every rule (:func:`validate_config`); all problems of a stage reported at once."""
    cfg = parse(values)
    if validate:
        validate_config(cfg)
    return cfg


def as_config(config: Config | dict[str, Any] | None) -> Config:
    """Accept a Config or a plain dict (a Ray trial's config); always return a validated Config."""
    if config is None:
        config = {}
    if isinstance(config, Config):
        validate_config(config)
        return config
    return from_dict(dict(config))


def validate_config(cfg: Config) -> None:
    """Every rule a config must satisfy before work starts; raises ConfigError listing each bad field."""
    problems = component_problems(cfg) + field_problems(cfg)
    problems += regulariser_problems(cfg)  # regularisers: which routers they need
    problems += regimes.config_problems(cfg) + freeze_problems(cfg)  # regimes: class split, phases
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------------------------------------------
# The registered components, their own rules and the rules between them
# ---------------------------------------------------------------------------------------------------

def component_problems(cfg: Config) -> list[str]:
    """Unknown names, then for each known component its own rules and the rules it shares with the others."""
    problems = []
    for name, registry in registries().items():
        value = getattr(cfg, name)
        if value not in registry:
            problems.append(registry.unknown_message(value, field=name))
            continue
        component = registry.get(value)
        if hasattr(component, "config_problems"):
            problems.extend(component.config_problems(cfg))  # a component's own rules
        problems.extend(CROSS_RULES.get(name, lambda cfg: [])(cfg))
    return problems


def data_problems(cfg: Config) -> list[str]:
    """The rules that need the dataset's declared class count and input shape (``moe.data.shaped``): a class
    split must cover exactly these classes, and image-only experts need image inputs. (``moe.train.run``
    checks the same again on the data actually loaded.)"""
    loader = DATASETS.get(cfg.dataset)
    n_classes, input_shape = getattr(loader, "n_classes", None), getattr(loader, "input_shape", None)
    if n_classes is None or input_shape is None:
        return []  # a dataset that declares no shape: checked on the loaded data only
    problems = []
    split = cfg.class_split
    if isinstance(split, str) and (split == regimes.CONTIGUOUS or split in regimes.SPLITS):
        split = regimes.resolve_split(cfg, n_classes)
    if isinstance(split, list) and not regimes.split_problems(split, cfg.experts):  # else already reported
        problems.extend(regimes.split_problems(split, cfg.experts, n_classes))
    if cfg.expert in EXPERTS and hasattr(expert := EXPERTS.get(cfg.expert), "input_problems"):
        problems.extend(expert.input_problems(cfg, input_shape))
    return problems


def router_problems(cfg: Config) -> list[str]:
    """The gate network against the dataset's input shape (a cnn gate needs images), and a router that reads
    the experts' hidden states against experts that have one."""
    router = ROUTERS.get(cfg.router)
    problems = []
    if router.uses_gate_network:
        problems.extend(gate_input_problems(cfg.gate, declared_input_shape(cfg.dataset), cfg.dataset))
    if router.needs_expert_hidden and cfg.expert in EXPERTS and EXPERTS.get(cfg.expert).hidden_width(cfg) == 0:
        with_hidden = [n for n in EXPERTS.names() if EXPERTS.get(n).hidden_width(cfg) > 0]
        problems.append(f"router: the {cfg.router} router needs experts with a hidden state ({', '.join(with_hidden)}); "
                        f"expert {cfg.expert!r} has none")
    return problems


CROSS_RULES: dict[str, Callable[[Config], list[str]]] = {"dataset": data_problems, "router": router_problems}


def regulariser_problems(cfg: Config) -> list[str]:
    """The load loss needs the smooth load of a noisy top-k router; then the regularisers' own rules."""
    problems = []
    if cfg.load_loss != 0 and not (cfg.router == "topk" and cfg.noisy_gate and cfg.top_k < cfg.experts):
        problems.append(f"load_loss: the smooth load of Shazeer et al. 2017 needs router 'topk' with noisy_gate: true "
                        f"and top_k < experts; got router {cfg.router!r}, noisy_gate {cfg.noisy_gate}, top_k {cfg.top_k}")
    return problems + objectives.config_problems(cfg) + matching.config_problems(cfg)


def freeze_problems(cfg: Config) -> list[str]:
    """Frozen pre-trained experts leave only the gate to train: a fixed router would train nothing."""
    if cfg.freeze_experts and cfg.regime in regimes.REGIMES and cfg.router in ROUTERS and not ROUTERS.get(cfg.router).learned:
        return [f"freeze_experts: the {cfg.router} router is fixed, so with frozen experts the gate phase would train nothing"]
    return []


# ---------------------------------------------------------------------------------------------------
# The numeric fields and the fields that name no registry
# ---------------------------------------------------------------------------------------------------

def field_problems(cfg: Config) -> list[str]:
    """Ranges and choices of single fields, one message per bad field."""
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(cfg.experts >= 1, f"experts: must be >= 1, got {cfg.experts}")
    check(cfg.top_k >= 1, f"top_k: must be >= 1, got {cfg.top_k}")
    check(cfg.top_k <= max(cfg.experts, 1), f"top_k: must be <= experts ({cfg.experts}), got {cfg.top_k}")
    check(cfg.expert_hidden >= 1, f"expert_hidden: must be >= 1, got {cfg.expert_hidden}")
    check(cfg.expert_channels >= 1, f"expert_channels: must be >= 1, got {cfg.expert_channels}")
    check(cfg.gate in GATES, f"gate: unknown gate network {cfg.gate!r}; valid choices: {', '.join(GATES)}")
    check(cfg.gate_hidden >= 1, f"gate_hidden: must be >= 1, got {cfg.gate_hidden}")
    for name in ("lr", "temperature", "lr_ratio", "temperature_min"):
        v = getattr(cfg, name)
        check(math.isfinite(v) and v > 0, f"{name}: must be > 0, got {v}")
    check(math.isfinite(cfg.temperature_decay) and 0 < cfg.temperature_decay <= 1,
          f"temperature_decay: must be in (0, 1] (1: constant temperature), got {cfg.temperature_decay}")
    if cfg.temperature_decay < 1:
        check(cfg.temperature_min <= cfg.temperature,
              f"temperature_min: must be <= temperature ({cfg.temperature}) when the temperature decays, got {cfg.temperature_min}")
    if cfg.capacity is not None:
        check(math.isfinite(cfg.capacity) and cfg.capacity > 0, f"capacity: must be > 0, got {cfg.capacity}")
    for name in LOSS_COEFFICIENTS:
        v = getattr(cfg, name)
        check(math.isfinite(v) and v >= 0, f"{name}: must be >= 0 (0: off), got {v}")
    check(cfg.lr_ratio >= 1, f"lr_ratio: must be >= 1 (fastest / slowest), got {cfg.lr_ratio}")
    if cfg.gate_lr is not None:
        check(math.isfinite(cfg.gate_lr) and cfg.gate_lr > 0, f"gate_lr: must be > 0, got {cfg.gate_lr}")
    if cfg.expert_lrs is not None:
        check(len(cfg.expert_lrs) == cfg.experts,
              f"expert_lrs: needs one learning rate per expert ({cfg.experts}), got {len(cfg.expert_lrs)}")
        check(all(math.isfinite(v) and v > 0 for v in cfg.expert_lrs), f"expert_lrs: every rate must be > 0, got {cfg.expert_lrs}")
    check(cfg.optimizer in OPTIMIZERS, f"optimizer: unknown optimizer {cfg.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
    check(0 <= cfg.momentum < 1, f"momentum: must be in [0, 1), got {cfg.momentum}")
    check(cfg.weight_decay >= 0, f"weight_decay: must be >= 0, got {cfg.weight_decay}")
    check(cfg.epochs >= 1, f"epochs: must be >= 1, got {cfg.epochs}")
    check(cfg.batch_size >= 1, f"batch_size: must be >= 1, got {cfg.batch_size}")
    for name in ("n_train", "n_test"):
        v = getattr(cfg, name)
        check(v is None or v >= 1, f"{name}: must be >= 1 or null, got {v}")
    check(cfg.subset in SUBSETS, f"subset: unknown choice {cfg.subset!r}; valid choices: {', '.join(SUBSETS)}")
    check(cfg.normalize in NORMALIZATIONS, f"normalize: unknown choice {cfg.normalize!r}; valid choices: {', '.join(NORMALIZATIONS)}")
    check(cfg.preset is None or cfg.preset in PRESETS, f"preset: unknown preset {cfg.preset!r}; valid choices: {', '.join(PRESETS)}")
    check(cfg.device in DEVICES, f"device: unknown device {cfg.device!r}; valid choices: {', '.join(DEVICES)}")
    check(cfg.threads is None or cfg.threads >= 1, f"threads: must be >= 1 or null, got {cfg.threads}")
    return problems
