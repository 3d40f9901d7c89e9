"""One run's configuration: a flat dataclass holding every default, its errors, and the parsing of plain
values (a YAML or JSON file, CLI strings, a Ray trial's dict) into it.

Precedence: CLI flags > config file (YAML or JSON) > a named preset (``preset``, :data:`PRESETS`) > the
defaults below. Defaults live here and nowhere else; CLI flags default to ``None`` and override only when
given. A preset is expanded when a mapping is parsed (:func:`parse`: files, CLI, sweep files, Ray trials;
``Config.from_preset`` in Python), so a Config and its record hold the resolved values.

A leaf: it imports nothing of ``moe`` but the registry's 'did you mean'. :func:`parse` checks the keys and
the types of the fields; the rules between fields and the components' names are ``moe.validate``'s
(``moe.validate.from_dict`` parses and validates).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import json
import os
import tokenize
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from moe.strict_files import DuplicateKeyError, load_json, load_yaml
from moe.registry import shown, shown_key, suggestion


class ConfigError(ValueError):
    """Bad configuration: one line per bad field, each naming the field and the valid choices."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Config:
    preset: str | None = None  # named bundle of the seed code's settings (moe.config.PRESETS); explicit fields override it
    # data
    dataset: str = "gm6"  # registered dataset name (moe.data)
    data_root: str | None = None  # a folder of MNIST-family files; default: env MOE_DATA, else ~/.cache/moe-interp-bench; no NUL character, not an existing file
    n_train: int | None = None  # stratified training subset (None: all); at least the dataset's class count and at most its training split (checked after loading); with subset: first, the first n_train instead; text datasets: training windows of context bytes per epoch (a seeded random subset of the split's windows)
    n_test: int | None = None  # stratified test subset (None: all); at most the dataset's test split (checked after loading); with subset: first, the first n_test instead; text datasets: windows evaluated in each of the validation and test splits (evenly spaced over the split)
    subset: str = "stratified"  # how n_train / n_test are taken: stratified | first; stratified: class proportions, random, data_seed; first: the first n in file order (fmnist_mnist: the first n/2 of each source dataset, the seed code's way)
    val_fraction: float = 0.1  # share of the training data held out as the validation split; stratified, seeded by data_seed, never trained on; everything that selects or stops reads it (per-epoch val_accuracy, ASHA, best-run pictures); the test split is scored once, at the end; text datasets: ignored (their validation split is by document)
    normalize: str = "none"  # input normalisation: none | seed; seed: the seed code's Normalize((0.5,), (0.5,)): x -> (x - 0.5) / 0.5
    data_seed: int = 0  # seed of data generation and subsetting; fixed across model seeds
    planted_modules: int = 4  # planted dataset only: the number of planted sub-problems (modules)
    planted_entanglement: float = 0.0  # planted dataset only: 0 = each module owns whole classes, 1 = every module uses every class; the modules cut across classes in between
    # language model (text datasets: moe.lm)
    lm_layers: int = 2  # text datasets only: transformer blocks of the language model
    lm_width: int = 64  # text datasets only: model width D of the language model, a multiple of lm_heads
    lm_heads: int = 4  # text datasets only: attention heads per block, dividing lm_width
    context: int = 128  # text datasets only: tokens (bytes) per training window, the attention's reach
    moe_layers: list[int] | str = "all"  # text datasets only: the blocks whose feed-forward layer is a mixture; all | alternate (blocks 1, 3, ...) | a list of block indices (0-based, below lm_layers); the others get a dense MLP of width expert_hidden
    # model
    experts: int = 4  # number of experts E; the model's estimated memory must stay <= 4 GiB; up to 4,096 implicit experts
    expert: str = "linear"  # registered expert type (moe.experts); seed_cnn: the seed code's MNIST expert; implicit: linear experts whose weights one generator makes from learned codes
    expert_hidden: int = 32  # hidden width of mlp and cnn experts; their hidden state, used by the attention router; implicit experts: hidden width of the weight generator; the model's estimated memory must stay <= 4 GiB
    code_width: int = 16  # implicit experts: width Z of each expert's learned code z_e; parameters grow by E x Z; ignored by the other experts; the model's estimated memory must stay <= 4 GiB
    expert_channels: int = 1  # convolution filters of cnn experts; the seed code's MNIST experts: 1; the model's estimated memory must stay <= 4 GiB
    router: str = "softmax"  # registered router (moe.routers)
    top_k: int = 1  # experts per sample for the topk router, at most experts; ignored by the others
    noisy_gate: bool = False  # topk: Shazeer's trainable Gaussian noise on the gate logits while training
    capacity: float | None = None  # capacity factor c: an expert takes <= ceil(c * batch / E) samples; switch: None = no limit; expert_choice: None = 1
    soft_slots: int = 1  # slots per expert of the soft router (Soft MoE's p); ignored by the others
    gate: str = "linear"  # gate network of the learned routers; mlp, cnn, lenet: black-box routers of width gate_hidden; cnn, seed_*, lenet: image datasets only (lenet: sides >= 16); seed_cnn: the seed code's MNIST gate, seed_cnn5: its 5x5 fmnist_mnist gate; lenet: two 5x5 convolutions and pools, then flattened, after LeCun et al. 1998
    gate_hidden: int = 32  # hidden width of the mlp gate, filters of each cnn gate convolution; the model's estimated memory must stay <= 4 GiB
    routing: str = "soft"  # how the dense routers (softmax, linear, prototype, attention) use their gate; soft = every expert weighted by p; hard = one expert per sample (argmax p, weight 1), router trained straight-through; gumbel = one expert per sample drawn by the Gumbel-max trick while training, straight-through Gumbel-softmax at the temperature (annealed by temperature_decay); the other routers need soft
    temperature: float = 1.0  # gate softmax temperature T: softmax(logits / T)
    temperature_decay: float = 1.0  # T is multiplied by this after every epoch that trains the gate (1: constant)
    temperature_min: float = 0.01  # floor of the decayed temperature; <= temperature when it decays
    # objective and regularisers (coefficients; 0 = off)
    objective: str = "mixture_nll"  # registered objective (moe.objectives); expectation: the seed code's, with +1e-7
    importance_loss: float = 0.0  # w * CV(sum_x G(x))^2 (Shazeer et al. 2017 use 0.1)
    load_loss: float = 0.0  # w * CV(smooth load)^2 (Shazeer et al. 2017); needs router topk with noisy_gate
    switch_loss: float = 0.0  # alpha * E * sum_e f_e P_e (Fedus et al. 2021 use 0.01)
    z_loss: float = 0.0  # router z-loss mean_x logsumexp(logits)^2 (ST-MoE uses 1e-3)
    similarity_same: float = 0.0  # beta_s of the sample-similarity loss (Krishnamurthy & Watkins 2022)
    similarity_diff: float = 0.0  # beta_d of the sample-similarity loss
    match_router: str | None = None  # router matching: interpretable router (linear | prototype) the gate must agree with
    match_loss: float = 0.0  # lambda of the router-matching term lambda * KL(p_match || p_gate)
    # training regime (moe.regimes)
    regime: str = "joint"  # training regime (moe.regimes)
    class_split: list[list[int]] | str | None = None  # pretrain regimes: the classes of each expert, or a preset name; one non-empty list per expert, each class of the dataset exactly once
    pretrain_epochs: int = 20  # pretrain regimes: epochs each expert trains alone on its classes
    mask_experts: bool = False  # pretrain regimes: expert e predicts only its classes of the split; softmax over them, 0 elsewhere, the seed code's pair experts; refit_init 'same' refits masked experts, 'new' full ones
    freeze_experts: bool = False  # pretrain regimes: keep the pre-trained experts frozen while the gate trains
    refit_epochs: int | None = None  # frozen_gate regimes: epochs of the fresh experts under the frozen gate (None: epochs)
    refit_init: str = "same"  # frozen_gate regimes: the fresh experts restart from the same initial weights (same) or a new draw (new)
    # optimisation
    optimizer: str = "adam"  # the optimizer of every parameter group
    lr: float = 0.01  # expert learning rate (the fastest expert's when lr_ratio > 1)
    gate_lr: float | None = None  # router learning rate (None: lr); in lr's range
    expert_lrs: list[float] | None = None  # one learning rate per expert, each in lr's range; overrides lr and lr_ratio
    lr_ratio: float = 1.0  # fastest / slowest expert learning rate, geometric spacing, expert 0 fastest; lr / lr_ratio, the slowest rate, must stay a normal float32 (>= 1.18e-38)
    momentum: float = 0.9  # for sgd and rmsprop
    weight_decay: float = 0.0  # L2 penalty of the optimizer (all parameter groups)
    epochs: int = 20  # epochs of the main phase (joint training; the gate phase of the pretrain regimes)
    batch_size: int = 32  # training mini-batch size (the seed code: 32)
    # run
    seed: int = 0  # model initialisation and batch order
    device: str = "cpu"  # cpu | cuda | auto
    threads: int | None = 1  # torch CPU threads (null: torch's default); 1 = the same numbers on any machine, and fastest for small models

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def expert_learning_rates(self) -> list[float]:
        """Per-expert learning rates: ``expert_lrs``, else lr * lr_ratio ** (-e / (E - 1)), e = 0..E-1."""
        if self.expert_lrs is not None:
            return [float(v) for v in self.expert_lrs]
        if self.experts == 1:
            return [self.lr]
        return [self.lr * self.lr_ratio ** (-e / (self.experts - 1)) for e in range(self.experts)]

    @classmethod
    def from_preset(cls, name: str, **fields: Any) -> "Config":
        """The preset ``name`` (:data:`PRESETS`) with ``fields`` overriding it, parsed (not yet validated)."""
        return parse({"preset": name, **fields})


