"""moe.training.optim: the optimizers whose groups with equal hyperparameters step together give, on the CPU, bitwise the
parameters and state of torch's own (single-tensor) optimizers, and the same state dict."""
import io

import pytest
import torch

from moe.training import optim

CASES = [(optim.Adam, torch.optim.Adam, {}), (optim.Adam, torch.optim.Adam, {"weight_decay": 0.1}),
         (optim.RMSprop, torch.optim.RMSprop, {"momentum": 0.9}),
         (optim.RMSprop, torch.optim.RMSprop, {"momentum": 0.0, "weight_decay": 0.01}),
         (optim.SGD, torch.optim.SGD, {"momentum": 0.9}), (optim.SGD, torch.optim.SGD, {"momentum": 0.0})]


def train(cls, lrs, steps=30, skip=True, **kw):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s)) for s in [(10, 40), (10,), (32, 40), (32,), (7, 3)]]
    groups = [{"name": "gate", "params": params[:2], "lr": lrs[0]}, {"name": "expert0", "params": params[2:4], "lr": lrs[1]},
              {"name": "expert1", "params": params[4:], "lr": lrs[2]}]
    opt = cls(groups, **kw)
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 10.0 ** (i % 5 - 2)
        if skip and i % 7 == 3:  # a parameter without a gradient this step (an expert whose samples ran out) is left alone
            params[4].grad = None
        opt.step()
    return params, opt


@pytest.mark.parametrize("lrs", [(0.01, 0.01, 0.01), (0.01, 0.003, 1e-4)], ids=["equal_lrs", "per_group_lrs"])
@pytest.mark.parametrize("ours,theirs,kw", CASES, ids=[f"{c[1].__name__}{c[2]}" for c in CASES])
def test_bitwise_equal_to_torch(ours, theirs, kw, lrs):
    a, opt_a = train(ours, lrs, **kw)
    b, opt_b = train(theirs, lrs, foreach=False, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert [len(g["params"]) for g in sa["param_groups"]] == [2, 2, 1]  # the groups are kept as they were
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name, value in sb["state"][k].items():
            assert torch.equal(sa["state"][k][name], value), name
    # a state dict of ours loads into torch's optimizer and back
    opt_b.load_state_dict(sa)
    opt_a.load_state_dict(sb)


def test_joined_groups():
    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(4)]
    groups = [{"name": "gate", "params": p[:1], "lr": 0.1, "eps": 1e-8}, {"name": "e0", "params": p[1:2], "lr": 0.2, "eps": 1e-8},
              {"name": "e1", "params": p[2:], "lr": 0.1, "eps": 1e-8}]
    joined = optim.joined_groups(groups)
    assert [[id(q) for q in g["params"]] for g in joined] == [[id(p[0]), id(p[2]), id(p[3])], [id(p[1])]]
    assert all(g["foreach"] for g in joined) and groups[0]["params"] == p[:1]  # the groups themselves untouched


@pytest.mark.parametrize("lrs", [(0.01, 0.01, 0.01), (0.01, 0.003, 1e-4)], ids=["equal_lrs", "per_group_lrs"])
def test_adam_state_in_one_flat_buffer_bitwise_and_resumable(lrs):
    """Every parameter stepping every step: from the second step Adam's state lives in one buffer per kind
    (moe.training.flat_adam), bitwise torch's single-tensor Adam, its state dict torch's; a load_state_dict (a resume)
    rebuilds the buffers and continues bitwise as the uninterrupted optimizer does."""
    a, opt_a = train(optim.Adam, lrs, skip=False)
    b, opt_b = train(torch.optim.Adam, lrs, skip=False, foreach=False)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    flat = opt_a._flat
    assert flat is not None and flat.steps.tolist() == [30.0] * 5
    assert opt_a.state[a[2]]["exp_avg"]._base is flat.exp_avg  # the state entries are views of the buffer
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    for k in sb["state"]:
        for name, value in sb["state"][k].items():
            assert torch.equal(sa["state"][k][name], value), name
    # resume: a fresh optimizer loads the state dict, both take 5 more steps
    copies = [torch.nn.Parameter(p.detach().clone()) for p in a]
    index = {id(p): i for i, p in enumerate(a)}
    resumed = optim.Adam([{**g, "params": [copies[index[id(p)]] for p in g["params"]]} for g in opt_a.param_groups])
    saved = io.BytesIO()
    torch.save(opt_a.state_dict(), saved)  # a checkpoint round trip (a live state dict shares its tensors)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        for p, q, r in zip(a, b, copies):
            r.grad = p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt_a.step(), opt_b.step(), resumed.step()
    assert resumed._flat is not None and resumed._flat is not opt_a._flat
    assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(a, b, copies))


