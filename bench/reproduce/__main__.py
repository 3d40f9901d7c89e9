"""``python -m bench.reproduce``: see bench.reproduce.cli."""
from bench.command_exit import run_main
from bench.reproduce.cli import main

run_main(main)
