"""bench.speed.lm_check, the GPU check's language-model step, on the CPU: its options, its comparison (a gradient
changed by 1% is caught and named, equal steps pass), its speed part and summary lines, and (``-m interp``, in the
interpreter's child process) the Triton kernels against the torch fallback at a small size, the Triton launchers
counted."""
from __future__ import annotations

import json

import pytest
import torch

from bench.speed import lm_check
from kernels._common import HAS_TRITON, interpreting


@pytest.mark.parametrize("argv,message", [
    (["--windows", "0"], "--windows: must be >= 1, got 0"),
    (["--rounds", "1"], "--rounds: must be >= 2, got 1"),
    (["--steps", "0"], "--steps: must be >= 1"),
    (["--windows", "64", "--steps", "40"], "--windows x --steps: at most 2048 windows in all"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
])
def test_bad_options_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        lm_check.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_an_absent_gpu_or_interpreter_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        lm_check.main(["--device", "cuda"])
    assert exit_.value.code == 2 and "--device cuda: no CUDA device is available" in capsys.readouterr().err
    if HAS_TRITON and not interpreting():  # the Triton kernels on CPU tensors need the interpreter
        with pytest.raises(SystemExit):
            lm_check.main([])
        assert "the Triton kernels cannot run on cpu tensors here" in capsys.readouterr().err


def fake_triton(monkeypatch, change=None):
    """Both passes of ``backends`` on the torch fallback; ``change`` alters the second pass's step."""
    monkeypatch.setattr(lm_check, "kernels_backend", lambda name: __import__("contextlib").nullcontext())
    real, calls = lm_check.one_step, []

    def step(*args):
        out = real(*args)
        calls.append(1)
        if change is not None and len(calls) == 2:
            change(out)
        return out

    monkeypatch.setattr(lm_check, "one_step", step)


def test_equal_steps_pass(monkeypatch):
    fake_triton(monkeypatch)
    row = lm_check.backends(torch.device("cpu"), windows=2)
    assert row["ok"] and row["tokens"] == 256 and row["routed_apart"] == 0
    assert row["logits_gap"] == row["loss_gap"] == row["gradients_gap"] == 0 and row["n_gradients"] > 20


def test_a_changed_gradient_or_routing_is_caught(monkeypatch):
    name = "blocks.1.ffn.router.gate.weight"

    def grad(out):
        out["grads"][name] = out["grads"][name] * 1.01

    fake_triton(monkeypatch, grad)
    row = lm_check.backends(torch.device("cpu"), windows=2)
    assert not row["ok"] and row["worst_gradient"] == name and row["gradients_gap"] == pytest.approx(0.01, rel=1e-3)
    assert "backends DIFFER" in lm_check.line(row) and name in lm_check.line(row)

    def route(out):
        out["experts"][0][:64, 0] = (out["experts"][0][:64, 0] + 1) % 8  # a quarter of the tokens elsewhere

    fake_triton(monkeypatch, route)
    row = lm_check.backends(torch.device("cpu"), windows=2)
    assert not row["ok"] and row["routed_apart"] == 0.25


def test_speed_part_and_its_line():
    row = lm_check.speed(torch.device("cpu"), windows=2, steps=1, rounds=2)
    assert row["tokens_per_batch"] == 256 and row["ratio_lo"] <= row["ratio"] <= row["ratio_hi"]
    assert row["moe_tokens_s"] > 0 and row["bare_tokens_s"] > 0 and row["verdict"] in ("yes", "NO", "tie")
    assert lm_check.line(row).startswith("speed: tokens/s of the MoE language model's step over a bare loop's, 256 tokens")


@pytest.mark.interp
@pytest.mark.skipif(not interpreting(), reason="runs in the interpreter's child process (tests/kernels/test_kernels_interpreter.py)")
def test_triton_against_torch_under_the_interpreter(monkeypatch, tmp_path, capsys):
    import kernels.grouped
    import kernels.routing

    launched = {"topk": 0, "grouped_mm": 0, "grouped_dw": 0}

    def counting(real, key):
        def counted(*args, **kwargs):
            launched[key] += 1
            return real(*args, **kwargs)
        return counted

    monkeypatch.setattr(kernels.routing, "_topk_triton", counting(kernels.routing._topk_triton, "topk"))
    mm, dw, *rest = kernels.grouped._IMPL["triton"]
    monkeypatch.setitem(kernels.grouped._IMPL, "triton", (counting(mm, "grouped_mm"), counting(dw, "grouped_dw"), *rest))
    out = tmp_path / "lm.json"
    assert lm_check.main(["--windows", "1", "--skip-speed", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["ok"] and row["routed_apart"] == 0 and row["gradients_gap"] <= lm_check.TOLERANCE and row["tokens"] == 128
    # 2 MoE layers x (up, down), forward in two passes and backward (dx through the forward kernel); dW per product
    assert launched["topk"] >= 4 and launched["grouped_mm"] >= 8 + 4 and launched["grouped_dw"] >= 4, launched
    assert capsys.readouterr().out.startswith("backends ok: Triton against torch, 128 tokens on cpu")
