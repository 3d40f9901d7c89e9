"""Optimizers of a run: torch's Adam, SGD and RMSprop whose ``step`` updates the parameter groups that share
their hyperparameters together, in one multi-tensor (``foreach``) pass.

``moe.train.build_optimizer`` gives the gate and each expert its own parameter group (each its own learning
rate). torch steps groups one by one and, on the CPU, parameter by parameter (its single-tensor path): ~10
small ops per parameter and step, the largest cost of a small model's training step. Here the groups with
equal hyperparameters (all of them when the learning rates are equal) are joined for the step and updated by
torch's own multi-tensor code. The arithmetic is elementwise and the same op for op: on the CPU the parameters
and the optimizer state are bitwise those of the plain optimizer (``tests/moe/test_optim.py``), and the state
dict (groups, state) is the plain optimizer's, so checkpoints are unchanged.
"""
from __future__ import annotations

import torch

NOT_HYPER = ("params", "name")  # group keys that are not hyperparameters


def joined_groups(groups: list[dict]) -> list[dict]:
    """The groups with equal hyperparameters joined into one (first-seen order), each marked ``foreach``."""
    joined: dict[tuple, dict] = {}
    for g in groups:
        key = tuple(sorted((k, repr(v)) for k, v in g.items() if k not in NOT_HYPER))
        if key in joined:
            joined[key]["params"] = joined[key]["params"] + list(g["params"])
        else:
            joined[key] = {**g, "params": list(g["params"]), "foreach": True}
    return list(joined.values())


class JoinedStep:
    """Mixin: ``step`` runs the optimizer's own step over :func:`joined_groups`, then restores the groups."""

    def step(self, closure=None):
        groups = self.param_groups
        self.param_groups = joined_groups(groups)
        try:
            return super().step(closure)
        finally:
            self.param_groups = groups


class Adam(JoinedStep, torch.optim.Adam):
    """torch.optim.Adam (Kingma & Ba 2015), its groups stepped together (see the module)."""


class SGD(JoinedStep, torch.optim.SGD):
    """torch.optim.SGD with momentum, its groups stepped together (see the module)."""


class RMSprop(JoinedStep, torch.optim.RMSprop):
    """torch.optim.RMSprop (Hinton's lecture 6e), its groups stepped together (see the module)."""
