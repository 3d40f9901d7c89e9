"""Optimizers of a run: torch's Adam, SGD and RMSprop whose ``step`` updates the parameter groups that share
their hyperparameters together, in one multi-tensor (``foreach``) pass.

``build_optimizer`` (below) gives the gate and each expert its own parameter group (each its own learning
rate). torch steps groups one by one and, on the CPU, parameter by parameter (its single-tensor path): ~10
small ops per parameter and step, the largest cost of a small model's training step. Here the groups with
equal hyperparameters (all of them when the learning rates are equal) are joined for the step and updated by
torch's own multi-tensor code; Adam, once every parameter has stepped, runs on one flat buffer of its state and
of the parameters' data (``moe.training.flat_adam``: on the CPU torch's multi-tensor ops still loop over the tensors). The
arithmetic is elementwise and the same op for op: on the CPU the parameters and the optimizer state are bitwise
those of the plain optimizer (``tests/moe/test_optim.py``), and the state dict (groups, state) is the plain
optimizer's, so checkpoints are unchanged.

Nothing here imports ``torch._dynamo`` (about 1.5 s of CPU in each process that would): torch's step runs without the
wrapper that imports it (:func:`step_without_dynamo`), its other methods as :func:`import_dynamo_only_when_loaded`
says. ``TorchAdam``, ``TorchSGD`` and ``TorchRMSprop`` are torch's optimizers with only that change (the language
model's).
"""
from __future__ import annotations

import sys
from typing import Callable

import torch
from torch.optim import optimizer as torch_optimizer

from moe.config import Config
from moe.training.flat_adam import FlatAdamState
from moe.model import MixtureOfExperts

DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")  # torch._disable_dynamo's, on Optimizer
NOT_HYPER = ("params", "name")  # group keys that are not hyperparameters
GLOBAL_STEP_HOOKS = ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks")  # torch.optim.register_optimizer_step_*


def import_dynamo_only_when_loaded() -> None:
    """torch wraps four of ``torch.optim.Optimizer``'s methods (``DYNAMO_WRAPPED``) in ``torch._disable_dynamo``, which
    imports ``torch._dynamo`` at their first call in a process (about 1.5 s of CPU: each Ray trial process, each
    command) only to mark them as never compiled. Nothing here compiles, and no compilation runs in a process
    that has not imported ``torch._dynamo``: the function each wrapper caches (``fn.__dynamo_disable``) is set to one
    that calls the method directly while ``torch._dynamo`` is not imported and torch's own disabled method once it
    is. Where torch's wrapper does not look as expected (another torch version), it is left as it is."""
    for name in DYNAMO_WRAPPED:
        inner = getattr(torch.optim.Optimizer, name, None)
        fn = getattr(inner, "__wrapped__", None)
        code, cells = getattr(inner, "__code__", None), getattr(inner, "__closure__", None)
        if fn is None or code is None or cells is None or hasattr(fn, "__dynamo_disable"):
            continue
        free = dict(zip(code.co_freevars, cells))
        if set(free) != {"fn", "recursive"} or free["fn"].cell_contents is not fn:
            continue
        fn.__dynamo_disable = _dynamo_disabled_once_loaded(fn, free["recursive"].cell_contents)


def _dynamo_disabled_once_loaded(fn, recursive: bool):
    disabled = None

    def call(*args, **kwargs):
        nonlocal disabled
        if disabled is None:
            dynamo = sys.modules.get("torch._dynamo")
            if dynamo is None:  # nothing compiles without it
                return fn(*args, **kwargs)
            disabled = dynamo.disable(fn, recursive, wrapping=False)  # what torch's wrapper would have cached
        return disabled(*args, **kwargs)

    call.__wrapped__ = fn
    return call


import_dynamo_only_when_loaded()


def joined_groups(groups: list[dict]) -> list[dict]:
    """The groups with equal hyperparameters joined into one (first-seen order), each marked ``foreach``."""
    joined: dict[tuple, dict] = {}
    for g in groups:
        key = tuple(sorted((k, repr(v)) for k, v in g.items() if k not in NOT_HYPER))
        if key in joined:
            joined[key]["params"] = joined[key]["params"] + list(g["params"])
        else:
            joined[key] = {**g, "params": list(g["params"]), "foreach": True}
    return list(joined.values())


