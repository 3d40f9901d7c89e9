"""Real full and read-only disks for the tests of what the commands do when they cannot write.

A test gives a plan (a list of steps) to :func:`run_plan`, which runs it in a private mount namespace
(``unshare -m``) where a size-limited tmpfs is mounted at ``WORK/disk``: nothing outside that namespace sees
the mount, and it disappears with it. Steps (each one's result is returned, in order):

- ``{"do": "run", "argv": [...], "fsize": N}``: a command to its end (``fsize``: RLIMIT_FSIZE in bytes, with
  SIGXFSZ ignored, so that a longer file fails with EFBIG). Result: ``rc``, ``out``, ``err``.
- ``{"do": "start", "argv": [...]}`` ... ``{"do": "wait"}``: a command in the background, and its end.
- ``{"do": "until", "glob": PATTERN}``: wait until a new file matches (relative to the disk: one that did not
  when the step began), or the command ends.
- ``{"do": "fill"}`` / ``{"do": "unfill"}``: a filler file takes every free byte of the disk / is removed.
- ``{"do": "ro", "path": RELATIVE}`` / ``{"do": "rw", ...}``: a read-only bind mount of the path over itself
  (default: the whole disk), as a remount would make it (which the kernel refuses while a file there is open for
  writing), / its removal. Result: ``ok`` and ``err``.
- ``{"do": "write", "path": RELATIVE, "text": TEXT}``: a file of the user's.
- ``{"do": "files"}``: ``files``: sha256 of every file on the disk (relative path -> digest).

Every result also holds ``s``: the step's wall seconds (where a slow plan spends its time).
Arguments are strings in which ``{disk}`` stands for the mount point. :func:`unavailable` says why this machine
cannot do it (not root, no ``unshare``, mounts not allowed), or None.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DRIVER = r'''
import glob, hashlib, json, os, resource, signal, subprocess, sys, time
plan, disk, cwd = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
results, proc, log = [], None, None

def sh(*argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    return {"ok": p.returncode == 0, "err": p.stderr.strip()}

def expand(argv):
    return [a.replace("{disk}", disk) for a in argv]

def limit(fsize):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return pre

os.makedirs(disk, exist_ok=True)
mounted = sh("mount", "-t", "tmpfs", "-o", f"size={plan['size']}", "tmpfs", disk)
if not mounted["ok"]:
    print(json.dumps({"mount": mounted}))
    sys.exit(0)
for step in plan["steps"]:
    do, res, began = step["do"], {}, time.monotonic()
    if do == "run":
        p = subprocess.run(expand(step["argv"]), cwd=cwd, capture_output=True, text=True,
                           preexec_fn=limit(step.get("fsize")), timeout=step.get("timeout", 900))
        res = {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
    elif do == "start":
        log = open(os.path.join(plan["logs"], f"start{len(results)}.log"), "w+")
        proc = subprocess.Popen(expand(step["argv"]), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    elif do == "until":  # a file that was not there when the step began
        pattern, deadline = os.path.join(disk, step["glob"]), time.monotonic() + step.get("timeout", 600)
        before = set(glob.glob(pattern))
        while not set(glob.glob(pattern)) - before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        res = {"found": bool(set(glob.glob(pattern)) - before), "running": proc.poll() is None}
    elif do == "wait":
        try:
            rc = proc.wait(timeout=step.get("timeout", 600))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.seek(0)
        res = {"rc": rc, "out": log.read(), "err": ""}
    elif do == "fill":
        with open(os.path.join(disk, ".filler"), "ab", buffering=0) as f:  # unbuffered: nothing left to flush
            for chunk in (65536, 1):  # then the last partial block, byte by byte
                try:
                    while f.write(b"\0" * chunk):
                        pass
                except OSError as err:
                    res = {"errno": err.errno}
    elif do == "write":
        with open(os.path.join(disk, step["path"]), "w") as f:
            f.write(step["text"])
    elif do == "unfill":
        os.remove(os.path.join(disk, ".filler"))
    elif do == "ro":  # a read-only mount over the path: files open for writing there stay so, new writes fail
        where = os.path.join(disk, step.get("path", ""))
        res = sh("mount", "--bind", where, where)
        if res["ok"]:
            res = sh("mount", "-o", "remount,bind,ro", where)
    elif do == "rw":
        res = sh("umount", os.path.join(disk, step.get("path", "")))
    elif do == "files":
        res = {"files": {}}
        for root, _, names in os.walk(disk):
            for n in names:
                p = os.path.join(root, n)
                if n != ".filler" and os.path.isfile(p):
                    res["files"][os.path.relpath(p, disk)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    results.append({"do": do, **res, "s": round(time.monotonic() - began, 2)})
if proc is not None and proc.poll() is None:
    proc.kill()
print(json.dumps({"results": results}))
'''


def unavailable() -> str | None:
    """Why this machine cannot run a plan (no root, no unshare, mounts refused), or None when it can."""
    if sys.platform != "linux":
        return "needs Linux mount namespaces"
    if os.geteuid() != 0:
        return "needs root (unshare -m and a tmpfs mount)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs the unshare and mount commands (util-linux)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d "
                            "&& mount -o remount,ro $d && ! touch $d/x 2>/dev/null; r=$?; umount $d; rmdir $d; exit $r"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine does not allow a tmpfs mount in a private mount namespace ({probe.stderr.strip()[:120]})"
    return None


def run_plan(work: Path, size: str, steps: list[dict], cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 1500) -> tuple[Path, list[dict]]:
    """Run ``steps`` in a private mount namespace with a tmpfs of ``size`` (e.g. ``"32m"``) at ``work/disk``;
    returns (the mount point, each step's result)."""
    disk, logs = work / "disk", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan = {"size": size, "steps": steps, "logs": str(logs)}
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", DRIVER, json.dumps(plan),
                        str(disk), str(cwd)], capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    answer = json.loads(p.stdout.strip().splitlines()[-1])
    assert "mount" not in answer, f"the tmpfs could not be mounted: {answer}"
    return disk, answer["results"]