# The seed code's models and settings (yamsgithub/modular_deep_learning, branch xai_neurips_2021), selectable
# as ``preset: NAME``; explicit fields override them.
# Common: the 'expectation' MoE (softmax gate, temperature 1, loss NLL(log(sum_e p_e y_e + 1e-7))),
# RMSprop with momentum 0.9. Images: Normalize((0.5,), (0.5,)), the first 10,048 training and the first
# 2,000 test images. The class-split experiments add regime, class_split and mask_experts to these.
_SEED_COMMON: dict[str, Any] = {"router": "softmax", "temperature": 1.0, "objective": "expectation",
                                "optimizer": "rmsprop", "momentum": 0.9, "gate_lr": None, "lr_ratio": 1.0}
_SEED_IMAGES: dict[str, Any] = {**_SEED_COMMON, "n_train": 10048, "n_test": 2000, "subset": "first", "normalize": "seed",
                                "expert": "seed_cnn", "lr": 1e-3, "epochs": 20, "pretrain_epochs": 20}
# The defaults of a text dataset (the mixture-of-experts language model): applied under the fields a config gives
# whenever its dataset is one of TEXT_DATASETS and it names no other preset. Two MoE blocks of 8 mlp experts, top-2
# routing with the Switch balance loss (Fedus et al. 2021's 0.01), one epoch over 4,096 training windows of 128 bytes.
TEXT_DATASETS = ("kjv", "pystdlib")  # the registered text datasets (moe.data.text; a test checks they agree)
TEXT_PRESET = "text_lm"
_TEXT_LM: dict[str, Any] = {"expert": "mlp", "expert_hidden": 128, "experts": 8, "router": "topk", "top_k": 2,
                            "switch_loss": 0.01, "lr": 3e-3, "batch_size": 16, "epochs": 1, "n_train": 4096,
                            "n_test": 512}