def torch_step(cls: type) -> Callable:
    """The ``step`` of torch's optimizer class ``cls`` as torch defines it: without the layer that runs the step hooks,
    which torch's constructor wraps around the class's ``step`` once one of its instances is made
    (``Optimizer._patch_step_function``). The subclasses here have that layer around their own ``step``; the one
    around torch's class (there once a plain torch optimizer of that class was made in the process) would run each
    hook a second time."""
    step = cls.__dict__["step"]
    while getattr(step, "hooked", False) and hasattr(step, "__wrapped__"):
        step = step.__wrapped__
    return step


def step_without_dynamo(step: Callable, optimizer: torch.optim.Optimizer, closure=None):
    """``step(optimizer, closure)``, a torch optimizer's own ``step`` (:func:`torch_step`): torch wraps it
    (``_use_grad_for_differentiable``) in a function that imports ``torch._dynamo`` at its first call in a process
    (about 1.5 s of CPU, as in :func:`import_dynamo_only_when_loaded`) to mark two graph breaks, which do nothing
    outside a compilation. While ``torch._dynamo`` is not imported, the function inside runs directly under the
    wrapper's grad mode (the optimizer's ``differentiable``; the caller's restored after): the same arithmetic. Once
    it is imported, or where the wrapper does not look as expected (another torch version), torch's wrapper runs."""
    inner = getattr(step, "__wrapped__", None)
    code = getattr(step, "__code__", None)
    if inner is None or code is None or code.co_name != "_use_grad" or sys.modules.get("torch._dynamo") is not None:
        return step(optimizer, closure)
    previous = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(optimizer.defaults["differentiable"])
        return inner(optimizer, closure)
    finally:
        torch.set_grad_enabled(previous)


class TorchStep:
    """Mixin: ``step`` is the torch class's own (the one after this one in the class's order), without its import of
    ``torch._dynamo`` (:func:`torch_step`, :func:`step_without_dynamo`): torch's optimizer, op for op."""

    def step(self, closure=None):
        order = type(self).__mro__
        return step_without_dynamo(torch_step(order[order.index(TorchStep) + 1]), self, closure)


class TorchAdam(TorchStep, torch.optim.Adam):
    """torch.optim.Adam as torch steps it (the language model's and the controls' optimizer)."""


class TorchSGD(TorchStep, torch.optim.SGD):
    """torch.optim.SGD as torch steps it."""


class TorchRMSprop(TorchStep, torch.optim.RMSprop):
    """torch.optim.RMSprop as torch steps it."""


class JoinedStep(TorchStep):
    """Mixin: ``step`` runs the optimizer's own step (torch's, as :class:`TorchStep` runs it) over
    :func:`joined_groups`, then restores the groups."""

    def step(self, closure=None):
        groups = self.param_groups
        self.param_groups = joined_groups(groups)
        try:
            return super().step(closure)
        finally:
            self.param_groups = groups


