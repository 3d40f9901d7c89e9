"""Provenance of a run record: where its numbers came from (lm-evaluation-harness's habit: results carry
versions, the git hash and the date).

``provenance(data, device, started)`` -> the record's ``provenance`` block:

    git             the full commit of the checkout (None outside a git checkout or without git)
    git_dirty       True when tracked files differ from that commit (None when unknown)
    versions        Python, torch, numpy, Triton (when installed), this project (``moe.records.record.versions``)
    data_sha256     sha256 of the loaded arrays as the run saw them (after subsets and normalisation):
                    each array's name, dtype, shape and bytes in a fixed order (None when no data was loaded)
    kernel_backend  what the expert layers ran on: torch or triton (``kernels.resolve_backend``)
    device          the device the run used (with the GPU's name on CUDA)
    started_at      the run's start, UTC, ISO 8601 to the second
    host            the machine's name
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy
import torch

from kernels import resolve_backend
from moe.records.record import versions

FIELDS = ("git", "git_dirty", "versions", "data_sha256", "kernel_backend", "device", "started_at", "host")
ARRAYS = ("x_train", "y_train", "x_test", "y_test")  # fingerprinted in this order (and x_val, y_val when present)
_ROOT = Path(__file__).resolve().parents[2]  # the checkout


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """{"git": full commit or None, "git_dirty": bool or None}; tolerant of no git and of no checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None or not commit.strip():
        return {"git": None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git": commit.strip(), "git_dirty": None if status is None else bool(status.strip())}


def data_fingerprint(data: Any) -> str | None:
    """sha256 over the dataset's arrays (name, dtype, shape, bytes): a ``moe.data.Dataset`` or a dict of arrays."""
    if data is None:
        return None
    get = data.get if isinstance(data, dict) else (lambda k: getattr(data, k, None))
    h = hashlib.sha256()
    for key in ARRAYS + ("x_val", "y_val"):
        arr = get(key)
        if arr is None:
            continue
        arr = arr.detach().cpu().contiguous().numpy() if isinstance(arr, torch.Tensor) else numpy.ascontiguousarray(arr)
        h.update(f"{key}|{arr.dtype.str}|{list(arr.shape)}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def device_text(device: torch.device | str | None) -> str | None:
    if device is None:
        return None
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def kernel_backend(device: torch.device | str | None) -> str | None:
    try:
        return resolve_backend(None, torch.device(device or "cpu"))
    except ValueError:  # a backend that cannot run here (the run itself checked this at start)
        return None


def provenance(data: Any = None, device: torch.device | str | None = None, started: float | None = None) -> dict[str, Any]:
    """The record's ``provenance`` block (see the module docstring). ``started``: the run's start as a
    ``time.perf_counter()`` reading (None: now)."""
    now = datetime.now(timezone.utc)
    start = now - timedelta(seconds=time.perf_counter() - started) if started is not None else now
    return {**git_state(), "versions": versions(), "data_sha256": data_fingerprint(data),
            "kernel_backend": kernel_backend(device), "device": device_text(device),
            "started_at": start.isoformat(timespec="seconds").replace("+00:00", "Z"), "host": platform.node()}
