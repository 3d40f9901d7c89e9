"""Hand-made runs tables for the reproduction tests (rows shaped like runs.csv)."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd


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
