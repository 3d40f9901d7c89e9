"""The language model on the configured device: an absent CUDA device is one line before any work (the library
raises ConfigError before loading text; the CLI exits 2 with one ``error:`` line); a run's record names its device;
the batches are cut on the device of the split's bytes, and the labels and traces stay on the CPU.
(On a GPU, tests/gpu/test_cuda.py trains the language model on CUDA against the CPU.)"""
from __future__ import annotations

import pytest
import torch

import moe.training.lm_loop as lm_loop
from moe.config import ConfigError
from moe.data.text import kjv_from_lines
from moe.train import main
from moe.training.loop import run

from tests.moe.lm.test_lm_train import SMALL
from tests.moe.lm.test_text_data import verse_lines


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def never(cfg):
        raise AssertionError("the text was loaded before the device was checked")

    monkeypatch.setattr(lm_loop, "load_text", never)


def test_an_absent_cuda_device_is_refused_before_the_text_is_loaded(no_cuda):
    with pytest.raises(ConfigError) as err:
        run({**SMALL, "device": "cuda"})
    assert err.value.problems == ["device: 'cuda' asked for but no CUDA device is available; valid choices here: cpu, auto"]


def test_the_cli_says_so_in_one_line(no_cuda, capsys):
    assert main(["--dataset", "kjv", "--device", "cuda", "--quiet"]) == 2
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == ["error: device: 'cuda' asked for but no CUDA device is available; "
                                            "valid choices here: cpu, auto"]
    assert "Traceback" not in out.err and out.out == ""


def test_auto_without_cuda_trains_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rec = run({**SMALL, "epochs": 1, "device": "auto"}, data=kjv_from_lines(verse_lines(2)))
    assert rec["status"] == "ok" and rec["provenance"]["device"].startswith("cpu")
    assert rec["provenance"]["kernel_backend"] == "torch"


def test_batches_follow_the_bytes_and_labels_stay_on_the_cpu():
    text = kjv_from_lines(verse_lines(2))
    moved = lm_loop.on_device(text.validation, torch.device("meta"))  # a device of its own, with no data
    assert moved.tokens.device.type == "meta" and moved.domain.device.type == "cpu" and moved.document.device.type == "cpu"
    assert text.validation.tokens.device.type == "cpu"  # the dataset itself is not changed
    x, y = lm_loop.batch_of(moved, torch.tensor([0, 5]), 8)
    assert x.device.type == y.device.type == "meta" and x.shape == y.shape == (2, 8)
    x, y = lm_loop.batch_of(text.validation, torch.tensor([0, 5]), 8)
    assert torch.equal(x[1], text.validation.tokens[5:13]) and torch.equal(y[1], text.validation.tokens[6:14])
