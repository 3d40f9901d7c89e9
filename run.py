#!/usr/bin/env python3
"""Set up the project-local virtual environment ``.venv`` (once) and run a command in it.

    python3 run.py sweep [ARGS...]   # python -m bench.sweep ARGS (default: the quick sweep on gm6)
    python3 run.py test [ARGS...]    # python -m pytest ARGS (the whole test suite)

Set-up is idempotent: it reinstalls only when pyproject.toml changed since the last successful install.
Only the standard library is used here, so this works with nothing but Python >= 3.11 and pip.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".moe-interp-bench-installed"
COMMANDS = {"sweep": ["-m", "bench.sweep"], "test": ["-m", "pytest"]}


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup() -> Path:
    """Create .venv and install the project with its test extras, unless pyproject.toml is unchanged."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"run.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("run.py: installing the project and its pinned dependencies into .venv (first time only)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted + "\n")
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python3 run.py {{{'|'.join(COMMANDS)}}} [ARGS...]", file=sys.stderr)
        return 2
    if sys.version_info < (3, 11):
        print("run.py: Python >= 3.11 is required", file=sys.stderr)
        return 2
    try:
        python = setup()
    except subprocess.CalledProcessError as err:
        print(f"run.py: installation failed (exit code {err.returncode}); nothing was marked as installed", file=sys.stderr)
        return err.returncode or 1
    return subprocess.run([str(python), *COMMANDS[argv[0]], *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
