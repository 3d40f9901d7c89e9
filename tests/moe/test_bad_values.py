"""Regressions of issue #12: each value that once ran silently, overflowed or crashed is now one ``error:`` line
before any work (exit 2), and a run that meets NaN or infinity anywhere is a ``diverged`` record, not a traceback."""
import json
import math

import pytest

import moe.training.loop
from moe.model import checked_config
from moe.config import ConfigError
from moe.routers import NonFiniteError
from moe.validate import from_dict


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(moe.training.loop, "run", lambda *a, **k: pytest.fail("training started for a bad config"))


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv,field,words", [
    (["--n-train=1e12"], "n_train", "int"),
    (["--n-train=1000000000000"], "n_train", "<= 100000000"),
    (["--n-train=3"], "n_train", "which has 6"),
    (["--lr=1e30"], "lr", "<= 10"),
    (["--lr-ratio=1e300"], "lr_ratio", "<="),
    (["--lr=0.01", "--lr-ratio=1e37"], "lr_ratio", "normal float32"),
    (["--seed=18446744073709551616"], "seed", "<= 9223372036854775807"),
    ([f"--data-seed={2**70}"], "data_seed", "<= 9223372036854775807"),
    ([f"--threads={2**63}"], "threads", "<= 256"),
    (["--threads=1e6"], "threads", "int"),
    (["--threads=1000000"], "threads", "<= 256"),
    (["--weight-decay=inf"], "weight_decay", "finite"),
    (["--temperature=1e-40"], "temperature", ">= 0.0001"),
    (["--temperature-min=1e-40"], "temperature_min", ">= 0.0001"),
    (["--experts=1e9"], "experts", "int"),
    (["--experts=1000000000"], "experts", "<= 4096"),
    (["--expert-hidden=1e10"], "expert_hidden", "int"),
    (["--expert-hidden=10000000000"], "expert_hidden", "<= 65536"),
])
def test_the_issues_bad_values_stop_at_the_start(argv, field, words, capsys, no_training):
    assert moe.training.loop.main([*argv, "--quiet"]) == 2
    line = one_error(capsys)
    assert line.startswith(f"error: {field}:") and words in line


@pytest.mark.parametrize("text,field", [
    ('{"lr": Infinity}', "lr"), ('{"weight_decay": Infinity}', "weight_decay"), ('{"temperature": NaN}', "temperature"),
    ('{"n_train": 1e12}', "n_train"), ('{"experts": 1e9}', "experts"),
])
def test_json_infinity_and_huge_numbers_in_a_config_file(text, field, tmp_path, capsys, no_training):
    (tmp_path / "c.json").write_text(text)
    assert moe.training.loop.main(["--config", str(tmp_path / "c.json")]) == 2
    assert one_error(capsys).startswith(f"error: {field}:")


def test_a_model_beyond_the_memory_cap_says_its_estimate_and_the_cap(capsys):
    big = {"expert": "mlp", "experts": 4096, "expert_hidden": 65536}
    with pytest.raises(ConfigError) as info:
        checked_config(big)
    (line,) = info.value.problems
    assert line.startswith(("experts:", "expert_hidden:")) and "GiB" in line and "cap of 4 GiB" in line
    checked_config({"expert": "mlp", "experts": 64, "expert_hidden": 1024})  # well inside
    assert moe.training.loop.main(["--expert", "mlp", "--experts", "4096", "--expert-hidden", "65536"]) == 2  # before work
    assert one_error(capsys).startswith(("error: experts:", "error: expert_hidden:"))


def test_the_memory_estimate_draws_nothing_and_counts_as_a_build_on_the_cpu():
    """moe.model.memory_estimate builds on the meta device without drawing random values (``_NoDrawsOnMeta``): the
    parameters of the same modules built on the CPU, for every router and expert bank, and the caller's random state
    untouched."""
    import dataclasses

    import torch

    import moe.model
    from moe.experts import EXPERTS
    from moe.routers import ROUTERS

    configs = [{"dataset": "gm6", "router": router, "expert": expert, "experts": 4, "expert_hidden": 8}
               for router in ROUTERS.names() for expert in ("linear", "mlp", "implicit")]
    configs += [{"dataset": "mnist", "router": "softmax", "gate": "lenet", "expert": expert, "experts": 3}
                for expert in EXPERTS.names()] + [{"dataset": "mnist", "router": "prototype", "match_router": "soft",
                                                    "match_loss": 1.0, "expert": "implicit", "experts": 4096}]
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    checked = 0
    for fields in configs:
        try:
            cfg = from_dict(fields)
        except ConfigError:  # a combination the rules refuse (attention without hidden states, ...)
            continue
        shape, classes = ((2,), 6) if cfg.dataset == "gm6" else ((1, 28, 28), 10)
        before = torch.get_rng_state()
        params, _ = moe.model.memory_estimate(cfg, shape, classes)
        assert torch.equal(torch.get_rng_state(), before)
        one = moe.model.build_experts(dataclasses.replace(cfg, experts=1, mask_experts=False), shape, classes)  # CPU
        bank = EXPERTS.get(cfg.expert)
        expected = (bank.estimated_parameters(cfg, shape, classes) if hasattr(bank, "estimated_parameters")
                    else cfg.experts * count(one))
        expected += sum(count(ROUTERS.get(name)(cfg, shape, cfg.experts)) for name in (cfg.router, cfg.match_router) if name)
        assert params == expected, fields
        checked += 1
    assert checked > 30