PRESETS: dict[str, dict[str, Any]] = {
    # 5 tiny CNN experts + the 3x3 CNN gate: 35,501 parameters
    "seed_mnist": {**_SEED_IMAGES, "dataset": "mnist", "experts": 5, "gate": "seed_cnn", "batch_size": 32},
    # 6 tiny CNN experts + the 5x5 CNN gate: 33,544 parameters; 5,024 + 1,000 images of each source dataset
    "seed_fmnist_mnist": {**_SEED_IMAGES, "dataset": "fmnist_mnist", "experts": 6, "gate": "seed_cnn5", "batch_size": 64},
    # linear experts (Linear(2, 6) + softmax) and a linear gate, lr 1e-2, 30 epochs (the expert count is the run's)
    "seed_gm6": {**_SEED_COMMON, "dataset": "gm6", "expert": "linear", "gate": "linear", "lr": 1e-2, "batch_size": 32,
                 "epochs": 30},
    TEXT_PRESET: _TEXT_LM,  # the language model's defaults (a text dataset gets them without asking)
}


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in fields(Config)}


def field_help() -> dict[str, str]:
    """Each field's trailing comment in the Config source above: the one documentation of a field,
    shown by ``python -m moe.train --help`` (no second copy to drift apart). The source is read once per process
    (every command line's parser asks for each field's text); each call gets its own copy."""
    return dict(_field_comments())


