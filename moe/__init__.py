"""moe-interp-bench: mixture-of-experts models, datasets, training and interpretability scores."""
from __future__ import annotations

__version__ = "0.1.0"


def registries() -> dict:
    """Config field -> registry of names valid for it."""
    from moe.data import DATASETS
    from moe.experts import EXPERTS
    from moe.objectives import OBJECTIVES
    from moe.routers import ROUTERS

    return {"dataset": DATASETS, "expert": EXPERTS, "router": ROUTERS, "objective": OBJECTIVES}
