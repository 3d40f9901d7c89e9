"""Objectives and regularisers by name: the plugins, one small file each, registered in ``OBJECTIVES`` and
``REGULARISERS`` (``moe/objectives/base.py``)."""
from moe.objectives.base import (  # noqa: F401  (re-exported)
    OBJECTIVES, REGULARISERS, Loss, Regulariser, combine_mode, regulariser,
)
from moe.objectives import balance, matching, similarity, task  # noqa: F401,E402  (register)
from moe.objectives.task import competitive, cooperative, mixture_nll  # noqa: F401,E402  (re-exported)
