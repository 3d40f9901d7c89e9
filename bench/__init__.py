"""bench: Ray Tune sweeps over moe configurations and their accuracy-interpretability trade-off tables.

``python -m bench.sweep [NAME]`` runs ``sweeps/NAME.yaml``; ``python -m bench.table DIR`` rebuilds the
tables of a sweep directory. From Python: ``bench.sweep.run(name, out=None, address=None, **overrides)``
returns the runs table; ``bench.table.build(dir)`` returns the DataFrames behind table.md and pareto.csv.
Ray is imported only inside this package (and lazily: loading or listing sweeps never starts it).
"""