@functools.cache
def _field_comments() -> dict[str, str]:
    out, name = {}, None
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(Config)).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in FIELD_TYPES:
            name = tok.string
        elif tok.type == tokenize.COMMENT and name is not None:
            out[name] = tok.string.lstrip("# ").strip()
        elif tok.type == tokenize.NEWLINE:
            name = None
    return out


_HINTS = typing.get_type_hints(Config)


def _members(hint: Any) -> tuple[list[Any], bool]:
    """(the non-None types of an annotation like ``int | None`` or ``list[list[int]] | str | None``, optional?)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        inner = [a for a in args if a is not type(None)]
        return inner, len(inner) < len(args)
    return [hint], False


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def _coerce(name: str, value: Any) -> Any:
    """Check (and gently convert: int -> float, a YAML string from the CLI -> its value) one field."""
    members, optional = _members(_HINTS[name])
    if optional and value in ("null", "~"):  # YAML's null from the command line, also for text fields
        value = None
    if isinstance(value, str) and members != [str]:
        try:
            value = yaml.safe_load(value)
            if float in members and isinstance(value, str):
                value = float(value)  # YAML 1.1 reads '1e-3' as text
        except (ValueError, yaml.YAMLError):
            pass
    if value is None:
        if optional:
            return None
        raise ConfigError([f"{name}: must not be null"])
    errors = []
    for hint in members:  # the first type that accepts the value
        try:
            return _coerce_to(name, value, hint)
        except ConfigError as err:
            errors.append(err)
    if len(members) == 1:
        raise errors[0]
    raise ConfigError([f"{name}: expected {' or '.join(_type_name(h) for h in members)}, got {shown(value)}"])


def _coerce_to(name: str, value: Any, hint: Any) -> Any:
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError([f"{name}: expected {_type_name(hint)}, got {shown(value)}"])
        return [_coerce_to(name, v, item) for v in value]
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
    raise ConfigError([f"{name}: expected {getattr(hint, '__name__', hint)}, got {shown(value)}"])


def parse(values: dict[str, Any]) -> Config:
    """Build a Config from a mapping; unknown keys and wrong types are errors (all reported at once).

    A ``preset`` among the keys is expanded first, under the other keys (they override it).

    Only the keys and types: ``moe.validate.from_dict`` also checks every rule before returning it."""
    if not isinstance(values, dict):
        raise ConfigError([f"config: expected a mapping of field: value, got {type(values).__name__}"])
    preset = values.get("preset")
    if preset in (None, "null", "~") and values.get("dataset") in TEXT_DATASETS:
        preset = TEXT_PRESET  # a text dataset's defaults
    values = {**preset_values(preset), **values}
    problems, kwargs = [], {}
    for key, value in values.items():
        if key not in FIELD_TYPES:
            problems.append(f"{shown_key(key)}: unknown config key{suggestion(key, FIELD_TYPES)}; valid keys: {', '.join(FIELD_TYPES)}")
            continue
        try:
            kwargs[key] = _coerce(key, value)
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    return Config(**kwargs)


def preset_values(name: Any) -> dict[str, Any]:
    """The fields of preset ``name`` (:data:`PRESETS`); ``{}`` for None (or YAML's null from the command line)."""
    if name is None or name in ("null", "~"):
        return {}
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError([f"preset: unknown preset {shown(name)}{suggestion(name, PRESETS)}; valid choices: {', '.join(PRESETS)}"])
    return dict(PRESETS[name])


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (``moe.strict_files``: safe YAML, a repeated key is an error)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError([f"config: {str(p)!r} is a directory; expected a YAML or JSON file"])
    if not p.is_file():
        raise ConfigError([f"config: file {str(p)!r} does not exist"])
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"config: cannot read {str(p)!r}: {getattr(err, 'strerror', None) or err}"]) from None
    try:
        data = load_yaml(text) if p.suffix != ".json" else load_json(text)
    except DuplicateKeyError as err:
        raise ConfigError([f"config: {str(p)!r}: {err}"]) from None
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        first = str(err).splitlines()[0]
        raise ConfigError([f"config: {str(p)!r} is not valid YAML/JSON: {first}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config: {str(p)!r} must hold a mapping of field: value"])
    return data


