"""Sweep files for the bench tests (Ray itself comes from the session fixture ``ray_local`` in tests/conftest.py)."""
from __future__ import annotations

import pytest
import yaml

# A small sweep: 2 configurations x 2 seeds, 2 epochs on a gm6 subset (a trial takes well under a second).
TINY = {"description": "test sweep", "version": 1, "dataset": "gm6",
        "budget": {"epochs": 2, "n_train": 240, "n_test": 120},
        "grid": {"router": ["softmax", "topk[k=2]"], "experts": [2], "seed": [0, 1]}}


@pytest.fixture
def sweep_file(tmp_path):
    """Write a sweep YAML (TINY updated with ``changes``) and return its path."""
    def make(name: str = "tiny", **changes) -> str:
        data = {**TINY, **changes}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(path)

    return make
