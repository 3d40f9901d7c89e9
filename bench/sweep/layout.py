"""The one owner of a sweep directory's layout: every reader and writer of one goes through :class:`SweepDir`.
(Long because it is that one owner: every path, check, reader and the writer lock of a sweep directory.)

A sweep directory (``--out``, default ``results/<sweep>-<timestamp>``, see :func:`default_out`)::

    sweep.json          the resolved sweep (file, overrides, resources) and every trial's config
    records/NNNN.json   one run record per finished trial (ok, diverged, error or stopped): the truth
    records/errors/NNNN.K.json   error records set aside by ``--resume --retry-errors`` (K = 1, 2, ...)
    records/damaged/NNNN.K.json  records that do not parse or have the wrong shape, set aside by ``--resume``
    ray/, ray-resume-N/ Ray's experiment directories (tuner.pkl, experiment state, trial dirs
                        trial_NNNN/checkpoint_*/state.pt: the trial's latest training state while it runs)
    runs.csv, results_long.csv, table.md, table.tex, pareto.csv, tradeoff.png, heatmaps/<router>.png   (bench.table)
    report.html         the self-contained HTML report (bench.report)

Nothing here imports Ray: the sweep runner, the progress callback, the tables, the report, compare, the
figures and the reproduction all read the same paths from here, runs.csv through :func:`read_runs_csv` (the
one place it is parsed), and every record and sweep.json through the checks
here (:meth:`SweepDir.read_record`, :meth:`SweepDir.read_meta`): a record cut short by a crash, or valid
JSON of the wrong shape, is never taken for a finished trial.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.sweep import growth, lock
from bench.sweep.spec import TOP_KEYS, Sweep, SweepError, Trial, from_mapping, grown_by_seeds, validate
from moe.strict_files import load_json
from moe.records.record import STATUSES, versions, write_json_atomic
from moe.registry import shown, shown_key

if TYPE_CHECKING:  # pandas only to read runs.csv: a trial worker imports this module without it
    import pandas as pd

META = "sweep.json"
RUNS_CSV = "runs.csv"
STATE_FILE = "state.pt"  # the training state inside a checkpoint directory
# optional record fields and the JSON types they must have when present (None is allowed for all but config)
RECORD_FIELDS = {"bench": dict, "config": dict, "test": dict, "validation": dict, "history": list, "timing": dict,
                 "versions": dict, "dataset": dict, "allocation": list, "test_assignment": list, "routing_dynamics": dict,
                 "provenance": dict}
TRIAL_KEYS = ("index", "name", "config", "fault")


class DamagedFile(ValueError):
    """A record or sweep.json that does not parse or has the wrong shape; the message says what is wrong."""


def record_problem(rec: Any, index: int | None) -> str | None:
    """What makes ``rec`` (parsed JSON) no run record of trial ``index``, or None when it is one."""
    if not isinstance(rec, dict):
        return f"not a JSON object (a JSON {type(rec).__name__})"
    if rec.get("status") not in STATUSES:
        return f"status {rec.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key, kind in RECORD_FIELDS.items():
        if rec.get(key) is not None and not isinstance(rec[key], kind):
            return f"{key}: expected a JSON {'object' if kind is dict else 'array'}, got {type(rec[key]).__name__}"
    if rec.get("config") is None and "config" in rec:
        return "config: expected a JSON object, got null"
    if index is not None and not isinstance(rec.get("bench"), dict):
        return ("a foreign record: it has no 'bench' block, so it is no trial of this sweep (a record of "
                "python -m moe.train copied in?)")
    bench = rec.get("bench") or {}
    found = bench.get("index", index)
    if index is not None and (isinstance(found, bool) or found != index):
        return f"bench.index {shown(found)} is not the trial of its file name ({index})"
    if "name" in bench and not isinstance(bench["name"], str):
        return f"bench.name: expected text (the configuration's name), got {shown(bench['name'])}"
    for block in ("test", "validation"):
        bad = next((k for k, v in (rec.get(block) or {}).items()
                    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))), None)
        if bad is not None:
            return f"{block}.{shown_key(bad)}: expected a number or null, got {shown(rec[block][bad])}"
    alloc = rec.get("allocation")
    if alloc and not (all(isinstance(r, list) for r in alloc) and len({len(r) for r in alloc}) == 1
                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in alloc for v in r)):
        return "allocation: expected a class x expert matrix of counts"
    return None


def meta_problem(state: Any) -> str | None:
    """What makes ``state`` (parsed JSON) no sweep.json of bench.sweep, or None when it is one."""
    if not (isinstance(state, dict) and isinstance(state.get("sweep"), dict) and isinstance(state.get("trials"), list)):
        return "expected a JSON object with 'sweep' (an object) and 'trials' (an array)"
    sweep = state["sweep"]
    if not isinstance(sweep.get("name"), str) or not isinstance(sweep.get("grid"), (list, dict)):
        return "sweep: expected an object with 'name' (a string) and 'grid'"
    for i, t in enumerate(state["trials"]):
        if not isinstance(t, dict) or set(t) - set(TRIAL_KEYS) or not set(TRIAL_KEYS[:3]) <= set(t):
            return f"trials[{i}]: expected an object with keys {', '.join(TRIAL_KEYS)}"
        if (not isinstance(t["index"], int) or isinstance(t["index"], bool) or t["index"] != i
                or not isinstance(t["name"], str) or not isinstance(t["config"], dict)):
            return f"trials[{i}]: expected index {i}, a name (a string) and a config (an object)"
    return None


def read_json_file(path: Path) -> Any:
    """Parsed strict JSON (a repeated key is an error); DamagedFile when it cannot be read or parsed."""
    try:
        return load_json(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as err:  # ValueError: bad JSON, bad UTF-8, a repeated key
        raise DamagedFile(f"not valid JSON: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


RUNS_CSV_COLUMNS = ("name", "status")  # what every table of a runs.csv without records reads


def read_runs_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A runs.csv (a sweep directory's, or one given by path): the one place the file is parsed. DamagedFile, one
    line naming the file, when it does not parse as CSV text or lacks the columns every table reads."""
    import pandas as pd  # deferred: see the imports

    try:
        runs = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, OSError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        if isinstance(err, FileNotFoundError):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DamagedFile(f"{path}: not a readable runs.csv ({first[:160]})") from None
    missing = [c for c in RUNS_CSV_COLUMNS if c not in runs.columns]
    if missing:
        raise DamagedFile(f"{path}: not a runs.csv of a sweep: no {', '.join(missing)} column (it has: "
                          f"{shown_key(', '.join(map(str, runs.columns)))})")
    return runs


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

    @property
    def damaged_dir(self) -> Path:
        return self.records_dir / "damaged"

    def record_path(self, index: int) -> Path:
        return self.records_dir / f"{index:04d}.json"

    def table_path(self, name: str) -> Path:
        """``runs.csv``, ``results_long.csv``, ``table.md``, ``table.tex``, ``pareto.csv``, ``tradeoff.png``."""
        return self.root / name

    @property
    def runs_csv(self) -> Path:
        return self.table_path(RUNS_CSV)

    def read_runs_csv(self) -> pd.DataFrame | None:
        """The directory's runs.csv as written (``read_runs_csv``), or None where it has none."""
        return read_runs_csv(self.runs_csv) if self.runs_csv.is_file() else None

    @property
    def heatmaps_dir(self) -> Path:
        return self.root / "heatmaps"

    @property
    def figure_cache_dir(self) -> Path:
        """The report's figures kept by content (``bench.report.figures``): redrawn only when what they show changed."""
        return self.root / ".cache" / "figures"

    @property
    def record_cache_path(self) -> Path:
        """What the tables read of each record, kept by the record file's identity (``bench.table.record_cache``)."""
        return self.root / ".cache" / "records.json"

    @property
    def report_path(self) -> Path:
        """report.html: the self-contained HTML report (``bench.report``)."""
        return self.root / "report.html"

    # -- sweep.json: the resolved sweep and its trials
    def exists(self) -> bool:
        """True when the directory holds a sweep (its sweep.json, sound or not: see :meth:`is_sweep`)."""
        return self.meta_path.exists()

    def write_meta(self, sweep: Sweep, trials: list[Trial], options: dict[str, Any] | None = None,
                   data_sha256: dict[str, Any] | None = None) -> None:
        """sweep.json: the resolved sweep (with its file's text as it ran), its trials, ``options``: how its trials
        run (``--stack-seeds``, ``--scheduler``, ``--max-failures``, ``--order``), which ``--resume`` restores, and the fingerprint of each dataset it
        loaded, which ``--resume`` checks."""
        write_json_atomic(self.meta_path, {"sweep": sweep.to_dict(), "trials": [t.to_dict() for t in trials],
                                           "options": dict(options or {}), "data_sha256": dict(data_sha256 or {}),
                                           "created": datetime.now().isoformat(timespec="seconds"),
                                           "versions": versions()})

    def note_mixture(self, changes: list[str]) -> None:
        """Add to sweep.json that a resume continued after ``changes`` (the report marks the mixture)."""
        state = self.meta_state()
        state["mixed"] = [*state.get("mixed", []), {"at": datetime.now().isoformat(timespec="seconds"), "changes": changes}]
        write_json_atomic(self.meta_path, state)

    def add_seeds(self, sweep: Sweep, trials: list[Trial], seeds: list[int]) -> list[Trial]:
        """Grow the sweep by ``seeds``: sweep.json gets a trial per configuration and new seed after the trials it
        holds (``spec.grown_by_seeds``: their indices and records stay), the seed lists of its grid and overrides
        become the seeds of its trials, and a note of the growth (the report lists it). Returns all the trials; a
        seed out of range is a SweepError line before anything is written."""
        state = self.meta_state()
        if not state:
            raise SweepError(f"--add-seeds: {self.meta_path} cannot be read")
        grown = grown_by_seeds(trials, seeds)
        if len(grown) == len(trials):
            return trials
        validate(sweep, grown)
        every = sorted({t.config.get("seed") for t in grown if isinstance(t.config.get("seed"), int)})
        sweep = state["sweep"]
        for block in sweep.get("grid") or []:
            if isinstance(block, dict) and "seed" in block:
                block["seed"] = every
        overrides = sweep.get("overrides")
        if isinstance(overrides, dict) and "seed" in overrides:
            overrides["seed"] = every
        state["trials"] = [t.to_dict() for t in grown]
        state["grown"] = [*state.get("grown", []), {"at": datetime.now().isoformat(timespec="seconds"),
                                                     "seeds": list(seeds), "trials": len(grown) - len(trials)}]
        write_json_atomic(self.meta_path, state)
        return grown

    def grow(self, trials: list[Trial], grid: list[dict[str, Any]], flag: str = "--add") -> list[Trial]:
        """Grow the sweep to the target ``grid`` (its own grid with more values on some axes, or any grid whose trials
        hold its trials: ``bench.sweep.growth``):
        sweep.json gets each trial of that grid whose configuration it lacks after the trials it holds (their indices
        and records stay), the grid and the overrides of the grown axes become the target's, and a note of the growth
        (the report lists it). Returns all the trials. A grid that drops a trial, or a trial config that is not valid, is
        a SweepError before anything is written."""
        state = self.meta_state()
        if not state:
            raise SweepError(f"{flag}: {self.meta_path} cannot be read")
        meta = state["sweep"]
        try:
            target = from_mapping({**{k: meta[k] for k in TOP_KEYS if k in meta}, "grid": grid}, name=meta["name"],
                                  path=meta.get("path"))
            wanted = target.trials()
        except SweepError as err:
            raise SweepError([f"{flag}: {p}" for p in err.problems]) from None
        if lost := growth.dropped(trials, wanted):
            raise SweepError(f"{flag}: the grown grid {growth.dropped_text(lost)}: a sweep grows only by more trials")
        grown = growth.grown_to(trials, wanted)
        if len(grown) == len(trials):
            return trials
        try:
            validate(target, grown)
        except SweepError as err:
            raise SweepError([f"{flag}: {p}" for p in err.problems]) from None
        added = growth.new_values(trials, grown)
        meta["grid"] = target.grid
        if isinstance(meta.get("overrides"), dict):
            meta["overrides"] = growth.grown_overrides(meta["overrides"], target.grid)
        state["trials"] = [t.to_dict() for t in grown]
        state["grown"] = [*state.get("grown", []), {"at": datetime.now().isoformat(timespec="seconds"), "added": added,
                                                     **({"seeds": added["seed"]} if "seed" in added else {}),
                                                     "trials": len(grown) - len(trials)}]
        write_json_atomic(self.meta_path, state)
        return grown

    def save_options(self, **changed: Any) -> None:
        """Update sweep.json's ``options`` (atomically; the rest kept as it is)."""
        state = self.meta_state()
        state["options"] = {**(state.get("options") if isinstance(state.get("options"), dict) else {}), **changed}
        write_json_atomic(self.meta_path, state)

    def run_options(self) -> dict[str, Any]:
        """The options sweep.json saved for its trials ({} for a directory written before they were saved)."""
        options = self.meta_state().get("options")
        return options if isinstance(options, dict) else {}

    def read_meta(self) -> tuple[dict[str, Any], list[Trial]]:
        """(the resolved sweep as a dict, its trials); SweepError naming the file when the directory holds no
        sweep.json or a damaged one."""
        try:
            state = read_json_file(self.meta_path)
            problem = meta_problem(state)
        except FileNotFoundError:
            raise SweepError(f"--resume {self.root}: no {META} there; not a sweep directory") from None
        except DamagedFile as err:
            problem = str(err)
        if problem:
            raise SweepError(f"--resume {self.root}: {self.meta_path} is damaged ({problem}); "
                             "it cannot be resumed") from None
        return state["sweep"], [Trial(**t) for t in state["trials"]]

    def is_sweep(self) -> bool:
        """True when the directory holds a readable sweep.json of bench.sweep."""
        try:
            return meta_problem(read_json_file(self.meta_path)) is None
        except (OSError, DamagedFile):
            return False

    def meta_state(self) -> dict[str, Any]:
        """The whole sweep.json (sweep, trials, created, versions) when it is sound, else {}."""
        try:
            state = read_json_file(self.meta_path)
        except (OSError, DamagedFile):
            return {}
        return state if meta_problem(state) is None else {}

    def sweep_meta(self) -> dict[str, Any]:
        """The resolved sweep as a dict, or {} when there is none (a hand-made runs.csv) or it is damaged."""
        try:
            state = read_json_file(self.meta_path)
        except (OSError, DamagedFile):
            return {}
        return state["sweep"] if meta_problem(state) is None else {}

    def check_new_out(self) -> None:
        """Refuse, before any work, an ``--out`` that cannot hold a new sweep: under a file, not writable,
        a file itself, a sweep already, or a non-empty directory that is no sweep of bench.sweep."""
        root = self.root
        if pid := lock.locked_by_other(root):
            raise SweepError(f"--out {root}: another process writes there now (PID {pid}); pick a new directory")
        if root.is_dir() and self.meta_path.exists():
            hint = f"continue it with --resume {root}" if self.is_sweep() else f"its {META} is damaged"
            raise SweepError(f"--out {root}: already holds a sweep; {hint} or pick a new directory")
        if root.is_dir() and any(root.iterdir()):
            raise SweepError(f"--out {root}: a non-empty directory that holds no sweep; nothing there is overwritten: "
                             "give a new or empty directory (or --resume DIR to continue a sweep)")
        if root.exists() and not root.is_dir():
            raise SweepError(f"--out {root}: a file, not a directory")
        problem = writable_problem(root)
        if problem:
            raise SweepError(f"--out {root}: {problem}")

    def create(self, sweep: Sweep, trials: list[Trial], options: dict[str, Any] | None = None,
               data_sha256: dict[str, Any] | None = None) -> None:
        """Make the directory, take its lock (:meth:`lock`) and write its sweep.json (one line, not a traceback, when
        that fails; a directory this call made is then removed). Another sweep that made it meanwhile is refused."""
        made = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.lock("--out")
            if self.meta_path.exists() or any(p.name != lock.LOCK_FILE for p in self.root.iterdir()):
                self.unlock()
                raise SweepError(f"--out {self.root}: another sweep started there meanwhile; pick a new directory")
            self.write_meta(sweep, trials, options, data_sha256)
        except OSError as err:
            self.unlock()
            if made:
                shutil.rmtree(self.root, ignore_errors=True)
            raise SweepError(f"--out {self.root}: cannot write there: {err.strerror or err}") from None

    def remove_unstarted(self) -> bool:
        """Remove the directory when no trial has started in it (it holds only sweep.json and the lock), and let its
        lock go; True when removed. A directory where Tune has begun (ray/) or a record exists is kept."""
        if self.record_files() or any(p.name not in (META, lock.LOCK_FILE) for p in self.root.iterdir()):
            return False
        self.unlock()
        lock.forget(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    def lock(self, flag: str) -> None:
        """Hold the directory's writer lock for this process (``bench.sweep.lock``); SweepError naming the holder's PID."""
        try:
            lock.acquire(self.root)
        except lock.LockedError as err:
            raise SweepError(f"{flag} {self.root}: {err}") from None

    def unlock(self) -> None:
        lock.release(self.root)

    # -- records
    def record_files(self) -> list[Path]:
        return sorted(self.records_dir.glob("*.json"))

    def has_record(self, index: int) -> bool:
        return self.record_path(index).exists()

    def write_record(self, index: int, record: dict[str, Any]) -> None:
        write_json_atomic(self.record_path(index), record)

    def read_record(self, path: Path) -> dict[str, Any]:
        """The run record in ``path`` (``records/NNNN.json``); DamagedFile when it does not parse (a write cut
        short) or is not a record of trial NNNN (a JSON object with a valid status, fields of their types)."""
        if not path.stem.isdigit():
            raise DamagedFile("not a record: its name is not NNNN.json")
        rec = read_json_file(path)
        problem = record_problem(rec, int(path.stem))
        if problem:
            raise DamagedFile(problem)
        return rec

    def scan_records(self) -> tuple[dict[int, dict[str, Any]], list[tuple[Path, str]]]:
        """({trial index: record} of every sound record, [(path, what is wrong)] of every damaged one)."""
        good: dict[int, dict[str, Any]] = {}
        damaged: list[tuple[Path, str]] = []
        for p in self.record_files():
            try:
                good[int(p.stem)] = self.read_record(p)
            except DamagedFile as err:
                damaged.append((p, str(err)))
            except FileNotFoundError:  # moved away meanwhile
                continue
            except OSError as err:
                damaged.append((p, f"cannot read it: {err.strerror or err}"))
        return good, damaged

    def finished_indices(self) -> set[int]:
        """Trial indices that already have a sound record (any status); a damaged one does not count."""
        return set(self.scan_records()[0])

    def record_statuses(self) -> list[tuple[int, Path, str | None]]:
        """(trial index, path, status) of every sound record, in index order."""
        return [(i, self.record_path(i), rec.get("status")) for i, rec in sorted(self.scan_records()[0].items())]

    def read_records(self) -> list[dict[str, Any]]:
        """Every sound record, in trial order; each damaged one is skipped with one warning line."""
        good, damaged = self.scan_records()
        for p, problem in damaged:
            print(f"warning: skipping {p}: {problem}", file=sys.stderr)
        return [good[i] for i in sorted(good)]

    def class_names(self) -> list[str] | None:
        """The dataset's class names, from the first records that hold them."""
        for path in self.record_files()[:20]:  # the first 20 files only, not every record of a large sweep
            try:
                rec = self.read_record(path)
            except (DamagedFile, OSError):
                continue
            names = (rec.get("dataset") or {}).get("class_names")
            if names:
                return names
        return None

    def set_aside_damaged(self) -> list[tuple[Path, Path, str]]:
        """Move every damaged record to ``records/damaged/NNNN.K.json`` (kept, never overwritten), so that a
        resume runs its trial again; returns (from, to, what was wrong) for each."""
        moved = []
        for p, problem in self.scan_records()[1]:
            moved.append((p, self._set_aside(p, self.damaged_dir), problem))
        return moved

    def _set_aside(self, path: Path, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        k = 1 + sum(1 for _ in folder.glob(f"{path.stem}.*.json"))
        while (folder / f"{path.stem}.{k}.json").exists():
            k += 1
        os.replace(path, folder / f"{path.stem}.{k}.json")
        return folder / f"{path.stem}.{k}.json"

    def set_aside_errors(self) -> list[int]:
        """Move the ``error`` records to ``records/errors/NNNN.K.json`` (K = 1, 2, ...: nothing is overwritten),
        so that a resume runs those trials again, each from its checkpoint; returns their indices."""
        moved = []
        for index, p, status in self.record_statuses():
            if status == "error":
                self._set_aside(p, self.errors_dir)
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


def writable_problem(path: Path) -> str | None:
    """Why a directory cannot be made at ``path`` and written into (None when it can): a file on the way, or
    its nearest existing ancestor not writable (tried by making and removing a temporary directory there)."""
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    try:
        probe = tempfile.mkdtemp(prefix=".write-probe-", dir=ancestor)
        os.rmdir(probe)
    except OSError as err:
        return f"cannot write in {ancestor}: {err.strerror or err}"
    return None
