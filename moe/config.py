"""One run's configuration: a flat dataclass holding every default, validated once before any work.

Precedence: CLI flags > config file (YAML or JSON) > the defaults below. Defaults live here and
nowhere else; CLI flags default to ``None`` and override only when given.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """Bad configuration: one line per bad field, each naming the field and the valid choices."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Config:
    # data
    dataset: str = "gm6"  # registered dataset name (moe.data)
    data_root: str | None = None  # MNIST-family files; default: env MOE_DATA, else ~/.cache/moe-interp-bench
    n_train: int | None = None  # stratified training subset (None: all)
    n_test: int | None = None  # stratified test subset (None: all)
    data_seed: int = 0  # seed of data generation and subsetting (fixed across model seeds)
    # model
    experts: int = 4  # number of experts E
    expert: str = "linear"  # registered expert type (moe.experts)
    expert_hidden: int = 32  # hidden width of mlp experts
    router: str = "softmax"  # registered router (moe.routers)
    top_k: int = 1  # experts per sample for top-k routers
    temperature: float = 1.0  # gate softmax temperature T: softmax(logits / T)
    # objective
    objective: str = "mixture_nll"  # registered objective (moe.objectives)
    # optimisation
    optimizer: str = "adam"  # adam | sgd | rmsprop
    lr: float = 0.01  # expert learning rate (the fastest expert's when lr_ratio > 1)
    gate_lr: float | None = None  # router learning rate (None: lr)
    expert_lrs: list[float] | None = None  # one learning rate per expert (overrides lr and lr_ratio)
    lr_ratio: float = 1.0  # fastest / slowest expert learning rate, geometric spacing, expert 0 fastest
    momentum: float = 0.9  # for sgd and rmsprop
    weight_decay: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    # run
    seed: int = 0  # model initialisation and batch order
    device: str = "cpu"  # cpu | cuda | auto
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def expert_learning_rates(self) -> list[float]:
        """Per-expert learning rates: ``expert_lrs``, else lr * lr_ratio ** (-e / (E - 1)), e = 0..E-1."""
        if self.expert_lrs is not None:
            return [float(v) for v in self.expert_lrs]
        if self.experts == 1:
            return [self.lr]
        return [self.lr * self.lr_ratio ** (-e / (self.experts - 1)) for e in range(self.experts)]


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in fields(Config)}
_HINTS = typing.get_type_hints(Config)


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(underlying type, optional?) of an annotation like ``int | None`` or ``list[float] | None``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return inner[0], len(inner) < len(args)
    return hint, False


def _coerce(name: str, value: Any) -> Any:
    """Check (and gently convert: int -> float, a YAML string from the CLI -> its value) one field."""
    hint, optional = _base_type(_HINTS[name])
    if value is None:
        if optional:
            return None
        raise ConfigError([f"{name}: must not be null"])
    origin = typing.get_origin(hint)
    if isinstance(value, str) and hint is not str:
        try:
            value = yaml.safe_load(value)
            if hint is float and isinstance(value, str):
                value = float(value)  # YAML 1.1 reads '1e-3' as text
        except (ValueError, yaml.YAMLError):
            pass
        if value is None and optional:
            return None
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError([f"{name}: expected a list of {item.__name__}, got {value!r}"])
        return [_coerce_scalar(name, v, item) for v in value]
    return _coerce_scalar(name, value, hint)


def _coerce_scalar(name: str, value: Any, hint: Any) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any or isinstance(value, hint):
        return value
    raise ConfigError([f"{name}: expected {getattr(hint, '__name__', hint)}, got {value!r}"])


def from_dict(values: dict[str, Any], *, validate: bool = True) -> Config:
    """Build a Config from a mapping; unknown keys and wrong types are errors (all reported at once)."""
    if not isinstance(values, dict):
        raise ConfigError([f"config: expected a mapping of field: value, got {type(values).__name__}"])
    problems, kwargs = [], {}
    for key, value in values.items():
        if key not in FIELD_TYPES:
            import difflib

            close = difflib.get_close_matches(str(key), list(FIELD_TYPES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{key}: unknown config key{hint}; valid keys: {', '.join(FIELD_TYPES)}")
            continue
        try:
            kwargs[key] = _coerce(key, value)
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    cfg = Config(**kwargs)
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


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON config file (``yaml.safe_load``: JSON is a subset) into a dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"config: file {str(p)!r} does not exist"])
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"config: cannot read {str(p)!r}: {getattr(err, 'strerror', None) or err}"]) from None
    try:
        data = yaml.safe_load(text) if p.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        first = str(err).splitlines()[0]
        raise ConfigError([f"config: {str(p)!r} is not valid YAML/JSON: {first}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config: {str(p)!r} must hold a mapping of field: value"])
    return data


def validate_config(cfg: Config) -> None:
    """Every rule a config must satisfy before work starts; raises ConfigError listing each bad field."""
    from moe import registries  # late: the registries import models that import this module

    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    for name, registry in registries().items():
        value = getattr(cfg, name)
        if value not in registry:
            problems.append(registry.unknown_message(value, field=name))
        elif hasattr(component := registry.get(value), "config_problems"):
            problems.extend(component.config_problems(cfg))  # a component's own rules (e.g. needs hidden state)
    check(cfg.experts >= 1, f"experts: must be >= 1, got {cfg.experts}")
    check(cfg.top_k >= 1, f"top_k: must be >= 1, got {cfg.top_k}")
    check(cfg.top_k <= max(cfg.experts, 1), f"top_k: must be <= experts ({cfg.experts}), got {cfg.top_k}")
    check(cfg.expert_hidden >= 1, f"expert_hidden: must be >= 1, got {cfg.expert_hidden}")
    for name in ("lr", "temperature", "lr_ratio"):
        v = getattr(cfg, name)
        check(math.isfinite(v) and v > 0, f"{name}: must be > 0, got {v}")
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
    check(cfg.device in DEVICES, f"device: unknown device {cfg.device!r}; valid choices: {', '.join(DEVICES)}")
    check(cfg.threads is None or cfg.threads >= 1, f"threads: must be >= 1 or null, got {cfg.threads}")
    if problems:
        raise ConfigError(problems)


OPTIMIZERS = ("adam", "sgd", "rmsprop")
DEVICES = ("cpu", "cuda", "auto")
