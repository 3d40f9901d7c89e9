"""The entry of every ``python -m bench.*`` command: its exit status, and a quiet end when the reader of its
output goes away early (``python -m bench.sweep --dry-run | head -3``).

A closed pipe raises BrokenPipeError at the next write; the command's output is then unwanted, so it ends
with exit status 0 and no traceback. Standard output is pointed at os.devnull first, so that the flush at
interpreter exit does not raise again (the recipe of Python's ``signal`` documentation).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn


def run_main(main: Callable[[], int]) -> NoReturn:
    """``sys.exit(main())``, ending quietly with 0 when standard output is a pipe closed early."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 0
    sys.exit(status)
