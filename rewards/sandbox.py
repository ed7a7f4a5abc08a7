"""Run an untrusted Python program in a sandbox made of Linux namespaces and rlimits.

What is really in force (checked on this project's machines: root, util-linux
``unshare``/``setpriv``/``prlimit``; :func:`isolation` probes it and logs it once):

- **namespaces** (``unshare --net --pid --mount --ipc --uts --fork --kill-child
  --mount-proc``): a network namespace with only a loopback interface, which is down
  (no route anywhere, not even to the host's 127.0.0.1 listeners); its own PID space
  (the program is PID 1, sees no host process, cannot signal one); its own mounts,
  SysV IPC and hostname.
- **filesystem**: inside the mount namespace, an empty tmpfs is mounted over every
  top-level folder except the system ones (``/usr``, ``/etc``, ``/dev``, ``/proc`` and
  the ``/bin``-style links), over ``/var/tmp``, and over the repository, the home folder
  and the temp folder wherever they are (the repository, home folders, other users'
  temp files are invisible, whatever the machine's layout); the interpreter's prefix is bind-mounted
  read-only; the working directory is a fresh private temp directory (bind-mounted at
  ``/mnt/box``), deleted afterwards.
- **identity**: the program runs as an unprivileged uid/gid (60000+, no supplementary
  groups, ``no_new_privs``): it cannot write to ``/usr``, ``/etc`` or anywhere outside
  its box, and reads only world-readable system files.
- **rlimits** (``prlimit``): CPU seconds, address space, processes (per sandbox uid,
  so a fork bomb stops at the limit), open files, file size, no core dumps.
- **parent side**: an empty environment (``env -i``, only ``PATH`` and ``LANG``), a
  wall-time limit, caps on stdout/stderr bytes (the run is killed past them), and a
  SIGKILL of the whole process group at the end (``--kill-child`` takes the PID
  namespace with it).

What is **not** contained: world-readable system files (``/etc``, ``/usr``, ``/lib``)
are visible read-only; ``/dev`` is the host's (unprivileged access only); the kernel is
shared (a kernel exploit escapes; there is no seccomp filter); CPU and memory bandwidth
are shared. The sandbox protects the host, not the score: a program that introspects
the test harness in its own interpreter could fake passing asserts (stdin/stdout tests
are compared in the parent and cannot be faked this way).

When namespaces are unavailable (not root, no ``unshare``), the sandbox falls back to
rlimits, an empty environment and a private cwd only, and says so in its start-up log
line and in :func:`isolation`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

__all__ = ["RunResult", "SandboxLimits", "isolation", "run_sandboxed"]

logger = logging.getLogger(__name__)

# Top-level folders the sandboxed interpreter may read (world-readable files only).
_SYSTEM_DIRS = frozenset({"usr", "etc", "dev", "proc", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "var", "mnt"})
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SETUP = r"""
set -e
mount -t tmpfs -o size=16m,mode=755 tmpfs /mnt
mkdir /mnt/box /mnt/py
mount --bind "$1" /mnt/box
mount --bind "$2" /mnt/py
mount -o remount,bind,ro /mnt/py
shift 2
IFS='
'
for d in $HIDE; do mount -t tmpfs -o size=16m,mode=755 tmpfs "$d"; done
unset IFS
cd /mnt/box
exec env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"
"""
_uids = itertools.count(os.getpid() % 1000 * 7)


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
        reason: ``""`` on a normal exit, else ``"timeout"``, ``"output-limit"``,
            ``"cpu-limit"``, ``"memory"`` or ``"error: ..."``.
        wall_s: Seconds it ran.
    """

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    wall_s: float = 0.0


def _hidden_dirs() -> list[str]:
    """Folders covered by an empty tmpfs inside the sandbox.

    Every top-level folder but the system ones (so a repository or a data disk mounted at
    an unexpected place is hidden too), plus the repository, the home folder and the temp
    folder in case they live under a system folder (``/usr/src/app``, ``/var/tmp``).
    """
    top = [os.path.join("/", name) for name in sorted(os.listdir("/")) if name not in _SYSTEM_DIRS]
    extra = [os.path.realpath(d) for d in (_REPOSITORY, os.path.expanduser("~"), tempfile.gettempdir(), "/var/tmp")]
    dirs = [d for d in dict.fromkeys(top + extra) if os.path.isdir(d) and not os.path.islink(d)]
    # A folder inside another hidden one is covered already (and gone once that is mounted).
    return [d for d in dirs if not any(d.startswith(other + "/") for other in dirs)]


