"""The one owner of a sweep directory's layout: every reader and writer of one goes through :class:`SweepDir`.

A sweep directory (``--out``, default ``results/<sweep>-<timestamp>``, see :func:`default_out`)::

    sweep.json          the resolved sweep (file, overrides, resources) and every trial's config
    records/NNNN.json   one run record per finished trial (ok, diverged, error or stopped): the truth
    records/errors/NNNN.K.json   error records set aside by ``--resume --retry-errors`` (K = 1, 2, ...)
    ray/, ray-resume-N/ Ray's experiment directories (tuner.pkl, experiment state, trial dirs
                        trial_NNNN/checkpoint_*/state.pt: the trial's latest training state while it runs)
    runs.csv, results_long.csv, table.md, table.tex, pareto.csv, tradeoff.png, heatmaps/<router>.png   (bench.table)
    report.html         the self-contained HTML report (bench.report)

Nothing here imports Ray or torch: the sweep runner, the progress callback, the tables and the
reproduction all read the same paths from here.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.sweep.spec import Sweep, SweepError, Trial
from moe.record import versions, write_json_atomic

META = "sweep.json"
STATE_FILE = "state.pt"  # the training state inside a checkpoint directory


def default_out(name: str, root: str | os.PathLike = "results") -> Path:
    """``results/<name>-<YYYYmmdd-HHMMSS>`` (absolute; ``-2``, ``-3``... if taken)."""
    base = Path(root).resolve() / f"{Path(name).stem}-{datetime.now():%Y%m%d-%H%M%S}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


class SweepDir:
    """A sweep directory: where its state, records, checkpoints and tables live, and how they are read."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"SweepDir({str(self.root)!r})"

    # -- paths
    @property
    def meta_path(self) -> Path:
        return self.root / META

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def errors_dir(self) -> Path:
        return self.records_dir / "errors"

    def record_path(self, index: int) -> Path:
        return self.records_dir / f"{index:04d}.json"

    def table_path(self, name: str) -> Path:
        """``runs.csv``, ``results_long.csv``, ``table.md``, ``table.tex``, ``pareto.csv``, ``tradeoff.png``."""
        return self.root / name

    @property
    def heatmaps_dir(self) -> Path:
        return self.root / "heatmaps"

    @property
    def report_path(self) -> Path:
        """report.html: the self-contained HTML report (``bench.report``)."""
        return self.root / "report.html"

    # -- sweep.json: the resolved sweep and its trials
    def exists(self) -> bool:
        """True when the directory holds a sweep (its sweep.json)."""
        return self.meta_path.exists()

    def write_meta(self, sweep: Sweep, trials: list[Trial]) -> None:
        write_json_atomic(self.meta_path, {"sweep": sweep.to_dict(), "trials": [t.to_dict() for t in trials],
                                           "created": datetime.now().isoformat(timespec="seconds"),
                                           "versions": versions()})

    def read_meta(self) -> tuple[dict[str, Any], list[Trial]]:
        """(the resolved sweep as a dict, its trials); SweepError when the directory holds no readable sweep."""
        try:
            state = json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            raise SweepError(f"--resume {self.root}: no {META} there; not a sweep directory") from None
        except (OSError, json.JSONDecodeError) as err:
            raise SweepError(f"--resume {self.root}: cannot read {META}: {err}") from None
        return state["sweep"], [Trial(**t) for t in state["trials"]]

    def sweep_meta(self) -> dict[str, Any]:
        """The resolved sweep as a dict, or {} when there is none (a hand-made runs.csv)."""
        try:
            return json.loads(self.meta_path.read_text())["sweep"]
        except (OSError, KeyError, json.JSONDecodeError):
            return {}

    # -- records
    def record_files(self) -> list[Path]:
        return sorted(self.records_dir.glob("*.json"))

    def has_record(self, index: int) -> bool:
        return self.record_path(index).exists()

    def write_record(self, index: int, record: dict[str, Any]) -> None:
        write_json_atomic(self.record_path(index), record)

    def finished_indices(self) -> set[int]:
        """Trial indices that already have a record (any status)."""
        done = set()
        for p in self.record_files():
            try:
                done.add(int(p.stem))
            except ValueError:
                pass
        return done

    def record_statuses(self) -> list[tuple[int, Path, str | None]]:
        """(trial index, path, status) of every readable record, in index order."""
        found = []
        for path in self.record_files():
            try:
                found.append((int(path.stem), path, json.loads(path.read_text()).get("status")))
            except (ValueError, OSError, json.JSONDecodeError):
                continue
        return found

    def read_records(self) -> list[dict[str, Any]]:
        """Every record, in trial order (unreadable files are skipped with a warning)."""
        out = []
        for p in self.record_files():
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError) as err:
                print(f"warning: skipping {p}: {err}", file=sys.stderr)
        return sorted(out, key=lambda r: r.get("bench", {}).get("index", 1 << 30))

    def class_names(self) -> list[str] | None:
        """The dataset's class names, from the first records that hold them."""
        for p in self.record_files()[:20]:
            try:
                names = (json.loads(p.read_text()).get("dataset") or {}).get("class_names")
            except (OSError, json.JSONDecodeError):
                continue
            if names:
                return names
        return None

    def set_aside_errors(self) -> list[int]:
        """Move the ``error`` records to ``records/errors/NNNN.K.json`` (K = 1, 2, ...: nothing is overwritten),
        so that a resume runs those trials again, each from its checkpoint; returns their indices."""
        moved = []
        for index, p, status in self.record_statuses():
            if status != "error":
                continue
            self.errors_dir.mkdir(exist_ok=True)
            k = 1 + sum(1 for _ in self.errors_dir.glob(f"{index:04d}.*.json"))
            os.replace(p, self.errors_dir / f"{index:04d}.{k}.json")
            moved.append(index)
        return moved

    # -- Ray experiments and checkpoints
    def experiment_name(self) -> str:
        """``ray`` for the first run of a sweep directory, ``ray-resume-N`` for the N-th resume."""
        if not (self.root / "ray").exists():
            return "ray"
        n = 1
        while (self.root / f"ray-resume-{n}").exists():
            n += 1
        return f"ray-resume-{n}"

    @staticmethod
    def trial_dirname(index: int) -> str:
        return f"trial_{index:04d}"

    def checkpoint_dirs(self, index: int) -> list[Path]:
        """Every checkpoint directory the Ray experiments of this directory hold for trial ``index``."""
        return sorted(self.root.glob(f"ray*/{self.trial_dirname(index)}/checkpoint_*"))

    def drop_checkpoints(self) -> None:
        """Delete the checkpoints of trials that need them no more: those with an ok, diverged or stopped record."""
        for index, _, status in self.record_statuses():
            if status != "error":
                for folder in self.checkpoint_dirs(index):
                    shutil.rmtree(folder, ignore_errors=True)
