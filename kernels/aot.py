"""python -m kernels.aot: compile every kernel ahead of time for Hopper (sm_90) and Ampere (sm_80), no GPU.

Each shipped configuration (the tile sizes the launchers pick, per dtype, weight layout and variant)
goes through `triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))` with the argument
specialisation a real launch would get (ints equal to 1 become constants, 16-divisible ints and
pointers carry `tt.divisibility`). Triton's bundled `cuobjdump` reads registers, stack (spills) and
local memory from the cubin; shared memory comes from the compile metadata and is checked against the
per-block limit; the SASS is searched for matrix instructions (HGMMA on sm_90, HMMA on sm_80).
Disassembling is most of the cost (about 0.3 s of CPU per cubin, nearly all of it cuobjdump starting up, against
1.5 ms for the resource report), so a caller that reads the matrix-instruction count of only some configurations
says which (`inspect_all(..., sass=...)`); the others' count is None.

Letters as in the kernel files: E experts, K/N feature widths, k slots per token.

    python -m kernels.aot [--target sm_90|sm_80] [--only SUBSTR] [--quick]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from . import combine, grouped, plan, routing
from ._common import HAS_TRITON, interpreting

SHARED_LIMIT = {"sm_90": 232_448, "sm_80": 166_912}  # bytes per block (H100: 227 KiB, A100: 163 KiB)
WIDTH = 4096  # K = N of the representative launch: every stride a multiple of 16, as for real models


@dataclass
class Spec:
    """One kernel configuration: every kernel argument by name (ints, '*dtype' pointers, constexpr values)."""

    name: str
    kernel: object
    args: dict
    options: dict = field(default_factory=dict)


@dataclass
class Result:
    name: str
    target: str
    regs: int
    stack: int
    local: int
    shared: int
    mma: int | None  # matrix instructions in the SASS; None: not disassembled

    @property
    def spills(self) -> bool:
        return self.stack > 0 or self.local > 0

    @property
    def shared_ok(self) -> bool:
        return self.shared <= SHARED_LIMIT[self.target]


# ---- the shipped configurations ---------------------------------------------------------------
def _ptr(dtype: str) -> str:
    return "*" + {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "int64": "i64"}[dtype]


def grouped_specs(quick: bool = False) -> list[Spec]:
    """Forward (and dX: the same kernel on transposed weights), dW and the scatter-add, per dtype and tile config."""
    import torch

    specs = []
    K = N = WIDTH
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        dt = str(dtype).replace("torch.", "")
        configs = {(c["BLOCK_M"], c["BLOCK_N"], c["BLOCK_K"]): c for c in
                   (grouped.mm_config(64, N, K, dtype), grouped.mm_config(1 << 20, N, K, dtype))}
        for cfg in configs.values():
            launch = {k: v for k, v in cfg.items() if k.startswith("num_")}
            meta = {k: v for k, v in cfg.items() if not k.startswith("num_")}
            tiles = "x".join(str(meta[b]) for b in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
            for layout in ("kn", "nk"):  # w [E, K, N] row-major, or a transposed view (nn.Linear weights, dX)
                strides_w = (K * N, N, 1) if layout == "kn" else (K * N, 1, K)
                variants = [(True, True)] if quick else [(False, False), (True, False), (False, True), (True, True)]
                for gather, bias in variants:
                    args = dict(x_ptr=_ptr(dt), w_ptr=_ptr(dt), bias_ptr=_ptr(dt), out_ptr=_ptr(dt),
                                gather_ptr="*i64", offsets_ptr="*i64", tile_expert_ptr="*i64", tile_row_ptr="*i64",
                                N=N, K=K, stride_xm=K, stride_xk=1, stride_we=strides_w[0], stride_wk=strides_w[1],
                                stride_wn=strides_w[2], stride_be=N, stride_bn=1, stride_om=N, stride_on=1,
                                GATHER=gather, HAS_BIAS=bias, PRECISION=grouped._precision(dtype), DOT_F32=False, **meta)
                    specs.append(Spec(f"grouped_mm[{dt},{tiles},w={layout},gather={int(gather)},bias={int(bias)}]",
                                      grouped._grouped_mm_kernel, args, launch))
        dw_configs = {tuple(c.items()): c for c in (grouped.dw_config(dtype, 64, 64), grouped.dw_config(dtype, K, N))}
        for dcfg in dw_configs.values():
            dmeta = {k: v for k, v in dcfg.items() if not k.startswith("num_")}
            tiles = "x".join(str(dmeta[b]) for b in ("BLOCK_M", "BLOCK_K", "BLOCK_N"))
            for gather in ((True,) if quick else (False, True)):
                args = dict(x_ptr=_ptr(dt), dy_ptr=_ptr(dt), dw_ptr=_ptr(dt), gather_ptr="*i64", offsets_ptr="*i64",
                            K=K, N=N, stride_xm=K, stride_xk=1, stride_dym=N, stride_dyn=1, stride_dwe=K * N,
                            stride_dwk=N, stride_dwn=1, GATHER=gather, PRECISION=grouped._precision(dtype), DOT_F32=False,
                            **dmeta)
                specs.append(Spec(f"grouped_dw[{dt},{tiles},gather={int(gather)}]", grouped._grouped_dw_kernel,
                                  args, {k: v for k, v in dcfg.items() if k.startswith("num_")}))
        args = dict(src_ptr=_ptr(dt), perm_ptr="*i64", seg_offsets_ptr="*i64", out_ptr=_ptr(dt), K=K,
                    stride_sm=K, stride_sk=1, stride_om=K, stride_ok=1, BLOCK_K=grouped.SEGSUM_BLOCK_K)
        specs.append(Spec(f"segment_sum[{dt}]", grouped._segment_sum_kernel, args, dict(num_warps=4)))
    return specs


def routing_specs(quick: bool = False) -> list[Spec]:
    """Top-k softmax for representative (E, k), and the plan's histogram and stable scatter."""
    specs = []
    pairs = [(8, 2), (64, 2), (256, 256)] if quick else [(1, 1), (8, 1), (8, 2), (16, 4), (64, 2), (64, 8),
                                                        (128, 8), (256, 8), (256, 256)]
    for E, k in pairs:
        cfg = routing.topk_config(E, k)
        for dt in ("float32",) if quick else ("float32", "bfloat16", "float16"):
            args = dict(logits_ptr=_ptr(dt), ids_ptr="*i64", w_ptr="*fp32", T=65536, E=E, stride_lt=E, stride_le=1,
                        RENORM=True, **{k_: v for k_, v in cfg.items() if k_ != "num_warps"})
            specs.append(Spec(f"topk_softmax[{dt},E={E},k={k}]", routing._topk_softmax_kernel, args,
                              dict(num_warps=cfg["num_warps"])))
    for E in (1, 8, 64, 256):
        cfg = plan.plan_count_config(E)
        args = dict(ids_ptr="*i64", blk_counts_ptr="*i64", S=65536, E=E,
                    **{k_: v for k_, v in cfg.items() if k_ != "num_warps"})
        specs.append(Spec(f"plan_count[E={E}]", plan._plan_count_kernel, args, dict(num_warps=cfg["num_warps"])))
    args = dict(ids_ptr="*i64", base_ptr="*i64", order_ptr="*i64", S=65536, E=64, BLOCK=plan.PLAN_BLOCK)
    specs.append(Spec("plan_scatter", plan._plan_scatter_kernel, args, dict(num_warps=4)))
    return specs


