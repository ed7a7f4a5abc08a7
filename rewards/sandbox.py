"""Run an untrusted Python program in a sandbox made of Linux namespaces and rlimits.

What is really in force (checked on this project's machines: root, util-linux
`unshare`/`setpriv`/`prlimit`; `isolation` probes it and logs it once):

- **namespaces** (`unshare --net --pid --mount --ipc --uts`), set up once per process:
  a fork server (`rewards._zygote`) lives inside them and forks one child per
  program (about 6 ms a run here, against 58 ms for a fresh `unshare` and a dozen
  `mount` processes per run). A network namespace with only a loopback interface,
  which is down (no route anywhere, not even to the host's 127.0.0.1 listeners); its
  own PID space (no host process is visible or can be signalled); its own mounts, SysV
  IPC and hostname.
- **filesystem**: a new root (chroot into a tmpfs) that holds only the system folders
  (`/usr`, `/etc`, `/dev`, `/var` bound from the host, the `/bin`-style links,
  a fresh `/proc`) and the interpreter's prefix read-only at `/py`: every other
  top-level folder and file, including ones the host creates later, is absent. Empty
  tmpfs mounts cover `/var/tmp`, `/dev/shm`, and the repository, home and temp
  folders if they live under a system folder. The working directory is a fresh private
  directory (`/boxes/N`, mode 700, owned by the run's uid), deleted afterwards.
- **identity**: the program runs as an unprivileged uid/gid (60000+, one per run from a
  block of 64 this process holds a lock on; no supplementary groups; `no_new_privs`):
  it cannot write to `/usr`, `/etc` or anywhere outside its box, and reads only
  world-readable system files.
- **rlimits** (set in the forked child before it drops root): CPU seconds, address
  space, processes (per sandbox uid, so a fork bomb stops at the limit), open files,
  file size, no core dumps.
- **parent side**: an empty environment (`env -i`, only `PATH` and `LANG`), a
  wall-time limit, caps on stdout/stderr bytes (the run is killed past them), and at the
  end a SIGKILL of every process of the run's uid (the fork server's `kill(-1)`).

What is **not** contained: world-readable system files (`/etc`, `/usr`, `/lib`)
are visible read-only; `/dev` is the host's (unprivileged access only, `/dev/shm`
excepted); the kernel is
shared (a kernel exploit escapes; there is no seccomp filter); CPU and memory bandwidth
are shared. The sandbox protects the host, not the score: a program that introspects
the test harness in its own interpreter could fake passing asserts (stdin/stdout tests
are compared in the parent and cannot be faked this way).

The program runs on the **standard library only** (an interpreter started `-I -S`): no
site-packages, so what it can import does not depend on the machine (the venv is hidden
anyway; the base interpreter's site-packages differ between machines). It runs as
`__main__` in a child forked from the fork server, so modules the server imported
(`json`, `socket`, `ctypes`...) are already in `sys.modules`; `exit()` and
`quit()` exist as with `site`.

When namespaces are unavailable (not root, no `unshare`), the sandbox falls back to one
`python -I` process per run under `prlimit` with an empty environment and a private
cwd only, and says so in its start-up log line and in `isolation`.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

__all__ = ["RunResult", "SandboxLimits", "isolation", "run_sandboxed"]

logger = logging.getLogger(__name__)

# Top-level folders the sandboxed interpreter may read (world-readable files only).
_SYSTEM_DIRS = frozenset({"usr", "etc", "dev", "proc", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "var"})
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ZYGOTE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_zygote.py")
# Inside the new mount namespace: a new root (a tmpfs at the empty folder $1) holding only the system folders
# (bound from the host, $BIND; symbolic links like /bin -> usr/bin copied, $LINKS), the interpreter's prefix read-only
# at /py and a fresh /proc; an empty tmpfs over what must stay hidden inside those ($HIDE: the repository, home and
# temp folders when they live under a system folder, /var/tmp, /dev/shm); then the fork server, chrooted into it,
# as root with an empty environment. A folder the host creates later is not in the new root: nothing but the list
# is visible.
_SETUP = r"""
set -e
root="$1"
mount -t tmpfs -o size=64m,mode=755 tmpfs "$root"
mkdir "$root/py" "$root/proc"
mount --bind "$2" "$root/py"
mount -o remount,bind,ro "$root/py"
shift 2
IFS='
'
for d in $BIND; do mkdir -p "$root$d"; mount --rbind "$d" "$root$d"; done
for l in $LINKS; do ln -s "${l#*=}" "$root/${l%%=*}"; done
for d in $HIDE; do mount -t tmpfs -o size=16m,mode=755 tmpfs "$root$d"; done
unset IFS
mount -t proc proc "$root/proc"
cd "$root"
exec chroot "$root" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"
"""
_UID_BASE, _UID_BLOCK, _UID_BLOCKS = 60000, 64, 1000
_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    Attributes:
        wall_s: Wall-clock limit, seconds (killed past it).
        cpu_s: CPU-time limit, seconds (RLIMIT_CPU).
        memory_mb: Address-space limit, MiB (RLIMIT_AS).
        nproc: Processes/threads of the sandbox uid (RLIMIT_NPROC).
        nofile: Open file descriptors (RLIMIT_NOFILE).
        fsize_mb: Largest file it may write, MiB (RLIMIT_FSIZE).
        output_bytes: Cap on captured stdout and on stderr each (killed past it).
    """

    wall_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    nproc: int = 32
    nofile: int = 64
    fsize_mb: int = 16
    output_bytes: int = 1 << 20


