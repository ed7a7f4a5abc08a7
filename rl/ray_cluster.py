"""Joining the Ray cluster a run uses, or starting a local one: written once for the trainer and for
`reasonrl eval --workers`.

Ray 2.60 turns token authentication on by default; our local clusters turn it off (docs/ARCHITECTURE.md, "vLLM on
CPU"). A process shuts down only a cluster it started itself, never one it joined.

A driver killed with SIGKILL cannot shut its local cluster down. Ray's GCS and raylet die with it, but its dashboard
and runtime-env agents wait on the dead GCS for a minute or more (about 230 MB, measured on the tiny job). So every
local cluster started here is recorded (RECORDS: the driver's pid and start time, Ray's session folder) until its
driver exits, and the next start clears what a dead driver's cluster left: the processes of this user that hold
files in that session's folder. Nothing else is touched: no `ray stop`, no cluster this module did not start, no
cluster whose driver still runs.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import psutil
import ray

# Environment every actor of ours starts with: no token auth (as the driver), and no tokenizer thread pools
# fighting the engine for the cores.
ACTOR_ENV = {"RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
# One JSON file per local cluster a live (or killed) driver of ours started; per user, as the processes are.
RECORDS = Path(tempfile.gettempdir()) / f"reasonrl-{os.getuid()}" / "ray-clusters"
STOP_GRACE_S = 3.0  # how long a leftover process has to exit on SIGTERM before SIGKILL


def join_or_start(address: str | None = None, *, num_cpus: int | None = None,
                  env: dict[str, str] | None = None, log: Callable[[str], None] = print) -> bool:
    """Connect to the cluster at `address` (None: start a local one with `num_cpus`), unless this process is
    connected already; returns whether this call started the connection (and so owns its shutdown).

    Before starting, what the local clusters of dead drivers left running is cleared (`clear_dead_clusters`).

    Args:
        address: a cluster's address ("auto", "ray://host:10001", ...), or None for a local cluster.
        num_cpus: the local cluster's CPUs (None: Ray counts them); ignored when joining.
        env: environment variables for every actor, on top of ACTOR_ENV.
        log: where the clearing of a dead run's processes is reported.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    clear_dead_clusters(log)
    context = ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                       log_to_driver=False, runtime_env={"env_vars": {**ACTOR_ENV, **(env or {})}})
    session_dir = Path(context.address_info["session_dir"])
    # Ray names a session folder after the process that started the cluster: ours, or one we merely joined
    # (address=None also joins a cluster that RAY_ADDRESS names).
    if session_dir.name.endswith(f"_{os.getpid()}"):
        record_cluster(session_dir)
    return True


def record_cluster(session_dir: Path) -> Path:
    """Record that this process started the local cluster of `session_dir`; the record goes when the process
    exits normally (a SIGKILL leaves it for the next start to find)."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    record = RECORDS / f"{session_dir.name}.json"
    staged = record.with_suffix(".tmp")
    staged.write_text(json.dumps({"driver_pid": os.getpid(), "driver_started": psutil.Process().create_time(),
                                  "session_dir": str(session_dir)}))
    staged.replace(record)
    atexit.register(record.unlink, missing_ok=True)
    return record


def driver_alive(record: dict) -> bool:
    """Whether the process that started the recorded cluster still runs (its pid, with its start time: a pid can be
    reused). A process we may not inspect counts as alive."""
    try:
        return abs(psutil.Process(record["driver_pid"]).create_time() - record["driver_started"]) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def processes_holding(folder: Path) -> list[psutil.Process]:
    """This user's processes (this one aside) that name `folder` on their command line or hold a file in it: what
    runs of a Ray session (its GCS and raylet name it; agents and workers log into it)."""
    prefix, uid, found = str(folder) + os.sep, os.getuid(), []
    for process in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            if process.pid == os.getpid() or process.info["uids"] is None or process.info["uids"].real != uid:
                continue
            if (any(prefix in arg or arg.endswith(str(folder)) for arg in process.info["cmdline"] or ())
                    or any(f.path.startswith(prefix) for f in process.open_files())):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def clear_dead_clusters(log: Callable[[str], None] = print) -> list[int]:
    """Stop what the recorded local clusters of dead drivers left running, drop their records, and say so; a
    record whose driver still runs is left alone. Returns the pids stopped."""
    stopped = []
    for record_file in sorted(RECORDS.glob("*.json")):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue  # being written by a driver starting now (records are staged and renamed, so not for long)
        if driver_alive(record):
            continue
        leftovers = processes_holding(Path(record["session_dir"]))
        if leftovers:
            described = describe(leftovers)
            for process in leftovers:
                try:
                    process.terminate()
                except psutil.NoSuchProcess:
                    pass
            _, alive = psutil.wait_procs(leftovers, timeout=STOP_GRACE_S)
            for process in alive:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=STOP_GRACE_S)
            stopped += [process.pid for process in leftovers]
            log(f"stopped {described}, left running by the Ray cluster of a run whose driver (pid "
                f"{record['driver_pid']}) died: {record['session_dir']}")
        record_file.unlink(missing_ok=True)
    return stopped


def describe(processes: list[psutil.Process]) -> str:
    """'2 processes (ray::DashboardAgent 6673, ray::RuntimeEnvAgent 6675; 229 MB)'."""
    names, megabytes = [], 0.0
    for process in processes:
        try:
            names.append(f"{process.name()} {process.pid}")
            megabytes += process.memory_info().rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            names.append(str(process.pid))
    return f"{len(processes)} process{'es' if len(processes) > 1 else ''} ({', '.join(names)}; {megabytes:.0f} MB)"