def test_fused_check_and_step_refuses_non_finite_without_stepping():
    """moe.training.epochs.step_checked with moe.training.optim.Adam: once the flat state serves, the check of the loss and the
    gradients shares the step's concatenation; a non-finite gradient or loss leaves parameters and state as they
    were, finite gradients whose sum overflows still step, and the steps equal torch's Adam bitwise."""
    from moe.training.epochs import step_checked

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    opt = optim.Adam([{"name": "gate", "params": list(model.parameters()), "lr": 0.1}])
    ref = torch.optim.Adam(twin.parameters(), lr=0.1, foreach=False)
    x = torch.randn(8, 3)
    for _ in range(3):
        assert step_checked(model(x).square().mean(), opt, model) is None
        ref.zero_grad()
        twin(x).square().mean().backward()
        ref.step()
    assert opt._flat is not None  # the fused path serves from the second step
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))

    def snapshot():
        return [t.clone() for t in (*model.parameters(), opt._flat.exp_avg, opt._flat.exp_avg_sq, opt._flat.steps)]

    before = snapshot()
    handle = model[0].weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    assert step_checked(model(x).square().mean(), opt, model)["reason"] == "non-finite gradients"
    handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot()))
    assert step_checked(model(x).square().mean() * float("nan"), opt, model)["reason"] == "non-finite training loss"
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot()))
    handle = model[1].bias.register_hook(lambda g: torch.full_like(g, 3e38))  # finite, but their sum overflows
    assert step_checked(model(x).square().mean(), opt, model) is None
    handle.remove()
    assert opt._flat.steps.tolist() == [4.0] * 4


