"""The entry of every ``python -m bench.*`` command: its exit status, a quiet end when the reader of its
output goes away early (``python -m bench.sweep --dry-run | head -3``), and the one line of a command whose
output cannot be written (a full or read-only disk: :func:`cannot_write`, exit status 3).

A closed pipe raises BrokenPipeError at the next write; the command's output is then unwanted, so it ends
with exit status 0 and no traceback. Standard output is pointed at os.devnull first, so that the flush at
interpreter exit does not raise again (the recipe of Python's ``signal`` documentation).
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
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


EXIT_CANNOT_WRITE = 3  # the output could not be written (a full or read-only disk); what was there is untouched


def cannot_write(err: OSError, folder: str | os.PathLike) -> int:
    """One line for a command whose files in ``folder`` cannot be written (a full disk, a read-only folder, a file
    too large), saying that nothing there was lost; returns the exit status, 3. Every file of these commands is
    written atomically, so a failed write leaves the file before it as it was."""
    where = err.filename or folder
    print(f"error: cannot write {where}: {err.strerror or err}; nothing in {folder} was lost (each file is replaced "
          "whole or not at all); free space or fix the permissions, then run the same command again", file=sys.stderr)
    return EXIT_CANNOT_WRITE


def exit_now(status: int | str | None) -> NoReturn:
    """End the process as ``sys.exit(status)`` does once Python has joined its threads and run its exit functions
    (``atexit``: Ray's shutdown, multiprocessing's children, logging, temporary folders), but without the interpreter's
    teardown that follows: freeing torch, Ray and pandas module by module takes 1-2 s of a loaded 2-core machine at
    the end of a sweep, after everything is written. For a command's last line (``python -m bench.sweep``)."""
    if status is None or isinstance(status, int):
        code = status or 0
    else:  # sys.exit("message"): the message on standard error, exit status 1
        print(status, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():  # as the interpreter does first: its non-daemon threads end
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (BrokenPipeError), a stream closed
            pass
    os._exit(code)

