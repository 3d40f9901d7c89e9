"""Runs the Triton cases (`-m interp`: these kernel tests and the kernel benchmark's, tests/bench/speed) in a
child pytest under TRITON_INTERPRET=1.

The interpreter must be switched on before triton is imported, which this process may already
have done; a child process starts clean. Skipped when this process interprets already.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels._common import HAS_TRITON, interpreting

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.skipif(interpreting(), reason="this process interprets Triton: the cases ran in-process")
def test_triton_cases_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("MOE_KERNELS", None)
    cmd = [sys.executable, "-m", "pytest", str(HERE), str(ROOT / "tests" / "bench" / "speed"), "-m", "interp", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "deselected" in proc.stdout
