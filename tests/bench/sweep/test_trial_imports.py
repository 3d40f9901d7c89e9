"""A sweep's trial worker imports what a trial uses: the training code and torch, not the tables' pandas or the
report's matplotlib (each worker of a sweep pays its imports before its first trial)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def loaded_after(*statements: str) -> list[set[str]]:
    """The heavy modules loaded after each statement, run in turn in one fresh interpreter (one start for both tests)."""
    show = "print(' '.join(m for m in ('pandas', 'matplotlib', 'ray') if m in sys.modules) or '-')"
    code = "import sys\n" + "".join(f"{s}\n{show}\n" for s in statements)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == len(statements), out
    return [set(line.split()) - {"-"} for line in lines]


@pytest.fixture(scope="module")
def loaded():
    """(after importing the trial module, after importing the tables' runs module as well)."""
    return loaded_after("import bench.sweep.trial", "import bench.table.runs")


def test_the_trial_module_imports_neither_pandas_nor_matplotlib(loaded):
    assert loaded[0] == set()


def test_the_check_sees_pandas(loaded):
    assert loaded[1] >= {"pandas"}