def combine_specs(quick: bool = False) -> list[Spec]:
    """The weighted combine, forward and backward, per dtype of the expert outputs."""
    specs = []
    N = WIDTH
    for dt in ("bfloat16",) if quick else ("bfloat16", "float16", "float32"):
        args = dict(y_ptr=_ptr(dt), w_ptr="*fp32", rows_ptr="*i64", out_ptr=_ptr(dt), N=N, KSLOTS=2,
                    stride_ym=N, stride_yn=1, stride_om=N, stride_on=1, BLOCK_N=combine.COMBINE_BLOCK_N)
        specs.append(Spec(f"combine[{dt}]", combine._combine_kernel, args, dict(num_warps=4)))
        args = dict(dout_ptr=_ptr(dt), y_ptr=_ptr(dt), w_ptr="*fp32", order_ptr="*i64", dy_ptr=_ptr(dt),
                    dw_ptr="*fp32", N=N, KSLOTS=2, stride_om=N, stride_on=1, stride_ym=N, stride_yn=1,
                    stride_dym=N, stride_dyn=1, BLOCK_N=combine.COMBINE_BLOCK_N)
        specs.append(Spec(f"combine_bwd[{dt}]", combine._combine_bwd_kernel, args, dict(num_warps=4)))
    return specs


def all_specs(quick: bool = False) -> list[Spec]:
    return grouped_specs(quick) + routing_specs(quick) + combine_specs(quick)


