"""Router matching: the remedy of the Implicit Mixture of Interpretable Experts (2022) for mixtures that cheat."""
from __future__ import annotations

import torch
from torch import Tensor

from moe.objectives.base import regulariser

MATCH_ROUTERS = ("linear", "prototype")  # the interpretable routers a gate can be matched to


@regulariser("match", "match_loss")
def router_matching(out, x: Tensor) -> Tensor:
    """KL(p_match || p_gate) = mean_x sum_e p_match,e(x) (log p_match,e(x) - log p_gate,e(x)).

    The training loss becomes L_task + lambda KL(p_interp || p_blackbox) (lambda = ``match_loss``): a
    black-box router (e.g. ``gate: mlp``) is trained to agree with an interpretable router
    (``match_router``: linear or prototype) that trains alongside it, so the routing the task relies on
    stays expressible by the interpretable rule and the black box cannot solve the task by itself.
    Gradients reach both routers. Both log-distributions come from the logits (log-softmax, stable).
    """
    log_match = torch.log_softmax(out.reference.logits, 1)
    log_gate = torch.log_softmax(out.routing.logits, 1)
    return (log_match.exp() * (log_match - log_gate)).sum(1).mean()


def config_problems(cfg) -> list[str]:
    problems = []
    if cfg.match_router is not None and cfg.match_router not in MATCH_ROUTERS:
        problems.append(f"match_router: must be an interpretable router ({', '.join(MATCH_ROUTERS)}), got {cfg.match_router!r}")
    if (cfg.match_router is None) != (cfg.match_loss == 0):
        problems.append(f"match_loss: router matching needs both match_router and match_loss > 0, "
                        f"got match_router {cfg.match_router!r} and match_loss {cfg.match_loss}")
    return problems
