"""The temporary folder of a reported state is named after its process, and a trial removes those of processes
that are gone (a trial killed while it reported could not remove its own); live processes keep theirs."""
from __future__ import annotations

import os
import subprocess
import sys

from bench.sweep.trial import STATE_PREFIX, remove_stale_state_folders


def test_the_folders_of_dead_processes_are_removed_and_the_others_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    gone = tmp_path / f"{STATE_PREFIX}{dead_pid}-abc"
    mine = tmp_path / f"{STATE_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{STATE_PREFIX}xyz"  # not named after a process (an older layout): left alone
    for folder in (gone, mine, other):
        folder.mkdir()
        (folder / "state.pt").write_bytes(b"x")
    assert remove_stale_state_folders(tmp_path) == [gone]
    assert not gone.exists() and mine.is_dir() and other.is_dir()