class Adam(JoinedStep, torch.optim.Adam):
    """torch.optim.Adam (Kingma & Ba 2015), its groups stepped together (see the module).

    In the plain case (no amsgrad, maximize, capturable, differentiable or fused; real parameters; the betas,
    eps and weight decay shared by every group; one device and dtype) one pass runs the ops of torch's
    ``_multi_tensor_adam`` over every group at once, each parameter with its group's learning rate, and reads
    the step counts in one sync instead of two ``.item()`` per parameter; without weight decay, on one flat buffer
    of the state (``moe.training.flat_adam``), bitwise the same. Anything else: torch's own step.
    """

    @torch.no_grad()
    def step(self, closure=None):
        lean = lean_adam_groups(self.param_groups)
        if lean is None or closure is not None:
            return super().step(closure)
        if self.flat_step(lean) is True:
            return None
        params, grads, exp_avgs, exp_avg_sqs, steps, lrs = [], [], [], [], [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:  # torch's lazy initialisation (a CPU float32 step, zero moments)
                    state["step"] = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                                 else torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
                lrs.append(group["lr"])
        if not params:
            return None
        if len({(t.device, t.dtype) for t in params}) > 1 or any(p.is_complex() for p in params):
            return super().step()
        beta1, beta2, eps, weight_decay = lean
        # the ops of torch.optim.adam._multi_tensor_adam (non-capturable), in its order
        torch._foreach_add_(steps, torch.tensor(1.0, device="cpu"), alpha=1.0)
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        counts = torch.stack(steps).tolist()  # one sync for every step count
        step_size = [(lr / (1 - beta1 ** n)) * -1 for lr, n in zip(lrs, counts)]
        bias_correction2_sqrt = [(1 - beta2 ** n) ** 0.5 for n in counts]
        exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(exp_avg_sq_sqrt, bias_correction2_sqrt)
        torch._foreach_add_(exp_avg_sq_sqrt, eps)
        torch._foreach_addcdiv_(params, exp_avgs, exp_avg_sq_sqrt, step_size)
        if weight_decay == 0 and len(params) == sum(len(g["params"]) for g in self.param_groups):
            self._flat = FlatAdamState.install(self.state, self.param_groups)  # from the next step (moe.training.flat_adam)
        return None

    def flat_step(self, lean: tuple[float, float, float, float] | None, loss: torch.Tensor | None = None) -> bool | None:
        """The step on the flat state (``moe.training.flat_adam``) when it serves (every parameter has a gradient, no weight
        decay): True stepped, False not finite (with ``loss``: nothing changed); None: it does not serve."""
        flat = getattr(self, "_flat", None)
        if lean is None or lean[3] != 0 or flat is None or not flat.serves(self.state, self.param_groups):
            return None
        grads = [p.grad for p in flat.params]
        if any(g is None for g in grads):
            return None
        return flat.step(grads, [g["lr"] for g in self.param_groups for _ in g["params"]], *lean[:3], loss=loss)

    @torch.no_grad()
    def step_if_finite(self, loss: torch.Tensor) -> bool | None:
        """Step when ``loss`` and every gradient are finite (True); False, nothing changed, when one is not; None when
        the flat state does not serve (the caller checks, then calls ``step``). One concatenation of the gradients and
        one sync serve the check and the step. Also None when step hooks are registered (or a scheduler wrapped
        ``step``): they run only through ``step``."""
        if self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or "step" in self.__dict__ or any(
                getattr(torch_optimizer, name, None) for name in GLOBAL_STEP_HOOKS):
            return None
        return self.flat_step(lean_adam_groups(self.param_groups), loss)


def lean_adam_groups(groups: list[dict]) -> tuple[float, float, float, float] | None:
    """(beta1, beta2, eps, weight_decay) when every group is plain and shares them, else None."""
    shared = {(tuple(g["betas"]), g["eps"], g["weight_decay"]) for g in groups}
    plain = all(not (g["amsgrad"] or g["maximize"] or g["capturable"] or g["differentiable"] or g["fused"]
                     or g.get("decoupled_weight_decay", False)) for g in groups)
    if len(shared) != 1 or not plain:
        return None
    (betas, eps, weight_decay), = shared
    if any(isinstance(v, torch.Tensor) for v in (*betas, eps, weight_decay, *(g["lr"] for g in groups))):
        return None
    return betas[0], betas[1], eps, weight_decay


class SGD(JoinedStep, torch.optim.SGD):
    """torch.optim.SGD with momentum, its groups stepped together (see the module)."""


class RMSprop(JoinedStep, torch.optim.RMSprop):
    """torch.optim.RMSprop (Hinton's lecture 6e), its groups stepped together (see the module)."""


def for_config(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` (adam | sgd | rmsprop) over ``groups``, with cfg's momentum and weight decay."""
    if cfg.optimizer == "adam":
        return Adam(groups, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return RMSprop(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_optimizer(cfg: Config, model: MixtureOfExperts, train_gate: bool = True,
                    train_experts: bool = True) -> torch.optim.Optimizer:
    """One parameter group for the router side (gate and matched router) and one per expert, each with its
    own learning rate; a frozen side gets no group."""
    gate_params = [p for m in model.gate_modules() for p in m.parameters()]
    groups = [{"name": "gate", "params": gate_params, "lr": cfg.lr if cfg.gate_lr is None else cfg.gate_lr}]
    for e, (expert, lr) in enumerate(zip(model.experts.experts, cfg.expert_learning_rates())):
        groups.append({"name": f"expert{e}", "params": list(expert.parameters()), "lr": lr})
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}, "every parameter belongs to exactly one group"
    trained = lambda g: train_gate if g["name"] == "gate" else train_experts  # noqa: E731
    groups = [g for g in groups if g["params"] and trained(g)]  # a fixed (non-learned) router has no parameters
    return for_config(cfg, groups)  # torch's optimizers, the groups with equal hyperparameters stepped together


def set_trainable(model: MixtureOfExperts, gate: bool, experts: bool) -> None:
    """Freeze or unfreeze the router side and the experts (no gradients are computed for a frozen side)."""
    for m in model.gate_modules():
        m.requires_grad_(gate)
    model.experts.requires_grad_(experts)
