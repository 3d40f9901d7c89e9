"""python -m bench.kernels: speed of the MoE kernels, every figure a ratio to a baseline timed in the same run.

CPU (default): fp32, torch fallback. The candidate and its baselines are timed in interleaved rounds
(one call of each per round in a shuffled order, warm-up rounds discarded), so load from other processes
hits all alike. Each ratio is the median of the per-round ratios with a 95% bootstrap interval, checked
against the issue's target: met "yes" (the whole interval), "NO" (none of it) or "tie" (the target lies
inside the interval). The table also shows each function's median time with p20-p80.
GPU (`--device cuda`): `triton.testing.do_bench` medians of our Triton kernels, torch._grouped_mm and a
dense cuBLAS matmul, bf16 and fp32, with TFLOP/s.

    python -m bench.kernels [--device cpu|cuda] [--threads N (default 1)] [--rounds R] [--only SUBSTR] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

import kernels
from kernels import grouped_mm, moe_mlp_layer, topk_route
from moe.record import write_json_atomic

# ---- the grid: one place for every size (the figures) -----------------------------------
CPU = dict(rows=8192, experts=8, K=512, N=512, layer_tokens=4096, layer_k=2, route_tokens=8192, route_experts=64,
           route_k=2, step_tokens=2048, step_experts=16, step_k=1, step_D=256, step_H=512)
GPU_SHAPES = [  # (rows M, experts E, K, N): >= 512 rows per expert
    (8192, 8, 2048, 2048), (16384, 16, 4096, 1024), (32768, 64, 1024, 4096),
]
ROUTINGS = ("balanced", "zipf")


@dataclass
class Case:
    """A candidate and its baselines, timed side by side; checks are (numerator, denominator, op, target)."""

    name: str
    fns: dict[str, Callable[[], object]]
    flops: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, str, str, float]] = field(default_factory=list)


def expert_of_rows(M: int, E: int, routing: str, gen: torch.Generator) -> torch.Tensor:
    """Sorted expert of each of M rows: uniform ('balanced') or Zipf(s=1) over the experts ('zipf')."""
    if routing == "balanced":
        return torch.arange(M) * E // M
    p = 1.0 / torch.arange(1, E + 1, dtype=torch.float64)
    return torch.sort(torch.multinomial(p / p.sum(), M, replacement=True, generator=gen)).values


def offsets_of(experts: torch.Tensor, E: int) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(torch.bincount(experts, minlength=E), 0)])


def routing_bias(E: int, routing: str) -> torch.Tensor:
    """Added to router logits: 0 (balanced) or log Zipf probabilities (Gumbel-max gives Zipf-skewed top-1)."""
    if routing == "balanced":
        return torch.zeros(E)
    return -torch.log(torch.arange(1, E + 1, dtype=torch.float32))


# ---- CPU cases: a registry of builders by canonical name ------------------------------------
REGISTRY: dict[str, tuple[Callable[[torch.Generator], Case], tuple[str, ...]]] = {}


def register(name: str, fn_names: tuple[str, ...], builder: Callable[[torch.Generator], Case]) -> None:
    if name in REGISTRY:
        raise ValueError(f"duplicate benchmark case {name!r}")
    REGISTRY[name] = (builder, fn_names)


def build(name: str, gen: torch.Generator | None = None) -> Case:
    """The case `name` with fresh inputs (its tensors are made here, not at import)."""
    if name not in REGISTRY:
        import difflib
        hint = difflib.get_close_matches(name, REGISTRY, n=1)
        raise ValueError(f"unknown case {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    case = REGISTRY[name][0](gen if gen is not None else torch.Generator().manual_seed(0))
    case.name = name
    return case


def cpu_cases(gen: torch.Generator) -> list[Case]:
    return [build(name, gen) for name in REGISTRY]


def _grouped_inputs(routing: str, gen: torch.Generator):
    c = CPU
    M, E, K, N = c["rows"], c["experts"], c["K"], c["N"]
    x = torch.randn(M, K, generator=gen)
    w, wd = torch.randn(E, K, N, generator=gen) / math.sqrt(K), torch.randn(K, N, generator=gen) / math.sqrt(K)
    return x, w, wd, offsets_of(expert_of_rows(M, E, routing, gen), E)


def grouped_fwd_case(routing: str, gen: torch.Generator) -> Case:
    x, w, wd, off = _grouped_inputs(routing, gen)
    ends32 = off[1:].to(torch.int32)
    flops = 2.0 * x.shape[0] * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": lambda: grouped_mm(x, w, off, backend="torch"), "dense_mm": lambda: x @ wd,
                     "torch._grouped_mm": lambda: torch._grouped_mm(x, w, offs=ends32)},
                dict.fromkeys(("grouped_mm", "dense_mm", "torch._grouped_mm"), flops),
                [("grouped_mm", "dense_mm", "<=", 1.1), ("grouped_mm", "torch._grouped_mm", "<=", 1.0)])


def grouped_gather_case(routing: str, gen: torch.Generator) -> Case:
    """The model's call: rows of x [T, K] gathered on load (T = M / 2 tokens, k = 2)."""
    x, w, wd, off = _grouped_inputs(routing, gen)
    M = x.shape[0]
    tokens = torch.randint(0, M // 2, (M,), generator=gen)
    xt = x[: M // 2].clone()
    flops = 2.0 * M * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": lambda: grouped_mm(xt, w, off, gather_index=tokens, backend="torch"),
                     "dense_mm": lambda: x @ wd},
                dict.fromkeys(("grouped_mm", "dense_mm"), flops), [("grouped_mm", "dense_mm", "<=", 1.1)])


