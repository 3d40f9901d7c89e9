"""Sweep files: ``sweeps/<name>.yaml`` read strictly (``bench.sweep.file_shape``), overridden by ``--set``, expanded into trials.
(Long because the sweep language is one vocabulary: its sections, --set keys, grid values, names and checks.)

A sweep is data (benchopt's parameters grid, lm-eval's versioned YAML task)::

    description: one line shown by --list
    version: 1                       # bump when the grid or the budget changes
    dataset: gm6
    budget: {epochs: 6, n_train: 1200, n_test: 600}   # config fields that fix the cost of a trial
    settings: {batch_size: 32}       # other config fields shared by every trial (optional)
    grid:                            # Cartesian product; a list of such mappings is their union
      router: [softmax, "topk[k=1]", "topk[k=2]", expert_choice, hash]
      experts: [2, 4, 8]
      lr_ratio: [1, 100]
      seed: [0, 1]
    resources: {cpu: 1, gpu: auto}   # per trial (optional; gpu auto: a share of the GPUs when present)
    budgets:                         # named sets of --set overrides (optional; --budget NAME applies one)
      small: {n_train: 2000, epochs: 5, seed: [0, 1, 2]}

A grid value is a config value, or ``name[key=value,...]`` (sets the axis to ``name`` and each key:
``k`` is short for ``top_k``), or a mapping of several fields set together. Every grid point gets a
canonical configuration name, ``topk[k=2,experts=8,lr_ratio=100]``: the router, then every field the
grid sets except the seed. The name selects the rows of one configuration in every table.

Nothing here imports Ray: a sweep is loaded, overridden and validated before any cluster is touched.
"""
from __future__ import annotations

import copy
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sweep import file_shape
from bench.sweep.cluster import DEFAULT_RESOURCES
from moe.config import FIELD_TYPES, Config, ConfigError
from moe import model
from moe.records.naming import SHORT, format_value  # one spelling of a configuration's name
from moe.registry import shown, shown_key, suggestion
from moe.validate import from_dict, limit_problem

TOP_KEYS = ("description", "version", "dataset", "budget", "settings", "grid", "resources", "budgets")
BUDGET_FIELDS = ("epochs", "n_train", "n_test")
RESOURCE_KEYS = ("cpu", "gpu", "max_concurrent")
ALIASES = {v: k for k, v in SHORT.items()}  # the short names used inside configuration names (moe.records.naming's)
NAME_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*\[(.*)\]\s*$")


