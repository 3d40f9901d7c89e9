"""What the tables and the page read of a sweep directory's records, each record read once and kept by its file's
identity.

``RecordTable(sweep_dir)``: the sound records of ``records/*.json`` as the tables need them: each record's runs.csv
row (``bench.table.runs.record_row`` and the scores derived from its allocation), its configuration's seed stability,
and the little else the tables and the page read of every run (its routing-dynamics curve, host, class names,
whether it holds an ablation). All of it is kept in ``.cache/records.json`` (``SweepDir.record_cache_path``) under
each record file's identity (its size, modification time in nanoseconds and inode: a record is written
atomically, as a new file, so a rewritten record has a new identity) and the source of the code that computes it: a
rebuild reads only the records that are new or changed since the cache was written (and, for the seed stability,
the other runs of a configuration that has a new or changed run); what it builds equals a build from the records
alone. The full record of a run (its history and views, for the page's figures) is read on demand (``get``).

A damaged record is never kept: it is read, and reported (one warning line, as ``SweepDir.read_records``), by each
build. A cache that cannot be read is ignored, one that cannot be written is left as it was: it only saves time.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from bench.sweep.layout import DamagedFile, SweepDir
from bench.table import runs as runs_mod
from moe.records.files import atomic_write_bytes

VERSION = 1
# the modules whose source decides a cached row: a change of any of them rebuilds every row
ROW_MODULES = ("bench.table.runs", "bench.table.record_cache", "moe.scoring.token_scores", "moe.scoring.metrics",
               "moe.scoring.scores", "moe.records.record", "bench.sweep.layout")


def _code_stamp() -> str:
    digest = hashlib.sha256(str(VERSION).encode())
    for name in ROW_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()


def identity(path: Path) -> list[int] | None:
    """[size, mtime_ns, inode] of a file; None when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _plain(v: Any) -> Any:
    """A numpy scalar as the Python number it holds (for JSON)."""
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"not JSON: {type(v).__name__}")


def record_entry(rec: dict[str, Any]) -> dict[str, Any]:
    """What is kept of one sound record: its runs.csv row, the scores its allocation gives, and what else the tables
    and the page read of every run."""
    row = runs_mod.record_row(rec)
    curve = (rec.get("routing_dynamics") or {}).get("router_saturation")
    return {"row": row, "derived": runs_mod.allocation_scores(row["allocation"]),
            "stable": rec.get("status") == "ok" and rec.get("test_assignment") is not None,
            "saturation": curve if isinstance(curve, list) else None,
            "host": (rec.get("provenance") or {}).get("host"),
            "class_names": (rec.get("dataset") or {}).get("class_names"),
            "ablation": bool(rec.get("ablation"))}


