"""``python -m bench.table``: see bench.table.cli."""
from bench.command_exit import run_main
from bench.table.cli import main

run_main(main)
