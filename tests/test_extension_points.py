"""The extension points take the files the README says, and no more: each test copies the project into a
temporary folder, adds a throwaway router, score, sweep or claim by touching exactly the files the README's
'Adding a router, a score, a sweep or a claim' names, and runs it there in a fresh process."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("moe", "kernels", "bench", "sweeps")

pytestmark = pytest.mark.slow


def project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in COPIED:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run_python(root: Path, code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "MOE_OFFLINE": "1", "MPLBACKEND": "Agg", "HOME": str(root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


TINY = {"dataset": "gm6", "experts": 3, "epochs": 1, "n_train": 240, "n_test": 120, "threads": 1}


@pytest.fixture(scope="module")
def router_and_score(tmp_path_factory) -> list[str]:
    """One project copy with a throwaway router (its file and one import line) and a throwaway score (one registry
    entry), and one fresh process that trains with that router and reads the score: each extension touches only its
    own files, so the two tests below share the copy and the process (one ~3 s process fewer)."""
    root = project_copy(tmp_path_factory.mktemp("router_and_score"))
    (root / "moe/routers/throwaway.py").write_text(
        '"""``throwaway``: a router of this test."""\n'
        "from moe.routers.base import ROUTERS\nfrom moe.routers.softmax import SoftmaxRouter\n\n\n"
        '@ROUTERS.register("throwaway")\nclass ThrowawayRouter(SoftmaxRouter):\n'
        '    """The softmax router under another name (source: this test)."""\n')
    append(root / "moe/routers/__init__.py", "from moe.routers import throwaway  # noqa: F401,E402  (register)\n")
    scores = root / "moe/scoring/scores.py"
    text = scores.read_text()
    marker = "\n# ---------------------------------------------------------------------------------------------------\n# Derived"
    assert marker in text
    entry = ('\n_add("throwaway_score", "higher", "allocation", "a score of this test", lambda i: 0.25,\n'
             '     formula="1/4", range="[0, 1]", source="this test", ours=True, table=True)\n')
    scores.write_text(text.replace(marker, entry + marker, 1))
    out = run_python(root, "from moe.training.loop import run\nfrom bench.table.configurations import TABLE_SCORES\n"
                           f"r = run({{**{TINY!r}, 'router': 'throwaway'}}, progress=False)\n"
                           "print(r['status'], r['config']['router'], r['test']['throwaway_score'], "
                           "'throwaway_score' in TABLE_SCORES)")
    return out.split()


def test_a_router_is_one_file_and_one_import_line(router_and_score):
    assert router_and_score[:2] == ["ok", "throwaway"]


def test_a_score_is_one_registry_entry_that_says_whether_tables_show_it(router_and_score):
    assert router_and_score[2:] == ["0.25", "True"]


def test_a_sweep_is_one_file(tmp_path):
    root = project_copy(tmp_path)
    (root / "sweeps/throwaway.yaml").write_text(
        'description: "a sweep of this test"\nversion: 1\ndataset: gm6\nbudget:\n  epochs: 1\n  n_train: 240\n'
        "  n_test: 120\ngrid:\n  router: [softmax, throwaway_missing]\n  experts: [2]\n")
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", "throwaway", "--dry-run"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "throwaway_missing" in proc.stderr  # the file is read, and checked
    (root / "sweeps/throwaway.yaml").write_text((root / "sweeps/throwaway.yaml").read_text().replace(", throwaway_missing", ""))
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", "throwaway", "--dry-run"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "softmax" in proc.stdout


def test_a_reproduction_sweep_and_its_claim_are_one_file_and_entries_in_the_catalogue(tmp_path):
    root = project_copy(tmp_path)
    (root / "sweeps/throwaway.yaml").write_text((root / "sweeps/smoke.yaml").read_text())
    append(root / "bench/reproduce/claims.py",
           '\nTHROWAWAY = Claim("throwaway.learns", "throwaway", "a claim of this test", "this test",\n'
           '                  (Condition("mean", {"measure": "accuracy"}, ">=", 0.5, "mean accuracy"),))\n'
           "CLAIMS = CLAIMS + (THROWAWAY,)\n"
           'SWEEPS = SWEEPS + (SweepEntry("throwaway", ("accuracy", "nmi"), "expert_count"),)\n')
    out = run_python(root, "import pandas as pd\nfrom bench.reproduce import engine, figures, runner, verdict_page\n"
                           "claims = runner.select_claims('throwaway')\n"
                           "runs = pd.DataFrame({'name': ['a'] * 4, 'status': ['ok'] * 4, 'seed': range(4),\n"
                           "                     'accuracy': [0.9, 0.92, 0.91, 0.93]})\n"
                           "v = engine.evaluate(claims[0], runs)\n"
                           "print(runner.SWEEPS[-1], [c.name for c in claims], v.status, verdict_page.NUMBERS['throwaway'],\n"
                           "      'throwaway' in figures.PLOTS)")
    assert out.split() == ["throwaway", "['throwaway.learns']", "SUPPORTED", "['accuracy',", "'nmi']", "True"]


def test_a_sweep_entry_naming_an_unknown_figure_function_is_an_error(tmp_path):
    root = project_copy(tmp_path)
    append(root / "bench/reproduce/claims.py", 'SWEEPS = SWEEPS + (SweepEntry("throwaway", ("accuracy",), "nope"),)\n')
    proc = subprocess.run([sys.executable, "-c", "import bench.reproduce.figures"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "unknown figure functions (throwaway: 'nope')" in proc.stderr
