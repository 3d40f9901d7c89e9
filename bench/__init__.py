"""bench: the applications built on ``moe`` (imports run one way: kernels <- moe <- bench).

Layers inside bench (each imports only those before it; a package's ``cli`` and ``__main__``, its entry
points, may call the pipeline):

    bench.sweep.spec, bench.sweep.layout   sweep files, and the one owner of a sweep directory (records, sweep.json,
                                           runs.csv): every other part reads a sweep directory through it
    bench.sweep      running a sweep's trials under Ray Tune (``bench.sweep.runner.run_trials``)
    bench.table      runs.csv and the trade-off tables and plots of a sweep directory (``python -m bench.table DIR``)
    bench.report     report.html of a sweep or a reproduction (``python -m bench.report DIR``)
    bench.compare    two sweep directories side by side (``python -m bench.compare A B``)
    bench.figures    figures from a sweep's runs.csv
    bench.pipeline   a sweep's trials, then its tables, then its report (``run_sweep``; ``python -m bench.sweep``)
    bench.reproduce  the seed papers' claims judged on sweeps, REPRODUCTION.md (``python -m bench.reproduce``)
    bench.speed      speed benchmarks (``python -m bench.speed.kernel_bench``)

From Python: ``bench.pipeline.run_sweep(name, out=None, address=None, **overrides)`` returns the runs table;
``bench.table.tables.build(dir)`` returns the DataFrames behind table.md and pareto.csv. Every package
``__init__`` imports nothing. Ray is imported only inside this package, and lazily: loading or listing sweeps
never starts it.
"""
