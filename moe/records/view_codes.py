"""What reading a record's views needs, without torch: ``decode`` (the int8 images of ``moe.records.model_views``),
``top_indices`` and ``MAX_EXPERTS``. The drawing code (``moe.pictures.view_plots``) imports only this, so the
report's worker processes draw without importing torch.
"""
from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np

MAX_EXPERTS = 20  # image views: at most this many experts, the busiest on the test split


def decode(view: dict[str, Any]) -> np.ndarray:
    """The float array of an ``encode`` dict (to within 1/127 of each leading slice's largest |x|)."""
    q = np.frombuffer(base64.b64decode(view["int8"]), dtype=np.int8).astype(np.float32).reshape(view["shape"])
    return q / 127 * np.asarray(view["scale"], dtype=np.float32).reshape(-1, *[1] * (q.ndim - 1))


def top_indices(values: Sequence[float], n: int) -> list[int]:
    """The indices of the n largest values, largest first, ties to the lower index (a stable sort)."""
    v = np.asarray(values, dtype=np.float64)
    return np.argsort(-v, kind="stable")[:n].tolist()
