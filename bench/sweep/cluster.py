"""The Ray side of a sweep that is not Tune: connecting to a cluster and checking what it can hold.

``connect`` attaches to ``--address`` / $RAY_ADDRESS (refusing at once an address nobody listens on) or starts a fresh
local instance (without the monitors it does not use: ``bench.sweep.head_node``; and a reaper that ends all of that
instance's processes once this process is gone, however it ended: :func:`reap_when_gone`); ``Starting`` runs it in
the background (Ray's processes start while the driver prepares the trials) and ends the instance it started in the
background too (while the tables are built; ``wait_shut_down`` waits for that); ``resolve_resources`` turns a sweep's
per-trial request into Ray resources and a number of parallel slots, and refuses a request no node can hold (Ray would
wait silently forever).
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import math
import os
import secrets
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from bench.sweep.head_node import without_monitors

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
             "RAY_DEDUP_LOGS": "1"}
# Tune's own CSV, JSON and TensorBoard logs of every trial's results in its trial folder: nothing reads them (the
# records are the sweep's results), and a seed group's final result carries all its records, written three times
TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}

DEFAULT_RESOURCES = {"cpu": 1, "gpu": "auto", "max_concurrent": None}  # a trial's request (a sweep file's resources:)
GCS_WAIT_VAR, GCS_WAIT_S = "RAY_gcs_server_port_wait_time_s", "120"  # Ray's default: 30 s
# A fresh local instance starts no idle worker processes for the driver's tasks ahead of time (Ray's default: one per
# CPU): the driver runs no tasks, and Tune's trial actors start workers of their own, so each prestarted one only
# imports Ray and waits (about 0.4 s of CPU each on a 2-core machine, beside the trials)
PRESTART_VAR, PRESTART = "RAY_prestart_worker_first_driver", "0"


class ResourceError(RuntimeError):
    """The cluster cannot be reached, or the trials ask for more than any of its nodes has."""


def connect(address: str | None, verbose: bool) -> bool:
    """Attach to ``address`` (or $RAY_ADDRESS), else start a fresh local instance. True if this call connected.

    A Ray already initialised in this process (a notebook, the test session) is used as it is.
    """
    import ray  # deferred, as everywhere in bench: loading or listing sweeps never starts Ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    problem = unreachable(address)
    if problem:
        raise ResourceError(f"cannot reach a Ray cluster at {address!r}: {problem} "
                            "(start one with `ray start --head`, or leave out --address for a local instance)")
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": verbose,
                              "logging_level": logging.INFO if verbose else logging.ERROR}
    owner = None
    if address == "local":
        kwargs["include_dashboard"] = False
        # A loaded machine can take more than Ray's default 30 s to bring up a fresh GCS server.
        os.environ.setdefault(GCS_WAIT_VAR, GCS_WAIT_S)
        os.environ.setdefault(PRESTART_VAR, PRESTART)
        owner = reap_when_gone()  # every process of the instance inherits it from ray.init's environment
    if Path.cwd().resolve() != REPO_ROOT:  # workers import bench and moe from the repository
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
    on_term = signal.getsignal(signal.SIGTERM)  # Ray's core installs its own SIGTERM handler (a stack dump, abort)
    owned = os.environ.get(OWNER_VAR) == owner  # already: everything this process starts (reap_children_when_gone)
    try:
        if owner:
            os.environ[OWNER_VAR] = owner
        with without_monitors(log_monitor=verbose) if address == "local" else contextlib.nullcontext():
            ray.init(**kwargs)
    except (ConnectionError, TimeoutError, ValueError) as err:
        raise ResourceError(f"cannot reach a Ray cluster at {address!r}: {err}") from None
    finally:
        if owner and not owned:
            os.environ.pop(OWNER_VAR, None)  # what this process starts later (not Ray's) is not the instance's
    if owner:
        reap_folder(_session_dir())
    if callable(on_term) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)  # the driver's own handling (bench.sweep.cli: as Ctrl-C) stays
    return True


# ---- a local instance's processes end with the process that started it ----
#
# Ray ties only its own direct children (GCS server, raylet, monitors) to the driver (a parent-death signal): the
# processes the raylet starts (trial workers, the dashboard and runtime-env agents, anything a trial starts) are left
# to notice for themselves that the raylet is gone. A connected worker does within ~3 s; a worker still starting
# (importing Ray: 5-10 s of wall time on a loaded 2-core machine, more when a test suite starts) notices only once it
# has started; the agents notice at once but then wait ~60 s on an RPC to the dead GCS (publish_error_to_driver);
# a trial's own children (a data loader) never do. So a local instance gets a reaper: a small process of its own
# session (Ctrl-C or a kill of the driver's process group leaves it alone) that waits for the end of a pipe only this
# process holds, then kills every process whose environment carries this process's OWNER_VAR token, which every
# process of the instance inherits from ray.init's environment, or whose working directory or an open file lies in
# the instance's session folder (written to the pipe once ray.init returns): Ray's retitling (ray::DashboardAgent)
# can blank a process's environment in /proc, never its log files.
# The sweep command puts the token in its whole environment (reap_children_when_gone): its figure workers, which
# notice a dead driver only between two figures, end with it too.

OWNER_VAR = "BENCH_SWEEP_RAY_OWNER"
REAP_S = 30.0  # the reaper kills what it finds until it has seen none for a few scans in a row, this long at most
REAPER = r"""
import os, signal, sys, time
fd, mark, bound = int(sys.argv[1]), os.fsencode(sys.argv[2]), float(sys.argv[3])
dirs, got = [], b""
while True:  # each line: the session folder of an instance started meanwhile
    try:
        chunk = os.read(fd, 4096)
    except InterruptedError:
        continue
    if not chunk:
        break  # end of file: every copy of the write end is closed, so the process that started Ray is gone
    *lines, got = (got + chunk).split(b"\n")
    dirs += [line.rstrip(b"/") + b"/" for line in lines if line.strip()]


