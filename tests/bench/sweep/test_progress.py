"""Trial errors are rebuilt from Ray's error text, never unpickled (issue #12)."""
from __future__ import annotations

import ast
from pathlib import Path

from bench.sweep.progress import exception_from_text, scores_text

RAY_TEXT = """Failure # 1 (occurred at 2026-11-30_16-30-00)
ray::ImplicitFunc.train() (pid=123, ip=127.0.0.1, actor_id=abc)
  File "bench/sweep/trial.py", line 151, in run_trial
    raise InjectedFault(f"injected fault in trial {trial['index']} ({trial['name']})")
bench.trial.InjectedFault: injected fault in trial 1 (softmax[experts=2])
"""


def test_the_exception_is_rebuilt_from_the_last_name_message_line():
    err = exception_from_text(RAY_TEXT)
    assert type(err).__name__ == "InjectedFault" and str(err) == "injected fault in trial 1 (softmax[experts=2])"
    wrapped = exception_from_text("ray.exceptions.RayTaskError(ValueError): ray::f() (pid=1)\nValueError: boom")
    assert (type(wrapped).__name__, str(wrapped)) == ("ValueError", "boom")
    one_line = exception_from_text("ray.exceptions.RayTaskError(mod.KeyError): ray::f() KeyError: 'x'")
    assert (type(one_line).__name__, str(one_line)) == ("KeyError", "'x'")


def test_text_without_an_exception_line_is_a_runtime_error_with_its_last_line():
    assert type(exception_from_text("something\nwent wrong")) is RuntimeError
    assert str(exception_from_text("something\nwent wrong")) == "went wrong"
    assert str(exception_from_text("")) == "trial failed (no error message)"
    # hostile text: a class name is only ever an identifier, and nothing is evaluated
    err = exception_from_text("__import__('os').system('x'): y")
    assert type(err) is RuntimeError


def test_bench_never_unpickles():
    for path in Path(__file__).resolve().parents[3].joinpath("bench").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "pickle" not in names | mods, f"{path} imports pickle"
        assert "get_pickled_error" not in path.read_text(), f"{path} unpickles Ray's error file"


def test_a_progress_line_shows_the_scores_of_its_kind_of_run():
    image = {"status": "ok", "test": {"accuracy": 0.91, "nmi": 0.5}, "validation": {"accuracy": 0.9}}
    assert scores_text(image) == "val acc 0.900  acc 0.910  nmi 0.500"
    text = {"status": "ok", "test": {"bits_per_byte": 3.3, "unigram_bits_per_byte": 4.38, "accuracy": None},
            "validation": {"bits_per_byte": 3.25}}
    assert scores_text(text) == "val bpb 3.250  bpb 3.300  unigram 4.380"
    diverged = {"status": "diverged", "test": {}, "validation": {}}
    assert scores_text(diverged) == "val acc   -    acc   -    nmi   -  "
    assert scores_text({"status": "error", "error": "ValueError: " + "x" * 100}) == ("ValueError: " + "x" * 100)[:80]
