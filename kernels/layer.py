"""A whole MoE MLP layer from the three primitives (used by the benchmark; a reference for the model).

Letters: T tokens, E experts, k slots per token, A = T * k routed rows, D model width, H expert hidden width.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .grouped import grouped_mm
from .plan import RoutingPlan
from .routing import topk_route

__all__ = ["moe_mlp", "moe_mlp_layer"]


def moe_mlp(x: Tensor, plan: RoutingPlan, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, *,
            backend: str | None = None) -> Tensor:
    """sum_j weights[t, j] * mlp_{e(t, j)}(x[t]) -> [T, D'].

    x: [T, D]; w1: [E, D, H]; b1: [E, H]; w2: [E, H, D']; b2: [E, D']. Rows are gathered on load by
    plan.row_tokens (no permuted copy of x on the Triton path), biases are fused into the matmuls.
    """
    h = grouped_mm(x, w1, plan.offsets, gather_index=plan.row_tokens, bias=b1, backend=backend)  # [A, H]
    y = grouped_mm(torch.relu(h), w2, plan.offsets, bias=b2, backend=backend)  # [A, D']
    return plan.combine(y)  # [T, D']


def moe_mlp_layer(x: Tensor, router_w: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, k: int, *,
                  backend: str | None = None) -> Tensor:
    """Routing (logits = x @ router_w, router_w: [D, E]), top-k plan, expert MLPs, weighted combine."""
    plan = topk_route(x @ router_w, k, backend=backend)
    return moe_mlp(x, plan, w1, b1, w2, b2, backend=backend)
