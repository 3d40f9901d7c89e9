"""Adjusted mutual information: the NMI of ``moe.scoring.metrics`` corrected for chance (Vinh, Epps & Bailey 2010).

NMI is not 0 for independent partitions on a finite sample: it grows with the numbers of classes and experts
(60 samples, 10 x 10 independent labels: about 0.4). AMI subtracts the mutual information expected under the
permutation model, so that chance scores about 0 at any size. Tables are joint counts [R, K] as in
``moe.scoring.metrics``; natural logarithms.
"""
from __future__ import annotations

import math

import torch

from moe.scoring.metrics import NAN, _f, entropy, mutual_information_bits

__all__ = ["expected_mutual_information", "adjusted_mutual_information"]


def expected_mutual_information(table) -> float:
    """E[I] in nats of two partitions with the margins of ``table`` [R, K] under the permutation
    (hypergeometric) model: the cells n_rk drawn at random given the row sums a_r and column sums b_k
    (Vinh, Epps & Bailey 2010, eq. 24a; scikit-learn's ``expected_mutual_information``):

    E[I] = sum_rk sum_{n = max(1, a_r + b_k - N)}^{min(a_r, b_k)} (n / N) log(N n / (a_r b_k))
           a_r! b_k! (N - a_r)! (N - b_k)! / (N! n! (a_r - n)! (b_k - n)! (N - a_r - b_k + n)!).

    Vectorised over every (r, k, n) term (at most min(R, K) x N of them) in float64 with lgamma.
    NaN for an empty table.
    """
    t = torch.as_tensor(table).double()
    n_total = _f(t.sum())
    if n_total <= 0:
        return NAN
    a, b = t.sum(1), t.sum(0)
    a, b = a[a > 0], b[b > 0]
    ai, bk = a[:, None].expand(len(a), len(b)).flatten(), b[None, :].expand(len(a), len(b)).flatten()  # [P] pairs
    start = torch.clamp(ai + bk - n_total, min=1)
    count = (torch.minimum(ai, bk) - start + 1).clamp_min(0).long()
    if int(count.sum()) == 0:
        return 0.0
    pair = torch.repeat_interleave(torch.arange(len(ai)), count)
    first = torch.cumsum(count, 0) - count
    n = start[pair] + (torch.arange(len(pair)) - first[pair]).double()
    a_, b_, big = ai[pair], bk[pair], torch.tensor(n_total, dtype=torch.float64)
    lg = torch.lgamma
    log_p = (lg(a_ + 1) + lg(b_ + 1) + lg(big - a_ + 1) + lg(big - b_ + 1) - lg(big + 1) - lg(n + 1)
             - lg(a_ - n + 1) - lg(b_ - n + 1) - lg(big - a_ - b_ + n + 1))
    terms = n / big * (torch.log(big * n) - torch.log(a_ * b_)) * torch.exp(log_p)
    return _f(terms.sum())


def adjusted_mutual_information(table) -> float:
    """Adjusted mutual information of the joint counts ``table`` [R, K] (Vinh, Epps & Bailey 2010), with the
    arithmetic-mean normalisation of :func:`nmi` (scikit-learn's default):

    AMI = (I - E[I]) / ((H(R) + H(K)) / 2 - E[I]), E[I] of :func:`expected_mutual_information`.

    NMI corrected for chance: about 0 for independent partitions at any R, K and N (NMI grows with the
    number of clusters even then), 1 for identical ones; it can be slightly negative. Both partitions
    trivial (one row and one column used): 1, as :func:`nmi` and scikit-learn; a denominator of 0 is
    replaced by +-machine epsilon, as scikit-learn does. NaN for an empty table.
    """
    t = torch.as_tensor(table).double()
    if _f(t.sum()) <= 0:
        return NAN
    h_r, h_k = _f(entropy(t.sum(1))), _f(entropy(t.sum(0)))
    if h_r == 0.0 and h_k == 0.0:
        return 1.0
    mi = mutual_information_bits(t) * math.log(2)
    emi = expected_mutual_information(t)
    denom = (h_r + h_k) / 2 - emi
    eps = torch.finfo(torch.float64).eps
    denom = min(denom, -eps) if denom < 0 else max(denom, eps)
    return (mi - emi) / denom
