"""The run record: one JSON object per run, the only thing downstream code (reports, tables) reads. Every
record is made here (``finished_record``, ``language_model_record``, ``error_record``, ``stopped_record`` and the
fields a stopped run's checkpoint gives, ``checkpoint_fields``), under one ``SCHEMA``; a sweep only adds its ``bench`` block.

Fields: schema, status (ok | diverged | error | stopped: a sweep's scheduler stopped the run early), error, diverged (None, or ``{"epoch", "reason"}`` of the
first NaN or infinity: in the training loss, the gradients, the parameters, the gate logits or the final
evaluation), config (complete: a preset's values resolved), seed, n_parameters (total, gate, experts),
dataset (with the validation split's size ``n_val`` and ``val_indices_sha256``), history (per epoch: training
statistics and the validation split's ``val_accuracy`` and ``val_loss``; no test score), test (accuracy and
every score of ``moe.scoring.scores.score``, scored once at the end), validation (the same scores on the validation
split at the end; None without one), allocation (class x expert counts), test_assignment, resumed_from_epoch (None, or the epoch of the saved state the run continued
from), routing_dynamics (router saturation of the validation split per epoch against the last epoch, and
``saturation_epoch``: ``moe.scoring.saturation``; None without a validation split), timing, versions.
"""
from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy
import torch

from moe.records.files import atomic_write_bytes


SCHEMA = 1
STATUSES = ("ok", "diverged", "error", "stopped")


def versions() -> dict[str, str]:
    """Versions of Python, the numeric stack and this project (with its git commit when known)."""
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "moe_interp_bench": project_version()}
    try:
        import triton  # optional (no triton on a CPU-only install), and heavy: only asked here

        out["triton"] = triton.__version__
    except ImportError:
        pass
    out["git"] = git_commit()
    return out


@functools.lru_cache(maxsize=1)
def project_version() -> str:
    """This project's version, written once, in pyproject.toml: the checkout's file, else the installed package's."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    return importlib.metadata.version("moe-interp-bench")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """This checkout's commit, asked once per process: a sweep's reused Ray actors write many records, and each
    ``git`` call is a process start (~5-10 ms here)."""
    try:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def jsonable(obj: Any) -> Any:
    """Plain JSON values: tensors -> lists, non-finite floats -> None (standard JSON has no NaN)."""
    if hasattr(obj, "tolist"):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def generated_page_main(prog: str, docs: str, markdown: Callable[[], str], argv: list[str] | None = None) -> int:
    """The command of a generated docs page (``python -m PROG [--write PATH | --check PATH]``): print it, write it
    atomically, or exit 1 with one line when PATH is not the generated text."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}", description=f"Print, write or check {docs}.")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help=f"write the page to PATH (the committed one: {docs})")
    group.add_argument("--check", metavar="PATH", help="exit 1 when PATH is not the generated text")
    args = ap.parse_args(argv)
    text = markdown()
    if args.write:
        atomic_write_bytes(Path(args.write), text.encode("utf-8"))
    elif args.check:
        path = Path(args.check)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"error: {path} is stale or missing: run python -m {prog} --write {path}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (non-finite floats as null) atomically."""
    return atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n").encode())


def finished_record(status: str, diverged: dict[str, Any] | None, config: dict[str, Any], n_parameters: dict[str, int],
                    history: list[dict[str, Any]], evaluated: dict[str, Any], routing_dynamics: dict[str, Any] | None,
                    resumed_from_epoch: int | None, timing: dict[str, float], provenance: dict[str, Any]) -> dict[str, Any]:
    """The record of a run that trained to its end (``ok``) or met a non-finite value (``diverged``, with
    ``diverged``: epoch and reason); ``evaluated`` holds the final evaluation (``moe.training.evaluate``)."""
    return {"schema": SCHEMA, "status": status, "error": None, "diverged": diverged, "config": config,
            "seed": config.get("seed"), "n_parameters": n_parameters, "history": history, **evaluated,
            "routing_dynamics": routing_dynamics,  # router saturation per epoch against the last (moe.scoring.saturation)
            "resumed_from_epoch": resumed_from_epoch, "timing": timing, "versions": versions(), "provenance": provenance}


def language_model_record(status: str, diverged: dict[str, Any] | None, config: dict[str, Any],
                          n_parameters: dict[str, int], history: list[dict[str, Any]],
                          dataset: dict[str, Any]) -> dict[str, Any]:
    """The record of a token-level language model's run (``moe.training.lm_loop``) as training leaves it; the
    loop adds its final analyses, timing, versions and provenance."""
    return {"schema": SCHEMA, "status": status, "error": None, "diverged": diverged, "config": config,
            "seed": config.get("seed"), "model": "moe_lm", "n_parameters": n_parameters, "history": history,
            "dataset": dataset}


def error_record(config: dict[str, Any], error: BaseException, status: str = "error",
                 history: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """The record of a run that raised: its config, the message and the traceback's last lines; ``status``
    ``diverged`` where what it raised says a value became NaN or infinite, with the epochs it finished."""
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:])
    rec = {"schema": SCHEMA, "status": "error", "error": f"{type(error).__name__}: {error}", "traceback": tb,
           "config": config, "seed": config.get("seed"), "history": [], "test": {}, "allocation": None,
           "timing": {}, "versions": versions(), **extra}
    if status != "error":
        rec["status"] = status
    if history is not None:
        rec["history"] = [dict(h) for h in history]
    return rec


def stopped_record(config: dict[str, Any], val_accuracy: float | None, provenance: dict[str, Any]) -> dict[str, Any]:
    """The record of a run a sweep's scheduler stopped before its end, before its checkpoint is scored: the last
    epoch's validation accuracy only (the test split is scored only at the end)."""
    return {"schema": SCHEMA, "status": "stopped", "error": None, "config": config, "history": [], "test": {},
            "validation": {"accuracy": val_accuracy}, "allocation": None, "timing": {}, "versions": {},
            "provenance": provenance}


def checkpoint_fields(config: dict[str, Any], seed: int | None, history: list[dict[str, Any]], evaluated: dict[str, Any],
                      routing_dynamics: dict[str, Any] | None, timing: dict[str, float],
                      provenance: dict[str, Any]) -> dict[str, Any]:
    """The fields a stopped run's latest checkpoint gives its record (``stopped_record(...) | these``): its
    history and the evaluation of its model, as a finished run is scored."""
    return {"schema": SCHEMA, "config": config, "seed": seed, "history": history, **evaluated,
            "routing_dynamics": routing_dynamics, "timing": timing, "versions": versions(), "provenance": provenance}


def out_problem(out: str, force: bool = False) -> str | None:
    """Why the record cannot be written at ``--out`` (a directory, a file on the way, a folder not writable, or,
    unless ``force``, a file that exists: nothing a user owns is overwritten without being asked)."""
    path, folder = Path(out), Path(out).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.is_dir() or not folder.is_dir():
        return f"--out {out}: " + ("a directory; give the record's file path" if path.is_dir() else f"{folder} is a file")
    if not force and (path.exists() or path.is_symlink()):
        return f"--out {out}: the file exists; give a new path, or add --force to overwrite it"
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        return f"--out {out}: cannot write in {folder}: {err.strerror or err}"
    return None