class RecordTable:
    """The sound records of a sweep directory (module docstring). ``entries``: index -> what is kept of its record,
    in index order; ``read``: how many record files this build parsed (new or changed ones, and those the seed
    stability of a changed configuration needed)."""

    def __init__(self, sweep_dir: SweepDir, cache: bool = True):
        self.sweep_dir = sweep_dir
        self.path = sweep_dir.record_cache_path
        self.entries: dict[int, dict[str, Any]] = {}
        self.paths: dict[int, Path] = {}
        self.read = 0
        self._full: dict[int, dict[str, Any]] = {}  # records read in full for the page (``get``)
        self._assignments: dict[int, list[int]] = {}  # test assignments of the stable records read by the scan
        self._ids: dict[int, list[int]] = {}
        self._stamp = _code_stamp()
        self._dirty = False
        old = self._load() if cache else {"records": {}, "stability": {}}
        self._scan(old["records"])
        self._kept_stability = old["stability"]
        self._stability: dict[int, dict[str, float]] | None = None  # computed when first asked for (``runs``)

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> "RecordTable":
        """A table of records already read (no directory, no cache)."""
        self = cls.__new__(cls)
        self.sweep_dir = self.path = None
        self._full = {int(r["bench"]["index"]): r for r in records}
        self.entries = {i: record_entry(r) for i, r in sorted(self._full.items())}
        self.paths, self._ids, self.read, self._dirty, self._assignments = {}, {}, len(self._full), False, {}
        self._stability = runs_mod.seed_stability([self._full[i] for i in self.entries])
        self._kept_stability = {}
        return self

    # -- the cache file
    def _load(self) -> dict[str, Any]:
        empty = {"records": {}, "stability": {}}
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return empty
        if not isinstance(data, dict) or data.get("code") != self._stamp:
            return empty
        return {"records": data.get("records") or {}, "stability": data.get("stability") or {}}

    def save(self) -> None:
        """Write the cache when this build read anything new; a disk that refuses it costs only the saving."""
        if self.path is None:
            return
        if self._stability is None:
            self._stability = self._seed_stability(self._kept_stability)
        if not self._dirty:
            return
        records = {self.paths[i].name: {"id": self._ids[i], **e} for i, e in self.entries.items()}
        data = {"code": self._stamp, "records": records, "stability": self._stability_kept}
        try:
            atomic_write_bytes(self.path, json.dumps(data, default=_plain, allow_nan=True).encode())
        except OSError:
            pass

    # -- reading the directory
    def _scan(self, kept: dict[str, Any]) -> None:
        damaged = []
        for p in self.sweep_dir.record_files():
            ident = identity(p)
            if ident is None:  # moved away meanwhile
                continue
            old = kept.get(p.name)
            index = int(p.stem) if p.stem.isdigit() else None
            if old is not None and old.get("id") == ident and index is not None:
                entry = {k: v for k, v in old.items() if k != "id"}
            else:
                try:
                    rec = self.sweep_dir.read_record(p)
                except DamagedFile as err:
                    damaged.append((p, str(err)))
                    continue
                except FileNotFoundError:
                    continue
                except OSError as err:
                    damaged.append((p, f"cannot read it: {err.strerror or err}"))
                    continue
                self.read += 1
                self._dirty = True
                entry = record_entry(rec)
                if entry["stable"]:
                    self._assignments[index] = rec["test_assignment"]
            self.entries[index], self.paths[index], self._ids[index] = entry, p, ident
        for p, problem in damaged:
            print(f"warning: skipping {p}: {problem}", file=sys.stderr)
        if set(kept) - {p.name for p in self.paths.values()}:
            self._dirty = True  # records gone (or damaged since): dropped from the cache
        self.entries = dict(sorted(self.entries.items()))

    def _seed_stability(self, kept: dict[str, Any]) -> dict[int, dict[str, float]]:
        """Trial index -> seed stability (``bench.table.runs.seed_stability``), computed anew only for the
        configurations whose stable runs (ok, with test assignments) changed."""
        groups: dict[str, list[int]] = {}
        for i, e in self.entries.items():
            if e["stable"]:
                groups.setdefault(e["row"]["name"], []).append(i)
        out: dict[int, dict[str, float]] = {}
        self._stability_kept = {}
        for name, members in groups.items():
            key = [[i] + self._ids.get(i, []) for i in members]
            old = kept.get(name)
            if old is not None and old.get("members") == key:
                values = {int(i): {"nmi": nmi, "ari": ari} for i, nmi, ari in old["values"]}
            else:
                self._dirty = True
                values = runs_mod.seed_stability([{"status": "ok", "bench": {"name": name, "index": i},
                                                   "test_assignment": self._assignment(i)} for i in members])
            out.update(values)
            self._stability_kept[name] = {"members": key, "values": [[i, v["nmi"], v["ari"]] for i, v in values.items()]}
        if set(kept) != set(groups):
            self._dirty = True
        self._assignments.clear()
        return out

    def _assignment(self, index: int) -> list[int]:
        if index not in self._assignments:
            rec = self._full.get(index) or self.sweep_dir.read_record(self.paths[index])
            self.read += index not in self._full
            self._assignments[index] = rec["test_assignment"]
        return self._assignments[index]

    # -- what the tables and the page read
    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int, default: Any = None) -> dict[str, Any] | None:
        """The full record of trial ``index`` (read from its file once), or ``default``."""
        if index not in self.entries:
            return default
        if index not in self._full:
            try:
                self._full[index] = self.sweep_dir.read_record(self.paths[index])
            except (OSError, DamagedFile):  # gone or damaged since the scan: as if absent
                return default
            self.read += 1
        return self._full[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.get(index)
        if rec is None:
            raise KeyError(index)
        return rec

    def runs(self, stability: bool = True):
        """The runs table (``bench.table.runs.runs_frame`` of these records); without ``stability``, its
        stability columns are NaN (what a caller that needs the rest sooner asks for)."""
        if stability and self._stability is None:
            self._stability = self._seed_stability(self._kept_stability)
        return runs_mod.frame_of_rows([e["row"] for e in self.entries.values()], self._stability if stability else {},
                                      [e["derived"] for e in self.entries.values()])

    def ablation(self, index: int) -> Any:
        """The ``ablation`` block of trial ``index``'s record (None without one; the record read only when it has one)."""
        e = self.entries.get(index)
        return (self.get(index) or {}).get("ablation") if e is not None and e["ablation"] else None

    def saturation_records(self) -> list[dict[str, Any]]:
        """Each record as ``bench.table.saturation.saturation_curves`` reads it (status, name, saturation curve)."""
        return [{"status": e["row"]["status"], "bench": {"name": e["row"]["name"]},
                 "routing_dynamics": {"router_saturation": e["saturation"]}} for e in self.entries.values()]

    def hosts(self) -> list[str]:
        return sorted({str(e["host"]) for e in self.entries.values() if e["host"]})

    def class_names(self) -> list[str] | None:
        """The dataset's class names, from the first records that hold them (as ``SweepDir.class_names``)."""
        by_name = {p.name: i for i, p in self.paths.items()}
        for path in self.sweep_dir.record_files()[:20] if self.sweep_dir is not None else []:
            if path.name in by_name:
                names = self.entries[by_name[path.name]]["class_names"]
                if names:
                    return names
        if self.sweep_dir is None:
            return next((e["class_names"] for e in self.entries.values() if e["class_names"]), None)
        return None
