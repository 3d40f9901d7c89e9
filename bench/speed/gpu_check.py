"""python -m bench.speed.gpu_check: everything GPU-specific in one command, within 8 minutes, every result in one
folder. On a machine with an NVIDIA GPU, from the repository root:

    .venv/bin/python -m bench.speed.gpu_check [--out DIR] [--data-root MNIST_ROOT] [--budget-s 480] [--dry-run]

Steps (each a child process with its own time limit, cut to what is left of the budget; a step that fails or
runs out of time is recorded and the next one runs):

1. ``tests``: the GPU tests (``tests/gpu``: Triton kernels against the torch fallback on CUDA tensors, a run on
   the GPU against the CPU, stacked seeds on the GPU) and the kernels' ahead-of-time compilation checks;
2. ``kernel_bench``: ``python -m bench.speed.kernel_bench --device cuda``;
3. ``train_speed``: ``python -m bench.speed.train_speed --device cuda`` (the training loop (moe.training.loop) against the bare loop);
4. ``sweep``: a one-epoch MNIST sweep (2 routers x 2 seeds, 4 experts) on fractional GPUs (0.25 each), from
   ``--data-root`` or, without it, generated files of MNIST's format written into the folder.

The folder (default ``results/gpu_check-<UTC time>``) holds each step's log, the benchmarks' JSON, the sweep's
directory and ``summary.json`` (each step's command, exit status, seconds, whether it timed out). Exit 0 when
every step passed, 1 otherwise, 2 (one ``error:`` line) when there is no GPU or an option is bad.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from moe.records.record import write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 480
STEP_LIMITS = {"tests": 120, "kernel_bench": 90, "train_speed": 150, "sweep": 110}  # seconds, at most


def sweep_file(folder: Path) -> Path:
    spec = {"description": "GPU check: one MNIST epoch on fractional GPUs", "version": 1, "dataset": "mnist",
            "budget": {"epochs": 1, "n_train": 2000, "n_test": 500},
            "grid": {"router": ["softmax", "topk[k=2]"], "experts": [4], "seed": [0, 1]},
            "resources": {"cpu": 1, "gpu": 0.25}}
    path = folder / "gpu_mnist.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def generated_mnist(root: Path, n_train: int = 8000, n_test: int = 2000) -> Path:
    """IDX files of MNIST's format (random pixels, balanced labels) in ROOT/MNIST/raw: a sweep's data when the
    real files are not on the GPU machine (its speed does not depend on what the pixels show)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(np.array([2051, n, 28, 28], ">u4").tobytes() + images.tobytes())
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">u4").tobytes() + labels.tobytes())
    return root


def steps(folder: Path, data_root: str | None) -> list[tuple[str, list[str]]]:
    py = sys.executable
    root = data_root or str(folder / "data")
    return [
        ("tests", [py, "-m", "pytest", "tests/gpu", "tests/kernels/test_kernels_aot.py", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={folder / 'tests.xml'}"]),
        ("kernel_bench", [py, "-m", "bench.speed.kernel_bench", "--device", "cuda", "--out", str(folder / "bench_kernels_cuda.json")]),
        ("train_speed", [py, "-m", "bench.speed.train_speed", "--device", "cuda", "--rounds", "5", "--startup-rounds", "0",
                         "--out", str(folder / "bench_train_cuda.json")]),
        ("sweep", [py, "-m", "bench.sweep", str(folder / "gpu_mnist.yaml"), "--data-root", root, "--out", str(folder / "sweep")]),
    ]


def run_step(name: str, cmd: list[str], folder: Path, limit: float) -> dict:
    t0 = time.perf_counter()
    with (folder / f"{name}.log").open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=limit).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    return {"step": name, "command": cmd, "rc": rc, "timed_out": timed_out, "limit_s": round(limit, 1),
            "seconds": round(time.perf_counter() - t0, 1), "log": f"{name}.log"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="the results folder (default results/gpu_check-<UTC time>)")
    p.add_argument("--data-root", default=None, help="real MNIST files for the sweep (default: generated ones)")
    p.add_argument("--budget-s", type=float, default=None, help=f"the whole check's time limit (default {BUDGET_S})")
    p.add_argument("--dry-run", action="store_true", help="print the steps and exit (no GPU needed)")
    args = p.parse_args(argv)
    budget = BUDGET_S if args.budget_s is None else args.budget_s
    if budget <= 0:
        p.error(f"--budget-s: must be > 0, got {budget:g}")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        p.error(f"--data-root {args.data_root!r}: not a directory")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path(args.out or ROOT / "results" / f"gpu_check-{stamp}").resolve()
    plan = steps(folder, args.data_root)
    if args.dry_run:
        for name, cmd in plan:
            print(f"{name:<13} limit {STEP_LIMITS[name]:>4} s  $ {' '.join(cmd)}")
        return 0
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here (torch.cuda.is_available() is False): run this on a machine with an NVIDIA GPU; "
              "--dry-run shows the steps", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    sweep_file(folder)
    if args.data_root is None:
        generated_mnist(folder / "data")
    started, results = time.perf_counter(), []
    for name, cmd in plan:
        left = budget - (time.perf_counter() - started)
        if left < 5:
            results.append({"step": name, "command": cmd, "rc": None, "timed_out": True, "skipped": "no time left"})
            continue
        results.append(run_step(name, cmd, folder, min(STEP_LIMITS[name], left)))
        r = results[-1]
        verdict = "ok" if r["rc"] == 0 else "TIMED OUT" if r["timed_out"] else f"FAILED (exit {r['rc']})"
        print(f"{name:<13} {verdict:<18} {r['seconds']:6.1f} s  log {folder / r['log']}", flush=True)
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "budget_s": budget,
               "total_s": round(time.perf_counter() - started, 1), "steps": results,
               "env": {k: v for k, v in os.environ.items() if k.startswith(("CUDA", "MOE_", "TRITON"))}}
    write_json_atomic(folder / "summary.json", summary)
    print(f"wrote {folder / 'summary.json'} ({summary['total_s']} s)")
    return 0 if all(r.get("rc") == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