# The choices of the fields that name no registry (checked by moe.validate).
OPTIMIZERS = ("adam", "sgd", "rmsprop")
ROUTING_MODES = ("soft", "hard", "gumbel")  # how the dense routers use their gate (moe.routers.straight_through)
GATES = ("linear", "mlp", "cnn", "seed_cnn", "seed_cnn5", "lenet")  # gate networks (moe.routers.base.gate_network)
SUBSETS = ("stratified", "first")  # how n_train / n_test are taken (moe.data.base.subset)
NORMALIZATIONS = ("none", "seed")  # input normalisations (moe.data.base.normalized)
LOSS_COEFFICIENTS = ("importance_loss", "load_loss", "switch_loss", "z_loss", "similarity_same", "similarity_diff", "match_loss")
DEVICES = ("cpu", "cuda", "auto")

# The caps of the numeric fields (``moe.validate`` checks them; each field's comment above states its own).
MAX_LM_LAYERS = 64  # lm_layers
MAX_LM_HEADS = 256  # lm_heads
MAX_CONTEXT = 65536  # context
MOE_LAYER_CHOICES = ("all", "alternate")  # moe_layers, besides a list of block indices
MAX_EXPERTS = 4096  # up to 4,096 implicit experts
MAX_WIDTH = 65536  # expert_hidden, expert_channels, gate_hidden
MAX_SAMPLES = 10**8  # n_train, n_test, batch_size: beyond any dataset here (MNIST: 60,000)
MAX_VAL_FRACTION = 0.5  # val_fraction: at least half of the training data stays for training
MAX_EPOCHS = 100_000  # epochs, pretrain_epochs, refit_epochs: a record holds one history entry per epoch
MAX_SEED = 2**63 - 1  # seed, data_seed: torch.manual_seed and torch.Generator take 64-bit integers
MAX_THREADS = 256  # torch.set_num_threads far beyond the cores aborts in OpenMP (libgomp)
MIN_LR = 1.1754943508222875e-38  # torch.finfo(torch.float32).tiny: a rate below is no longer a normal float32
MAX_LR = 10.0  # lr, gate_lr, expert_lrs: above, every optimizer here diverges at once
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-4, 1e4  # temperature, temperature_min
MAX_COEFFICIENT = 1000.0  # the loss coefficients (LOSS_COEFFICIENTS)
MAX_WEIGHT_DECAY = 10.0
MAX_CAPACITY = float(MAX_EXPERTS)  # c >= E already lets an expert take the whole batch
MAX_SOFT_SLOTS = 64  # soft_slots: slots per expert of the soft router (Soft MoE uses 1 or 2)
MAX_PLANTED_MODULES = 8  # planted_modules: at most the planted dataset's classes (moe.data.planted.N_CLASSES)
MAX_CLASS = 100_000  # class indices of a class split lie below this (any dataset's class count is smaller)
MEMORY_CAP = 4 * 2**30  # bytes: 4 * (parameters + one batch's expert activations), see moe.model.memory_estimate
EVAL_BATCH = 1024  # samples per evaluation batch (moe.training.evaluate; the memory estimate's batch)