def _python_prefix() -> str:
    """The real interpreter's installation prefix (the venv's python is a symlink)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))


@functools.lru_cache(maxsize=1)
def isolation() -> str:
    """Which isolation is in force here, probed once and logged (a start-up line)."""
    needed = [shutil.which(t) for t in ("unshare", "setpriv", "prlimit")]
    if os.geteuid() == 0 and all(needed):
        box = tempfile.mkdtemp(prefix="rr-probe-")
        try:
            os.chmod(box, 0o777)
            probe = f"import os,socket;print(os.getuid(),len(socket.if_nameindex()),os.path.exists({_REPOSITORY!r}))"
            result = _run_namespaced(probe, "", SandboxLimits(wall_s=10), box)
            if result.returncode == 0 and result.stdout.split()[1:] == ["1", "False"]:
                mode = "namespaces (net, pid, mount, ipc, uts) + unprivileged uid + rlimits"
                logger.info("sandbox isolation: %s", mode)
                return mode
            failure = (result.stderr or result.reason).strip()[-200:]
        finally:
            shutil.rmtree(box, ignore_errors=True)
    else:
        failure = "needs root and unshare/setpriv/prlimit"
    mode = f"rlimits only (namespaces unavailable: {failure})"
    logger.warning("sandbox isolation: %s", mode)
    return mode


def run_sandboxed(code: str, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run ``code`` with ``python3 -I`` in the sandbox; never raises.

    Args:
        code: The program's source.
        stdin: Text fed to its standard input.
        limits: Resource limits.

    Returns:
        A :class:`RunResult`.
    """
    box = tempfile.mkdtemp(prefix="rr-sbx-")
    try:
        os.chmod(box, 0o777)  # the sandbox uid writes here
        if isolation().startswith("namespaces"):
            return _run_namespaced(code, stdin, limits, box)
        return _run_plain(code, stdin, limits, box)
    except Exception as exc:  # noqa: BLE001 - a reward's sandbox must answer, not raise
        return RunResult(None, reason=f"error: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(box, ignore_errors=True)


def _prlimit(limits: SandboxLimits) -> list[str]:
    return ["prlimit", f"--as={limits.memory_mb << 20}", f"--cpu={limits.cpu_s}", f"--nproc={limits.nproc}",
            f"--nofile={limits.nofile}", f"--fsize={limits.fsize_mb << 20}", "--core=0", "--"]


def _run_namespaced(code: str, stdin: str, limits: SandboxLimits, box: str) -> RunResult:
    with open(os.path.join(box, "main.py"), "w") as f:
        f.write(code)
    uid = str(60000 + next(_uids) % 5000)  # one uid per run: RLIMIT_NPROC counts per uid
    python = "/mnt/py/" + os.path.relpath(os.path.realpath(sys.executable), _python_prefix())
    cmd = ["unshare", "--net", "--pid", "--mount", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc",
           "--", "/bin/sh", "-c", _SETUP, "setup", box, _python_prefix(),
           *_prlimit(limits), "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
           "--", python, "-I", "-B", "main.py"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HIDE": "\n".join(_hidden_dirs())}
    return _communicate(cmd, stdin, limits, env, cwd=box)


def _run_plain(code: str, stdin: str, limits: SandboxLimits, box: str) -> RunResult:
    with open(os.path.join(box, "main.py"), "w") as f:
        f.write(code)
    cmd = [*_prlimit(limits), os.path.realpath(sys.executable), "-I", "-B", "main.py"]
    return _communicate(cmd, stdin, limits, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=box)


def _communicate(cmd: list[str], stdin: str, limits: SandboxLimits, env: dict, cwd: str) -> RunResult:
    """Run ``cmd`` in its own session with wall and output caps; kill its group at the end."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd, start_new_session=True, close_fds=True)
    out, err, reason = bytearray(), bytearray(), ""
    try:
        try:
            proc.stdin.write(stdin.encode("utf-8", "replace"))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the program did not read its input: that is its business
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, out)
            sel.register(proc.stderr, selectors.EVENT_READ, err)
            while sel.get_map():
                left = limits.wall_s - (time.monotonic() - start)
                if left <= 0:
                    reason = "timeout"
                    break
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                    if len(key.data) > limits.output_bytes:
                        reason = "output-limit"
                if reason:
                    break
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
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    code = proc.returncode
    stderr = bytes(err[: limits.output_bytes]).decode("utf-8", "replace")
    if not reason and code == -signal.SIGXCPU or (not reason and code == 128 + signal.SIGXCPU):
        reason = "cpu-limit"
    elif not reason and "MemoryError" in stderr[-2000:]:
        reason = "memory"
    return RunResult(code, bytes(out[: limits.output_bytes]).decode("utf-8", "replace"), stderr, reason,
                     time.monotonic() - start)
