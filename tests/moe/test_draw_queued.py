"""The background figure worker of a sweep (``moe.pictures.drawers.draw_queued``): a job it cannot write is skipped
quietly and the jobs after it are still drawn (a disk made read-only mid-sweep once printed the worker's traceback)."""
from __future__ import annotations

import multiprocessing

from moe.pictures.drawers import draw_queued


def test_a_job_that_cannot_be_written_is_skipped_quietly_and_the_next_is_drawn(tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad, good = blocker / "figures" / "x.png", tmp_path / "figures" / "y.png"  # bad: its parent is under a file
    job = ("heatmap", ([[3, 1], [0, 4]], ["a", "b"], "t"))
    ctx = multiprocessing.get_context("spawn")
    jobs = ctx.Queue()
    for path in (bad, good, None):
        jobs.put(None if path is None else (*job, path))
    worker = ctx.Process(target=draw_queued, args=(jobs,), daemon=True)
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    assert good.read_bytes().startswith(b"\x89PNG") and not bad.exists()
    assert "Traceback" not in capfd.readouterr().err
