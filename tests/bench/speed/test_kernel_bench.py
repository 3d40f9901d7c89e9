"""The `python -m bench.speed.kernel_bench` CPU cases as pytest-benchmark tests (skipped by default: --benchmark-skip).

    python -m pytest tests/bench/speed/test_kernel_bench.py --benchmark-only
"""
import pytest
import torch

from bench.speed import kernel_bench, kernel_cases, timing

PAIRS = [(case, fn) for case, (_, fns) in kernel_cases.REGISTRY.items() for fn in fns]


@pytest.fixture(scope="module")
def cases():
    built = {}

    def get(name):
        if name not in built:
            built[name] = kernel_cases.build(name, torch.Generator().manual_seed(0))
        return built[name]

    return get


@pytest.mark.parametrize("case,fn", PAIRS, ids=[f"{c}:{f}" for c, f in PAIRS])
def test_bench_cpu(benchmark, cases, case, fn):
    benchmark.group = case
    benchmark.extra_info["case"] = case
    benchmark(cases(case).fns[fn])


def test_registry_is_consistent():
    """Every registered case builds with exactly the functions it declares and checks only those."""
    assert len(PAIRS) == len(set(PAIRS))
    with pytest.raises(ValueError, match="did you mean"):
        kernel_cases.build("grouped_fwd[routing=balance,M=8192,E=8,K=512,N=512]")
    for name, (_, fns) in kernel_cases.REGISTRY.items():
        if name.startswith(("grouped_fwd[", "topk_route")):  # cheap to build; the others follow the same pattern
            case = kernel_cases.build(name)
            assert tuple(case.fns) == fns
            assert all(num in fns and den in fns for num, den, _, _ in case.checks)


def test_paired_ratio_verdicts():
    den = [0.050, 0.052, 0.049, 0.061, 0.050, 0.055, 0.048]  # a loaded machine: the baseline itself varies
    exact = timing.paired_ratio([1.2 * d for d in den], den, "<=", 1.1)
    assert exact["ratio"] == pytest.approx(1.2) and exact["ratio_lo"] == pytest.approx(1.2)
    assert exact["ratio_hi"] == pytest.approx(1.2) and exact["verdict"] == "NO"
    assert timing.paired_ratio([1.2 * d for d in den], den, "<=", 1.3)["verdict"] == "yes"
    assert timing.paired_ratio([1.2 * d for d in den], den, ">=", 1.0)["verdict"] == "yes"
    # the same work timed twice: per-round ratios scatter on both sides of 1
    wobble = [1.004, 0.997, 1.001, 0.995, 1.006, 0.999, 1.002]
    same = timing.paired_ratio([w * d for w, d in zip(wobble, den)], den, "<=", 1.0)
    assert same["ratio"] == pytest.approx(1.001) and same["ratio_lo"] < 1.0 < same["ratio_hi"]
    assert same["verdict"] == "tie"
    assert timing.paired_ratio([w * d for w, d in zip(wobble, den)], den, "<=", 1.1)["verdict"] == "yes"
    with pytest.raises(ValueError, match="paired"):
        timing.paired_ratio([1.0, 2.0], [1.0], "<=", 1.0)
    with pytest.raises(ValueError, match="op"):
        timing.paired_ratio([1.0], [1.0], "<", 1.0)


@pytest.mark.interp
def test_gpu_section_off_gpu(capsys):
    """The `--device cuda` code path (no GPU here): our Triton kernel under the interpreter, torch._grouped_mm
    and the dense matmul on the CPU, with a do_bench stand-in that runs each function once and returns
    made-up times, so that the ratios, the bf16 target and the table can be checked."""
    import argparse

    from kernels._common import interpreting

    if not interpreting():
        pytest.skip("runs in the interpreter subprocess (test_kernels_interpreter.py)")
    times = iter([2.0, 1.0, 0.5, 7.0,    # bf16: ours 2 ms, torch._grouped_mm 1 ms (ours at 0.5x: missed)
                  1.0, 0.9, 0.5, 3.0])   # fp32: ours 1 ms, torch._grouped_mm 0.9 ms (no target in fp32)
    ran = []

    def fake_bench(fn):
        ran.append(fn())
        t = next(times)
        return [t, 0.9 * t, 1.1 * t]

    shapes = [(64, 2, 32, 16)]
    rows = kernel_bench.run_cuda(argparse.Namespace(only=None, seed=0), device="cpu", shapes=shapes,
                       dtypes=(torch.bfloat16, torch.float32), bench=fake_bench)
    assert len(ran) == 8 and [r["metric"] for r in rows[:4]] == [
        "grouped_mm[triton]", "torch._grouped_mm", "dense_mm", "grouped_mm[triton] fwd+bwd"]
    bf16, fp32 = rows[:4], rows[4:]
    assert bf16[1]["ratio"] == pytest.approx(0.5) and bf16[1]["target"] == ">= 0.8" and bf16[1]["ok"] is False
    assert fp32[1]["ratio"] == pytest.approx(0.9) and fp32[1]["target"] == "" and fp32[1]["ok"] is None
    assert bf16[0]["tflops"] == pytest.approx(2 * 64 * 32 * 16 / 2.0 / 1e9)
    assert bf16[3]["tflops"] == pytest.approx(3 * 2 * 64 * 32 * 16 / 7.0 / 1e9)
    assert bf16[0]["max_abs_err"] < 0.05 and fp32[0]["max_abs_err"] < 1e-5  # checked before timing
    kernel_bench.print_table(rows, "cuda")
    out = capsys.readouterr().out
    assert "gpu_grouped_fwd[dtype=bfloat16,M=64,E=2,K=32,N=16]" in out and " NO " in out