def ours(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:  # (Ray's retitling may blank it: then the folders say)
        if mark in f.read().split(b"\0"):
            return True
    if not dirs:
        return False
    links = [f"/proc/{pid}/cwd"] + [f"/proc/{pid}/fd/{n}" for n in os.listdir(f"/proc/{pid}/fd")]
    for link in links:
        try:
            if (os.fsencode(os.readlink(link)) + b"/").startswith(tuple(dirs)):
                return True
        except OSError:
            pass
    return False


me, end, clear = os.getpid(), time.monotonic() + bound, 0
while clear < 3 and time.monotonic() < end:
    found = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if ours(name):
                os.kill(int(name), signal.SIGKILL)
                found += 1
        except OSError:  # gone meanwhile, or not ours to read
            pass
    clear = 0 if found else clear + 1
    time.sleep(0.1)
"""
_OWNER: dict[int, str] = {}  # pid: its token, once its reaper runs (one reaper per process, for all its instances)
_WRITE_END: list[int] = []  # the pipe's write end, held open (never written) until this process ends


def reap_when_gone() -> str | None:
    """Start this process's reaper (once) and return its token: once this process is gone (SIGKILL, a crash or a
    normal exit alike; after :func:`wait_shut_down` no process carries it any more), the reaper kills every process
    with ``OWNER_VAR=token`` in its environment. None where there is no /proc to scan (not Linux), or the reaper
    could not start: Ray's own checks are all there is then."""
    if os.getpid() in _OWNER:  # (a forked child starts its own)
        return _OWNER[os.getpid()]
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self"):
        return None
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    read, write = os.pipe()  # both ends close on exec: no process this one starts holds the write end
    try:
        os.set_inheritable(read, True)
        os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", REAPER, str(read), f"{OWNER_VAR}={token}",
                                        str(REAP_S)], {}, setsid=True,
                       file_actions=[(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)])
    except OSError:
        os.close(write)
        return None
    finally:
        os.close(read)
    _WRITE_END.append(write)
    _OWNER[os.getpid()] = token
    return token


def reap_folder(folder: str | None) -> None:
    """Tell this process's reaper that processes with their working directory or an open file in ``folder`` (a
    local instance's session folder: Ray's processes keep their logs open there) are the instance's too: Ray's
    retitling of its agents and workers can blank their environment, and the token with it."""
    if folder and os.getpid() in _OWNER and _WRITE_END:
        try:
            os.write(_WRITE_END[-1], os.fsencode(folder) + b"\n")
        except OSError:  # the reaper is gone: the token is all there is
            pass


