"""Whether a reproduction's output directory may be continued: a sweep directory left by an earlier call is continued
only with the same sweep and settings, or grown by a budget whose trials hold the directory's and more (more seeds,
more expert counts, more routers: ``bench.sweep.growth``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.reproduce.results import ReproduceError
from bench.sweep import growth, spec
from bench.sweep.layout import SweepDir
from bench.sweep.spec import SweepError


def same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same overrides, but for how many trials ran at once (``resources.max_concurrent``: no trial's numbers
    depend on it)."""
    a, b = ({k: v for k, v in d.items() if k != "resources.max_concurrent"} for d in (a, b))
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))


def resolved(meta: dict[str, Any], *, report_only: bool) -> dict[str, Any]:
    """What fixes a sweep's trials but for its grid: dataset, budget, settings, resources (but max_concurrent; and
    the data root when nothing is trained: a published directory replaces it by a placeholder)."""
    settings = dict(meta.get("settings") or {})
    if report_only:
        settings.pop("data_root", None)
    resources = {k: v for k, v in (meta.get("resources") or {}).items() if k != "max_concurrent"}
    return {"dataset": meta.get("dataset"), "budget": meta.get("budget") or {}, "settings": settings,
            "resources": resources}


def differences(then: dict[str, Any], now: dict[str, Any]) -> str | None:
    """``budget.n_train 8000 then, 10048 now; ...``: what differs between two :func:`resolved` sweeps (None: nothing)."""
    out = []
    for section in then.keys() | now.keys():
        a, b = then.get(section), now.get(section)
        if not (isinstance(a, dict) and isinstance(b, dict)):
            out += [f"{section} {json.dumps(a)} then, {json.dumps(b)} now"] if a != b else []
            continue
        out += [f"{section}.{k} {json.dumps(a.get(k))} then, {json.dumps(b.get(k))} now"
                for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return "; ".join(sorted(out)) or None


def check_continuable(name: str, folder: Path, overrides: dict[str, Any], *,
                      report_only: bool = False) -> list[dict[str, Any]] | None:
    """A sweep directory left by an earlier run may be continued only with the same sweep and settings, or grown: a
    budget whose trials hold every trial of the directory (more seeds, expert counts, routers...; its grid may be
    written in other blocks), and the rest equal. Returns the target grid to grow to (``bench.sweep --add``: the
    finished trials keep their records), or None when there is nothing to add. ``report_only``: nothing is trained,
    so the data root (where the files were, which a published directory replaces by a placeholder) is not compared,
    and a budget with runs the directory lacks is refused, naming them (they are to come)."""
    sweep_dir = SweepDir(folder)
    if not sweep_dir.exists():
        return None
    meta, trials = sweep_dir.read_meta()
    try:
        now = spec.load(name, overrides)
    except SweepError as err:
        raise ReproduceError(" ".join(err.problems)) from None
    problem = f"sweep {meta.get('name')!r}" if meta.get("name") != name else differences(
        resolved(meta, report_only=report_only), resolved(json.loads(json.dumps(now.to_dict(), default=str)),
                                                          report_only=report_only))
    wanted = now.trials()
    if not problem and (lost := growth.dropped(trials, wanted, ignore=("data_root",))):
        problem = f"the budget {growth.dropped_text(lost)}"
    if problem:
        raise ReproduceError(f"{folder} holds a sweep run with other settings ({problem}; overrides then "
                             f"{json.dumps(meta.get('overrides'))}, now {json.dumps(overrides)}): pick another --out, "
                             "or repeat the earlier budget and data root to continue it")
    new = growth.dropped(wanted, trials, ignore=("data_root",))  # the budget's trials the directory lacks
    if not new:
        return None
    if report_only:
        raise ReproduceError(f"--report-only: the budget asks for {growth.describe(growth.new_values(trials, new, ignore=('data_root',)))} "
                             f"beyond the directory's runs ({len(new)} run(s) to come); the same "
                             "command without --report-only adds them")
    return now.grid
