"""Routers by name: the plugins, one small file each, registered in ``ROUTERS`` (``moe/routers/base.py``)."""
from moe.routers.base import (  # noqa: F401  (re-exported: the names the rest of moe uses)
    IMAGE_GATES, ROUTERS, NonFiniteError, Router, Routing, capacity_slots, check_finite, gate_features, gate_input,
    gate_input_problems, gate_network, is_image, raise_gate_input_problems,
)
from moe.routers import attention, expert_choice, hashing, linear, prototype, sinkhorn, softmax, switch, topk  # noqa: F401,E402  (register)
from moe.routers import soft  # noqa: F401,E402  (register)
