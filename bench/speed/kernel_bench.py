"""python -m bench.speed.kernel_bench: speed of the MoE kernels, every figure a ratio to a baseline timed in the same run.

CPU (default): fp32, torch fallback. The candidate and its baselines are timed in interleaved rounds
(one call of each per round in a shuffled order, warm-up rounds discarded), so load from other processes
hits all alike. Each ratio is the median of the per-round ratios with a 95% bootstrap interval, checked
against its target: met "yes" (the whole interval), "NO" (none of it) or "tie" (the target lies
inside the interval). The table also shows each function's median time with p20-p80.
GPU (`--device cuda`): `triton.testing.do_bench` medians of our Triton kernels, torch._grouped_mm and a
dense cuBLAS matmul, bf16 and fp32, with TFLOP/s.

    python -m bench.speed.kernel_bench [--device cpu|cuda] [--threads N (default 1)] [--rounds R] [--only SUBSTR] [--out FILE.json]

The cases: bench.speed.kernel_cases; the timing: bench.speed.timing.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
from typing import Callable

import torch

from bench.speed.kernel_cases import GPU_SHAPES, REGISTRY, build, offsets_of
from bench.speed.timing import paired_ratio, quantiles, time_interleaved
from kernels import grouped_mm
from moe.records.record import write_json_atomic
from moe.registry import suggestion


def run_cpu(args) -> list[dict]:
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for name in REGISTRY:
        if args.only and args.only not in name:
            continue
        case = build(name, gen)
        times = time_interleaved(case.fns, args.rounds, seed=args.seed)
        stats = {n: quantiles(ts) for n, ts in times.items()}
        for num, den, op, target in case.checks:
            rows.append(dict(case=case.name, metric=f"{num} / {den}", direction="lower" if op == "<=" else "higher",
                             **paired_ratio(times[num], times[den], op, target, seed=args.seed),
                             target=f"{op} {target:.3g}",
                             **{f"{n}_ms": 1e3 * s["median"] for n, s in stats.items()},
                             **{f"{n}_p20_ms": 1e3 * s["p20"] for n, s in stats.items()},
                             **{f"{n}_p80_ms": 1e3 * s["p80"] for n, s in stats.items()}))
        print(f"  done {case.name}", flush=True)
    return rows


# ---- GPU ---------------------------------------------------------------------------------------
def run_cuda(args, *, device: str = "cuda", shapes=GPU_SHAPES, dtypes=(torch.bfloat16, torch.float32),
             bench: Callable | None = None) -> list[dict]:
    """do_bench medians of our Triton grouped GEMM, torch._grouped_mm and a dense matmul of the same FLOPs,
    forward, plus our forward + backward; ratio = the kernel's time / ours (>= 0.8 wanted of
    torch._grouped_mm in bf16: ours at least 0.8x its speed).

    `device`, `shapes`, `dtypes` and `bench` (a do_bench stand-in returning [median, p20, p80] ms) let
    the tests run this on the CPU under the Triton interpreter; the CLI always uses CUDA and do_bench.
    """
    if bench is None:
        from triton.testing import do_bench  # deferred: optional, and only the GPU section needs it

        def bench(fn):
            return do_bench(fn, quantiles=[0.5, 0.2, 0.8])

    rows = []
    for dtype in dtypes:
        for M, E, K, N in shapes:
            case = f"gpu_grouped_fwd[dtype={str(dtype)[6:]},M={M},E={E},K={K},N={N}]"
            if args.only and args.only not in case:
                continue
            gen = torch.Generator().manual_seed(args.seed)
            x = torch.randn(M, K, generator=gen).to(device, dtype)
            w = (torch.randn(E, K, N, generator=gen) / math.sqrt(K)).to(device, dtype)
            wd = w[0].contiguous()
            off = offsets_of(torch.arange(M) * E // M, E).to(device)
            ends32 = off[1:].to(torch.int32)
            fns = {"grouped_mm[triton]": lambda: grouped_mm(x, w, off, backend="triton"),
                   "torch._grouped_mm": lambda: torch._grouped_mm(x, w, offs=ends32),
                   "dense_mm": lambda: x @ wd}
            flops = 2.0 * M * K * N
            # before timing: our result against torch._grouped_mm (or the torch fallback where it cannot run)
            try:
                expected = fns["torch._grouped_mm"]().float()
            except Exception:
                expected = grouped_mm(x, w, off, backend="torch").float()
            err = (fns["grouped_mm[triton]"]().float() - expected).abs().max().item() if M else 0.0
            res = {}
            for name, fn in fns.items():
                try:
                    res[name] = bench(fn)
                except Exception as exc:  # e.g. torch._grouped_mm without fp32 support on this GPU
                    res[name] = None
                    print(f"  {case} {name}: {type(exc).__name__}: {exc}")
            ours = res["grouped_mm[triton]"]
            for name, ms in res.items():
                if ms is None:
                    continue
                ratio = ms[0] / ours[0] if ours else None
                wanted = name == "torch._grouped_mm" and dtype == torch.bfloat16
                rows.append(dict(case=case, metric=name, direction="higher", median_ms=ms[0], p20_ms=ms[1],
                                 p80_ms=ms[2], tflops=flops / ms[0] / 1e9, ratio=ratio,
                                 target=">= 0.8" if wanted else "",
                                 ok=(ratio >= 0.8) if wanted and ratio is not None else None,
                                 max_abs_err=err if name == "grouped_mm[triton]" else None))
            xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            dy = torch.randn(M, N, generator=gen).to(device, dtype)
            ms = bench(lambda: torch.autograd.grad(grouped_mm(xg, wg, off, backend="triton"), (xg, wg), dy))
            rows.append(dict(case=case, metric="grouped_mm[triton] fwd+bwd", direction="higher", median_ms=ms[0],
                             p20_ms=ms[1], p80_ms=ms[2], tflops=3 * flops / ms[0] / 1e9, ratio=None, target="",
                             ok=None, max_abs_err=None))
    return rows


# ---- output ------------------------------------------------------------------------------------
def print_table(rows: list[dict], device: str) -> None:
    if device == "cpu":
        print(f"\n{'case':<62} {'ratio [95% interval] (direction)':<56} {'target':>8} {'met':>4}  "
              "medians ms [p20-p80]")
        for r in rows:
            times = "  ".join(f"{k[:-3]}={r[k]:.1f} [{r[k[:-3] + '_p20_ms']:.1f}-{r[k[:-3] + '_p80_ms']:.1f}]"
                              for k in r if k.endswith("_ms") and not k.endswith(("_p20_ms", "_p80_ms")))
            ratio = f"{r['ratio']:6.3f} [{r['ratio_lo']:.3f}-{r['ratio_hi']:.3f}] {r['metric']} ({r['direction']})"
            print(f"{r['case']:<62} {ratio:<56} {r['target']:>8} {r['verdict']:>4}  {times}")
        print("\nmet: yes = the whole 95% interval of the median per-round ratio meets the target; NO = none of "
              "it does;\n     tie = the target lies inside the interval (indistinguishable at this noise)")
    else:
        print(f"\n{'case':<58} {'kernel':<30} {'median ms':>10} {'TFLOP/s (higher)':>17} {'x ours':>7} "
              f"{'target':>7} {'met':>4} {'max |err|':>10}")
        for r in rows:
            ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else ""
            met = "" if r["ok"] is None else "yes" if r["ok"] else "NO"
            err = f"{r['max_abs_err']:.2e}" if r["max_abs_err"] is not None else ""
            print(f"{r['case']:<58} {r['metric']:<30} {r['median_ms']:10.3f} {r['tflops']:17.1f} {ratio:>7} "
                  f"{r['target']:>7} {met:>4} {err:>10}")
        print("\nx ours: the kernel's median time / ours (torch._grouped_mm >= 0.8: ours at least 0.8x its speed); "
              "max |err|: ours against torch._grouped_mm before timing")


def meta(args) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    import triton  # deferred: optional (a torch-only install runs the CPU cases)

    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(), git_commit=commit,
                torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
                machine=platform.machine(), processor=platform.processor(), threads=torch.get_num_threads(),
                device=args.device, rounds=args.rounds, seed=args.seed,
                gpu=torch.cuda.get_device_name() if args.device == "cuda" else None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed.kernel_bench", description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1; 0 keeps torch's default). One thread gives stable ratios "
                        "on a shared machine: under load, the many short OpenMP regions of any grouped matmul "
                        "(torch._grouped_mm included) stall far more than one dense matmul")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 15)")
    p.add_argument("--seed", type=int, default=None, help="input seed (default 0)")
    p.add_argument("--only", default=None, help="run only cases whose name contains this")
    p.add_argument("--out", default=None, help="JSON file (default results/bench_kernels_<device>.json)")
    args = p.parse_args(argv)
    args.device = args.device if args.device is not None else "cpu"
    args.rounds = args.rounds if args.rounds is not None else 15
    args.seed = args.seed if args.seed is not None else 0
    args.threads = args.threads if args.threads is not None else 1
    if args.rounds < 2:
        p.error(f"--rounds: must be >= 2 (a ratio's interval needs at least two paired rounds), got {args.rounds}")
    if args.only is not None and args.device == "cpu" and not any(args.only in name for name in REGISTRY):
        p.error(f"--only {args.only!r}: no case's name contains it{suggestion(args.only, REGISTRY)}; "
                f"valid cases: {', '.join(REGISTRY)}")
    if args.only is not None and args.device == "cuda" and "gpu_grouped_fwd" not in args.only and not any(
            args.only in f"gpu_grouped_fwd[dtype={d},M={M},E={E},K={K},N={N}]"
            for d in ("bfloat16", "float32") for M, E, K, N in GPU_SHAPES):
        p.error(f"--only {args.only!r}: no GPU case's name contains it (they are gpu_grouped_fwd[dtype=...,M=...,E=...,K=...,N=...])")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    rows = run_cpu(args) if args.device == "cpu" else run_cuda(args)
    print_table(rows, args.device)
    out = args.out if args.out is not None else os.path.join("results", f"bench_kernels_{args.device}.json")
    write_json_atomic(out, dict(meta=meta(args), rows=rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