def _session_dir() -> str | None:
    """The session folder of the instance ``ray.init`` just started (Ray keeps it on a private object)."""
    try:
        from ray._private import worker  # deferred: see connect

        return worker._global_node.get_session_dir_path()
    except Exception:  # noqa: BLE001 -- a Ray without it: the token alone
        return None


def reap_children_when_gone() -> None:
    """For a process that is a sweep (``python -m bench.sweep``): everything it starts from now on, Ray's processes
    or not (its figure workers and their resource tracker), carries its reaper's token, so all of it ends once this
    process is gone, however it ended."""
    token = reap_when_gone()
    if token:
        os.environ[OWNER_VAR] = token


class Starting:
    """:func:`connect` in a background thread: Ray's own processes start while this process goes on preparing the
    trials (they wait on other processes, not on this one's CPU). ``result()`` waits for it and returns what
    connect returns (or raises what it raised); ``started_here()`` waits and says whether this process started
    Ray, whatever happened meanwhile (for a ``finally`` that ends what it started: :meth:`shut_down_later`).

    The thread stays until it has ended the instance it started: Ray's processes die with the thread that
    started them (their parent-death signal follows that thread, not the process)."""

    def __init__(self, address: str | None, verbose: bool):
        self._started: bool | None = None
        self._error: BaseException | None = None
        self._connected, self._release = threading.Event(), threading.Event()
        self.request = (address, verbose)
        wait_shut_down()  # an instance this process ended a moment ago is gone before the next starts
        self._thread = threading.Thread(target=self._run, args=(address, verbose), name="ray-start", daemon=True)
        self._thread.start()

    def _run(self, address: str | None, verbose: bool) -> None:
        try:
            self._started = connect(address, verbose)
        except BaseException as err:  # noqa: BLE001 -- raised again in the caller's thread by result()
            self._error = err
        finally:
            self._connected.set()
        if self._started:
            self._release.wait()
            import ray  # deferred: see connect

            ray.shutdown()

    def result(self) -> bool:
        self._connected.wait()
        self._restore_sigterm()
        if self._error is not None:
            raise self._error
        return bool(self._started)

    def started_here(self) -> bool:
        self._connected.wait()
        self._restore_sigterm()
        return bool(self._started)

    def _restore_sigterm(self) -> None:
        """The driver's own SIGTERM handling (bench.sweep.cli: as Ctrl-C), over the one Ray's core installed while
        it started (connect restores it only when it runs in the main thread): Python's record of the handler is the
        driver's, whenever it was set (before Ray's start, or while Ray started, as after :func:`start_early`)."""
        on_term = signal.getsignal(signal.SIGTERM)
        if callable(on_term) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_term)

    def shut_down_later(self) -> None:
        """End the instance this started, in the background (ending its processes takes seconds of waiting);
        :func:`wait_shut_down` waits for that, and so does this process before it exits."""
        if self.started_here() and not self._release.is_set():
            drop_references()
            if not _SHUTTING_REGISTERED:
                atexit.register(wait_shut_down)  # after Ray's own exit hook: runs before it
                _SHUTTING_REGISTERED.append(True)
            _SHUTTING.append(self._thread)
            self._release.set()


def drop_references() -> None:
    """Free now, in this thread, the Ray object references nothing can use any more: those in garbage cycles and in
    the frames an exception being handled left behind (the frames' locals). Ray's core worker ends the whole process
    with exit status 1 ("The core worker has already been shutdown") when a reference is freed while another thread
    shuts Ray down, so :meth:`Starting.shut_down_later` calls this first; the caller drops the references it still
    holds itself (``bench.sweep.runner``)."""
    err = sys.exception()
    if err is not None:
        traceback.clear_frames(err.__traceback__)  # (the frame still running is skipped: its caller drops its own)
    gc.collect()


_SHUTTING: list[threading.Thread] = []  # instances being ended in the background, not yet waited for
_SHUTTING_REGISTERED: list[bool] = []


