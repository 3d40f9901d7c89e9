"""``python -m bench.sweep``: see bench.sweep.cli."""
from bench.command_exit import run_main
from bench.sweep.cli import main
from bench.sweep.cluster import reap_children_when_gone

reap_children_when_gone()  # all this command starts (its Ray, its figure workers) ends with it, even after a SIGKILL
run_main(main)
