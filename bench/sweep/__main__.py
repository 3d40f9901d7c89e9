"""``python -m bench.sweep``: see bench.sweep.cli (a run) and bench.sweep.command (its arguments, ``--list``,
``--dry-run``).

A command line that runs trials starts Ray first, in the background (``bench.sweep.early``): Ray's
processes start while the run's modules import (torch, pandas, matplotlib, the tables and the report) and the
sweep is prepared. ``--list``, ``--dry-run`` and ``--help`` start no Ray and import neither pandas nor matplotlib.
"""
import sys

from bench.command_exit import exit_now, run_main
from bench.sweep import cluster, early

ARGV = sys.argv[1:]
REQUEST = early.ray_request(ARGV)  # (address, verbose) of a run, read before anything heavy is imported
if REQUEST is not None and early.passes_light_checks(ARGV):  # (bad input: its error at once, no Ray to wait for)
    cluster.reap_children_when_gone()  # all this command starts (its Ray, its figure workers) ends with it, even after a SIGKILL
    early.start_early(*REQUEST)
STATUS: int | str | None = 0
try:
    from bench.sweep import command

    ARGS = command.parser().parse_args(ARGV)  # --help, a bad flag: argparse's message and exit status
    if not command.runs_trials(ARGS):
        run_main(lambda: command.without_trials(ARGS))

    from bench.sweep import cli  # a run: the trials, the tables, the report

    cluster.reap_children_when_gone()  # (done above, unless the hint missed a run)
    run_main(lambda: cli.main(ARGV))
except SystemExit as stop:
    STATUS = stop.code
except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the sweep's command line took over (bench.sweep.early)
    print("interrupted, before the sweep started: nothing was written; run the same command again", file=sys.stderr)
    STATUS = 130
finally:
    early.end_unused()  # an instance started early that no trial used (bad input, nothing left to run)
exit_now(STATUS)  # everything is written: no teardown of torch, Ray and pandas (bench.command_exit)
