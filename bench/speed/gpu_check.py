"""python -m bench.speed.gpu_check: everything GPU-specific in one command, within 3 minutes, every result in one
folder, nothing downloaded. On a machine with an NVIDIA GPU, from the repository root:

    .venv/bin/python -m bench.speed.gpu_check [--out DIR] [--data-root MNIST_ROOT] [--budget-s 180] [--dry-run]

Steps (each a child process with its own time limit, cut to what is left of the budget; a step that fails or
runs out of time is recorded and the next one runs):

1. ``tests``: the GPU tests (``tests/gpu``: Triton kernels against the torch fallback on CUDA tensors, a run on
   the GPU against the CPU, stacked seeds on the GPU, the language model on the GPU against the CPU and resumed
   there). The kernels' ahead-of-time compilation needs no GPU: the test suite checks it on any machine;
2. ``lm_check``: ``python -m bench.speed.lm_check --device cuda``: the language model's training step at 8,192 tokens
   per batch with the Triton routing and grouped products against the torch fallback (routing, logits, loss and
   every gradient), and its tokens/s against a bare torch loop of the same model on the GPU;
3. ``kernel_bench``: ``python -m bench.speed.kernel_bench --device cuda``;
4. ``train_speed``: ``python -m bench.speed.train_speed --device cuda`` (the training loop (moe.training.loop) and
   the language model's against their bare loops);
5. ``sweep``: a one-epoch MNIST sweep (2 routers x 2 seeds, 4 experts) on fractional GPUs (0.25 each), from
   ``--data-root`` or, without it, generated files of MNIST's format written into the folder.

At the end it prints one summary: each step's verdict and time, with its key figures (tests passed and failed,
the language model's backend gaps and speed ratio, the grouped GEMM against torch._grouped_mm, each shape's
training-speed ratio, the sweep's trial statuses). The folder (default ``results/gpu_check-<UTC time>``) holds each
step's log, the benchmarks' JSON, the sweep's directory and ``summary.json`` (each step's command, exit status,
seconds, whether it timed out, its key figures). Exit 0 when every step passed, 1 otherwise, 2 (one ``error:``
line) when there is no GPU or an option is bad.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch
import yaml

from bench.speed import lm_check
from moe.records.record import write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 180
STEP_LIMITS = {"tests": 60, "lm_check": 25, "kernel_bench": 25, "train_speed": 30, "sweep": 40}  # seconds, at most


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
        ("tests", [py, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={folder / 'tests.xml'}"]),
        ("lm_check", [py, "-m", "bench.speed.lm_check", "--device", "cuda", "--windows", "64", "--steps", "4",
                      "--rounds", "5", "--out", str(folder / "lm_check_cuda.json")]),
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
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        p.error(f"--out {args.out}: exists and is not an empty folder; name a new one (nothing is overwritten)")
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
        print(f"{name:<13} {verdict(r):<18} {r['seconds']:6.1f} s  log {folder / r['log']}", flush=True)
    for r in results:
        r["figures"] = figures(r["step"], folder)
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "budget_s": budget,
               "total_s": round(time.perf_counter() - started, 1), "steps": results,
               "env": {k: v for k, v in os.environ.items() if k.startswith(("CUDA", "MOE_", "TRITON"))}}
    write_json_atomic(folder / "summary.json", summary)
    print("\n" + summary_text(summary))
    print(f"wrote {folder / 'summary.json'}")
    return 0 if all(r.get("rc") == 0 for r in results) else 1


def verdict(r: dict) -> str:
    if r.get("skipped"):
        return "SKIPPED (no time left)"
    return "ok" if r["rc"] == 0 else "TIMED OUT" if r["timed_out"] else f"FAILED (exit {r['rc']})"


# ---- the summary: each step's key figures, read from the files it wrote ----------------------------------------
def test_figures(folder: Path) -> list[str]:
    root = ElementTree.parse(folder / "tests.xml").getroot()  # pytest's own JUnit file, written in this run
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    lines = [f"{n - failures - errors - skipped} passed, {failures + errors} failed, {skipped} skipped"]
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    if failed:
        lines.append("failed: " + ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else ""))
    return lines


def lm_figures(folder: Path) -> list[str]:
    return [lm_check.line(r) for r in json.loads((folder / "lm_check_cuda.json").read_text())["rows"]]


def kernel_figures(folder: Path) -> list[str]:
    rows = json.loads((folder / "bench_kernels_cuda.json").read_text())["rows"]
    wanted = [r for r in rows if r.get("target") and r.get("ratio") is not None]
    errors = [r["max_abs_err"] for r in rows if r.get("max_abs_err") is not None]
    ratios = ", ".join(f"{r['ratio']:.2f}" for r in wanted)
    error = f"{max(errors):.2g}" if errors else "not measured"
    return [f"grouped GEMM (bf16): torch._grouped_mm's time over ours {ratios or '-'} (target >= 0.8: met in "
            f"{sum(bool(r['ok']) for r in wanted)} of {len(wanted)}); largest |error| of ours against it {error}"]


def speed_figures(folder: Path) -> list[str]:
    rows = json.loads((folder / "bench_train_cuda.json").read_text())["rows"]
    return [f"{r['shape']}: {r['metric'].split(':')[0]} {r['ratio']:.3g} [{r['ratio_lo']:.3g}-{r['ratio_hi']:.3g}] of "
            f"the bare loop's (target {r['target']}: {r['verdict']})" for r in rows if r.get("target")]


def sweep_figures(folder: Path) -> list[str]:
    with (folder / "sweep" / "runs.csv").open(newline="") as f:
        statuses = [row["status"] for row in csv.DictReader(f)]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    return [f"{len(statuses)} trials: {counts or 'none'}"]


FIGURES = {"tests": test_figures, "lm_check": lm_figures, "kernel_bench": kernel_figures, "train_speed": speed_figures,
           "sweep": sweep_figures}


def figures(step: str, folder: Path) -> list[str]:
    """The key figures of a step (none when it left no readable file: it failed early, or ran out of time)."""
    try:
        return FIGURES[step](folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ElementTree.ParseError):
        return []


def summary_text(summary: dict) -> str:
    """The one summary printed at the end: the verdict, then each step's line and key figures."""
    steps = summary["steps"]
    passed = sum(r.get("rc") == 0 for r in steps)
    head = "all" if passed == len(steps) else f"{passed} of"
    lines = [f"GPU check on {summary['gpu']} (torch {summary['torch']}): {head} {len(steps)} steps passed in "
             f"{summary['total_s']:.0f} s (budget {summary['budget_s']:.0f} s)"]
    for r in steps:
        seconds = f"{r['seconds']:6.1f} s" if "seconds" in r else "       -"
        lines.append(f"  {r['step']:<13} {verdict(r):<22} {seconds}")
        lines.extend(f"      {f}" for f in r.get("figures", []))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
