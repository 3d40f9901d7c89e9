"""Validation of a config before any work starts: every rule a :class:`moe.config.Config` must satisfy,
each bad field one line of a :class:`moe.config.ConfigError` that names the field and the valid choices.

Two stages; the second runs only when the first found nothing, so that one bad field gives one line:
1. each field alone (:func:`field_problems`): its type, the registered names (dataset, expert, router,
   objective, regime), the choices of the fields that name no registry, and the whole domain of every
   numeric and list field (finite, in range, within the caps of ``moe.config``: sizes that fit in memory,
   seeds that fit torch's 64-bit generators), plus the kernels backend (env MOE_KERNELS) for the device;
2. the rules between fields: each component's own rules (``config_problems(cfg)`` of a router class,
   e.g. the hash router's) and the rules between components, which no single component can check alone:
   they live here, below (the gate and the experts against the dataset's input shape, the class split
   against its classes, n_train against its class count, the router against the experts' hidden state,
   the load loss against the router, frozen experts against a fixed router). The model's estimated memory
   against ``MEMORY_CAP`` needs the model's classes: ``moe.model.checked_config`` adds it (validation sits
   below the model: nothing here builds one).
What needs the loaded data (n_train and n_test against the samples the dataset has) is
:func:`loaded_data_problems`, which ``moe.training.loop.run`` calls after loading and before training.

``from_dict`` parses (``moe.config.parse``) and validates; ``as_config`` accepts a Config or a dict.
Long because every rule of a config lives here, with the choices ``--help`` lists (``field_choices``).
"""
from __future__ import annotations

import math
import os
import typing
from typing import Any, Callable

import torch

from kernels import backend_problem
from moe.config import MAX_CLASS, MAX_EXPERTS, MAX_LR, MAX_SAMPLES, MIN_LR
from moe import lm_rules, regimes
from moe.config import (DEVICES, GATES, LOSS_COEFFICIENTS, NORMALIZATIONS, OPTIMIZERS, PRESETS, ROUTING_MODES, SUBSETS,
                        Config, ConfigError, parse)
from moe.data import DATASETS, Dataset, declared_input_shape
from moe.experts import EXPERTS
from moe.objectives import OBJECTIVES
from moe.objectives import base as objectives
from moe.objectives import matching
from moe.field_limits import LIMITS
from moe.registry import Registry, shown, suggestion
from moe.routers import ROUTERS, gate_input_problems


def registries() -> dict[str, Registry]:
    """Config field -> registry of names valid for it."""
    return {"dataset": DATASETS, "expert": EXPERTS, "router": ROUTERS, "objective": OBJECTIVES}