def test_flat_parameters_stay_the_modules_and_moved_data_is_noticed():
    """With the flat state the parameters' data live in one buffer, yet they stay the modules' own Parameter objects,
    autograd sees each update (version counters), and a parameter whose data is replaced is stepped correctly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    params = list(model.parameters())
    opt = optim.Adam([{"name": "gate", "params": params[:2], "lr": 0.1}, {"name": "e0", "params": params[2:], "lr": 0.01}])
    ref = torch.optim.Adam([{"params": list(twin.parameters())[:2], "lr": 0.1}, {"params": list(twin.parameters())[2:], "lr": 0.01}],
                           foreach=False)
    x = torch.randn(8, 3)

    def both_step():
        for o, m in ((opt, model), (ref, twin)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()

    both_step(), both_step()
    flat = opt._flat
    assert list(model.parameters()) == params  # the same Parameter objects
    assert all(p.data_ptr() == flat.values[s:s + p.numel()].data_ptr()
               for p, s in zip(params, [0, 12, 16, 24]))  # ... whose data are slices of one buffer
    out = model(x).sum()  # a graph that saved the parameters, then an update: autograd must refuse the stale graph
    before = params[0]._version
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step()
    ref.zero_grad()
    twin(x).square().mean().backward()
    ref.step()
    assert params[0]._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    with torch.no_grad():
        params[3].data = params[3].detach().clone()  # data moved out of the buffer
        list(twin.parameters())[3].data = list(twin.parameters())[3].detach().clone()
    for _ in range(3):
        both_step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert opt._flat is not flat and opt._flat.values.data_ptr() == params[3].data_ptr() - 24 * 4  # moved in again


def test_uneven_step_counts_keep_the_per_parameter_step_without_reinstalling():
    """A parameter that skipped a step (an expert whose samples ran out) leaves the step counts uneven: the flat step
    cannot serve, so it is not installed again at every step (each install copies the state and the parameters)."""
    params, opt = train(optim.Adam, (0.01, 0.01, 0.01), steps=12)  # params[4] skips step 3 and step 10
    assert getattr(opt, "_flat", None) is None
    assert len({float(opt.state[p]["step"]) for p in params}) == 2


def test_step_hooks_schedulers_shared_and_tied_parameters_are_respected():
    """The fused check-and-step defers to ``step`` when step hooks or a scheduler's wrapper exist (they run only
    there); parameters in shared memory or tied to each other keep their memory (no flat buffer)."""
    from moe.training.epochs import step_checked

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = optim.Adam([{"name": "gate", "params": list(model.parameters()), "lr": 0.1}])
    calls = []
    opt.register_step_post_hook(lambda *a: calls.append(1))
    x = torch.randn(8, 3)
    for _ in range(5):
        assert step_checked(model(x).square().mean(), opt, model) is None
    assert len(calls) == 5
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(lambda *a: calls.append(2))
    try:
        step_checked(model(x).square().mean(), opt, model)
    finally:
        handle.remove()
    assert calls[-2:] == [2, 1]
    sched_opt = optim.Adam([{"name": "gate", "params": list(model.parameters()), "lr": 0.1}])
    scheduler = torch.optim.lr_scheduler.StepLR(sched_opt, step_size=2)
    for _ in range(4):
        step_checked(model(x).square().mean(), sched_opt, model)
        scheduler.step()
    assert sched_opt.step_if_finite(model(x).sum()) is None  # its step is wrapped by the scheduler
    assert sched_opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1 ** 2)

    shared = torch.nn.Linear(3, 2)
    shared.share_memory()
    sopt = optim.Adam([{"name": "gate", "params": list(shared.parameters()), "lr": 0.1}])
    for _ in range(3):
        step_checked(shared(x).square().mean(), sopt, shared)
    assert sopt._flat is None and all(p.is_shared() for p in shared.parameters())

    base = torch.nn.Parameter(torch.randn(6))
    tied = torch.nn.Parameter(torch.empty(0))
    tied.data = base.data[:3]  # shares base's memory
    topt = optim.Adam([{"name": "gate", "params": [base, tied], "lr": 0.1}])
    for _ in range(3):
        (base.square().sum() + tied.sum()).backward()
        topt.step()
        topt.zero_grad()
    assert topt._flat is None and tied.data_ptr() == base.data_ptr()


def test_optimizer_methods_call_through_without_dynamo_and_through_torchs_disable_with_it(monkeypatch):
    import sys
    import types

    for name in optim.DYNAMO_WRAPPED:  # installed on this torch version
        fn = getattr(torch.optim.Optimizer, name).__wrapped__
        assert getattr(fn, "__dynamo_disable").__wrapped__ is fn, name
    calls, made = [], []

    def method(*args, **kwargs):
        calls.append((args, kwargs))
        return "done"

    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)
    wrapped = optim._dynamo_disabled_once_loaded(method, True)
    assert wrapped(1, k=2) == "done" and calls == [((1,), {"k": 2})]  # called directly: nothing made
    fake = types.SimpleNamespace(disable=lambda fn, recursive, wrapping: made.append((fn, recursive, wrapping)) or (
        lambda *a, **k: ("disabled", fn(*a, **k))))
    monkeypatch.setitem(sys.modules, "torch._dynamo", fake)
    assert wrapped(3) == ("disabled", "done") and wrapped(4) == ("disabled", "done")
    assert made == [(method, True, False)] and len(calls) == 3  # torch's disabled method, made once, then used


TORCH_STEPS = {torch.optim.Adam: optim.TorchAdam, torch.optim.SGD: optim.TorchSGD, torch.optim.RMSprop: optim.TorchRMSprop}
WITHOUT_DYNAMO = CASES[2:] + [(TORCH_STEPS[theirs], theirs, kw) for _, theirs, kw in CASES]


@pytest.mark.parametrize("lrs", [(0.01, 0.01, 0.01), (0.01, 0.003, 1e-4)], ids=["equal_lrs", "per_group_lrs"])
@pytest.mark.parametrize("ours,theirs,kw", WITHOUT_DYNAMO, ids=[f"{c[0].__name__}{c[2]}" for c in WITHOUT_DYNAMO])
def test_a_step_without_dynamo_is_bitwise_torchs(ours, theirs, kw, lrs, monkeypatch):
    """SGD and RMSprop, and the plain optimizers of the language model (TorchAdam, ...), step through torch's own step
    without its wrapper while torch._dynamo is not imported (here: blocked, so that the wrapper's import would fail),
    bitwise as torch's optimizer, the grad mode restored; a step hook runs once, also once torch's own class has its
    hook layer (an instance of it was made)."""
    import sys

    with monkeypatch.context() as blocked:
        blocked.setitem(sys.modules, "torch._dynamo", None)  # `import torch._dynamo` raises ImportError
        with pytest.raises(ImportError):
            theirs([torch.nn.Parameter(torch.zeros(1, requires_grad=True))], lr=0.1).step()  # torch's wrapper imports it
        assert torch.is_grad_enabled() and getattr(theirs.step, "hooked", False)
        a, opt_a = train(ours, lrs, **kw)
        assert torch.is_grad_enabled()
        calls = []
        hooked = ours([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        hooked.register_step_post_hook(lambda *args: calls.append(1))
        hooked.step()
        assert calls == [1]
    b, opt_b = train(theirs, lrs, foreach=False, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name, value in sb["state"][k].items():
            assert torch.equal(sa["state"][k][name], value), name


def test_a_step_goes_through_torchs_wrapper_where_it_is_not_the_expected_one():
    calls = []

    def plain(optimizer, closure=None):  # no __wrapped__: called as it is
        calls.append((optimizer, closure))
        return "stepped"

    assert optim.step_without_dynamo(plain, "opt", "closure") == "stepped" and calls == [("opt", "closure")]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_a_fresh_process_trains_without_importing_dynamo(optimizer):
    import subprocess
    import sys

    code = ("import sys; from moe.training.loop import run; "
            "r = run({'router': 'softmax', 'experts': 2, 'epochs': 1, 'dataset': 'gm6', 'n_train': 60, 'n_test': 30, "
            f"'optimizer': {optimizer!r}}}); "
            "assert r['status'] == 'ok', r['status']; print('torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "False", proc.stdout + proc.stderr[-3000:]
