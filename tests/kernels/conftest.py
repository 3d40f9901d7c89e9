"""Kernel tests: every test taking `backend` runs on the torch fallback and on the Triton kernels.

Triton cases need the interpreter (TRITON_INTERPRET=1 set before triton is imported). When this
process is not interpreting, they are skipped here and run by `test_kernels_interpreter.py` in a
child pytest process that is (`-m interp`).
"""
import os
import random

import pytest
import torch

from kernels._common import interpreting

INTERPRETING = interpreting()


def pytest_configure(config):
    config.addinivalue_line("markers", "interp: Triton kernel cases run under TRITON_INTERPRET=1")


@pytest.fixture(params=["torch", pytest.param("triton", marks=pytest.mark.interp)])
def backend(request):
    if request.param == "triton" and not INTERPRETING:
        pytest.skip("Triton cases run in the interpreter subprocess (test_kernels_interpreter.py)")
    return request.param


@pytest.fixture(autouse=True)
def seed(request):
    """Fresh random inputs each run; the seed is printed (shown on failure), MOE_KERNELS_TEST_SEED replays it."""
    s = int(os.environ.get("MOE_KERNELS_TEST_SEED") or random.SystemRandom().randrange(2**31))
    print(f"seed={s}")
    torch.manual_seed(s)
    return s


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    monkeypatch.delenv("MOE_KERNELS", raising=False)
