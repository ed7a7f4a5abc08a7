"""The worker process of `rewards.pool.GradingPool` (`python -m rewards._worker`).

Protocol on two private pipe file descriptors (fd 0 and fd 1 are handed over at start,
then pointed elsewhere so that a task printing to stdout cannot corrupt the protocol):
frames of an 8-byte big-endian length followed by a pickle.

- parent -> worker: `(task_id, fn, args, kwargs, memory_bytes)`
- worker -> parent: `("ready", pid)` once its imports are done, then for each task
  `(task_id, ok, value, reason, elapsed_s)`.

The worker is single-threaded and runs each task in its main thread, so libraries that
rely on `signal.alarm` (math-verify) work here. Hard limits are the parent's job: it
kills this process on timeout; memory is bounded by RLIMIT_AS set around each task.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import pickle
import resource
import signal
import struct
import sys
import time

_HEADER = struct.Struct(">Q")


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _send(fd: int, obj: object) -> None:
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result must not kill the worker
        task_id = obj[0] if isinstance(obj, tuple) else None
        data = pickle.dumps((task_id, False, None, f"error: unpicklable result: {exc}", 0.0))
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the parent dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: EOF on the protocol pipe still ends the worker


def _vm_size() -> int:
    """Current address-space size in bytes (the baseline a memory budget adds to)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _run(fn, args, kwargs, memory_bytes: int | None) -> tuple[bool, object, str]:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory_bytes:
        limit = _vm_size() + memory_bytes
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        return True, fn(*args, **kwargs), ""
    except MemoryError:
        return False, None, "memory"
    except RecursionError:
        return False, None, "error: RecursionError"
    except Exception as exc:  # noqa: BLE001 - reported to the caller as a reason
        return False, None, f"error: {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def main() -> None:
    """Serve tasks until the parent closes the pipe."""
    _die_with_parent()
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a task's print() goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    sys.setrecursionlimit(3000)
    for name in filter(None, os.environ.get("REASONRL_POOL_PRELOAD", "").split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a failed preload only costs time later
            pass
    _send(proto_out, ("ready", os.getpid()))
    while True:
        header = _read_exact(proto_in, _HEADER.size)
        if header is None:
            return
        payload = _read_exact(proto_in, _HEADER.unpack(header)[0])
        if payload is None:
            return
        start = time.monotonic()
        try:
            task_id, fn, args, kwargs, memory_bytes = pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001
            _send(proto_out, (None, False, None, f"error: bad task: {exc}", 0.0))
            continue
        ok, value, reason = _run(fn, args, kwargs, memory_bytes)
        _send(proto_out, (task_id, ok, value, reason, time.monotonic() - start))
        if reason == "memory":
            return  # the heap may be fragmented or half-built: let the parent replace us


if __name__ == "__main__":
    main()
