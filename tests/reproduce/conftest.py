"""Helpers for the reproduction tests: hand-made runs tables, and one Ray instance for the end-to-end test.

The Ray fixture reuses an instance that is already up in this test session (tests/bench's ``ray_local``)
and otherwise starts its own in a private temporary directory, shut down when the module's tests end.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
import pytest

QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}


def run_row(index: int, name: str, status: str = "ok", **fields: Any) -> dict[str, Any]:
    """One runs.csv row: index, name, status, then the given config fields and scores (allocation as JSON)."""
    row: dict[str, Any] = {"index": index, "name": name, "status": status, "seed": fields.pop("seed", 0)}
    alloc = fields.pop("allocation", None)
    row.update(fields)
    row["allocation"] = None if alloc is None else json.dumps(np.asarray(alloc).tolist())
    return row


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def shares(share0: float, n: int = 100) -> list[list[float]]:
    """A one-class allocation [[n * share0, n * (1 - share0)]] of two experts."""
    return [[round(n * share0), n - round(n * share0)]]


@pytest.fixture
def make_frame():
    return frame


@pytest.fixture(scope="module")
def ray_once():
    """An initialised Ray (the session's if one is up, else a private one for this module)."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    saved = {k: os.environ.get(k) for k in [*QUIET, "RAY_TMPDIR"]}
    tmp = tempfile.mkdtemp(prefix="rrp", dir="/tmp")
    os.environ.update(QUIET)
    os.environ["RAY_TMPDIR"] = tmp
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, _temp_dir=tmp)
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)
