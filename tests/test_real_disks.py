"""A real full disk, a real read-only folder and a real file-size limit, met by the real commands (subprocesses):
each stops with one line and an exit status of its own, nothing finished is lost, and the way out the line
names works. The disk is a size-limited tmpfs in a private mount namespace (``tests.real_disk``): those tests
skip, saying why, where the machine does not allow that (not root, no mount namespaces). The file-size limit
(RLIMIT_FSIZE) needs neither."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests import real_disk

pytestmark = pytest.mark.slow
NO_MOUNTS = real_disk.unavailable()
needs_mounts = pytest.mark.skipif(NO_MOUNTS is not None, reason=f"a real full or read-only disk: {NO_MOUNTS}")

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TRAIN = [PY, "-m", "moe.train", "--dataset", "gm6", "--epochs", "1", "--quiet"]
# 6 trials of 3 epochs on 240 gm6 samples (each epoch a checkpoint to write), one at a time: the first record comes
# while most trials are still to run, and each run starts one trial worker, reused by its trials (a trial's cost is
# its worker's start, not its training); each of the two stops keeps about one record, so the final resume still has
# trials to run
SWEEP = {"description": "a sweep that meets a full and a read-only disk", "version": 1, "dataset": "gm6",
         "budget": {"epochs": 3, "n_train": 240, "n_test": 120}, "resources": {"cpu": 1, "max_concurrent": 1},
         "grid": {"router": ["softmax"], "experts": [2, 3, 4], "seed": [0, 1]}}


def one_line(result: dict) -> str:
    """The one line a command printed on standard error (no traceback)."""
    lines = [ln for ln in result["err"].splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result["err"] + result["out"], result
    return lines[0]


def stop_line(result: dict) -> str:
    """The one line of a sweep that stopped (its progress lines aside), from its combined output."""
    assert "Traceback" not in result["out"], result["out"][-3000:]
    lines = [ln for ln in result["out"].splitlines() if ln.startswith(("stopped:", "interrupted", "error:"))]
    assert len(lines) == 1, result["out"][-3000:]
    return lines[0]


def records(files: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in files.items() if k.startswith("out/records/")}


@needs_mounts
def test_moe_train_on_a_full_disk_a_read_only_folder_and_a_file_size_limit(tmp_path):
    out = ["--out", "{disk}/run.json"]
    steps = [
        {"do": "write", "path": "mine.json", "text": "the user's own file\n"},
        {"do": "fill"},
        {"do": "run", "argv": [*TRAIN, *out]},  # 0: a full disk
        {"do": "run", "argv": [*TRAIN, "--out", "{disk}/mine.json", "--force"]},  # 1: overwriting a file, disk full
        {"do": "files"},  # 2
        {"do": "unfill"},
        {"do": "ro"},
        {"do": "run", "argv": [*TRAIN, *out]},  # 3: a read-only folder
        {"do": "rw"},
        {"do": "run", "argv": [*TRAIN, *out], "fsize": 2048},  # 4: a record larger than the file-size limit
        {"do": "files"},  # 5
        {"do": "run", "argv": [*TRAIN, *out]},  # 6: the way out: room again
        {"do": "files"},  # 7
    ]
    disk, res = real_disk.run_plan(tmp_path, "16m", steps, ROOT)
    runs = [r.get("files", r) for r in res if r["do"] in ("run", "files")]
    full, forced, after_full, ro, big, after_big, again, last = runs
    for result, why in ((full, "No space left on device"), (forced, "No space left on device"), (big, "File too large")):
        assert result["rc"] == 3, result
        line = one_line(result)
        assert line.startswith("error: --out ") and f"cannot write the record: {why}" in line, line
        assert "nothing was written there (its scores are printed above)" in line and "status ok" in result["out"]
    assert after_full == {"mine.json": after_full["mine.json"]}  # no record, no temporary file, the user's file as it was
    assert ro["rc"] == 2 and one_line(ro).endswith(f"cannot write in {disk}: Read-only file system")  # before training
    assert set(after_big) == {"mine.json"} and after_big["mine.json"] == after_full["mine.json"]
    assert again["rc"] == 0, again
    assert set(last) == {"mine.json", "run.json"}


@needs_mounts
@pytest.mark.ray
def test_a_sweep_on_a_disk_made_read_only_then_full_stops_each_time_and_resume_finishes(tmp_path, ray_helpers):
    env_extra, wait_gone = ray_helpers
    ray_tmp = tempfile.mkdtemp(prefix="rdk", dir="/tmp")
    env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    path = tmp_path / "disks.yaml"
    path.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    sweep = [PY, "-m", "bench.sweep"]
    resume = [*sweep, "--resume", "{disk}/out"]
    steps = [
        {"do": "start", "argv": [*sweep, str(path), "--out", "{disk}/out", "--stack-seeds", "off"]},
        {"do": "until", "glob": "out/records/*.json"},
        {"do": "ro", "path": "out"},  # made read-only while trials run
        {"do": "wait"},  # 0
        {"do": "files"},  # 1
        {"do": "run", "argv": [PY, "-m", "bench.table", "{disk}/out"]},  # 2
        {"do": "run", "argv": [PY, "-m", "bench.report", "{disk}/out"]},  # 3
        {"do": "run", "argv": resume},  # 4: --resume of a read-only directory
        {"do": "run", "argv": [*sweep, str(path), "--out", "{disk}/out/new"]},  # 5
        {"do": "files"},  # 6
        {"do": "rw", "path": "out"},
        {"do": "start", "argv": resume},
        {"do": "until", "glob": "out/records/*.json"},
        {"do": "fill"},  # full while trials run
        {"do": "wait"},  # 7
        {"do": "files"},  # 8
        {"do": "run", "argv": [PY, "-m", "bench.table", "{disk}/out"]},  # 9
        {"do": "run", "argv": [PY, "-m", "bench.report", "{disk}/out"]},  # 10
        {"do": "files"},  # 11
        {"do": "unfill"},
        {"do": "run", "argv": resume},  # 12: the way out
        {"do": "files"},  # 13
    ]
    try:
        disk, res = real_disk.run_plan(tmp_path, "64m", steps, ROOT, env=env)
    finally:
        for pid, _ in wait_gone(ray_tmp, timeout=5):
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", ray_tmp])
    until_ro, until_full = [r for r in res if r["do"] == "until"]
    assert until_ro["found"] and until_ro["running"] and until_full["found"] and until_full["running"], res
    assert all(r.get("ok", True) for r in res if r["do"] in ("ro", "rw")), res
    (stop_ro, after_ro, table_ro, report_ro, resume_ro, new_ro, still_ro, stop_full, after_full, table_full,
     report_full, still_full, done, final) = [r.get("files", r) for r in res if r["do"] in ("wait", "files", "run")]
    out = f"{disk}/out"
    how = f"then continue with: python -m bench.sweep --resume {out}"
    for result, why in ((stop_ro, "Read-only file system"), (stop_full, "No space left on device")):
        assert result["rc"] == 3
        line = stop_line(result)
        assert line.startswith("stopped: cannot write") and why in line and line.endswith(how), line
        assert f"Every finished trial's record in {out} is safe" in line
    assert resume_ro["rc"] == 3 and one_line(resume_ro).endswith(how) and "Read-only file system" in resume_ro["err"]
    assert new_ro["rc"] == 2 and "Read-only file system" in one_line(new_ro)
    for result, why in ((table_ro, "Read-only file system"), (report_ro, "Read-only file system"),
                        (table_full, "No space left on device"), (report_full, "No space left on device")):
        assert result["rc"] == 3
        line = one_line(result)
        assert line.startswith(f"error: cannot write {out}") and why in line and "was lost" in line, line
    # nothing finished is lost: every record written before a stop is there, byte for byte, to the end
    assert records(after_ro) and records(after_ro) == records(still_ro)
    assert records(after_ro).items() <= records(after_full).items() and records(after_full) == records(still_full)
    assert len(records(after_full)) > len(records(after_ro))  # the resume on a read-write disk wrote more
    assert still_full == after_full  # table and report on the full disk changed nothing
    assert done["rc"] == 0, done["out"][-3000:] + "\nstandard error:\n" + done.get("err", "")[-3000:]
    assert "runs: 6 ok" in done["out"] and sorted(records(final)) == [f"out/records/{i:04d}.json" for i in range(6)]
    assert records(after_full).items() <= records(final).items()
    assert not [k for k in final if k.endswith(".tmp")]  # no half-written file anywhere


@pytest.mark.parametrize("command", ["bench.table", "bench.report"])
def test_tables_and_report_beyond_a_file_size_limit_stop_with_one_line(tmp_path, command):
    """RLIMIT_FSIZE (SIGXFSZ ignored) makes a real EFBIG ('File too large') for any file longer than the limit:
    the tables stop with one line and exit 3; the records and the files there before are as they were."""
    import resource

    from tests.bench.sweep_dirs import make_sweep_dir

    out = make_sweep_dir(tmp_path / "sweep")
    (out / "runs.csv").write_text("the user's runs.csv before\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))

    p = subprocess.run([PY, "-m", command, str(out)], cwd=ROOT, capture_output=True, text=True, preexec_fn=limit)
    assert p.returncode == 3, p.stderr[-3000:]
    line = one_line({"out": p.stdout, "err": p.stderr})
    assert line.startswith(f"error: cannot write {out}") and "File too large" in line and "was lost" in line, line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # no temporary file left either
