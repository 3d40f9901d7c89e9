"""Seeds of a sweep trained together (``--stack-seeds``): the trials that differ only in ``seed`` run as one
Ray trial that trains them as one stacked model (``moe.training.stacked.train_stacked``) and reports one record each.

A unit of work is a list of trials: one trial, or a seed group (two or more trials whose configs are equal but
for the seed, every one supported by ``moe.training.stacked``). With the option off, every unit is one trial.

``--stack-seeds on``: a configuration whose seeds could be grouped but whose components the stacked path does not
support is refused before any work, one line per field and configuration; ``auto`` runs those seeds alone;
``off`` never groups. The command line's default is ``auto`` (``off`` with ``--scheduler asha``: :func:`default_mode`);
``bench.pipeline.run_sweep``'s is ``off``. A seed group
reports once, at its end: no per-epoch reports, checkpoints or early stopping, so the option is refused with
``--scheduler asha`` and with test faults; a resumed sweep runs its unfinished groups again from epoch 0.
"""
from __future__ import annotations

import json
from typing import Any

from bench.sweep.spec import SweepError, Trial
from moe.config import ConfigError
from moe.training.stacked import problems
from moe.validate import from_dict


def sibling_key(trial: Trial) -> str:
    """The trial's config without its seed: trials with equal keys differ only in the seed."""
    return json.dumps({k: v for k, v in trial.config.items() if k != "seed"}, sort_keys=True, default=str)


def stack_problems(trial: Trial) -> list[str]:
    """Why the trial's seeds cannot train stacked (moe.training.stacked's rules on its full config); empty: they can."""
    try:
        return problems(from_dict(trial.config))
    except ConfigError as err:
        return err.problems


MODES = ("off", "auto", "on")


def check_mode(mode: str | bool) -> str:
    """``stack_seeds`` as one of MODES (True: 'on', False: 'off')."""
    mode = {True: "on", False: "off"}.get(mode, mode) if isinstance(mode, bool) else mode
    if mode not in MODES:
        raise SweepError(f"--stack-seeds {mode!r}: valid choices: {', '.join(MODES)}")
    return mode


def default_mode(given: str | None, scheduler: str | None) -> str:
    """The command line's ``--stack-seeds``: as given, else ``auto`` (every configuration the stacked path supports
    trains its seeds together), or ``off`` under ``--scheduler asha`` (which stops trials on per-epoch reports,
    and a seed group reports once, at its end)."""
    if given is not None:
        return check_mode(given)
    return "off" if scheduler == "asha" else "auto"


def units(trials: list[Trial], stack_seeds: str | bool) -> list[list[Trial]]:
    """The units of work, in the trials' order: seed groups and single trials.

    ``stack_seeds``: 'off' (every trial alone), 'auto' (the configurations the stacked path supports grouped,
    the others alone), 'on' (every configuration with several seeds grouped; one it does not support raises
    SweepError, one line per field and configuration)."""
    mode = check_mode(stack_seeds)
    if mode == "off":
        return [[t] for t in trials]
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(sibling_key(t), []).append(t)
    out, refused = [], {}
    for members in groups.values():
        lines = stack_problems(members[0]) if len(members) > 1 else []
        for line in lines if mode == "on" else []:
            refused.setdefault(line, []).append(members[0].name)
        out.extend([[t] for t in members] if lines else [members])
    if refused:  # one line per problem, naming the configurations it concerns
        raise SweepError([f"--stack-seeds on: {line} (configuration {names[0]}"
                          f"{f' and {len(names) - 1} more' if len(names) > 1 else ''}); "
                          "--stack-seeds auto groups only the configurations it supports" for line, names in refused.items()])
    return out


def unit_dict(unit: list[Trial]) -> dict[str, Any]:
    """The Tune config of a unit: its first trial's dict (its index names the Ray trial), with the group's members."""
    first = unit[0].to_dict()
    if len(unit) > 1:
        first["members"] = [t.to_dict() for t in unit]
    return first


def member_indices(trial_config: dict[str, Any]) -> list[int]:
    """The trial indices a Ray trial's config stands for (one, or a seed group's)."""
    trial = trial_config["trial"]
    return [m["index"] for m in trial.get("members", [trial])]

