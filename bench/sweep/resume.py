"""What ``--resume DIR`` keeps of a sweep: how its trials ran (the options sweep.json saved, restored:
``--stack-seeds`` and ``--scheduler``, refused when told otherwise; ``--max-failures`` and ``--order``, replaced
when given) and what it ran on (its sweep file's text, the fingerprints of its data and the code's
version, checked for changes since)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sweep.groups import check_mode
from bench.sweep.layout import SweepDir
from bench.sweep.spec import SweepError
from moe.records.provenance import data_fingerprint
from moe.records.record import versions

ORDERS = ("longest", "cheapest")  # which trials start first (bench.sweep.progress.cost); no result depends on it
DEFAULT_MAX_FAILURES = 1  # retries of a trial that raises, when neither the command nor a resumed sweep.json says


def fingerprints(datasets: dict[str, Any]) -> dict[str, str | None]:
    """Dataset key -> sha256 of the dataset as loaded (``moe.records.provenance.data_fingerprint``)."""
    return {key: data_fingerprint(arrays) for key, arrays in datasets.items()}


def changes_since(folder: SweepDir, datasets: dict[str, Any]) -> list[str]:
    """What differs from when the sweep in ``folder`` started: its sweep file's text, the fingerprint of a dataset
    it loads now, the code's version (git commit, package version). One phrase each."""
    state, changes = folder.meta_state(), []
    text, path = state.get("sweep", {}).get("text"), state.get("sweep", {}).get("path")
    if isinstance(text, str) and isinstance(path, str) and Path(path).is_file():
        try:
            now = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            now = None
        if now != text:
            changes.append(f"the sweep file {path} has changed since the sweep started")
    then_sha = state.get("data_sha256") or {}
    for key, now_sha in fingerprints(datasets).items():
        if then_sha.get(key) and then_sha[key] != now_sha:
            changes.append(f"the data of {key.split('|')[0]} differ (sha256 {then_sha[key][:12]} then, {str(now_sha)[:12]} now)")
    then, now = state.get("versions") or {}, versions()
    for key in ("git", "moe_interp_bench"):
        if then.get(key) and then.get(key) != now.get(key):
            changes.append(f"the code differs ({key} {then[key]} then, {now.get(key)} now)")
    return changes


def restored_free_options(folder: SweepDir, max_failures: int | None, order: str | None) -> tuple[int | None, str | None]:
    """``--max-failures`` and ``--order`` of a resumed sweep: each the one given, else the one its sweep.json saved
    (None where it saved none: the default). Unlike ``--stack-seeds`` and ``--scheduler`` another one is accepted:
    a retry continues a trial from its checkpoint and the order only decides which trials start first, so neither
    changes a finished trial's numbers."""
    saved = folder.run_options()
    retries = saved.get("max_failures")
    if max_failures is None and isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
        max_failures = retries
    if order is None and saved.get("order") in ORDERS:
        order = saved["order"]
    return max_failures, order


def restored_options(folder: SweepDir, stack_seeds: str | bool | None, scheduler: str | None) -> tuple[str | None, str | None]:
    """``--stack-seeds`` and ``--scheduler`` of a resumed sweep: those its sweep.json saved (a directory written
    before they were saved: the ones given, else off / fifo); a different one given is refused with one line."""
    saved = folder.run_options()
    given = {"stack_seeds": check_mode(stack_seeds) if stack_seeds is not None else None,
             "scheduler": scheduler if scheduler not in (None, "fifo") else ("fifo" if scheduler else None)}
    for key, value in given.items():
        if value is not None and key in saved and saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise SweepError(f"--resume {folder.root}: the sweep ran with {flag} {saved[key]}, not {value}: --resume "
                             f"continues it as it ran (leave out {flag})")
    stack = given["stack_seeds"] or saved.get("stack_seeds")
    sched = given["scheduler"] or saved.get("scheduler")
    return stack, (None if sched == "fifo" else sched)