def test_bogus_kernels_backend_is_refused_at_start(monkeypatch, capsys, no_training):
    monkeypatch.setenv("MOE_KERNELS", "bogus")
    assert moe.training.loop.main(["--quiet"]) == 2
    line = one_error(capsys)
    assert "MOE_KERNELS" in line and "'torch'" in line and "'triton'" in line


def test_triton_on_a_cpu_without_the_interpreter_is_refused_with_a_hint(monkeypatch, capsys, no_training):
    import kernels._common as common

    monkeypatch.setattr(common, "interpreting", lambda: False)
    monkeypatch.setenv("MOE_KERNELS", "triton")
    assert moe.training.loop.main(["--quiet", "--device=cpu"]) == 2
    line = one_error(capsys)
    assert "MOE_KERNELS" in line and ("TRITON_INTERPRET=1" in line or "not installed" in line) and "MOE_KERNELS=torch" in line


def test_more_samples_than_the_dataset_has_is_an_error_after_loading(capsys):
    assert moe.training.loop.main(["--n-train=5000", "--epochs=1", "--quiet"]) == 2  # gm6 has 2,400 training samples
    line = one_error(capsys)
    assert line.startswith("error: n_train:") and "2,400" in line and "after loading" in line
    with pytest.raises(ConfigError, match=r"^n_test: must be at most 600"):
        moe.training.loop.run({"n_test": 601, "epochs": 1})


SMALL = {"n_train": 240, "n_test": 120, "epochs": 3}


def test_a_config_that_diverges_within_the_caps_is_a_diverged_record(tmp_path, capsys):
    values = {**SMALL, "epochs": 5, "lr": 10, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 10}
    rec = moe.training.loop.run(values)
    assert rec["status"] == "diverged" and rec["error"] is None
    assert rec["diverged"]["epoch"] == len(rec["history"]) < 5 and "non-finite" in rec["diverged"]["reason"]
    out = tmp_path / "r.json"
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]
    assert moe.training.loop.main([*argv, "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"diverged at epoch {rec['diverged']['epoch']}: ") and "Traceback" not in err
    assert json.loads(out.read_text())["diverged"] == rec["diverged"]


def test_non_finite_final_evaluation_is_diverged_not_an_error(monkeypatch, tmp_path, capsys):
    real = moe.training.loop.evaluate

    def nan_loss(*args, **kwargs):
        evaluated = real(*args, **kwargs)
        return {**evaluated, "test": {**evaluated["test"], "loss": math.nan}}

    monkeypatch.setattr(moe.training.loop, "evaluate", nan_loss)
    rec = moe.training.loop.run(SMALL)
    assert rec["status"] == "diverged"
    assert rec["diverged"] == {"epoch": 3, "reason": "non-finite test loss in the final evaluation"}

    def raises(*args, **kwargs):
        raise NonFiniteError("gate logits are NaN or infinite")

    monkeypatch.setattr(moe.training.loop, "evaluate", raises)
    out = tmp_path / "r.json"
    assert moe.training.loop.main(["--n-train=240", "--n-test=120", "--epochs=2", "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"diverged at epoch 2: non-finite gate logits in the final evaluation; record written to {out}"]
    written = json.loads(out.read_text())
    assert written["status"] == "diverged" and written["test"] == {} and written["diverged"]["epoch"] == 2


def test_non_finite_gradients_stop_the_epoch(monkeypatch):
    import moe.training.epochs

    real = moe.training.epochs.all_finite
    # the step's one check (the loss and every gradient) fails while the loss itself is finite: a gradient is not
    monkeypatch.setattr(moe.training.epochs, "all_finite", lambda tensors: False if len(tensors) > 1 and tensors[0].dim() == 0 else real(tensors))
    rec = moe.training.loop.run(SMALL)
    assert rec["status"] == "diverged" and rec["diverged"] == {"epoch": 1, "reason": "non-finite gradients"}
    assert math.isfinite(rec["test"]["loss"])  # the model of the last good step is evaluated


def test_gradient_and_parameter_checks_see_nan_and_inf():
    import torch

    from moe.training.epochs import gradients_finite, parameters_finite

    model = torch.nn.Linear(2, 2)
    assert parameters_finite(model) and gradients_finite(model)  # no gradient yet
    model(torch.ones(1, 2)).sum().backward()
    assert gradients_finite(model)
    model.bias.grad[0] = math.inf
    assert not gradients_finite(model)
    with torch.no_grad():
        model.weight[1, 1] = math.nan
    assert not parameters_finite(model)


def test_backward_checked_names_what_became_non_finite():
    """One check covers the loss and every gradient; the report says which, and nothing has stepped."""
    import torch

    from moe.training.epochs import backward_checked

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    nan_loss = model(torch.ones(1, 2)).sum() * math.nan
    assert backward_checked(nan_loss, opt, model)["reason"] == "non-finite training loss"
    handle = model.bias.register_hook(lambda g: g * math.inf)  # a finite loss whose gradient overflows
    out = backward_checked(model(torch.ones(1, 2)).sum(), opt, model)
    assert out["reason"] == "non-finite gradients" and out["finite"] is False and math.isfinite(out["train_loss"])
    handle.remove()
    assert backward_checked(model(torch.ones(1, 2)).sum(), opt, model) is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # backward_checked never steps
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
