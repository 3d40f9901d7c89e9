"""Independent references for the kernel tests: plain per-token / per-row Python loops."""
import math

import torch


def route_loop(logits, k, renormalize=True):
    """Per token: sort experts by (-logit, index), softmax in float64, keep k. Returns (ids, weights) lists."""
    ids, weights = [], []
    for row in logits.double().tolist():
        m = max(row)
        p = [math.exp(v - m) for v in row]
        z = sum(p)
        top = sorted(range(len(row)), key=lambda e: (-row[e], e))[:k]
        w = [p[e] / z for e in top]
        s = sum(w) if renormalize else 1.0
        ids.append(top)
        weights.append([v / s for v in w])
    return ids, weights


def grouped_mm_loop(x, w, offsets, gather_index=None, bias=None):
    """Row by row in float64: out[i] = x[src(i)] @ w[expert of row i] (+ bias[expert]).

    The expert of each row comes from a Python loop over offsets; the per-row products are batched
    (one [K] x [K, N] product per row, no grouping)."""
    offs = offsets.tolist()
    expert = torch.tensor([e for e in range(w.shape[0]) for _ in range(offs[e], offs[e + 1])], dtype=torch.int64)
    src = torch.arange(offs[-1]) if gather_index is None else gather_index
    out = torch.einsum("mk,mkn->mn", x.double()[src], w.double()[expert])
    return out if bias is None else out + bias.double()[expert]


def plan_offsets(expert_of_row, E):
    counts = torch.bincount(expert_of_row, minlength=E)
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
