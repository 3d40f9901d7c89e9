"""The training-speed benchmark (python -m bench.speed.train_speed / bench.train_speed), the sweep-speed benchmark
and the GPU check: their refusals of degenerate options (one error line, exit 2), a tiny real run's JSON, the
bare loop being the same model as moe.training.loop's (same log-probabilities from the same weights), and the GPU check's
refusal without a GPU. Speed itself is never asserted (figures are ratios printed by the benchmarks)."""
from __future__ import annotations

import json
import runpy
import subprocess
import sys

import pytest
import torch

from bench.speed import gpu_check, kernel_bench, sweep_speed, train_cases, train_speed
from moe.data import load_dataset
from moe.training.loop import checked_data, set_up
from moe.validate import as_config


@pytest.mark.parametrize("main,argv,message", [
    (train_speed.main, ["--rounds", "0"], "--rounds: must be >= 2"),
    (train_speed.main, ["--rounds", "1"], "--rounds: must be >= 2"),
    (train_speed.main, ["--startup-rounds", "1"], "--startup-rounds: must be 0 (skip) or >= 2"),
    (train_speed.main, ["--only", "nosuch"], "--only 'nosuch': no shape's name contains it"),
    (kernel_bench.main, ["--rounds", "1"], "--rounds: must be >= 2"),
    (kernel_bench.main, ["--only", "nosuch"], "--only 'nosuch': no case's name contains it"),
    (sweep_speed.main, ["quick", "--rounds", "1"], "--rounds: must be >= 2"),
    (gpu_check.main, ["--budget-s", "0"], "--budget-s: must be > 0"),
])
def test_degenerate_options_are_refused(main, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tiny_run_writes_ratios(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert train_speed.main(["--only", "gm6", "--rounds", "2", "--startup-rounds", "0", "--n-train", "96",
                             "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["metric"] for r in rows] == ["samples/s: moe_train / bare_train", "samples/s: stacked_train (S = 1) / bare_train",
                                           "FLOP/s: moe_train / dense_mm", "FLOP/s: bare_train / dense_mm",
                                           "eval time per epoch: bare_eval / moe_eval"]
    assert rows[1]["target"] == "" and rows[1]["stacked_samples_s"] > 0  # the lean loop: measured, no target
    assert all(r["ratio_lo"] <= r["ratio"] <= r["ratio_hi"] and r["ratio"] > 0 for r in rows)
    assert rows[0]["target"] == ">= 0.8" and rows[0]["verdict"] in ("yes", "NO", "tie")
    assert "samples/s: moe_train / bare_train" in capsys.readouterr().out


def test_short_name_runs_the_same_module():
    assert runpy.run_module("bench.train_speed")["main"] is train_speed.main


@pytest.mark.parametrize("name", list(train_cases.SHAPES))
def test_bare_loop_is_the_same_model(name):
    """With moe.training.loop's initial weights copied in, the bare model gives moe.training.loop's log-probabilities."""
    cfg = as_config({**train_cases.config_of(name, None, 64)})
    data = checked_data(cfg, train_cases.dataset_for(train_cases.config_of(name, None), None))
    t = set_up(cfg, data, torch.device("cpu"))
    bare = train_cases.bare_loop(cfg, data, torch.device("cpu"))
    gate, experts = t.model.router.gate, t.model.experts.experts
    with torch.no_grad():
        ours = [p for p in gate.parameters()]
        theirs = [p for p in bare.model.gate.parameters()]
        for a, b in zip(ours, theirs):
            b.copy_(a)
        if cfg.expert == "linear":
            bare.model.experts.w.copy_(torch.stack([e.weight for e in experts]).transpose(1, 2))
            bare.model.experts.b.copy_(torch.stack([e.bias for e in experts]))
        else:
            for e, b in zip(experts, bare.model.experts.experts):
                for p, q in zip(e.parameters(), b.parameters()):
                    q.copy_(p)
        x = t.x_train[:40]
        t.model.eval(), bare.model.eval()
        torch.testing.assert_close(bare.model(x), t.model(x).log_probs, rtol=1e-5, atol=1e-5)
    assert bare.step_flops() > 0


def test_generated_mnist_shape():
    data = train_cases.generated_mnist(100, 20)
    assert data.x_train.shape == (100, 1, 28, 28) and data.n_classes == 10 and data.y_test.tolist()[:3] == [0, 1, 2]


def test_gpu_check_without_a_gpu(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no CUDA GPU here")
    assert not (tmp_path / "g").exists()  # nothing written
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path / "g")]) == 0
    steps = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert steps == ["tests", "lm_check", "kernel_bench", "train_speed", "sweep"]
    assert sum(gpu_check.STEP_LIMITS.values()) <= gpu_check.BUDGET_S <= 180  # one short call on a rare GPU


def test_gpu_check_data_and_sweep_file(tmp_path):
    """The generated IDX files load as MNIST, and the GPU sweep file is a valid sweep asking for GPU shares."""
    from bench.sweep import spec

    root = gpu_check.generated_mnist(tmp_path, n_train=50, n_test=20)
    data = load_dataset("mnist", data_root=root)
    assert data.x_train.shape == (50, 1, 28, 28) and len(data.y_test) == 20
    sweep = spec.load(str(gpu_check.sweep_file(tmp_path)))
    assert sweep.resources["gpu"] == 0.25 and len(sweep.trials()) == 4


@pytest.mark.slow
def test_startup_probe_reaches_the_first_batch():
    out = subprocess.run([sys.executable, "-m", "bench.speed.first_batch", list(train_cases.SHAPES)[0]],
                         capture_output=True, text=True, cwd=train_speed.ROOT, timeout=300)
    assert out.returncode == 0 and float(out.stdout.strip()) > 0
