"""MoE kernels: top-k routing into a RoutingPlan and grouped expert matmuls (Triton, torch fallback).

Imports only torch (and Triton, guarded). Backend: `backend=` per call, else env MOE_KERNELS
(torch|triton), else Triton for CUDA tensors and torch otherwise.
"""
from .grouped import grouped_mm
from .layer import moe_mlp, moe_mlp_layer
from .routing import RoutingPlan, topk_route

__all__ = ["RoutingPlan", "topk_route", "grouped_mm", "moe_mlp", "moe_mlp_layer"]
