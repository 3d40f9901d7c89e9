"""Task losses: the three ways of Jacobs et al. 1991 to fit a mixture, for classification.

Letters: T samples, k slots per sample, C classes. ``out.expert_log_probs`` [T, k, C] holds log q_e of each
slot's expert, ``out.routing.plan.weights`` [T, k] its routing weight (0 in unused slots).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from moe.objectives.base import OBJECTIVES


@OBJECTIVES.register("mixture_nll")
def mixture_nll(out, y: Tensor) -> Tensor:
    """Negative log-likelihood of the mixture (Jacobs et al. 1991, their eq. 1.3 for classes):
    -mean_t log sum_e p_e(x_t) q_e(y_t | x_t). Posterior-weighted gradients make the experts specialise.

    ``out.log_probs`` [T, C] already holds log sum_e p_e q_e(. | x), computed with a log-sum-exp.
    """
    return -out.log_probs.gather(1, y[:, None]).mean()


mixture_nll.combine = "mixture"


EXPECTATION_EPS = 1e-7


@OBJECTIVES.register("expectation")
def expectation(out, y: Tensor) -> Tensor:
    """The seed code's 'expectation' loss (Krishnamurthy & Watkins 2021; yamsgithub/modular_deep_learning):
    output = sum_e p_e(x) y_e(x) with y_e the experts' softmax outputs, loss NLL(log(output + 1e-7)):
    -mean_t log(sum_e p_e(x_t) q_e(y_t | x_t) + 1e-7).

    ``mixture_nll`` without the 1e-7: the two agree wherever the mixture gives the true class more than
    ~1e-5 and differ where it gives it almost nothing (the 1e-7 caps a sample's loss at -log 1e-7 = 16.1 and
    flattens its gradient, e.g. a sample routed only to masked experts that cannot predict its class).
    """
    log_p = out.log_probs.gather(1, y[:, None])  # [T, 1] log sum_e p_e q_e(y | x)
    return -torch.logaddexp(log_p, log_p.new_tensor(math.log(EXPECTATION_EPS))).mean()


expectation.combine = "mixture"


@OBJECTIVES.register("cooperative")
def cooperative(out, y: Tensor) -> Tensor:
    """Cooperative loss (Jacobs et al. 1991, eq. 1.1: the error of the blended output, E = ||d - sum_e p_e o_e||^2):
    the experts' outputs are blended before the loss, here in logit space:
    -mean_t log softmax(sum_e p_e log q_e(. | x_t))_{y_t}  (= softmax(sum_e p_e f_e(x)) for logits f_e).

    The experts compensate each other's errors, so they tend not to specialise. (The cross-entropy of the
    probability blend sum_e p_e q_e would be the mixture NLL itself for hard labels, so it could not be the
    cooperative loss.) With this objective the model's prediction is that blend (``combine = 'product'``).
    """
    return -out.log_probs.gather(1, y[:, None]).mean()


cooperative.combine = "product"


@OBJECTIVES.register("competitive")
def competitive(out, y: Tensor) -> Tensor:
    """Competitive loss (Jacobs et al. 1991, eq. 1.2: E = sum_e p_e ||d - o_e||^2) for classes:
    mean_t sum_e p_e(x_t) CE(q_e(. | x_t), y_t) = -mean_t sum_j w_tj log q_{e_tj}(y_t | x_t) over the routed slots.
    Each expert is judged alone; the gate learns to favour the expert with the lowest loss.
    """
    slot_nll = -out.expert_log_probs.gather(2, y[:, None, None].expand(-1, out.expert_log_probs.shape[1], 1))[..., 0]  # [T, k]
    return (out.routing.plan.weights * slot_nll).sum(1).mean()


competitive.combine = "mixture"