def grouped_fwd_bwd_case(routing: str, gen: torch.Generator) -> Case:
    x, w, wd, off = _grouped_inputs(routing, gen)
    xg, wg, wdg = (t.requires_grad_(True) for t in (x, w, wd))
    dy = torch.randn(x.shape[0], w.shape[2], generator=gen)

    def fwd_bwd_grouped():
        xg.grad = wg.grad = None
        grouped_mm(xg, wg, off, backend="torch").backward(dy)

    def fwd_bwd_dense():
        xg.grad = wdg.grad = None
        (xg @ wdg).backward(dy)

    flops = 6.0 * x.shape[0] * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": fwd_bwd_grouped, "dense_mm": fwd_bwd_dense},
                dict.fromkeys(("grouped_mm", "dense_mm"), flops), [("grouped_mm", "dense_mm", "<=", 1.4)])


def _shape(keys) -> str:
    return ",".join(f"{k}={CPU[v]}" for k, v in keys)


_G = (("M", "rows"), ("E", "experts"), ("K", "K"), ("N", "N"))
_L = (("T", "layer_tokens"), ("k", "layer_k"), ("E", "experts"), ("D", "K"), ("H", "N"))
for _r in ROUTINGS:
    register(f"grouped_fwd[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm", "torch._grouped_mm"),
             lambda gen, r=_r: grouped_fwd_case(r, gen))
    register(f"grouped_fwd_gather[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm"),
             lambda gen, r=_r: grouped_gather_case(r, gen))
    register(f"grouped_fwd_bwd[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm"),
             lambda gen, r=_r: grouped_fwd_bwd_case(r, gen))
    register(f"moe_layer_fwd[routing={_r},{_shape(_L)}]", ("moe_layer", "dense_mlp"),
             lambda gen, r=_r: layer_case(r, gen))
    register(f"moe_layer_fwd_bwd[routing={_r},{_shape(_L)}]", ("moe_layer", "dense_mlp"),  # not an issue target
             lambda gen, r=_r: layer_case(r, gen, backward=True))


def layer_case(routing: str, gen: torch.Generator, backward: bool = False) -> Case:
    """Routing + gather + grouped expert MLP + weighted combine vs a dense MLP of equal FLOPs (D -> k*H -> D)."""
    T, k, E, D = CPU["layer_tokens"], CPU["layer_k"], CPU["experts"], CPU["K"]
    H = CPU["N"]
    randn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x = randn(T, D)
    router = randn(D, E) / math.sqrt(D)
    bias = routing_bias(E, routing)
    moe_p = [randn(E, D, H) / math.sqrt(D), randn(E, H), randn(E, H, D) / math.sqrt(H), randn(E, D)]
    dense_p = [randn(D, k * H) / math.sqrt(D), randn(k * H), randn(k * H, D) / math.sqrt(H), randn(D)]
    dy = randn(T, D)
    if backward:
        for p in moe_p + dense_p + [router]:
            p.requires_grad_(True)

    def moe():
        plan = topk_route(x @ router + bias, k, backend="torch")
        out = kernels.moe_mlp(x, plan, *moe_p, backend="torch")
        if backward:
            for p in moe_p + [router]:
                p.grad = None
            out.backward(dy)

    def dense():
        w1, b1, w2, b2 = dense_p
        out = torch.addmm(b2, torch.relu(torch.addmm(b1, x, w1)), w2)
        if backward:
            for p in dense_p:
                p.grad = None
            out.backward(dy)

    flops = 4.0 * T * k * D * H * (3 if backward else 1)
    return Case("", {"moe_layer": moe, "dense_mlp": dense}, {"moe_layer": flops, "dense_mlp": flops},
                [("moe_layer", "dense_mlp", "<=", 1.4 if backward else 1.3)])


