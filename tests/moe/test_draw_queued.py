"""The background figure worker of a sweep (``moe.pictures.drawers.draw_queued``): a job it cannot write is skipped
quietly and the jobs after it are still drawn (a disk made read-only mid-sweep once printed the worker's traceback)."""
from __future__ import annotations

import multiprocessing

import pytest

from moe.pictures.drawers import draw_queued


def unwritable_then_writable(tmp_path):
    """(jobs: a heat-map to a path under a file, the same to a sound path, then None; the two paths)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad, good = blocker / "figures" / "x.png", tmp_path / "figures" / "y.png"  # bad: its parent is under a file
    job = ("heatmap", ([[3, 1], [0, 4]], ["a", "b"], "t"))
    return [None if path is None else (*job, path) for path in (bad, good, None)], bad, good


def test_a_job_that_cannot_be_written_is_skipped_and_the_next_is_drawn_in_this_process(tmp_path, capfd, monkeypatch):
    """The worker's loop run here (the fast tier's check; the spawned worker's below is slow): no process, no renice."""
    import os
    import queue

    items, bad, good = unwritable_then_writable(tmp_path)
    jobs = queue.Queue()
    for item in items:
        jobs.put(item)
    monkeypatch.setattr(os, "nice", lambda increment: 0)  # draw_queued lowers its process's priority: not this one's
    draw_queued(jobs, os.getppid())
    assert jobs.empty() and good.read_bytes().startswith(b"\x89PNG") and not bad.exists()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow  # a spawned process importing matplotlib (its loop: the test above, in the fast tier)
def test_a_job_that_cannot_be_written_is_skipped_quietly_and_the_next_is_drawn(tmp_path, capfd):
    items, bad, good = unwritable_then_writable(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    jobs = ctx.Queue()
    for item in items:
        jobs.put(item)
    worker = ctx.Process(target=draw_queued, args=(jobs,), daemon=True)
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    assert good.read_bytes().startswith(b"\x89PNG") and not bad.exists()
    assert "Traceback" not in capfd.readouterr().err


def test_next_job_returns_a_job_and_none_once_the_parent_is_gone():
    import queue as queue_mod
    import os

    from moe.pictures.drawers import next_job

    class Waiting:  # a queue that has a job once, then none
        def __init__(self):
            self.items = ["job"]

        def get(self, timeout):
            if self.items:
                return self.items.pop()
            raise queue_mod.Empty

    jobs = Waiting()
    assert next_job(jobs, os.getppid(), poll_s=0.01) == "job"
    assert next_job(jobs, os.getppid() + 10**6, poll_s=0.01) is None  # a parent that is not this process's: gone


DRIVER = """
import importlib, multiprocessing, os, sys, time


def work(module, name, *args):  # a worker's function, imported in the worker only: the driver draws nothing
    getattr(importlib.import_module(module), name)(*args)


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    a, b, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    workers = [ctx.Process(target=work, args=("moe.pictures.drawers", "draw_queued", a, os.getpid()), daemon=True),
               ctx.Process(target=work, args=("bench.table.pictures", "serve", b, results, os.getpid()), daemon=True),
               ctx.Process(target=work, args=("bench.table.pictures", "serve", b, results),  # the default: the
                           daemon=True)]  # process that started it
    for w in workers:
        w.start()
    b.put((0, "heatmap", ([[1, 0], [0, 1]], ["a", "b"], "t")))
    results.get(timeout=120)  # the pool's workers are up and drawing
    drawn = sys.argv[1]  # the lowest-priority worker too (on a busy machine its start alone can take a minute)
    a.put(("heatmap", ([[1, 0], [0, 1]], ["a", "b"], "t"), drawn))
    while not os.path.exists(drawn):
        time.sleep(0.05)
    print(" ".join(str(w.pid) for w in workers), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow  # three processes importing matplotlib and their driver, killed (the check they run, next_job: by
# hand above)
def test_figure_workers_end_when_the_process_that_started_them_is_killed(tmp_path):
    """A sweep driver or report killed without a word (SIGKILL) sends no None to its figure workers: they end
    within seconds instead of waiting for ever on their queues."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ahead.png")], stdout=subprocess.PIPE,
                              text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    pids: list[int] = []
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        assert len(pids) == 3
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        deadline = time.monotonic() + 60
        while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"figure workers outlived the killed driver: {alive}"
    finally:
        driver.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie or a vanished pid is not)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in next(line for line in f if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
