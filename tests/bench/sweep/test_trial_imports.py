"""What a fresh interpreter imports: a sweep's trial worker imports what a trial uses, the training code and torch,
not the tables' pandas or the report's matplotlib, nor torchvision to read MNIST-family files (each worker of a sweep
pays its imports before its first trial);
and the commands of ``python -m bench.sweep`` that run no trial (``--dry-run``, ``--list``, ``--help``:
``bench.sweep.command``) import neither Ray nor pandas nor matplotlib.

All of it in ONE interpreter (each start pays torch's import, ~2 s): the heavy modules in ``sys.modules`` after each
step, in turn. Modules are only ever added, so a step whose check finds none of them imported none of them itself;
the last step (the tables' runs module) shows that the check sees pandas."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_mnist import make_fake_mnist

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "pandas", "matplotlib", "ray", "torchvision")
COMMANDS = [["quick", "--dry-run", "--set", "epochs=2"], ["--list", "--data-root", "{tmp}"], ["--help"]]

# Runs each command as ``python -m bench.sweep`` does (runpy, ``__main__``), its last line (``exit_now``, which would
# end the process) turned into an exception that carries the exit status.
DRIVER = """
import contextlib, io, json, runpy, sys
HEAVY, COMMANDS, DATA = json.loads(sys.argv[1])
loaded = lambda: [m for m in HEAVY if m in sys.modules]
steps = []
import bench.sweep.trial
from moe.data import load_dataset
load_dataset("fmnist", data_root=DATA)
steps.append({"loaded": loaded()})
import bench.command_exit
class Exited(Exception):
    pass
def exit_now(status):
    raise Exited(status)
bench.command_exit.exit_now = exit_now
for argv in COMMANDS:
    sys.argv, out, status = ["bench.sweep", *argv], io.StringIO(), "returned"
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module("bench.sweep", run_name="__main__", alter_sys=True)
    except Exited as end:
        status = end.args[0]
    steps.append({"loaded": loaded(), "status": status, "stdout": out.getvalue()})
import bench.table.runs
steps.append({"loaded": loaded()})
print(json.dumps(steps))
"""


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> list[dict]:
    """The heavy modules loaded after each step: importing the trial module and loading Fashion-MNIST (tiny files);
    each command of ``COMMANDS`` (with its exit status and standard output); importing the tables' runs module as
    well."""
    tmp = str(tmp_path_factory.mktemp("data_root"))
    commands = [[a.replace("{tmp}", tmp) for a in argv] for argv in COMMANDS]
    data = tmp_path_factory.mktemp("fmnist")
    make_fake_mnist(data, "FashionMNIST")
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([HEAVY, commands, str(data)])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = json.loads(proc.stdout.splitlines()[-1])
    assert len(steps) == len(COMMANDS) + 2, proc.stdout[-2000:]
    return steps


def test_the_trial_module_imports_neither_pandas_nor_matplotlib_nor_torchvision_for_its_data(steps):
    assert set(steps[0]["loaded"]) == {"torch"}


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[" ".join(argv) for argv in COMMANDS])
def test_commands_without_trials_import_no_ray_pandas_or_matplotlib(steps, index):
    step = steps[1 + index]
    assert step["status"] in (0, None) and "torch" in step["loaded"] and step["stdout"].strip(), step
    assert not {"ray", "pandas", "matplotlib"} & set(step["loaded"])


def test_the_check_sees_pandas(steps):
    assert "pandas" in steps[-1]["loaded"]
