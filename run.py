#!/usr/bin/env python3
"""Set up the project-local virtual environment ``.venv`` (once) and run a command in it.

    python3 run.py sweep [ARGS...]   # python -m bench.sweep ARGS (default: the quick sweep on gm6)
    python3 run.py test [ARGS...]    # python -m pytest ARGS (the whole test suite), one worker process per core,
                                     # bytecode cached in __pycache__ even where PYTHONDONTWRITEBYTECODE is set

Set-up is idempotent: it reinstalls only when what pip installs changed since the last successful install
(the parsed dependency lists, the build requirements, the project's name, version and packages: not comments
or any other byte of pyproject.toml). Only the standard library is used here, so this works with nothing but
Python >= 3.11 and pip.
"""
from __future__ import annotations

import hashlib
import os
import json
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".moe-interp-bench-installed"
COMMANDS = {"sweep": ["-m", "bench.sweep"], "test": ["-m", "pytest"]}
MAX_TEST_WORKERS = 8  # each worker imports torch and may start a local Ray: memory, not cores, bounds more


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def test_args(args: list[str], n_cores: int | None = None) -> list[str]:
    """pytest's arguments for ``run.py test ARGS``: ARGS after pytest-xdist's workers, one per available core (at
    most MAX_TEST_WORKERS), the tests of one file on one worker (``loadscope``: a module-scoped fixture is made
    once); none on one core, and none when ARGS choose (``-n``/``--numprocesses``/``--dist``, ``-p no:xdist``;
    ``-n 0`` runs everything in one process)."""
    n = min(cores() if n_cores is None else n_cores, MAX_TEST_WORKERS)
    chosen = any(a in ("-n", "--numprocesses", "--dist", "no:xdist") or a.startswith(("-n", "--numprocesses=", "--dist="))
                 for a in args)
    if n < 2 or chosen:
        return list(args)
    return ["-n", str(n), "--dist", "loadscope", *args]


def test_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``run.py test``: this one with bytecode caching on (no PYTHONDONTWRITEBYTECODE), so a
    second run neither compiles the project's modules nor rewrites the test modules' asserts again (pytest keeps its
    rewritten modules beside Python's: ``__pycache__`` folders, which git ignores; the environment's packages keep
    their own, compiled at install). Collecting the suite: about 15 s of CPU per worker without, 9 s with."""
    env = dict(os.environ if environ is None else environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_key(pyproject: bytes) -> str:
    """A hash of what an install depends on, parsed from pyproject.toml: the dependency lists (run and optional),
    the build requirements, the project's name and version (records carry the version) and its packages."""
    data = tomllib.loads(pyproject.decode("utf-8"))
    project = data.get("project", {})
    wanted = {"build": data.get("build-system", {}).get("requires", []),
              "name": project.get("name"), "version": project.get("version"),
              "requires-python": project.get("requires-python"),
              "dependencies": project.get("dependencies", []),
              "optional": project.get("optional-dependencies", {}),
              "packages": data.get("tool", {}).get("setuptools", {})}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def install_message(python_exists: bool, stamp: str | None) -> str:
    """What set-up says before installing: first time, or why again."""
    if not python_exists or stamp is None:
        return "run.py: installing the project and its pinned dependencies into .venv (first time only; several minutes)"
    return "run.py: the dependency list in pyproject.toml changed since the last install: installing again into .venv"


def setup() -> Path:
    """Create .venv and install the project with its test extras, unless its dependency lists are unchanged."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    wanted = install_key(pyproject)
    python = venv_python()
    stamp = STAMP.read_text().strip() if python.exists() and STAMP.exists() else None
    if stamp == hashlib.sha256(pyproject).hexdigest():  # an older run.py's stamp of the same file: no reinstall
        STAMP.write_text(wanted + "\n")
        stamp = wanted
    if stamp == wanted:
        return python
    message = install_message(python.exists(), stamp)
    if not python.exists():
        print(f"run.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(message, flush=True)
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
    if argv[0] == "test":
        return subprocess.run([str(python), *COMMANDS["test"], *test_args(argv[1:])], cwd=ROOT, env=test_env()).returncode
    return subprocess.run([str(python), *COMMANDS[argv[0]], *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
