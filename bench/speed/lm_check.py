"""python -m bench.speed.lm_check: the language model's training step on one device at thousands of tokens per batch,
checked and timed (the GPU check's language-model step; it runs on the CPU too).

1. ``backends``: one step of the language model of the ``text_lm`` defaults (``moe.lm``: 2 blocks of width 64, both
   feed-forward layers mixtures of 8 ``mlp`` experts, top-2, the Switch balance loss) on a batch of ``windows``
   windows of 128 bytes (default 64: 8,192 tokens), with the routing and the grouped expert products of the Triton
   kernels against those of the torch fallback (``kernels``; environment variable ``MOE_KERNELS``), on the same device,
   from the same weights: the experts each token is routed to (the share of tokens whose experts differ: 0 expected),
   the output logits, the loss and every parameter's gradient (largest difference over the largest magnitude of the
   torch fallback's; fp32, TF32 off). Passes when every relative difference is at most ``TOLERANCE`` and no routing
   differs. On the CPU the Triton kernels need their interpreter (``TRITON_INTERPRET=1``; slow: use small sizes).
2. ``speed``: tokens/s of the language model's training step (``moe.training.lm_loop``: forward, balance loss,
   backward, clipping, Adam, through the device's default kernels) against a bare torch loop of the same model
   (``bench.speed.lm_speed.BareLM``) on the same device, ``steps`` batches per timed call, in interleaved rounds:
   the median per-round ratio with its 95% bootstrap interval against the target 0.8.

    python -m bench.speed.lm_check [--device cpu|cuda] [--windows 64] [--steps 4] [--rounds 5] [--threads 1]
        [--skip-speed] [--out FILE.json]

Prints one line per part and writes them as JSON (default ``results/lm_check_<device>.json``). Exit 0 when the
backends agree, 1 when they do not, 2 (one ``error:`` line, nothing run) for a bad option or an absent device.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

import torch

from bench.speed.kernel_bench import meta
from bench.speed.lm_speed import LM_FIELDS, LM_SHAPE, lm_fns, small_text
from bench.speed.timing import paired_ratio, quantiles, time_interleaved
from kernels import backend_problem
from moe.config import ConfigError
from moe.lm import build_lm
from moe.records.record import write_json_atomic
from moe.training.lm_loop import batch_of, lm_loss, on_device, regularisers, window_starts
from moe.validate import from_dict, resolve_device

TOLERANCE = 1e-4  # fp32 with TF32 off: the Triton kernels and the torch fallback sum in different orders
MAX_WINDOWS = 2048  # training windows of the benchmark's text (bench.speed.lm_speed.small_text: 2,121)
TARGET = 0.8  # tokens/s of the language model's step over the bare loop's, as for the other shapes


@contextlib.contextmanager
def kernels_backend(name: str):
    """The kernels' backend (env MOE_KERNELS) set to ``name`` inside the block, restored after."""
    before = os.environ.get("MOE_KERNELS")
    os.environ["MOE_KERNELS"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MOE_KERNELS", None)
        else:
            os.environ["MOE_KERNELS"] = before


@contextlib.contextmanager
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def one_step(model, x: torch.Tensor, y: torch.Tensor, terms) -> dict[str, Any]:
    """The routing, logits, loss and gradients of one training step (no optimizer step), on the CPU."""
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        out = model(x)
    total, _ = lm_loss(model, x, y, terms)
    total.backward()
    return {"experts": [r.plan.expert_ids.cpu() for r in out.routings if r is not None], "logits": out.logits.cpu(),
            "loss": total.detach().cpu(), "grads": {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}}


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest |a - b| over the largest |b| (at least 1e-12)."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))


def backends(device: torch.device, windows: int, threads: int = 1) -> dict[str, Any]:
    """Part 1: one step with the Triton kernels against the torch fallback, same weights, same batch."""
    cfg = from_dict({**LM_FIELDS, "threads": threads, "device": device.type})
    data = small_text()
    torch.manual_seed(cfg.seed)
    model = build_lm(cfg, data.vocab_size).to(device)
    starts = window_starts(len(data.train), cfg.context)[:windows]
    x, y = batch_of(on_device(data.train, device), starts, cfg.context)
    terms = regularisers(cfg)
    with no_tf32():
        steps = {}
        for name in ("torch", "triton"):
            with kernels_backend(name):
                steps[name] = one_step(model, x, y, terms)
    ref, tri = steps["torch"], steps["triton"]
    routed_apart = max(float((a != b).any(1).double().mean()) for a, b in zip(tri["experts"], ref["experts"]))
    grads = {n: relative_gap(tri["grads"][n], g) for n, g in ref["grads"].items()}
    worst = max(grads, key=grads.get)
    gaps = {"logits": relative_gap(tri["logits"], ref["logits"]), "loss": relative_gap(tri["loss"], ref["loss"]),
            "gradients": grads[worst]}
    ok = routed_apart == 0 and set(tri["grads"]) == set(ref["grads"]) and all(g <= TOLERANCE for g in gaps.values())
    return {"part": "backends", "shape": LM_SHAPE, "device": str(device), "tokens": int(x.numel()),
            "routed_apart": routed_apart, **{f"{k}_gap": v for k, v in gaps.items()}, "worst_gradient": worst,
            "n_gradients": len(grads), "tolerance": TOLERANCE, "ok": bool(ok)}


def speed(device: torch.device, windows: int, steps: int, rounds: int, threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Part 2: tokens/s of the language model's step against the bare loop's, ``steps`` batches of ``windows``."""
    fns, sizes = lm_fns(threads, device, windows=windows * steps, batch_size=windows)
    if device.type == "cuda":
        fns = {k: (lambda f=f: (f(), torch.cuda.synchronize())) for k, f in fns.items()}
    times = time_interleaved(fns, rounds, warmup=1, seed=seed)
    med = {k: quantiles(v)["median"] for k, v in times.items()}
    ratio = paired_ratio(times["bare_train"], times["moe_train"], ">=", TARGET, seed=seed)  # time ratio = tokens/s ratio
    return {"part": "speed", "shape": LM_SHAPE, "device": str(device), "tokens_per_batch": windows * 128,
            "steps": steps, "rounds": rounds, "metric": "tokens/s: moe_train / bare_train", **ratio,
            "target": f">= {TARGET}", "moe_tokens_s": sizes["tokens"] / med["moe_train"],
            "bare_tokens_s": sizes["tokens"] / med["bare_train"]}


def line(row: dict[str, Any]) -> str:
    """One line of the summary for a part."""
    if row["part"] == "backends":
        verdict = "ok" if row["ok"] else "DIFFER"
        return (f"backends {verdict}: Triton against torch, {row['tokens']} tokens on {row['device']}: routing differs for "
                f"{row['routed_apart']:.2%} of tokens; relative gaps logits {row['logits_gap']:.2g}, loss "
                f"{row['loss_gap']:.2g}, gradients {row['gradients_gap']:.2g} ({row['worst_gradient']}; "
                f"{row['n_gradients']} compared; tolerance {row['tolerance']:g})")
    return (f"speed: tokens/s of the MoE language model's step over a bare loop's, {row['tokens_per_batch']} tokens per "
            f"batch on {row['device']}: {row['ratio']:.3g} [{row['ratio_lo']:.3g}-{row['ratio_hi']:.3g}] (target "
            f"{row['target']}: {row['verdict']}); {row['moe_tokens_s']:,.0f} against {row['bare_tokens_s']:,.0f} tokens/s")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.speed.lm_check", description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="cpu (default) or cuda")
    p.add_argument("--windows", type=int, default=None, help="windows of 128 bytes per batch, >= 1 (default 64)")
    p.add_argument("--steps", type=int, default=None, help="batches per timed call, >= 1 (default 4)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds, >= 2 (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads, >= 1 (default 1)")
    p.add_argument("--skip-speed", action="store_true", help="only compare the backends")
    p.add_argument("--out", default=None, help="JSON file (default results/lm_check_<device>.json)")
    args = p.parse_args(argv)
    args.device = args.device or "cpu"
    args.windows = 64 if args.windows is None else args.windows
    args.steps = 4 if args.steps is None else args.steps
    args.rounds = 5 if args.rounds is None else args.rounds
    args.threads = 1 if args.threads is None else args.threads
    args.seed = 0  # the rounds' order and the interval's resampling
    for name, low in (("windows", 1), ("steps", 1), ("rounds", 2), ("threads", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name}: must be >= {low}, got {getattr(args, name)}")
    if args.windows * args.steps > MAX_WINDOWS:
        p.error(f"--windows x --steps: at most {MAX_WINDOWS} windows in all (the benchmark's text), got "
                f"{args.windows * args.steps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if backend_problem("triton", args.device) is not None:
        p.error(f"the Triton kernels cannot run on {args.device} tensors here: they need Triton, and on the CPU its "
                "interpreter (TRITON_INTERPRET=1; slow: use --windows 1); or use --device cuda")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ConfigError as err:
        print(f"error: {err.problems[0]}", file=sys.stderr)
        return 2
    rows = [backends(device, args.windows, args.threads)]
    print(line(rows[-1]), flush=True)
    if not args.skip_speed:
        rows.append(speed(device, args.windows, args.steps, args.rounds, args.threads))
        print(line(rows[-1]), flush=True)
    out = args.out if args.out is not None else os.path.join("results", f"lm_check_{args.device}.json")
    write_json_atomic(out, {"meta": meta(args), "rows": rows})
    print(f"wrote {out}")
    return 0 if rows[0]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
