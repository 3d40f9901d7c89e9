"""Speed benchmarks: every figure a ratio to a baseline timed in the same run.

    timing        interleaved rounds, paired ratios with a bootstrap interval, quantiles
    kernel_cases  the kernel benchmark's cases (a registry of builders by canonical name)
    kernel_bench  ``python -m bench.speed.kernel_bench``: the MoE kernels on the CPU or a GPU
    train_cases   the training benchmark's shapes and the bare torch loop each is timed against
    train_speed   ``python -m bench.speed.train_speed`` (or ``bench.train_speed``): the training loop (moe.training.loop) against the bare loop
    first_batch   its start-up probe: a fresh process up to a run's first batch
    lm_speed      the language model's shape of train_speed and its bare torch loop
    lm_check      ``python -m bench.speed.lm_check``: the language model's step, Triton against torch, and its speed
    same_records  ``python -m bench.speed.same_records``: do two versions of the code train the same numbers?
    sweep_speed   ``python -m bench.speed.sweep_speed NAME``: a sweep with stacked seeds against unstacked
    gpu_check     ``python -m bench.speed.gpu_check``: everything GPU-specific in one command, into one folder
"""