@dataclass
class RunResult:
    """What a sandboxed run did.

    Attributes:
        returncode: Exit status (negative: killed by that signal; None: never started).
        stdout: Captured standard output (decoded, errors replaced, capped).
        stderr: Captured standard error (capped).
        reason: `""` on a normal exit, else `"timeout"`, `"output-limit"`,
            `"cpu-limit"`, `"memory"` or `"error: ..."`.
        wall_s: Seconds it ran.
    """

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    wall_s: float = 0.0


def _new_root() -> dict[str, str]:
    """What the sandbox's root holds, as the environment of `_SETUP`: the system folders to bind, the
    top-level links to copy, and the folders inside those to cover with an empty tmpfs (the repository, the home
    folder and the temp folder when they live under a system folder, e.g. `/usr/src/app`)."""
    binds, links = [], []
    for name in sorted(_SYSTEM_DIRS - {"proc"}):
        path = os.path.join("/", name)
        if os.path.islink(path):
            links.append(f"{name}={os.readlink(path)}")
        elif os.path.isdir(path):
            binds.append(path)
    extra = [os.path.realpath(d) for d in (_REPOSITORY, os.path.expanduser("~"), tempfile.gettempdir(), "/var/tmp",
                                           "/dev/shm")]
    hide = [d for d in dict.fromkeys(extra) if os.path.isdir(d) and any(d.startswith(b + "/") for b in binds)]
    # A folder inside another hidden one is covered already (and gone once that is mounted).
    hide = [d for d in hide if not any(d.startswith(other + "/") for other in hide)]
    return {"BIND": "\n".join(binds), "LINKS": "\n".join(links), "HIDE": "\n".join(hide)}


