"""bench: the applications built on ``moe`` (imports run one way: kernels <- moe <- bench).

    bench.sweep      Ray Tune sweeps of ``sweeps/NAME.yaml`` (``python -m bench.sweep``); ``bench.sweep.layout``
                     owns the layout of a sweep directory, which every other part reads through it
    bench.table      trade-off tables and plots of a sweep directory (``python -m bench.table DIR``)
    bench.reproduce  the seed papers' claims judged on sweeps, REPRODUCTION.md (``python -m bench.reproduce``)
    bench.speed      speed benchmarks (``python -m bench.speed.kernel_bench``)

From Python: ``bench.sweep.runner.run(name, out=None, address=None, **overrides)`` returns the runs table;
``bench.table.build(dir)`` returns the DataFrames behind table.md and pareto.csv. Ray is imported only
inside this package, and lazily: loading or listing sweeps never starts it.
"""
