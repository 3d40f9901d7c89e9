"""MoE kernels: the RoutingPlan (kernels.plan), top-k routing into one and grouped expert matmuls
(Triton, torch fallback).

Imports only torch (and Triton, guarded). Backend: `backend=` per call, else env MOE_KERNELS
(torch|triton), else Triton for CUDA tensors and torch otherwise; ``backend_problem`` says at start why
a backend cannot run (an unknown name, Triton on a CPU without its interpreter).
"""
from ._common import BACKENDS, ENV_BACKEND, backend_problem, resolve_backend
from .dense import dense_applies, dense_expert_mm
from .grouped import grouped_mm
from .layer import moe_mlp, moe_mlp_layer
from .plan import RoutingPlan
from .routing import dense_route, topk_route

__all__ = ["RoutingPlan", "topk_route", "dense_route", "grouped_mm", "dense_expert_mm", "dense_applies", "moe_mlp", "moe_mlp_layer", "backend_problem", "resolve_backend", "BACKENDS", "ENV_BACKEND"]
