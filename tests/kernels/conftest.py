"""Kernel tests: every test taking `backend` runs on the torch fallback and on the Triton kernels.

Triton cases need the interpreter (TRITON_INTERPRET=1 set before triton is imported). When this
process is not interpreting, they are skipped here and run by `test_kernels_interpreter.py` in a
child pytest process that is (`-m interp`).
"""
import os
import random
import zlib

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
    """The inputs' seed: by default fixed per test (a CRC of its id), so a failure repeats by itself.

    ``MOE_KERNELS_TEST_SEED=N`` replays a seed; ``MOE_KERNELS_FUZZ=1`` draws a fresh one per test and run.
    The seed is printed, so pytest shows it with a failure.
    """
    if os.environ.get("MOE_KERNELS_TEST_SEED"):
        s = int(os.environ["MOE_KERNELS_TEST_SEED"])
    elif os.environ.get("MOE_KERNELS_FUZZ", "0") not in ("", "0"):
        s = random.SystemRandom().randrange(2**31)
    else:
        s = zlib.crc32(request.node.nodeid.encode())
    print(f"seed={s}")
    torch.manual_seed(s)
    return s


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    monkeypatch.delenv("MOE_KERNELS", raising=False)
