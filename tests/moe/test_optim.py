"""moe.optim: the optimizers whose groups with equal hyperparameters step together give, on the CPU, bitwise the
parameters and state of torch's own (single-tensor) optimizers, and the same state dict."""
import pytest
import torch

from moe import optim

CASES = [(optim.Adam, torch.optim.Adam, {}), (optim.Adam, torch.optim.Adam, {"weight_decay": 0.1}),
         (optim.RMSprop, torch.optim.RMSprop, {"momentum": 0.9}),
         (optim.RMSprop, torch.optim.RMSprop, {"momentum": 0.0, "weight_decay": 0.01}),
         (optim.SGD, torch.optim.SGD, {"momentum": 0.9}), (optim.SGD, torch.optim.SGD, {"momentum": 0.0})]


def train(cls, lrs, steps=30, **kw):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s)) for s in [(10, 40), (10,), (32, 40), (32,), (7, 3)]]
    groups = [{"name": "gate", "params": params[:2], "lr": lrs[0]}, {"name": "expert0", "params": params[2:4], "lr": lrs[1]},
              {"name": "expert1", "params": params[4:], "lr": lrs[2]}]
    opt = cls(groups, **kw)
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 10.0 ** (i % 5 - 2)
        if i % 7 == 3:  # a parameter without a gradient this step (an expert whose samples ran out) is left alone
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