def route_case(gen: torch.Generator) -> Case:
    """topk_route on [8192, 64] logits against the grouped forward of the first case (balanced)."""
    c = CPU
    logits = torch.randn(c["route_tokens"], c["route_experts"], generator=gen)
    M, E, K, N = c["rows"], c["experts"], c["K"], c["N"]
    x, w = torch.randn(M, K, generator=gen), torch.randn(E, K, N, generator=gen)
    off = offsets_of(torch.arange(M) * E // M, E)
    return Case("",
                {"topk_route": lambda: topk_route(logits, c["route_k"], backend="torch"),
                 "grouped_fwd": lambda: grouped_mm(x, w, off, backend="torch")},
                {}, [("topk_route", "grouped_fwd", "<=", 0.1)])


def train_step_case(gen: torch.Generator) -> Case:
    """One SGD step of an MoE MLP layer (E = 16, k = 1): routed experts vs every expert on every sample."""
    c = CPU
    T, E, k, D, H = c["step_tokens"], c["step_experts"], c["step_k"], c["step_D"], c["step_H"]
    randn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x, target = randn(T, D), randn(T, D)
    params = [randn(D, E) / math.sqrt(D), randn(E, D, H) / math.sqrt(D), torch.zeros(E, H),
              randn(E, H, D) / math.sqrt(H), torch.zeros(E, D)]
    params = [p.requires_grad_(True) for p in params]

    def sgd(loss):
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 1e-3 * p.grad
                p.grad = None

    def routed():
        r, w1, b1, w2, b2 = params
        sgd(torch.nn.functional.mse_loss(moe_mlp_layer(x, r, w1, b1, w2, b2, k, backend="torch"), target))

    def every_expert():  # the seed code's way: all E experts on all T samples, mixed by the same top-k gates
        r, w1, b1, w2, b2 = params
        plan = topk_route(x @ r, k, backend="torch")
        gates = torch.zeros(T, E).scatter(1, plan.expert_ids, plan.weights)
        h = torch.relu(torch.einsum("td,edh->teh", x, w1) + b1)
        y = torch.einsum("teh,ehd->ted", h, w2) + b2
        sgd(torch.nn.functional.mse_loss(torch.einsum("te,ted->td", gates, y), target))

    return Case("",
                {"routed": routed, "every_expert": every_expert}, {},
                [("every_expert", "routed", ">=", 0.7 * E / k)])


register(f"topk_route[{_shape((('T', 'route_tokens'), ('E', 'route_experts'), ('k', 'route_k')))}]",
         ("topk_route", "grouped_fwd"), route_case)
register(f"train_step[{_shape((('T', 'step_tokens'), ('E', 'step_experts'), ('k', 'step_k'), ('D', 'step_D'), ('H', 'step_H')))}]",
         ("routed", "every_expert"), train_step_case)


# ---- timing ------------------------------------------------------------------------------------
def time_interleaved(fns: dict[str, Callable], rounds: int, warmup: int = 2, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per call of each fn, one call of each per round in a shuffled order, the first `warmup`
    rounds discarded. The order is shuffled because a call's place in the round matters: the same
    torch._grouped_mm call timed first or last in a round differs by up to 0.5% here (allocator and
    cache state left by its neighbour), a bias that a fixed or alternating order does not cancel."""
    times = {name: [] for name in fns}
    order = random.Random(seed)
    for r in range(warmup + rounds):
        for name in order.sample(list(fns), len(fns)):
            fn = fns[name]
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: list[float], den: list[float], op: str, target: float, *, resamples: int = 2000,
                 seed: int = 0) -> dict[str, object]:
    """The median of the per-round ratios num[i] / den[i] with a 95% bootstrap interval, and the verdict.

    Interleaved rounds pair each timing of the candidate with one of its baseline taken moments apart,
    so load from other processes cancels in the ratio. verdict: "yes" when the whole interval meets the
    target, "NO" when none of it does, "tie" when the target lies inside the interval (the two are
    indistinguishable at this noise: e.g. the same MKL products called two ways).
    """
    if len(num) != len(den) or not num:
        raise ValueError(f"num and den must be paired, non-empty timings, got {len(num)} and {len(den)}")
    if op not in ("<=", ">="):
        raise ValueError(f"op must be '<=' or '>=', got {op!r}")
    ratios = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(resamples, ratios.size), replace=True), axis=1)
    lo, hi = (float(q) for q in np.quantile(medians, [0.025, 0.975]))
    meets = (lambda r: r <= target) if op == "<=" else (lambda r: r >= target)
    verdict = "yes" if meets(lo) and meets(hi) else "NO" if not meets(lo) and not meets(hi) else "tie"
    return dict(ratio=float(np.median(ratios)), ratio_lo=lo, ratio_hi=hi, verdict=verdict)


def quantiles(ts: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ts, n=5, method="inclusive") if len(ts) > 1 else [ts[0]] * 4
    return dict(median=statistics.median(ts), p20=q[0], p80=q[3])


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
        from triton.testing import do_bench

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
    import triton
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(), git_commit=commit,
                torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
                machine=platform.machine(), processor=platform.processor(), threads=torch.get_num_threads(),
                device=args.device, rounds=args.rounds, seed=args.seed,
                gpu=torch.cuda.get_device_name() if args.device == "cuda" else None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__.split("\n")[0])
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
