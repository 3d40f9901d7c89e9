"""``linear``: an interpretable linear router on the raw input."""
from __future__ import annotations

from moe.routers.base import ROUTERS
from moe.routers.softmax import SoftmaxRouter


@ROUTERS.register("linear")
class LinearRouter(SoftmaxRouter):
    """Interpretable linear router (the 'interpretable router' of the Implicit Mixture of Interpretable
    Experts, 2022; the gate of Jacobs et al. 1991): p(x) = softmax((x W + b) / T) on the raw input, dense.

    The same computation as ``softmax`` with ``gate: linear``, but its gate can never be a black box:
    each expert's score is a readable linear function of the input features (row W_e).
    """

    uses_gate_network = False