# ---- compile and inspect ----------------------------------------------------------------------
def specialise(spec: Spec):
    """(signature, constexprs, attrs) as a real launch with these argument values would produce."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend

    names = [p.name for p in spec.kernel.params]
    unknown, missing = set(spec.args) - set(names), set(names) - set(spec.args)
    if unknown or missing:
        raise ValueError(f"{spec.name}: unknown arguments {sorted(unknown)}, missing {sorted(missing)}")
    signature, constexprs, attrs = {}, {}, {}
    for i, p in enumerate(spec.kernel.params):
        value = spec.args[p.name]
        if p.is_constexpr:
            signature[p.name], constexprs[p.name] = "constexpr", value
        elif isinstance(value, str):  # a pointer: torch allocations are 16-byte aligned
            signature[p.name], attrs[(i,)] = value, [["tt.divisibility", 16]]
        else:
            ty, attr = native_specialize_impl(BaseBackend, value, False, True, True)
            signature[p.name] = ty
            if ty == "constexpr":
                constexprs[p.name] = attr
            elif attr == "D":
                attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def cuobjdump() -> str:
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def compile_spec(spec: Spec, target: str, sass: bool = True) -> Result:
    """Compile one configuration for one target; `sass=False` skips the disassembly (mma is then None)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature, constexprs, attrs = specialise(spec)
    cc = int(target.split("_")[1])
    k = triton.compile(ASTSource(fn=spec.kernel, signature=signature, constexprs=constexprs, attrs=attrs),
                       target=GPUTarget("cuda", cc, 32), options=dict(spec.options))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(k.asm["cubin"])
        f.flush()
        usage = subprocess.run([cuobjdump(), "--dump-resource-usage", f.name], capture_output=True, text=True,
                               check=True).stdout
        mma = None
        if sass:
            code = subprocess.run([cuobjdump(), "--dump-sass", f.name], capture_output=True, text=True,
                                  check=True).stdout
            mma = len(re.findall(r"\bHGMMA\b" if cc >= 90 else r"\bHMMA\b", code))
    field_ = lambda key: int(re.search(rf"\b{key}:(\d+)", usage).group(1))  # noqa: E731
    return Result(spec.name, target, field_("REG"), field_("STACK"), field_("LOCAL"),
                  k.metadata.shared + field_("SHARED"), mma)


def inspect_all(targets=("sm_90", "sm_80"), only: str | None = None, quick: bool = False,
                sass=None) -> list[Result]:
    """Compile every configuration (whose name contains `only`) for every target.

    `sass(name, target) -> bool` picks the results whose matrix instructions are counted; default: all."""
    results = []
    for spec in all_specs(quick):
        if only and only not in spec.name:
            continue
        for target in targets:
            results.append(compile_spec(spec, target, sass=sass is None or bool(sass(spec.name, target))))
    return results


def print_table(results: list[Result], file=sys.stdout) -> None:
    print(f"{'kernel configuration':<58} {'target':<6} {'regs':>5} {'stack':>6} {'local':>6} "
          f"{'shared B':>9} {'/limit':>7} {'mma':>5}  verdict", file=file)
    for r in results:
        verdict = "ok" if not r.spills and r.shared_ok else ("SPILLS " if r.spills else "") + (
            "" if r.shared_ok else "SHARED-OVERFLOW")
        print(f"{r.name:<58} {r.target:<6} {r.regs:>5} {r.stack:>6} {r.local:>6} {r.shared:>9} "
              f"{r.shared / SHARED_LIMIT[r.target]:>6.0%} {'-' if r.mma is None else r.mma:>5}  {verdict}", file=file)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kernels.aot", description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=tuple(SHARED_LIMIT), action="append", default=None,
                   help="compile for this target (repeatable; default: sm_90 and sm_80)")
    p.add_argument("--only", default=None, help="only configurations whose name contains this")
    p.add_argument("--quick", action="store_true", help="one variant per kernel, dtype and tile config")
    args = p.parse_args(argv)
    if not HAS_TRITON:
        p.error("Triton is not installed")
    if interpreting():
        p.error("TRITON_INTERPRET=1 is set: ahead-of-time compilation needs the real compiler; unset it")
    results = inspect_all(tuple(args.target) if args.target is not None else tuple(SHARED_LIMIT), args.only,
                          args.quick)
    print_table(results)
    bad = [r for r in results if r.spills or not r.shared_ok]
    print(f"\n{len(results)} compiled, {len(bad)} with spills or shared-memory overflow")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
