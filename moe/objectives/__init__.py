"""Objectives by name: a training loss computed from a model's output and the labels."""
from __future__ import annotations

from torch import Tensor

from moe.registry import Registry

OBJECTIVES: Registry = Registry("objective")


@OBJECTIVES.register("mixture_nll")
def mixture_nll(out, y: Tensor) -> Tensor:
    """Negative log-likelihood of the mixture (Jacobs et al. 1991): -mean_t log sum_e p_e(x_t) q_e(y_t | x_t).

    ``out.log_probs`` [T, C] already holds log sum_e p_e q_e(. | x), computed with a log-sum-exp.
    """
    return -out.log_probs.gather(1, y[:, None]).mean()