def wait_shut_down() -> None:
    """Wait until every instance ended by :meth:`Starting.shut_down_later` is gone."""
    while _SHUTTING:
        _SHUTTING.pop().join()


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why a ``host:port`` GCS address cannot be reached (None if it answers, or for local/auto/ray:// addresses).

    ray.init would otherwise retry for minutes before giving up on a wrong address.
    """
    if address in ("local", "auto") or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return "expected host:port (e.g. 127.0.0.1:6379)"
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except OSError as err:
        return err.strerror or str(err)


def nodes() -> list[dict[str, float]]:
    """Total resources of each alive node."""
    import ray  # deferred: see connect

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


MAX_TRIALS_PER_CPU = 2  # trials at once per CPU of the cluster: each is a Python process with torch (~0.5 GB)


def local_machine() -> list[dict[str, float]]:
    """This machine as the one node of the local Ray instance a sweep would start: its CPUs and CUDA GPUs."""
    import torch

    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]


def resolve_resources(resources: dict[str, Any], cluster: list[dict[str, float]], n_trials: int,
                      threads: int | None = None) -> dict[str, Any]:
    """Per-trial request {cpu, gpu} and the number of trials that can run at once ("slots").

    Raises ResourceError, one line naming the setting to change, when no node can hold one trial (Ray would
    otherwise wait silently), when a trial asks for a GPU and no node has one, when the CPU share is so small
    that more than ``MAX_TRIALS_PER_CPU`` trials per CPU would run at once (``resources.cpu: 0.01`` would start
    hundreds of workers of ~0.5 GB each), and when a trial's torch ``threads`` (the largest of the trials')
    exceed the CPUs it asks for (the threads would fight over fewer cores and train slower).
    gpu "auto": no GPU on a cluster without one, else an equal share of the GPUs between the CPU slots.
    """
    cpu = float(resources.get("cpu", DEFAULT_RESOURCES["cpu"]))
    if threads is not None and threads > max(1, math.ceil(cpu - 1e-9)):
        raise ResourceError(
            f"threads: each trial runs {threads} torch threads but asks for {cpu:g} CPU(s): the threads would share "
            f"{max(1, math.ceil(cpu)):g} core(s). Ask for as many CPUs (--set resources.cpu={threads}), or fewer threads "
            "(threads: null takes the trial's CPU share).")
    total_cpu = sum(n.get("CPU", 0) for n in cluster)
    total_gpu = sum(n.get("GPU", 0) for n in cluster)
    max_cpu = max((n.get("CPU", 0) for n in cluster), default=0)
    if not cluster or max_cpu < cpu:
        raise ResourceError(
            f"each trial asks for {cpu:g} CPU(s) but the largest node of the cluster has {max_cpu:g} "
            f"({len(cluster)} node(s), {total_cpu:g} CPUs in all): no trial could ever start. "
            f"Ask for less, e.g. --set resources.cpu={max(max_cpu, 1):g}, or add a larger node.")
    cpu_slots = sum(math.floor(n.get("CPU", 0) / cpu + 1e-9) for n in cluster)
    gpu = resources.get("gpu", DEFAULT_RESOURCES["gpu"])
    if gpu == "auto":
        gpu = 0.0 if total_gpu == 0 else min(1.0, math.floor(100 * total_gpu / cpu_slots) / 100 or 0.01)
    gpu = float(gpu)
    if gpu > 0:
        fits = [n for n in cluster if n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu]
        if not fits:
            raise ResourceError(
                f"each trial asks for {cpu:g} CPU(s) and {gpu:g} GPU(s) but no node has both "
                f"(the cluster has {total_gpu:g} GPUs): no trial could ever start. "
                "Use --set resources.gpu=0 (CPU only) or a fraction that fits.")
        slots = sum(min(math.floor(n.get("CPU", 0) / cpu + 1e-9), math.floor(n.get("GPU", 0) / gpu + 1e-9))
                    for n in cluster)
    else:
        slots = cpu_slots
    if resources.get("max_concurrent"):
        slots = min(slots, int(resources["max_concurrent"]))
    most = max(1, math.floor(MAX_TRIALS_PER_CPU * total_cpu))
    if min(slots, n_trials) > most:
        raise ResourceError(
            f"resources.cpu: {cpu:g} CPU per trial would run {min(slots, n_trials)} trials at once on {total_cpu:g} CPU(s), "
            f"each a Python process of ~0.5 GB; ask for at least {total_cpu / most:g} CPU per trial "
            f"(--set resources.cpu={total_cpu / most:g}) or cap it (--set resources.max_concurrent={most}).")
    return {"cpu": cpu, "gpu": gpu, "slots": max(1, min(slots, n_trials))}


@contextlib.contextmanager
def quiet_ray_logs(quiet: bool):
    """Ray Tune logs every trial error with its traceback and a closing 'Trials did not complete': silence them."""
    loggers = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray.air")] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
