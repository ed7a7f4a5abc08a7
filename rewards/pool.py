"""A pool of worker processes with hard per-task time and memory limits.

Why not `signal.alarm` or `concurrent.futures`: alarms only work in the main thread
(math-verify's timeouts raise in other threads and Ray actors, and every score became
0 for users of TRL and verl), and a `ProcessPoolExecutor` cannot stop one runaway
task without breaking the whole pool. Here each worker is a fresh interpreter
(`python -m rewards._worker`, started with `subprocess`: no fork of a threaded
parent, no re-import of the caller's `__main__`) and the parent enforces the limits:

- time: a dispatcher thread watches each task's deadline and SIGKILLs the worker's
  process group when it passes; the task gets `reason="timeout"` and a new worker
  starts in the background;
- memory: the worker sets RLIMIT_AS to its current size plus the task's budget around
  each task; an allocation past it raises MemoryError (`reason="memory"`) and the
  worker retires itself.

Callers only touch `concurrent.futures.Future` objects, so the pool works the same
from the main thread, other threads, asyncio (`GradingPool.amap`) and Ray actors.
Workers die with their parent (PR_SET_PDEATHSIG) and the default pool shuts down at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

__all__ = ["TaskResult", "GradingPool", "get_default_pool", "shutdown_default_pool"]

_HEADER = struct.Struct(">Q")


@dataclass
class TaskResult:
    """The outcome of one pool task.

    Attributes:
        ok: True when the function returned; False on timeout, memory, crash or error.
        value: The function's return value (None unless `ok`).
        reason: `""` when ok, else `"timeout"`, `"memory"`, `"crashed: ..."` or
            `"error: ..."`.
        elapsed: Seconds from dispatch to answer.
    """

    ok: bool
    value: Any = None
    reason: str = ""
    elapsed: float = 0.0


class _Worker:
    """One worker process and the parent's view of it."""

    def __init__(self, env: dict[str, str], debug: bool):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rewards._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: one killpg takes its children too
            close_fds=True,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = bytearray()
        self.ready = False
        self.task: _Task | None = None

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        self.proc.stdin.flush()

    def frames(self) -> tuple[list[object], bool]:
        """Read what is available; return complete messages and whether EOF was seen."""
        eof = False
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self.buffer += chunk
        messages = []
        while len(self.buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < _HEADER.size + size:
                break
            messages.append(pickle.loads(bytes(self.buffer[_HEADER.size : _HEADER.size + size])))
            del self.buffer[: _HEADER.size + size]
        return messages, eof

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc.wait()


@dataclass
class _Task:
    task_id: int
    payload: bytes
    timeout: float
    future: Future
    deadline: float = 0.0
    started: float = 0.0


class GradingPool:
    """Worker processes that run picklable functions under hard time/memory limits.

    Args:
        num_workers: Number of worker processes (default: the number of CPUs).
        timeout: Default wall-time limit per task, in seconds.
        memory_mb: Default address-space budget per task, in MiB above the worker's
            size at rest (None: no limit).
        preload: Modules each worker imports at start, so that the first task does not
            pay for them (sympy and math-verify take about a second).
        debug: Let workers write to the parent's stderr (silenced by default: math-verify
            logs every parse timeout).

    Example:
        >>> pool = GradingPool(num_workers=1)
        >>> pool.map(abs, [(-3,)])[0].value
        3
        >>> pool.shutdown()
    """

    def __init__(
        self,
        num_workers: int | None = None,
        timeout: float = 10.0,
        memory_mb: float | None = 2048,
        preload: Sequence[str] = ("rewards.math_answer", "math_verify", "sympy"),
        debug: bool = False,
    ):
        self.num_workers = max(1, num_workers or os.cpu_count() or 1)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "REASONRL_POOL_PRELOAD": ",".join(preload),
            "OMP_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",
        }
        self._debug = debug
        self._pid = os.getpid()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._pending: deque[_Task] = deque()
        self._workers: list[_Worker] = []
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        for _ in range(self.num_workers):
            self._spawn()
        self.restarts = 0  # workers replaced after a timeout, memory error or crash
        self._thread = threading.Thread(target=self._loop, name="reasonrl-grading-pool", daemon=True)
        self._thread.start()

    # --- public API ---------------------------------------------------------------------

    def submit(
        self,
        fn: Callable,
        *args: Any,
        timeout: float | None = None,
        memory_mb: float | None = -1,
        **kwargs: Any,
    ) -> Future:
        """Schedule `fn(*args, **kwargs)` in a worker.

        Args:
            fn: A picklable callable (a module-level function, a callable class instance).
            *args: Its positional arguments (picklable).
            timeout: Wall-time limit in seconds; None for the pool's default.
            memory_mb: Address-space limit in MiB; -1 for the pool's default, None for no limit.
            **kwargs: Its keyword arguments (picklable).

        Returns:
            A `Future` that yields a `TaskResult` (never raises: a timeout, a memory error or an exception in
            `fn` is its `reason`).
        """
        future: Future = Future()
        if self._closed or os.getpid() != self._pid:
            future.set_result(TaskResult(False, reason="error: pool closed (or used after fork)"))
            return future
        memory = self.memory_mb if memory_mb == -1 else memory_mb
        memory_bytes = int(memory * 2**20) if memory else None
        task_id = next(self._ids)
        try:
            payload = pickle.dumps((task_id, fn, args, kwargs, memory_bytes), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - unpicklable input is the caller's bug, reported as a reason
            future.set_result(TaskResult(False, reason=f"error: cannot pickle task: {exc}"))
            return future
        task = _Task(task_id, payload, self.timeout if timeout is None else timeout, future)
        with self._lock:
            self._pending.append(task)
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # closed meanwhile: _close_all answers what is pending
            pass
        return future

    def map(
        self,
        fn: Callable,
        arglist: Iterable[Sequence[Any]],
        timeout: float | None = None,
        memory_mb: float | None = -1,
    ) -> list[TaskResult]:
        """Run `fn(*args)` for each args tuple, in parallel.

        Args:
            fn: A picklable callable.
            arglist: One tuple of positional arguments per call.
            timeout: Wall-time limit per call in seconds; None for the pool's default.
            memory_mb: Address-space limit per call in MiB; -1 for the pool's default, None for no limit.

        Returns:
            One `TaskResult` per call, in input order.
        """
        return [f.result() for f in self._submit_all(fn, arglist, timeout, memory_mb)]

    async def amap(
        self,
        fn: Callable,
        arglist: Iterable[Sequence[Any]],
        timeout: float | None = None,
        memory_mb: float | None = -1,
    ) -> list[TaskResult]:
        """`map` for asyncio code: awaits without blocking the event loop."""
        futures = self._submit_all(fn, arglist, timeout, memory_mb)
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def _submit_all(self, fn: Callable, arglist: Iterable[Sequence[Any]], timeout: float | None,
                    memory_mb: float | None) -> list:
        return [self.submit(fn, *args, timeout=timeout, memory_mb=memory_mb) for args in arglist]

    def shutdown(self) -> None:
        """Stop the workers (pending tasks get `reason="error: pool closed"`)."""
        if self._closed:
            return
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def __reduce__(self):
        raise TypeError("a GradingPool holds processes and cannot be pickled; use get_default_pool() in each process")

    # --- dispatcher thread --------------------------------------------------------------

    def _spawn(self) -> None:
        worker = _Worker(self._env, self._debug)
        self._workers.append(worker)
        self._selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)

    def _retire(self, worker: _Worker, reason: str | None) -> None:
        """Kill a worker, answer its task with `reason` and start a replacement."""
        self._selector.unregister(worker.proc.stdout)
        worker.kill()
        task = worker.task
        if task is not None and not task.future.done():
            elapsed = time.monotonic() - task.started
            task.future.set_result(TaskResult(False, reason=reason or "crashed", elapsed=elapsed))
        with self._lock:
            self._workers.remove(worker)
        if not self._closed:
            self.restarts += 1
            self._spawn()

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not worker.ready or worker.task is not None:
                continue
            with self._lock:
                if not self._pending:
                    return
                task = self._pending.popleft()
            task.started = time.monotonic()
            task.deadline = task.started + task.timeout
            worker.task = task
            try:
                worker.send(task.payload)
            except (BrokenPipeError, OSError):
                self._retire(worker, "crashed: worker pipe closed")
                return  # the worker list changed; the loop comes back here

    def _loop(self) -> None:
        while not self._closed:
            self._dispatch()
            now = time.monotonic()
            deadlines = [w.task.deadline for w in self._workers if w.task is not None]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            for key, _ in self._selector.select(wait):
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                self._on_readable(key.data)
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.task is not None and now >= worker.task.deadline:
                    self._retire(worker, "timeout")
        self._close_all()

    def _on_readable(self, worker: _Worker) -> None:
        if worker not in self._workers:
            return
        messages, eof = worker.frames()
        for message in messages:
            if message[0] == "ready":
                worker.ready = True
                continue
            task_id, ok, value, reason, elapsed = message
            task = worker.task
            if task is not None and task.task_id == task_id:
                worker.task = None
                task.future.set_result(TaskResult(ok, value, reason, time.monotonic() - task.started))
                if reason == "memory":
                    eof = True  # the worker exits after a MemoryError; replace it now
        if eof:
            code = worker.proc.poll()
            self._retire(worker, f"crashed: exit {code}" if code is not None else "crashed")

    def _close_all(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending), deque()
        for task in pending:
            task.future.set_result(TaskResult(False, reason="error: pool closed"))
        for worker in list(self._workers):
            if worker.task is not None and not worker.task.future.done():
                worker.task.future.set_result(TaskResult(False, reason="error: pool closed"))
            worker.task = None
            worker.kill()
        self._workers.clear()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


_default_pool: GradingPool | None = None
_default_lock = threading.Lock()


def get_default_pool() -> GradingPool:
    """The process-wide pool.

    Returns:
        The pool of this process, created on first use (and again in a forked child).
    """
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._closed or _default_pool._pid != os.getpid():
            _default_pool = GradingPool()
        return _default_pool


def configure_default_pool(num_workers: int | None = None, timeout: float = 10.0) -> GradingPool:
    """Replace the process-wide pool with one of num_workers workers (e.g. a trainer's reward actor)."""
    global _default_pool
    with _default_lock:
        if _default_pool is not None and _default_pool._pid == os.getpid():
            _default_pool.shutdown()
        _default_pool = GradingPool(num_workers=num_workers, timeout=timeout)
        return _default_pool


def shutdown_default_pool() -> None:
    """Stop the default pool (registered with atexit)."""
    global _default_pool
    with _default_lock:
        if _default_pool is not None and _default_pool._pid == os.getpid():
            _default_pool.shutdown()
        _default_pool = None


atexit.register(shutdown_default_pool)
