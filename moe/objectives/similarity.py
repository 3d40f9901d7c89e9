"""The sample-similarity loss of the AAAI 2022 follow-up to the seed paper, as two regulariser terms.

L_s = beta_s * same - beta_d * diff (Krishnamurthy, Watkins & Gaertner, AAAI 2022, 'Improving expert
specialization in mixture of experts'): samples sharing an expert should be close, samples routed to
different experts far apart. beta_s = ``similarity_same`` weighs the term ``similarity_same`` below and
beta_d = ``similarity_diff`` the term ``similarity_diff`` (= -diff), so their weighted sum is L_s.
"""
from __future__ import annotations

import torch
from torch import Tensor

from moe.objectives.base import regulariser


def sample_similarity_terms(p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(same, diff) for gate probabilities p [B, E] and inputs x [B, ...], with d_ij = ||x_i - x_j|| (flattened):

    same = sum_ij sum_e p_e(x_i) p_e(x_j) d_ij / E
    diff = sum_ij sum_{e != e'} p_e(x_i) p_e'(x_j) d_ij / (E^2 - E) / B^2
    (as in the authors' code, only the between-expert term is divided by B^2). One matrix product:
    S = p^T D p [E, E], same = trace(S) / E, diff = (sum(S) - trace(S)) / (E^2 - E) / B^2.
    """
    flat = x.flatten(1).to(p.dtype)
    d = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")  # [B, B], exact zeros on the diagonal
    s = p.T @ d @ p  # [E, E]
    n, e = p.shape
    trace = torch.diagonal(s).sum()
    diff = (s.sum() - trace) / (e * e - e) / (n * n) if e > 1 else s.sum() * 0
    return trace / e, diff


@regulariser("similarity_same", "similarity_same")
def similarity_same(out, x: Tensor) -> Tensor:
    """The within-expert term of the sample-similarity loss: sum_ij sum_e p_e(x_i) p_e(x_j) d_ij / E."""
    return sample_similarity_terms(out.routing.probs, x)[0]


@regulariser("similarity_diff", "similarity_diff")
def similarity_diff(out, x: Tensor) -> Tensor:
    """Minus the between-expert term: -sum_ij sum_{e != e'} p_e(x_i) p_e'(x_j) d_ij / (E^2 - E) / B^2."""
    return -sample_similarity_terms(out.routing.probs, x)[1]
