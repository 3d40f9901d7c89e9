"""A sweep lets its local Ray instance end in a background thread while it builds the tables
(``Starting.shut_down_later``). Ray's core worker ends the whole process with exit status 1 ("The core worker has
already been shutdown") when this process frees an object reference while that thread shuts Ray down, so every
reference the sweep made must be gone before it lets Ray end: the runner drops its own, and
``bench.sweep.cluster.drop_references`` frees those left in garbage cycles and in an exception's frames.

The checks read Ray's own count of the references this process holds (``local``) at the moment of the release."""
from __future__ import annotations

import gc

import pytest

from bench import pipeline
from bench.sweep import cluster, runner

pytestmark = pytest.mark.ray

STATE = b"a saved state no trial asks for"  # put for trial 999 (none): the trials run as without it


def held(ray, hexes: list[bytes]) -> list[bytes]:
    """Which of these objects this process still holds a Python reference to."""
    counts = ray._private.worker.global_worker.core_worker.get_all_reference_counts()
    return [h for h in hexes if counts.get(h, {}).get("local", 0) > 0]


class Release:
    """In place of the runner's ``Starting``: the instance is the test session's (never ended); records what this
    process still held when the runner let Ray end."""

    def __init__(self, ray, made: list[bytes]):
        self.ray, self.made, self.held_then = ray, made, None

    def result(self) -> bool:
        return False

    def started_here(self) -> bool:
        return False

    def shut_down_later(self) -> None:
        self.held_then = held(self.ray, self.made)


@pytest.mark.parametrize("fit", ["finishes", "interrupted"])
def test_the_runner_holds_none_of_its_references_when_it_lets_ray_end(ray_local, sweep_file, tmp_path, monkeypatch, fit):
    made: list[bytes] = []
    real_put = ray_local.put

    def put(value, *args, **kwargs):
        ref = real_put(value, *args, **kwargs)
        if value is STATE:
            made.append(ref.hex().encode())
        return ref

    monkeypatch.setattr(ray_local, "put", put)
    monkeypatch.setattr(runner, "latest_states", lambda folder, todo: {999: STATE})
    release = Release(ray_local, made)
    monkeypatch.setattr(runner, "ray_starting", lambda address, verbose: release)
    if fit == "interrupted":  # Ctrl-C while the trials run: the same release on the way out
        from ray import tune

        def interrupted(self):
            raise KeyboardInterrupt
        monkeypatch.setattr(tune.Tuner, "fit", interrupted)
    path = sweep_file(grid={"router": ["softmax"], "experts": [2], "seed": [0]}, budget={"epochs": 1, "n_train": 60, "n_test": 30})
    if fit == "interrupted":
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_sweep(path, out=str(tmp_path / "out"), quiet=True)
    else:
        runs = pipeline.run_sweep(path, out=str(tmp_path / "out"), quiet=True)
        assert list(runs["status"]) == ["ok"]
    assert len(made) == 1, made  # the saved state was put ...
    assert release.held_then == [], "an object reference outlived the release of Ray"  # ... and freed before the release


def test_drop_references_frees_those_in_garbage_cycles_and_in_an_exceptions_frames(ray_local):
    gc.disable()  # (only drop_references may collect the cycle)
    try:
        cycle = [ray_local.put(b"in a cycle")]
        cycle.append(cycle)
        in_cycle = [cycle[0].hex().encode()]
        del cycle
        assert held(ray_local, in_cycle) == in_cycle  # garbage, not yet freed
        in_frame: list[bytes] = []

        def fails():
            ref = ray_local.put(b"a local of a frame an exception left")
            in_frame.append(ref.hex().encode())
            raise RuntimeError("a trial raised")

        try:
            fails()
        except RuntimeError:
            assert held(ray_local, in_frame) == in_frame  # kept by the traceback's frame
            cluster.drop_references()
            assert held(ray_local, in_frame) == []
        assert held(ray_local, in_cycle) == []
    finally:
        gc.enable()