class SweepError(ValueError):
    """A bad sweep name, file, override or trial config; one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Trial:
    index: int  # position in the expanded sweep (stable: records and rows are keyed by it)
    name: str  # canonical configuration name (seed excluded): the table row
    config: dict[str, Any]  # the config fields this sweep sets; the record holds the complete config
    fault: str | None = None  # test hook: "raise", "diverge", "diverge_in_eval", "crash_after_epoch_K" (bench.sweep.trial)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "config": self.config, "fault": self.fault}


@dataclass
class Sweep:
    name: str
    path: str | None
    description: str = ""
    version: int = 1
    dataset: str = Config().dataset
    budget: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    grid: list[dict[str, list]] = field(default_factory=list)  # a union of Cartesian products
    resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    overrides: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> --set overrides
    text: str | None = None  # the sweep file's text as it was read (sweep.json keeps it: the file as it ran)

    def budget_overrides(self, budget: str) -> dict[str, Any]:
        """The ``--set`` overrides of a named budget of this sweep file."""
        if budget not in self.budgets:
            raise SweepError(f"--budget {shown(budget)}: sweep {self.name!r} has no such budget; valid choices: "
                             f"{', '.join(self.budgets) or '(none)'}")
        return dict(self.budgets[budget])

    def trials(self) -> list[Trial]:
        """Every grid point as a trial, in file order (the last axis varies fastest)."""
        if problem := file_shape.size_problem(self.grid):  # never expand a grid too large to hold
            raise SweepError(f"{self.name}: {problem}")
        out = []
        for sub in self.grid:
            axes = list(sub.items())
            for values in itertools.product(*(v for _, v in axes)):
                plain: dict[str, Any] = {}
                variant: dict[str, Any] = {}  # the fields set inside a value: topk[k=2] -> top_k
                for (axis, _), value in zip(axes, values):
                    fields_ = expand_value(axis, value)
                    plain[axis] = fields_.pop(axis, None)
                    variant.update(fields_)
                assigned = {**plain, **variant}
                config = {"dataset": self.dataset, **self.budget, **self.settings, **assigned}
                out.append(Trial(len(out), config_name(config, variant, plain), config))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "description": self.description, "version": self.version,
                "dataset": self.dataset, "budget": self.budget, "settings": self.settings, "grid": self.grid,
                "resources": self.resources, "overrides": self.overrides, "budgets": self.budgets, "text": self.text}


# ---------------------------------------------------------------------------------------------------
# The registry: one file per sweep in sweeps/
# ---------------------------------------------------------------------------------------------------

def available(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """Sweep name -> file, for every ``*.yaml`` / ``*.yml`` in ``folder`` (default: the repository's sweeps/)."""
    try:
        return file_shape.registered(folder)
    except file_shape.ShapeError as err:  # a name defined twice
        raise SweepError(str(err)) from None


def resolve(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The file of a sweep: a registered name, or a path to a YAML file."""
    try:
        path = file_shape.sweep_path(name, folder)
    except file_shape.ShapeError as err:  # a name defined twice
        raise SweepError(str(err)) from None
    if path is not None:
        return path
    sweeps = available(folder)
    raise SweepError(f"sweep: unknown sweep {shown(name)}{suggestion(name, sweeps)}; valid choices: {', '.join(sweeps) or '(none)'}"
                     " (or a path to a .yaml file)")


def load(name: str, overrides: dict[str, Any] | None = None, folder: str | os.PathLike | None = None) -> Sweep:
    """Read a sweep file, apply ``overrides`` (``--set`` pairs, already parsed) and check its shape."""
    path = resolve(name, folder)
    try:
        data = file_shape.read_file(path)
    except file_shape.ShapeError as err:
        raise SweepError(f"sweep: {path}: {err}") from None
    if not isinstance(data, dict):
        raise SweepError(f"sweep: {path} must hold a mapping with keys {', '.join(TOP_KEYS)}")
    sweep = from_mapping(data, name=path.stem, path=str(path), overrides=overrides)
    sweep.text = path.read_text(encoding="utf-8")  # (read_file has checked that it is UTF-8 text)
    return sweep


def from_mapping(data: dict[str, Any], name: str, path: str | None = None,
                 overrides: dict[str, Any] | None = None) -> Sweep:
    problems = [f"{shown_key(k)}: unknown sweep key{suggestion(str(k), TOP_KEYS)}; valid keys: {', '.join(TOP_KEYS)}"
                for k in data if k not in TOP_KEYS]
    if "grid" not in data:
        problems.append("grid: missing (a mapping of config field -> list of values)")
    else:
        problems += file_shape.section_problems(data)
    if problems:
        raise SweepError([f"{name}: {p}" for p in problems])
    grid = data["grid"]
    description = data.get("description")
    sweep = Sweep(name=name, path=path, description="" if description is None else description,
                  version=data.get("version", 1), dataset=data.get("dataset", Config().dataset),
                  budget=dict(data.get("budget") or {}), settings=dict(data.get("settings") or {}),
                  grid=[dict(g) for g in grid] if isinstance(grid, list) else [dict(grid or {})],
                  resources={**DEFAULT_RESOURCES, **(data.get("resources") or {})})
    _check_sections(sweep)
    sweep.budgets = _checked_budgets(sweep, data.get("budgets"))
    for key, value in (overrides or {}).items():
        apply_override(sweep, key, value)
    sweep.overrides = dict(overrides or {})
    _check_sections(sweep)  # (before a single value becomes a list of one: a mapping there is refused)
    sweep.grid = [{axis: _as_list(v) for axis, v in sub.items()} for sub in sweep.grid]
    return sweep


def _checked_budgets(sweep: Sweep, budgets: Any) -> dict[str, dict[str, Any]]:
    """``budgets:`` maps a name to ``--set`` overrides; each is tried on a copy so that a bad key fails at load."""
    if budgets is None:
        return {}
    if not isinstance(budgets, dict) or not all(isinstance(v, dict) for v in budgets.values()):
        raise SweepError(f"{sweep.name}: budgets: must map a budget name to a mapping of --set overrides")
    problems = []
    for name, overrides in budgets.items():
        trial = copy.deepcopy(sweep)
        try:
            for key, value in overrides.items():
                apply_override(trial, key, value)
            _check_sections(trial)
        except SweepError as err:
            problems.extend(f"budgets.{name}: {p}" for p in err.problems)
    if problems:
        raise SweepError([f"{sweep.name}: {p}" for p in problems])
    return {str(k): dict(v) for k, v in budgets.items()}


def _check_sections(sweep: Sweep) -> None:
    problems = []
    for section in ("budget", "settings"):
        for key in getattr(sweep, section):
            if key not in FIELD_TYPES:
                problems.append(f"{section}.{shown_key(key)}: unknown config field{suggestion(str(key), FIELD_TYPES)}")
    for key in sweep.budget:
        if key in FIELD_TYPES and key not in BUDGET_FIELDS:
            problems.append(f"budget.{key}: not a budget field ({', '.join(BUDGET_FIELDS)}); put it under settings")
    for sub in sweep.grid:
        if not isinstance(sub, dict) or not sub:
            problems.append("grid: each grid must be a non-empty mapping of config field -> values")
            continue
        for axis, values in sub.items():
            if axis not in FIELD_TYPES:
                problems.append(f"grid.{shown_key(axis)}: unknown config field{suggestion(str(axis), FIELD_TYPES)}")
            elif problem := file_shape.axis_problem(f"grid.{axis}", values):
                problems.append(problem)
    if not problems and (problem := file_shape.size_problem(sweep.grid)):
        problems.append(problem)
    for key in sweep.resources:
        if key not in RESOURCE_KEYS:
            problems.append(f"resources.{shown_key(key)}: unknown resource{suggestion(str(key), RESOURCE_KEYS)}; "
                            f"valid keys: {', '.join(RESOURCE_KEYS)}")
    cpu, gpu, conc = (sweep.resources.get(k) for k in RESOURCE_KEYS)
    if not (isinstance(cpu, (int, float)) and not isinstance(cpu, bool) and cpu > 0):
        problems.append(f"resources.cpu: must be a number > 0 (CPUs per trial), got {shown(cpu)}")
    if gpu != "auto" and not (isinstance(gpu, (int, float)) and not isinstance(gpu, bool) and 0 <= gpu):
        problems.append(f"resources.gpu: must be 'auto' or a number >= 0 (GPUs per trial, may be fractional), got {shown(gpu)}")
    if conc is not None and not (isinstance(conc, int) and not isinstance(conc, bool) and conc >= 1):
        problems.append(f"resources.max_concurrent: must be an integer >= 1 or null, got {shown(conc)}")
    problems += file_shape.value_problems(sweep.description, sweep.version, sweep.dataset)
    if problems:
        raise SweepError([f"{sweep.name}: {p}" for p in problems])


# ---------------------------------------------------------------------------------------------------
# Overrides: --set key=value
# ---------------------------------------------------------------------------------------------------

def parse_set(pairs: list[str], flag: str = "--set") -> dict[str, Any]:
    """``["epochs=3", "experts=[2,4]"]`` -> ``{"epochs": 3, "experts": [2, 4]}`` (values read as strict YAML); a bad
    pair is one SweepError line naming ``flag`` (the option it was given to: ``--set``, or ``--add``)."""
    out: dict[str, Any] = {}
    example = ("--add experts=[5,20] or --add seed=3" if flag == "--add"
               else f"{flag} epochs=3 or {flag} experts=[2,4]")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SweepError(f"{flag} {shown(pair)}: expected {'AXIS=VALUES' if flag == '--add' else 'key=value'} "
                             f"(for example {example})")
        try:
            out[key.strip()] = file_shape.parse_yaml(text, "cannot read the value") if text.strip() else None
        except file_shape.ShapeError as err:
            raise SweepError(f"{flag} {shown(pair)}: {err}") from None
    return out


def override_keys() -> list[str]:
    """Every key --set accepts."""
    return (list(TOP_KEYS[:3]) + ["grid"] + list(FIELD_TYPES) + [f"budget.{k}" for k in BUDGET_FIELDS]
            + [f"settings.{k}" for k in FIELD_TYPES] + [f"grid.{k}" for k in FIELD_TYPES]
            + [f"resources.{k}" for k in RESOURCE_KEYS])


def apply_override(sweep: Sweep, key: str, value: Any) -> None:
    """Set one field: a top-level key, ``section.field``, or a bare config field.

    A bare config field replaces the grid axis of that name where there is one (a list keeps several
    values, a scalar leaves one), else sets the budget (epochs, n_train, n_test) or the settings. ``grid`` replaces
    the whole grid (a mapping, or a list of them: blocks, e.g. other seeds for one regime than for another).
    """
    if not isinstance(key, str):
        raise SweepError(f"--set {shown(key)}: a key is text (a config field, section.field, ...), got {type(key).__name__}")
    section, dot, name = key.partition(".")
    if not dot:
        if key in ("description", "version"):
            setattr(sweep, key, value)
        elif key == "dataset":
            sweep.dataset = value
        elif key == "grid":  # a whole grid (a budget whose regimes need other seeds than each other: grid blocks)
            if problems := file_shape.section_problems({"grid": value}):
                raise SweepError(f"--set grid: {problems[0].split(': ', 1)[1]}")
            sweep.grid = [dict(b) for b in value] if isinstance(value, list) else [dict(value)]
        elif key in FIELD_TYPES:
            axes = [sub for sub in sweep.grid if key in sub]
            for sub in axes:
                sub[key] = value
            if not axes:  # (a grid axis wins over budget and settings anyway)
                target = sweep.budget if key in BUDGET_FIELDS else sweep.settings
                target[key] = value
        else:
            valid = override_keys()
            raise SweepError(f"--set {shown_key(key)}: unknown key{suggestion(key, valid)}; valid keys: a config field "
                             f"({', '.join(FIELD_TYPES)}), description, version, grid (a whole grid), budget.<field>, "
                             f"settings.<field>, grid.<field>, resources.<{'|'.join(RESOURCE_KEYS)}>")
        return
    if section == "resources" and name in RESOURCE_KEYS:
        sweep.resources[name] = value
    elif section in ("budget", "settings") and name in FIELD_TYPES:
        getattr(sweep, section)[name] = value
    elif section == "grid" and name in FIELD_TYPES:
        axes = [sub for sub in sweep.grid if name in sub] or sweep.grid[:1]
        for sub in axes:
            sub[name] = value
    else:
        raise SweepError(f"--set {shown_key(key)}: unknown key{suggestion(key, override_keys())}")


# ---------------------------------------------------------------------------------------------------
# Grid values and configuration names
# ---------------------------------------------------------------------------------------------------

def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def expand_value(axis: str, value: Any) -> dict[str, Any]:
    """The fields one grid value sets: ``{axis: value}``, a mapping as is, or ``name[k=v,...]`` unpacked."""
    if isinstance(value, dict):
        return {ALIASES.get(k, k): v for k, v in value.items()}
    if isinstance(value, str) and (m := NAME_RE.match(value)):
        out = {axis: m.group(1)}
        for part in filter(None, (p.strip() for p in m.group(2).split(","))):
            k, sep, v = part.partition("=")
            if not sep:
                raise SweepError(f"grid.{axis}: {shown(value)}: expected key=value inside the brackets, got {shown(part)}")
            try:
                out[ALIASES.get(k.strip(), k.strip())] = file_shape.parse_yaml(v, f"{k.strip()}=")
            except file_shape.ShapeError as err:
                raise SweepError(f"grid.{axis}: {shown(value)}: cannot read the value of {err}") from None
        return out
    return {axis: value}


def config_name(config: dict[str, Any], variant: dict[str, Any], plain: dict[str, Any]) -> str:
    """``router[field=value,...]``: the fields set inside grid values (``k`` of ``topk[k=2]``) in their order,
    then the other fields the grid sets in Config field order, seed excluded. The same grid point has the
    same name whatever the order of the axes in the file."""
    router = config.get("router", FIELD_DEFAULTS.get("router"))
    rest = sorted((k for k in plain if k not in variant), key=list(FIELD_TYPES).index)
    items = [(k, variant[k]) for k in variant] + [(k, plain[k]) for k in rest]
    params = [f"{SHORT.get(k, k)}={format_value(v)}" for k, v in items if k not in ("router", "seed")]
    return f"{router}[{','.join(params)}]" if params else str(router)


def parse_name(name: str) -> dict[str, Any]:
    """The inverse of :func:`config_name`: ``topk[k=2,experts=8]`` -> ``{router: topk, top_k: 2, experts: 8}``."""
    return expand_value("router", name if "[" in name else f"{name}[]")


FIELD_DEFAULTS = {k: v for k, v in from_dict({}, validate=False).to_dict().items()}


# ---------------------------------------------------------------------------------------------------
# Validation of every trial config, before Ray starts
# ---------------------------------------------------------------------------------------------------

def validate(sweep: Sweep, trials: list[Trial] | None = None) -> list[Trial]:
    """Check every trial config with ``moe.validate.from_dict`` (each configuration once for all its seeds); raise
    one SweepError listing each problem once.

    Each problem line names the configurations it affects. Also refuses two trials with the same config.
    """
    trials = sweep.trials() if trials is None else trials
    where: dict[str, list[str]] = {}
    seen: dict[tuple, Trial] = {}
    cache: dict[str, tuple[dict[str, Any] | None, list[str]]] = {}
    for t in trials:
        full, problems = checked_config(t.config, cache)
        for p in problems:
            where.setdefault(p, []).append(t.name)
        if full is None:
            continue
        key = tuple(sorted((k, repr(v)) for k, v in full.items()))
        if key in seen:
            where.setdefault(f"trials {seen[key].index} and {t.index} have the same config "
                             f"({shown_key(t.name)}, seed {full['seed']}): remove the duplicate from the grid", [])
        seen[key] = t
    if not trials:
        where["grid: the sweep has no trials"] = []
    if where:
        lines = []
        for problem, names in where.items():
            uniq = list(dict.fromkeys(names))
            affected = f" [in {len(uniq)} configuration(s): {', '.join(shown_key(n) for n in uniq[:4])}{', ...' if len(uniq) > 4 else ''}]" if uniq else ""
            lines.append(f"{sweep.name}: {problem}{affected}")
        raise SweepError(lines)
    return trials


def grown_by_seeds(trials: list[Trial], seeds: list[int]) -> list[Trial]:
    """``trials`` and, after them, one new trial per configuration and seed of ``seeds`` it lacks (configurations in
    the order they first appear, seeds in the order given). The trials there are keep their indices, so their records
    stay theirs; the new ones take the next indices. A configuration is a trial's config without its seed."""
    def rest(t: Trial) -> str:
        return repr(sorted(((k, v) for k, v in t.config.items() if k != "seed"), key=lambda item: repr(item[0])))

    configs: dict[str, Trial] = {}
    have: dict[str, set] = {}
    for t in trials:
        configs.setdefault(rest(t), t)
        have.setdefault(rest(t), set()).add(t.config.get("seed", FIELD_DEFAULTS["seed"]))
    out, index = list(trials), max((t.index for t in trials), default=-1) + 1
    for key, first in configs.items():
        for s in seeds:
            if s not in have[key]:
                out.append(Trial(index, first.name, {**first.config, "seed": s}))
                have[key].add(s)
                index += 1
    return out


def checked_config(config: dict[str, Any], cache: dict) -> tuple[dict[str, Any] | None, list[str]]:
    """(the complete config, []) or (None, its problems). No rule but its own range reads the seed, so each
    configuration is validated once for all its seeds (``cache``) and the seed alone, with the same lines."""
    rest = {k: v for k, v in config.items() if k != "seed"}
    key = repr(sorted(rest.items(), key=lambda item: repr(item[0])))  # a preset may bring a key that is no string
    if key not in cache:
        try:
            cache[key] = (model.checked_config(rest).to_dict(), [])  # every rule, and the memory cap
        except ConfigError as err:
            cache[key] = (None, err.problems)
    full, problems = cache[key]
    if "seed" not in config:
        return full, problems
    try:
        seed = from_dict({"seed": config["seed"]}, validate=False).seed
        problems = problems + [p for p in [limit_problem("seed", seed)] if p]
    except ConfigError as err:
        problems = problems + err.problems
    return (None, problems) if problems else ({**full, "seed": seed}, [])


def count_trials(sweep: Sweep) -> int:
    return file_shape.grid_size(sweep.grid)
