"""A sweep's trial worker imports what a trial uses: the training code and torch, not the tables' pandas or the
report's matplotlib (each worker of a sweep pays its imports before its first trial)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def loaded_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; "
            "print(' '.join(m for m in ('pandas', 'matplotlib', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_trial_module_imports_neither_pandas_nor_matplotlib():
    assert loaded_after("import bench.sweep.trial") == set()


def test_the_check_sees_pandas():
    assert loaded_after("import bench.sweep.trial, bench.table.runs") >= {"pandas"}
