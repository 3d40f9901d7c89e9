"""Tables and reports of a sweep directory: runs.csv, table.md/.tex, pareto.csv, tradeoff.png, heat-maps.

    runs            records -> runs.csv rows (seed stability, busiest share)
    configurations  one row per configuration (mean +- std over seeds) as Markdown and LaTeX
    front           the Pareto sets of accuracy against each interpretability score
    tradeoff        tradeoff.png
    saturation      router saturation curves; vs_experts: scores against the expert count
    tables          ``build(dir)``: all of the above written into a sweep directory (bench.sweep.layout)
    cli             ``python -m bench.table DIR``

``bench.table.tables.build(dir)`` returns the DataFrames behind table.md and pareto.csv. This file imports nothing.
"""
