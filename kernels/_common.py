"""Shared plumbing for the kernels: guarded Triton import, backend choice, argument checks.

`import kernels` must work without Triton installed, so Triton is imported here once, guarded;
kernel definitions use the stand-ins below when it is missing and are simply never launched.
"""
from __future__ import annotations

import difflib
import os
from types import SimpleNamespace

import torch

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # torch-only install: @triton.jit becomes a no-op, launches raise
    HAS_TRITON = False

    def _jit(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)

    triton = SimpleNamespace(jit=_jit, cdiv=lambda a, b: -(-a // b), next_power_of_2=None)
    tl = SimpleNamespace(constexpr=None)

BACKENDS = ("torch", "triton")
ENV_BACKEND = "MOE_KERNELS"


def interpreting() -> bool:
    """True when Triton kernels run on the CPU interpreter (TRITON_INTERPRET=1 before import)."""
    if not HAS_TRITON:
        return False
    try:
        return bool(triton.knobs.runtime.interpret)
    except AttributeError:  # older Triton: read the variable directly
        return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def backend_problem(backend: str | None, device_type: str) -> str | None:
    """Why ``backend`` (None: env MOE_KERNELS, else the device's default) cannot run on ``device_type``
    tensors ('cpu', 'cuda'), as one line naming the setting and the valid choices; None when it can.
    Callers check this at start (``moe.validate``) instead of failing at the first forward pass."""
    env = os.environ.get(ENV_BACKEND)
    if backend is None:
        backend = env or ("triton" if device_type == "cuda" else "torch")
        source = f"environment variable {ENV_BACKEND}" if env else "backend"
    else:
        source = "backend"
    torch_instead = f"{ENV_BACKEND}=torch" if source != "backend" else "backend='torch'"
    if backend not in BACKENDS:
        hint = difflib.get_close_matches(str(backend), BACKENDS, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{source}={backend!r} is not one of {BACKENDS}{extra}"
    if backend == "triton":
        if not HAS_TRITON:
            return f"{source}='triton' but Triton is not installed; use {torch_instead}"
        if device_type != "cuda" and not interpreting():
            return (f"{source}='triton' on {device_type} tensors needs the Triton interpreter: set "
                    f"TRITON_INTERPRET=1 before triton is imported, or use {torch_instead}")
    return None


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """`backend` if given, else env MOE_KERNELS, else triton on CUDA and torch elsewhere."""
    if backend is None and device.type != "cuda" and ENV_BACKEND not in os.environ:  # the CPU default: nothing to check
        return "torch"
    if (problem := backend_problem(backend, device.type)) is not None:
        raise ValueError(problem)
    return backend or os.environ.get(ENV_BACKEND) or ("triton" if device.type == "cuda" else "torch")


def check_tensor(name: str, t, *, ndim: int | None = None, dtypes=None, device=None) -> None:
    """Raise ValueError naming `name` when `t` is not a tensor of the expected rank/dtype/device."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must have dtype in ({names}), got {str(t.dtype).replace('torch.', '')}")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but must be on {device} like the other inputs")


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
