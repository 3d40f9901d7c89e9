"""``python -m bench.table``: see bench.table.cli."""
from bench.entry import run_main
from bench.table.cli import main

run_main(main)