def _python_prefix() -> str:
    """The real interpreter's installation prefix (the venv's python is a symlink)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))


class _UidBlock:
    """A block of 64 uids this process owns while it lives (an flock on a file per block), so that two processes
    sandboxing at once never share a uid: a run's end kills every process of its uid."""

    def __init__(self):
        folder = os.path.join(tempfile.gettempdir(), "reasonrl-sandbox-uids")
        os.makedirs(folder, exist_ok=True)
        for i in range(_UID_BLOCKS):
            block = (os.getpid() + i) % _UID_BLOCKS
            fd = os.open(os.path.join(folder, str(block)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.fd, self.first, self.runs = fd, _UID_BASE + block * _UID_BLOCK, 0
            self.mountpoint = os.path.join(folder, f"root-{block}")  # empty on the host; the new root inside
            os.makedirs(self.mountpoint, exist_ok=True)
            return
        raise RuntimeError(f"all {_UID_BLOCKS} sandbox uid blocks are taken")

    def next_uid(self) -> int:
        self.runs += 1
        return self.first + self.runs % _UID_BLOCK


class _ZygoteDied(RuntimeError):
    pass


class _Zygote:
    """This process's fork server inside the namespaces (see rewards/_zygote.py), one program at a time."""

    def __init__(self):
        self.uids = _UidBlock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        python = "/py/" + os.path.relpath(os.path.realpath(sys.executable), _python_prefix())
        with open(_ZYGOTE_SOURCE) as f:
            source = f.read()
        cmd = ["unshare", "--net", "--pid", "--mount", "--ipc", "--uts", "--fork", "--kill-child",
               "--", "/bin/sh", "-c", _SETUP, "setup", self.uids.mountpoint, _python_prefix(),
               python, "-I", "-S", "-B", "-c", source, str(theirs.fileno())]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **_new_root()}
        self.errors = tempfile.TemporaryFile()
        # Same process group as this process: a pool worker killed by its group takes its fork server along.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errors,
                                     env=env, pass_fds=[theirs.fileno()], close_fds=True)
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        try:
            self._receive()  # {"ready": pid}
        except _ZygoteDied:
            self.close()
            self.errors.seek(0)
            raise _ZygoteDied(self.errors.read().decode(errors="replace").strip()[-300:] or "no output") from None

    def _send(self, message: dict, fds: list[int] = ()) -> None:
        data = json.dumps(message).encode()
        try:
            socket.send_fds(self.sock, [_HEADER.pack(len(data)) + data], list(fds))
        except OSError as exc:
            raise _ZygoteDied(f"fork server gone: {exc}") from None

    def _receive(self) -> dict:
        data = bytearray()
        while len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError as exc:
                raise _ZygoteDied(f"fork server gone: {exc}") from None
            if not chunk:
                raise _ZygoteDied("fork server gone")
            data += chunk
        return json.loads(data[_HEADER.size:])

    def run(self, code: str, stdin: str, limits: SandboxLimits) -> RunResult:
        with self.lock:
            start = time.monotonic()
            stdin_r, stdin_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                try:
                    self._send({"op": "run", "code": code, "uid": self.uids.next_uid(), "limits": asdict(limits)},
                               [stdin_r, out_w, err_w])
                finally:
                    for fd in (stdin_r, out_w, err_w):
                        os.close(fd)
                self._receive()  # {"pid": ...}: the child is running
            except BaseException:
                os.close(stdin_w)
                os.close(out_r)
                os.close(err_r)
                raise
            try:
                out, err, reason = _collect(stdin_w, out_r, err_r, stdin.encode("utf-8", "replace"), limits, start)
            finally:
                os.close(out_r)
                os.close(err_r)
            wait_s = 0.0 if reason else limits.wall_s - (time.monotonic() - start)
            self._send({"op": "finish", "wait_s": wait_s})
            status = self._receive()
            if status["timed_out"] and not reason:
                reason = "timeout"
            return _result(status["returncode"], out, err, reason, limits, start)

    def close(self) -> None:
        self.sock.close()
        os.close(self.uids.fd)  # the uid block is free again once its server is gone
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()


_zygote: _Zygote | None = None
_zygote_pid = None
_zygote_guard = threading.Lock()


def _run_namespaced(code: str, stdin: str, limits: SandboxLimits) -> RunResult:
    """One run through this process's fork server, started on first use; one that died (the OOM killer, a kill
    from outside) is replaced and the run tried once more."""
    global _zygote, _zygote_pid
    for attempt in range(2):
        with _zygote_guard:
            if _zygote is None or _zygote_pid != os.getpid():  # a forked child must not share its parent's server
                _zygote, _zygote_pid = _Zygote(), os.getpid()
            zygote = _zygote
        try:
            return zygote.run(code, stdin, limits)
        except _ZygoteDied as exc:
            with _zygote_guard:
                if _zygote is zygote:
                    zygote.close()
                    _zygote = None
            if attempt:
                return RunResult(None, reason=f"error: {exc}")
            logger.warning("sandbox fork server died (%s); starting another", exc)


@functools.lru_cache(maxsize=1)
def isolation() -> str:
    """Which isolation is in force here, probed once and logged (a start-up line).

    Returns:
        A description such as `"namespaces (net, pid, mount, ipc, uts) + unprivileged uid + rlimits, fork server"`,
        or the fallback's.
    """
    needed = [shutil.which(t) for t in ("unshare", "setpriv", "prlimit")]
    if os.geteuid() == 0 and all(needed):
        probe = f"import os,socket;print(os.getuid(),len(socket.if_nameindex()),os.path.exists({_REPOSITORY!r}))"
        try:
            result = _run_namespaced(probe, "", SandboxLimits(wall_s=10))
        except Exception as exc:  # noqa: BLE001 - e.g. no uid block, a mount refused: fall back, say why
            result = RunResult(None, reason=f"error: {type(exc).__name__}: {exc}")
        if result.returncode == 0 and result.stdout.split()[1:] == ["1", "False"]:
            mode = "namespaces (net, pid, mount, ipc, uts) + unprivileged uid + rlimits, fork server"
            logger.info("sandbox isolation: %s", mode)
            return mode
        failure = (result.stderr or result.reason).strip()[-200:]
    else:
        failure = "needs root and unshare/setpriv/prlimit"
    mode = f"rlimits only (namespaces unavailable: {failure})"
    logger.warning("sandbox isolation: %s", mode)
    return mode


