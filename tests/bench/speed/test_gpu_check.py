"""bench.speed.gpu_check's flow and summary on a machine without a GPU: the steps are replaced by stand-ins that
write what the real ones write (the training-speed JSON by the real benchmark on the CPU, the language model's
check by its own code, the tests' JUnit file by pytest), or fail, or run out of time; the summary names each step's
verdict and key figures, and nothing existing is overwritten."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bench.speed import gpu_check, lm_check, train_speed
from moe.records.record import write_json_atomic


def pretend_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")


@pytest.fixture
def fake_gpu(monkeypatch):
    pretend_a_gpu(monkeypatch)


def kernel_rows() -> list[dict]:
    """Rows in kernel_bench's CUDA format (bench.speed.kernel_bench.run_cuda): ours, torch._grouped_mm, dense."""
    rows = []
    for M, ratio in ((8192, 0.93), (16384, 0.71)):
        case = f"gpu_grouped_fwd[dtype=bfloat16,M={M},E=8,K=2048,N=2048]"
        rows.append(dict(case=case, metric="grouped_mm[triton]", ratio=1.0, target="", ok=None, max_abs_err=0.0123))
        rows.append(dict(case=case, metric="torch._grouped_mm", ratio=ratio, target=">= 0.8", ok=ratio >= 0.8, max_abs_err=None))
    return rows


def stand_in(staged, outcome: dict):
    """A run_step that copies the files a step writes (made beforehand in ``staged``, a folder) and returns its
    outcome."""
    def run_step(name, cmd, folder, limit):
        assert limit <= gpu_check.STEP_LIMITS[name]
        if staged is not None:
            for path in staged.rglob("*"):
                if path.is_file() and not (folder / path.relative_to(staged)).exists():
                    (folder / path.relative_to(staged)).parent.mkdir(parents=True, exist_ok=True)
                    (folder / path.relative_to(staged)).write_bytes(path.read_bytes())
        rc, timed_out = outcome.get(name, (0, False))
        (folder / f"{name}.log").write_text("$ " + " ".join(cmd))
        return {"step": name, "command": cmd, "rc": rc, "timed_out": timed_out, "limit_s": limit, "seconds": 1.5,
                "log": f"{name}.log"}
    return run_step


def test_the_summary_names_every_step_and_its_figures(monkeypatch, tmp_path, capsys):
    def tests_xml(folder):  # pytest's own JUnit file: one passing and one failing test
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "test_x.py").write_text("def test_good():\n    pass\n\ndef test_bad():\n    assert False\n")
        subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "t"), "-q", "-p", "no:cacheprovider",
                        f"--junitxml={folder / 'tests.xml'}"], capture_output=True, cwd=tmp_path)

    def lm_json(folder):
        row = lm_check.speed(torch.device("cpu"), windows=1, steps=1, rounds=2)
        write_json_atomic(folder / "lm_check_cuda.json", {"rows": [row]})

    def speed_json(folder):
        assert train_speed.main(["--only", "gm6", "--rounds", "2", "--startup-rounds", "0", "--n-train", "96",
                                 "--out", str(folder / "bench_train_cuda.json")]) == 0

    def runs_csv(folder):
        (folder / "sweep").mkdir()
        (folder / "sweep" / "runs.csv").write_text("name,status\na,ok\nb,ok\nc,error\n")

    staged = tmp_path / "staged"  # what the steps write, made on the CPU before the GPU is pretended
    staged.mkdir()
    for make in (tests_xml, lm_json, speed_json, runs_csv):
        make(staged)
    write_json_atomic(staged / "bench_kernels_cuda.json", {"rows": kernel_rows()})
    pretend_a_gpu(monkeypatch)
    monkeypatch.setattr(gpu_check, "run_step", stand_in(staged, {"tests": (1, False)}))
    out = tmp_path / "check"
    assert gpu_check.main(["--out", str(out)]) == 1  # a test failed
    text = capsys.readouterr().out
    summary = text[text.index("GPU check on"):]
    assert summary.startswith("GPU check on Fake GPU (torch ") and "4 of 5 steps passed" in summary
    assert "tests         FAILED (exit 1)" in summary and "1 passed, 1 failed, 0 skipped" in summary and "failed: test_bad" in summary
    assert "speed: tokens/s of the MoE language model's step over a bare loop's, 128 tokens" in summary
    assert "torch._grouped_mm's time over ours 0.93, 0.71 (target >= 0.8: met in 1 of 2); largest |error| of ours against it 0.012" in summary
    assert "gm6" in summary and "samples/s" in summary and "3 trials: 1 error, 2 ok" in summary
    saved = json.loads((out / "summary.json").read_text())
    assert [r["step"] for r in saved["steps"]] == list(gpu_check.STEP_LIMITS)
    assert saved["steps"][4]["figures"] == ["3 trials: 1 error, 2 ok"]


def test_a_step_that_left_nothing_and_one_out_of_time(fake_gpu, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu_check, "run_step", stand_in(None, {"lm_check": (None, True), "sweep": (2, False)}))
    assert gpu_check.main(["--out", str(tmp_path / "c"), "--budget-s", "60"]) == 1
    text = capsys.readouterr().out
    assert "lm_check      TIMED OUT" in text and "sweep         FAILED (exit 2)" in text
    saved = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert all(r["figures"] == [] for r in saved["steps"])  # no files: no figures, no crash
    assert saved["budget_s"] == 60


def test_an_existing_folder_is_never_written_into(fake_gpu, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(["--out", str(tmp_path / "mine")])
    assert exit_.value.code == 2 and "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
