"""python -m bench.speed.train_speed (also ``python -m bench.train_speed``): the speed of ``moe.training.loop``'s training
loop against a bare torch loop of the same model and data, every figure a ratio measured in the same run.

For each shape (``bench.speed.train_cases``: gm6 with linear experts; MNIST with 10 linear experts and an MLP
gate; the seed code's CNN experts and CNN gate), one round times, in a shuffled order:

- ``moe_train``: one epoch of ``moe.training.epochs.train_epoch`` (what ``moe.training.loop.run`` runs: forward, loss, backward
  with its checks, optimizer step, per-expert statistics) on the model, loss and optimizer ``moe.training.loop`` builds;
- ``bare_train``: one epoch of the bare loop (``train_cases.BareLoop``: forward, backward, step, nothing else);
- ``stacked_train`` (shapes ``moe.training.stacked`` supports): one epoch of the functional loop of stacked seeds with one
  seed (``moe.training.stacked.stacked_epoch``: batched matmuls, no routing plan; records within 1e-5 of ``moe.training.loop``'s,
  not bitwise), for comparison, without a target (measured no faster than ``moe_train``: stacking shares the
  per-step cost between seeds, it does not make the step cheaper);
- ``moe_eval`` / ``bare_eval``: the per-epoch test accuracy of each;
- ``dense_mm``: dense [512 x 512] matmuls, the machine's FLOP/s in the same run.

Ratios (median of the per-round ratios, 95% bootstrap interval, verdict against the target, as
``bench.speed.kernel_bench`` prints them): samples/s of moe_train over bare_train (target >= 0.8); each loop's
FLOP/s (the bare model's FLOPs per step, counted by torch, x steps / time) over the dense matmul's; evaluation
time per epoch, bare over moe. Start-up: the wall time of a fresh process running ``moe.training.loop.run`` up to its
first batch (``bench.speed.first_batch``) over that of ``python -c 'import torch'``, in interleaved rounds.

    python -m bench.speed.train_speed [--rounds R (default 7)] [--startup-rounds S (default 3; 0: skip)]
        [--only SUBSTR] [--data-root DIR (real MNIST; default: generated data of its shape)] [--n-train N]
        [--threads N (default 1)] [--device cpu|cuda] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from bench.speed.kernel_bench import meta
from bench.speed.lm_speed import LM_SHAPE, lm_fns
from bench.speed.timing import paired_ratio, quantiles, time_interleaved
from bench.speed.train_cases import bare_loop, config_of, dataset_for, shape_names
from moe.training import stacked
from moe.config import ConfigError
from moe.training.epochs import train_epoch
from moe.training.evaluate import accuracy
from moe.model import checked_config
from moe.records.record import write_json_atomic
from moe.training.loop import checked_data, resolve_device, set_up, start_phase


MM = 512  # the dense matmul: [MM, MM] @ [MM, MM], MM_REPEAT times per call
MM_REPEAT = 8
ROOT = Path(__file__).resolve().parents[2]


def synced(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize()

    return call


def shape_fns(name: str, args, device: torch.device) -> tuple[dict[str, Callable], dict[str, float]]:
    """The timed functions of one shape and its sizes (samples, FLOPs of an epoch and of a matmul call)."""
    cfg = checked_config({**config_of(name, args.data_root, args.n_train), "device": device.type})
    data = checked_data(cfg, dataset_for(config_of(name, args.data_root), args.data_root))
    t = set_up(cfg, data, device)
    optimizer = start_phase(t, t.plan[0], None)
    bare = bare_loop(cfg, data, device)
    x_eval, y_eval = data.x_test.to(device), data.y_test.to(device)  # the samples the bare loop evaluates too
    a, b = (torch.randn(MM, MM, generator=torch.Generator().manual_seed(s)).to(device) for s in (1, 2))

    def moe_epoch():
        stats = train_epoch(t.model, optimizer, t.loss_fn, t.x_train, t.y_train, cfg.batch_size, t.batch_order)
        if not stats["finite"]:
            raise RuntimeError(f"{name}: the training loop diverged while timing: {stats.get('reason')}")

    def matmuls():
        for _ in range(MM_REPEAT):
            a @ b

    fns = {"moe_train": moe_epoch, "bare_train": bare.epoch,
           "moe_eval": lambda: accuracy(t.model, x_eval, y_eval, t.eval_batch), "bare_eval": bare.evaluate,
           "dense_mm": matmuls}
    if not stacked.problems(cfg):  # the functional loop of stacked seeds with one seed, for comparison
        one = [set_up(cfg, data, device)]
        stack = stacked.StackedMixture(one)
        one_opt = stack.optimizer(cfg)
        fns["stacked_train"] = lambda: stacked.stacked_epoch(stack, one_opt, cfg, one, cfg.temperature)
    n = len(t.y_train)
    steps = -(-n // cfg.batch_size)
    sizes = dict(samples=n, epoch_flops=bare.step_flops() * n / cfg.batch_size, steps=steps,
                 mm_flops=2.0 * MM**3 * MM_REPEAT, n_test=len(y_eval))
    return {k: synced(f, device) for k, f in fns.items()}, sizes


def ratio_row(shape: str, metric: str, num: list[float], den: list[float], op: str, target: float | None,
              seed: int, **extra) -> dict[str, Any]:
    r = paired_ratio(num, den, op, target if target is not None else 1.0, seed=seed)
    if target is None:
        r["verdict"] = ""
    return dict(shape=shape, metric=metric, direction="lower" if op == "<=" else "higher", **r,
                target=f"{op} {target:.3g}" if target is not None else "", **extra)


def run_shape(name: str, args, device: torch.device) -> list[dict[str, Any]]:
    if name == LM_SHAPE:  # the language model (bench.speed.lm_speed): tokens/s against its bare loop
        return lm_rows(args, device)
    fns, s = shape_fns(name, args, device)
    times = time_interleaved(fns, args.rounds, warmup=1, seed=args.seed)
    med = {k: quantiles(v)["median"] for k, v in times.items()}
    mm_rate = [s["mm_flops"] / t for t in times["dense_mm"]]
    rows = [ratio_row(name, "samples/s: moe_train / bare_train", times["bare_train"], times["moe_train"], ">=", 0.8,
                      args.seed, moe_samples_s=s["samples"] / med["moe_train"], bare_samples_s=s["samples"] / med["bare_train"],
                      moe_ms=1e3 * med["moe_train"], bare_ms=1e3 * med["bare_train"])]
    if "stacked_train" in times:  # no target: a comparison (records within 1e-5 of moe.training.loop's, not bitwise)
        rows.append(ratio_row(name, "samples/s: stacked_train (S = 1) / bare_train", times["bare_train"],
                              times["stacked_train"], ">=", None, args.seed,
                              stacked_samples_s=s["samples"] / med["stacked_train"], stacked_ms=1e3 * med["stacked_train"]))
    for loop in ("moe_train", "bare_train"):  # FLOP/s of the loop over the matmul's, per round
        rate = [s["epoch_flops"] / t for t in times[loop]]
        rows.append(ratio_row(name, f"FLOP/s: {loop} / dense_mm", rate, mm_rate, ">=", None, args.seed,
                              gflops=s["epoch_flops"] / med[loop] / 1e9,
                              dense_gflops=s["mm_flops"] / med["dense_mm"] / 1e9))
    rows.append(ratio_row(name, "eval time per epoch: bare_eval / moe_eval", times["bare_eval"], times["moe_eval"],
                          ">=", None, args.seed, moe_ms=1e3 * med["moe_eval"], bare_ms=1e3 * med["bare_eval"],
                          eval_share_of_epoch=med["moe_eval"] / med["moe_train"]))
    if args.startup_rounds:
        rows.append(startup_row(name, args))
    return rows


def lm_rows(args, device: torch.device) -> list[dict[str, Any]]:
    fns, s = lm_fns(args.threads, device)
    fns = {k: synced(f, device) for k, f in fns.items()}
    times = time_interleaved(fns, args.rounds, warmup=1, seed=args.seed)
    med = {k: quantiles(v)["median"] for k, v in times.items()}
    return [ratio_row(LM_SHAPE, "tokens/s: moe_train / bare_train", times["bare_train"], times["moe_train"], ">=", 0.8,
                      args.seed, moe_tokens_s=s["tokens"] / med["moe_train"], bare_tokens_s=s["tokens"] / med["bare_train"],
                      moe_ms=1e3 * med["moe_train"], bare_ms=1e3 * med["bare_train"])]


def startup_row(name: str, args) -> dict[str, Any]:
    """Fresh processes: moe.training.loop.run up to its first batch, against python -c 'import torch'."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    probe = [sys.executable, "-m", "bench.speed.first_batch", name,
             *(["--data-root", args.data_root] if args.data_root else [])]

    def first_batch():
        out = subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            raise RuntimeError(f"the start-up probe failed ({out.returncode}): {out.stderr.strip()[-500:]}")

    def import_torch():
        subprocess.run([sys.executable, "-c", "import torch"], cwd=ROOT, env=env, check=True)

    times = time_interleaved({"first_batch": first_batch, "import_torch": import_torch}, args.startup_rounds,
                             warmup=1, seed=args.seed)
    return ratio_row(name, "start-up: first batch / python -c 'import torch'", times["first_batch"],
                     times["import_torch"], "<=", None, args.seed,
                     first_batch_s=quantiles(times["first_batch"])["median"],
                     import_torch_s=quantiles(times["import_torch"])["median"])


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'shape':<60} {'metric':<50} {'ratio [95% interval]':<24} {'target':>7} {'met':>4}  figures")
    for r in rows:
        figures = "  ".join(f"{k}={r[k]:.4g}" for k in r if k not in (
            "shape", "metric", "direction", "ratio", "ratio_lo", "ratio_hi", "verdict", "target"))
        ratio = f"{r['ratio']:6.3g} [{r['ratio_lo']:.3g}-{r['ratio_hi']:.3g}]"
        print(f"{r['shape']:<60} {r['metric']:<50} {ratio:<24} {r['target']:>7} {r['verdict']:>4}  {figures}")
    print("\nmet: yes = the whole 95% interval of the median per-round ratio meets the target; NO = none of it does;\n"
          "     tie = the target lies inside the interval; blank: a figure without a target")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.speed.train_speed", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per shape, >= 2 (default 7)")
    p.add_argument("--startup-rounds", type=int, default=None,
                   help="rounds of the start-up processes, >= 2, or 0 to skip them (default 3)")
    p.add_argument("--only", default=None, help="run only shapes whose name contains this")
    p.add_argument("--data-root", default=None, help="real MNIST files (default: generated data of MNIST's shape)")
    p.add_argument("--n-train", type=int, default=None, help="training samples per epoch (default: the shape's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1; 0 keeps torch's default)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="cpu (default) or cuda")
    p.add_argument("--seed", type=int, default=None, help="shuffling and resampling seed (default 0)")
    p.add_argument("--out", default=None, help="JSON file (default results/bench_train_<device>.json)")
    args = p.parse_args(argv)
    args.rounds = 7 if args.rounds is None else args.rounds
    args.startup_rounds = 3 if args.startup_rounds is None else args.startup_rounds
    args.threads = 1 if args.threads is None else args.threads
    args.device = args.device or "cpu"
    args.seed = 0 if args.seed is None else args.seed
    if args.rounds < 2:
        p.error(f"--rounds: must be >= 2 (a ratio's interval needs at least two paired rounds), got {args.rounds}")
    if args.startup_rounds != 0 and args.startup_rounds < 2:
        p.error(f"--startup-rounds: must be 0 (skip) or >= 2, got {args.startup_rounds}")
    if args.threads < 0:
        p.error(f"--threads: must be >= 0, got {args.threads}")
    try:
        args.shapes = shape_names(args.only)
    except ValueError as err:
        p.error(str(err))
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        p.error(f"--data-root {args.data_root!r}: not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    try:
        for name in args.shapes:
            rows.extend(run_shape(name, args, device))
            print(f"  done {name}", flush=True)
    except ConfigError as err:  # e.g. --n-train larger than the data
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    print_table(rows)
    out = args.out if args.out is not None else os.path.join("results", f"bench_train_{args.device}.json")
    write_json_atomic(out, dict(meta=meta(args), rows=rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