def field_choices() -> dict[str, list[str]]:
    """Config field -> its valid names, from the registries and the fixed choice lists that validation reads:
    what ``python -m moe.train --help`` lists (a test holds the two together)."""
    out = {name: registry.names() for name, registry in registries().items()}
    out.update(regime=regimes.REGIMES.names(), refit_init=list(regimes.REFIT_INITS), subset=list(SUBSETS),
               normalize=list(NORMALIZATIONS), preset=list(PRESETS), gate=list(GATES), routing=list(ROUTING_MODES),
               optimizer=list(OPTIMIZERS), match_router=list(matching.MATCH_ROUTERS), device=list(DEVICES))
    return out


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
    if problems := field_problems(cfg):  # each field alone first: one bad field, one line
        raise ConfigError(problems)
    problems = component_problems(cfg) + between_fields_problems(cfg)
    problems += regulariser_problems(cfg)  # regularisers: which routers they need
    problems += regimes.config_problems(cfg) + freeze_problems(cfg)  # regimes: class split, phases
    problems += lm_rules.text_problems(cfg)  # the language model's rules (text datasets)
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
    split must cover exactly these classes, and image-only experts need image inputs. (``moe.training.loop.run``
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
# Each field alone: its whole domain (the ranges are moe.field_limits.LIMITS, the caps moe.config's)
# ---------------------------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_problem(name: str, v: Any, lo: int, hi: int, *, optional: bool = False, why: str = "") -> str | None:
    """None when v is an integer in [lo, hi] (or None, when optional); else the message."""
    if (v is None and optional) or (_is_int(v) and lo <= v <= hi):
        return None
    null = " or null" if optional else ""
    return f"{name}: must be >= {lo} and <= {hi} (an integer){null}{why}, got {shown(v)}"


def float_problem(name: str, v: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
                  optional: bool = False, why: str = "") -> str | None:
    """None when v is a finite number in the interval (or None, when optional); else the message."""
    if v is None and optional:
        return None
    if _is_number(v) and math.isfinite(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi):
        return None
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    null = " or null" if optional else ""
    bounds = f"{'>' if lo_open else '>='} {lo:g} and {'<' if hi_open else '<='} {hi:g}"
    return f"{name}: must be {bounds} (a finite number in {interval}){null}{why}, got {shown(v)}"


def choice_problem(name: str, v: Any, choices: tuple[str, ...] | list[str], what: str, *, optional: bool = False) -> str | None:
    if (v is None and optional) or (isinstance(v, str) and v in choices):
        return None
    return f"{name}: unknown {what} {shown(v)}; valid choices: {', '.join(choices)}{' or null' if optional else ''}"


LR_WHY = f" ({LIMITS['lr'].why})"
FIELD_HINTS = typing.get_type_hints(Config)  # resolved once: get_type_hints re-evaluates every annotation per call


def limit_problem(name: str, v: Any) -> str | None:
    """None when v is within the field's range (``moe.config.LIMITS``; None allowed where the field is optional)."""
    limit, optional = LIMITS[name], type(None) in typing.get_args(FIELD_HINTS[name])
    why = f" ({limit.why})" if limit.why else ""
    if limit.integer:
        return int_problem(name, v, int(limit.low), int(limit.high), optional=optional, why=why)
    return float_problem(name, v, limit.low, limit.high, lo_open=limit.low_open, hi_open=limit.high_open,
                         optional=optional, why=why)


def field_problems(cfg: Config) -> list[str]:
    """Every field's own domain, one message per bad field, nothing about the other fields (those rules come
    after, once every field is good): the registered names and choices, the ranges and caps of ``moe.config``."""
    problems = []
    for name, registry in (*registries().items(), ("regime", regimes.REGIMES)):
        value = getattr(cfg, name)
        if not (isinstance(value, str) and value in registry):
            problems.append(registry.unknown_message(value, field=name))
    problems += [
        data_root_problem(cfg.data_root),
        limit_problem("n_train", cfg.n_train),
        limit_problem("n_test", cfg.n_test),
        choice_problem("subset", cfg.subset, SUBSETS, "choice"),
        limit_problem("val_fraction", cfg.val_fraction),
        choice_problem("normalize", cfg.normalize, NORMALIZATIONS, "choice"),
        choice_problem("preset", cfg.preset, tuple(PRESETS), "preset", optional=True),
        limit_problem("data_seed", cfg.data_seed),
        limit_problem("planted_modules", cfg.planted_modules),
        limit_problem("planted_entanglement", cfg.planted_entanglement),
        *lm_rules.field_problems(cfg, limit_problem),
        limit_problem("experts", cfg.experts),
        limit_problem("expert_hidden", cfg.expert_hidden),
        limit_problem("expert_channels", cfg.expert_channels),
        limit_problem("code_width", cfg.code_width),
        limit_problem("top_k", cfg.top_k),
        bool_problem("noisy_gate", cfg.noisy_gate),
        limit_problem("capacity", cfg.capacity),
        limit_problem("soft_slots", cfg.soft_slots),
        choice_problem("gate", cfg.gate, GATES, "gate network"),
        limit_problem("gate_hidden", cfg.gate_hidden),
        choice_problem("routing", cfg.routing, ROUTING_MODES, "routing"),
        limit_problem("temperature", cfg.temperature),
        limit_problem("temperature_decay", cfg.temperature_decay),
        limit_problem("temperature_min", cfg.temperature_min),
        *[limit_problem(name, getattr(cfg, name)) for name in LOSS_COEFFICIENTS],
        choice_problem("match_router", cfg.match_router, matching.MATCH_ROUTERS, "interpretable router", optional=True),
        class_split_problem(cfg.class_split),
        limit_problem("pretrain_epochs", cfg.pretrain_epochs),
        bool_problem("mask_experts", cfg.mask_experts),
        bool_problem("freeze_experts", cfg.freeze_experts),
        limit_problem("refit_epochs", cfg.refit_epochs),
        choice_problem("refit_init", cfg.refit_init, regimes.REFIT_INITS, "choice"),
        choice_problem("optimizer", cfg.optimizer, OPTIMIZERS, "optimizer"),
        limit_problem("lr", cfg.lr),
        limit_problem("gate_lr", cfg.gate_lr),
        expert_lrs_problem(cfg.expert_lrs),
        limit_problem("lr_ratio", cfg.lr_ratio),
        limit_problem("momentum", cfg.momentum),
        limit_problem("weight_decay", cfg.weight_decay),
        limit_problem("epochs", cfg.epochs),
        limit_problem("batch_size", cfg.batch_size),
        limit_problem("seed", cfg.seed),
        choice_problem("device", cfg.device, DEVICES, "device"),
        limit_problem("threads", cfg.threads),
    ]
    problems = [p for p in problems if p]
    if not any(p.startswith("device:") for p in problems):
        problems += kernels_problems(cfg)
    return problems


def bool_problem(name: str, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{name}: must be true or false, got {shown(v)}"


def data_root_problem(v: Any) -> str | None:
    """A folder path or null: text without a NUL character, not the path of an existing file."""
    if v is None:
        return None
    if not isinstance(v, str) or "\0" in v or len(v) > 4096:
        return f"data_root: must be a folder path (text of at most 4096 characters, no NUL) or null, got {shown(v)}"
    if os.path.isfile(os.path.expanduser(v)):
        return f"data_root: {v!r} is a file; expected a folder (or null: env MOE_DATA, else ~/.cache/moe-interp-bench)"
    return None


def expert_lrs_problem(v: Any) -> str | None:
    """Null, or a list of 1 to MAX_EXPERTS learning rates each in lr's range (its length: ``between_fields_problems``)."""
    if v is None:
        return None
    ok = isinstance(v, list) and 1 <= len(v) <= MAX_EXPERTS and all(
        _is_number(r) and math.isfinite(r) and MIN_LR <= r <= MAX_LR for r in v)
    if ok:
        return None
    return (f"expert_lrs: must be null or a list of 1 to {MAX_EXPERTS} learning rates (one per expert), each a finite "
            f"number in [{MIN_LR:g}, {MAX_LR:g}]{LR_WHY}, got {shown(v)}")


def class_split_problem(v: Any) -> str | None:
    """Null, a preset name, or 1 to MAX_EXPERTS lists of class indices in [0, MAX_CLASS) (at most MAX_CLASS in all);
    whether it fits the experts and the dataset's classes: ``moe.regimes`` and :func:`data_problems`."""
    names = [*regimes.SPLITS, regimes.CONTIGUOUS]
    if v is None or (isinstance(v, str) and v in names):
        return None
    if isinstance(v, str):
        return f"class_split: unknown split {shown(v)}{suggestion(v, names)}; valid choices: {', '.join(names)}, or a list of class lists"
    ok = (isinstance(v, list) and 1 <= len(v) <= MAX_EXPERTS and all(isinstance(part, list) for part in v)
          and sum(len(part) for part in v) <= MAX_CLASS
          and all(_is_int(k) and 0 <= k < MAX_CLASS for part in v for k in part))
    if ok:
        return None
    return (f"class_split: must be null, a preset ({', '.join(names)}) or 1 to {MAX_EXPERTS} lists of class indices "
            f"in [0, {MAX_CLASS}) (one list per expert), got {shown(v)}")


def device_type(cfg: Config) -> str:
    """The device type a run of ``cfg`` uses ('auto': cuda when available)."""
    return "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"


def resolve_device(name: str) -> torch.device:
    """The torch device of a run's ``device`` field ('auto': cuda when available); ConfigError (one line) when it
    asks for CUDA on a machine without it. Every run resolves it before loading data or building a model."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["device: 'cuda' asked for but no CUDA device is available; valid choices here: cpu, auto"])
    return torch.device(name)


def kernels_problems(cfg: Config) -> list[str]:
    """The kernels backend (env MOE_KERNELS, else the device's default) must run on the run's device: an unknown
    name, or Triton on a CPU without its interpreter, is refused here instead of at the first forward pass."""
    problem = backend_problem(None, device_type(cfg))
    return [] if problem is None else [problem]


# ---------------------------------------------------------------------------------------------------
# The rules between fields (run once every field is good on its own)
# ---------------------------------------------------------------------------------------------------

def between_fields_problems(cfg: Config) -> list[str]:
    """top_k and expert_lrs against experts, the slowest rate against lr, the temperature floor against the
    temperature, n_train against the dataset's declared class count."""
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(cfg.top_k <= cfg.experts, f"top_k: must be <= experts ({cfg.experts}), got {cfg.top_k}")
    if cfg.expert_lrs is not None:
        check(len(cfg.expert_lrs) == cfg.experts,
              f"expert_lrs: needs one learning rate per expert ({cfg.experts}), got {len(cfg.expert_lrs)}")
    check(cfg.lr / cfg.lr_ratio >= MIN_LR,
          f"lr_ratio: must be in [1, lr / {MIN_LR:g} = {cfg.lr / MIN_LR:g}] so that the slowest rate lr / lr_ratio "
          f"stays a normal float32, got {cfg.lr_ratio:g}")
    if cfg.temperature_decay < 1:
        check(cfg.temperature_min <= cfg.temperature,
              f"temperature_min: must be <= temperature ({cfg.temperature}) when the temperature decays, got {cfg.temperature_min}")
    n_classes = getattr(DATASETS.get(cfg.dataset), "n_classes", None)
    if cfg.n_train is not None and n_classes is not None:
        check(cfg.n_train >= n_classes, f"n_train: must be in [{n_classes}, {MAX_SAMPLES}] (at least one sample "
                                        f"per class of {cfg.dataset}, which has {n_classes}) or null, got {cfg.n_train}")
    return problems


def loaded_data_problems(cfg: Config, data: Dataset) -> list[str]:
    """n_train and n_test against the samples the loaded dataset has (checked after loading, before training)."""
    problems = []
    for name, split, available in (("n_train", "training", len(data.y_train)), ("n_test", "test", len(data.y_test))):
        asked = getattr(cfg, name)
        if asked is not None and asked > available:
            problems.append(f"{name}: must be at most {available:,} (the {split} samples dataset {cfg.dataset!r} has; "
                            f"checked after loading, before training) or null, got {asked:,}")
    return problems
