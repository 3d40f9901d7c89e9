"""Whether a reproduction's output directory may be continued: a sweep directory left by an earlier call is continued
only with the same sweep and settings, or grown by a budget's new seeds (``bench.sweep --add-seeds``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.reproduce.results import ReproduceError
from bench.sweep.layout import SweepDir


def same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same overrides, but for how many trials ran at once (``resources.max_concurrent``: no trial's numbers
    depend on it)."""
    a, b = ({k: v for k, v in d.items() if k != "resources.max_concurrent"} for d in (a, b))
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))


def check_continuable(name: str, folder: Path, overrides: dict[str, Any], *, report_only: bool = False) -> list[int]:
    """A sweep directory left by an earlier run may be continued only with the same sweep and settings, or grown by
    more seeds (a budget whose seed list holds the directory's and more: the seeds to add are returned; the finished
    trials keep their records, ``bench.sweep --add-seeds``). ``report_only``: nothing is trained, so the data root
    (where the files were, which a published directory replaces by a placeholder) is not compared, and a budget with
    seeds the directory lacks is refused (its runs are to come)."""
    sweep_dir = SweepDir(folder)
    if not sweep_dir.exists():
        return []
    meta, _ = sweep_dir.read_meta()
    then, now = dict(meta.get("overrides") or {}), dict(overrides)
    if report_only:
        then.pop("data_root", None)
        now.pop("data_root", None)
    added = [s for s in seed_values(now.get("seed")) if s not in seed_values(then.get("seed"))]
    grows = (bool(added) and set(seed_values(then.get("seed"))) <= set(seed_values(now.get("seed")))
             and same_settings({k: v for k, v in then.items() if k != "seed"}, {k: v for k, v in now.items() if k != "seed"}))
    if meta.get("name") != name or not (grows or same_settings(then, now)):
        raise ReproduceError(f"{folder} holds a sweep run with other settings (sweep {meta.get('name')!r}, overrides "
                             f"{json.dumps(meta.get('overrides'))}; now {json.dumps(overrides)}): pick another --out, "
                             "or repeat the earlier budget and data root to continue it")
    if grows and report_only:
        raise ReproduceError(f"--report-only: the budget asks for seed(s) {', '.join(map(str, added))} more than the "
                             f"{len(seed_values(then.get('seed')))} seed(s) run so far; the same command without "
                             "--report-only adds them")
    return added if grows else []


def seed_values(value: Any) -> list[Any]:
    """An override's seed value as a list (a single seed, a list of seeds, or none)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
