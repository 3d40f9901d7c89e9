"""``python -m bench.sweep``: see bench.sweep.cli."""
from bench.command_exit import run_main
from bench.sweep.cli import main

run_main(main)
