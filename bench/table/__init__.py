"""Tables and reports of a sweep directory: runs.csv, table.md/.tex, pareto.csv, tradeoff.png, heat-maps.

    runs            records -> runs.csv rows (seed stability, busiest share)
    configurations  one row per configuration (mean +- std over seeds) as Markdown and LaTeX
    front           the Pareto sets of accuracy against each interpretability score
    tradeoff        tradeoff.png
    tables          ``build(dir)``: all of the above written into a sweep directory (bench.sweep.layout)
    cli             ``python -m bench.table DIR``

``bench.table.build(dir)`` returns the DataFrames behind table.md and pareto.csv.
"""
from bench.table.tables import build, load_runs
from bench.table.configurations import latex, markdown, summary
from bench.table.front import pareto, pareto_front
from bench.table.runs import busiest_share, record_row, runs_frame
from bench.table.cli import main

__all__ = ["build", "load_runs", "latex", "markdown", "summary", "pareto", "pareto_front", "busiest_share",
           "record_row", "runs_frame", "main"]