def run_sandboxed(code: str, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run `code` as a program in the sandbox (standard library only); never raises.

    Args:
        code: The program's source.
        stdin: Text fed to its standard input.
        limits: Resource limits.

    Returns:
        A `RunResult`.
    """
    try:
        if isolation().startswith("namespaces"):
            return _run_namespaced(code, stdin, limits)
        return _run_plain(code, stdin, limits)
    except Exception as exc:  # noqa: BLE001 - a reward's sandbox must answer, not raise
        return RunResult(None, reason=f"error: {type(exc).__name__}: {exc}")


def _prlimit(limits: SandboxLimits) -> list[str]:
    return ["prlimit", f"--as={limits.memory_mb << 20}", f"--cpu={limits.cpu_s}", f"--nproc={limits.nproc}",
            f"--nofile={limits.nofile}", f"--fsize={limits.fsize_mb << 20}", "--core=0", "--"]


def _run_plain(code: str, stdin: str, limits: SandboxLimits) -> RunResult:
    """The fallback: one process per run, in its own session and a private cwd, killed by group at the end."""
    box = tempfile.mkdtemp(prefix="rr-sbx-")
    try:
        with open(os.path.join(box, "main.py"), "w") as f:
            f.write(code)
        cmd = [*_prlimit(limits), os.path.realpath(sys.executable), "-I", "-B", "main.py"]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=box, start_new_session=True,
                                close_fds=True)
        try:
            stdin_fd = os.dup(proc.stdin.fileno())  # _collect owns (and closes) its stdin descriptor
            proc.stdin.close()
            out, err, reason = _collect(stdin_fd, proc.stdout.fileno(), proc.stderr.fileno(),
                                        stdin.encode("utf-8", "replace"), limits, start)
            if not reason:
                try:
                    proc.wait(timeout=max(0.0, limits.wall_s - (time.monotonic() - start)))
                except subprocess.TimeoutExpired:
                    reason = "timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        return _result(proc.returncode, out, err, reason, limits, start)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def _collect(stdin_fd: int, out_fd: int, err_fd: int, stdin: bytes, limits: SandboxLimits, start: float
             ) -> tuple[bytearray, bytearray, str]:
    """Feed stdin (this function owns `stdin_fd` and closes it) and read stdout/stderr until both close, the
    wall limit passes (`"timeout"`) or an output passes its cap (`"output-limit"`)."""
    out, err = bytearray(), bytearray()
    pending = memoryview(stdin)
    os.set_blocking(stdin_fd, False)  # a program that never reads its input must not block us
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(out_fd, selectors.EVENT_READ, out)
            sel.register(err_fd, selectors.EVENT_READ, err)
            if pending:
                sel.register(stdin_fd, selectors.EVENT_WRITE, None)
            else:
                os.close(stdin_fd)
                stdin_fd = -1
            while any(key.data is not None for key in sel.get_map().values()):
                left = limits.wall_s - (time.monotonic() - start)
                if left <= 0:
                    return out, err, "timeout"
                for key, _ in sel.select(left):
                    if key.data is None:  # stdin: write what fits, close it when all is written or unwanted
                        try:
                            pending = pending[os.write(key.fd, pending):]
                        except OSError:
                            pending = pending[:0]
                        if not pending:
                            sel.unregister(key.fd)
                            os.close(stdin_fd)
                            stdin_fd = -1
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                        continue
                    key.data.extend(chunk)
                    if len(key.data) > limits.output_bytes:
                        return out, err, "output-limit"
        return out, err, ""
    finally:
        if stdin_fd >= 0:
            os.close(stdin_fd)


def _result(code: int | None, out: bytearray, err: bytearray, reason: str, limits: SandboxLimits, start: float
            ) -> RunResult:
    stderr = bytes(err[: limits.output_bytes]).decode("utf-8", "replace")
    if not reason and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        reason = "cpu-limit"
    elif not reason and "MemoryError" in stderr[-2000:]:
        reason = "memory"
    return RunResult(code, bytes(out[: limits.output_bytes]).decode("utf-8", "replace"), stderr, reason,
                     time.monotonic() - start)
