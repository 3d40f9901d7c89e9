"""Speed benchmarks: every figure a ratio to a baseline timed in the same run.

    timing        interleaved rounds, paired ratios with a bootstrap interval, quantiles
    kernel_cases  the kernel benchmark's cases (a registry of builders by canonical name)
    kernel_bench  ``python -m bench.speed.kernel_bench``: the MoE kernels on the CPU or a GPU
"""
