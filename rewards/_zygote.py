"""The sandbox's fork server ("zygote"): started once inside the namespaces, it forks one child per program.

Setting up namespaces and mounts costs about 45 ms a run here (a dozen `mount` processes); forking a ready
interpreter costs about 1 ms. So `rewards.sandbox` starts this script once per process (`python -I -S -B
-c <this file> FD`, inside `unshare` after the mounts, as PID 1 of its PID namespace) and sends it each program
over the socket `FD`. This file is run as a script and imports the standard library only (the repository is
not visible inside the sandbox).

Protocol: frames of a 4-byte big-endian length and a JSON object.

- parent -> server: `{"op": "run", "code", "uid", "limits"}` with three file descriptors attached
  (SCM_RIGHTS: the program's stdin, stdout and stderr pipes); the server answers `{"pid"}` once the child is
  forked. Then `{"op": "finish", "wait_s"}`: the server waits up to `wait_s` for the child to exit, kills what
  is left of it, and answers `{"returncode", "timed_out"}`.
- server -> parent: `{"ready": pid}` first.

What a child does before it runs the program: its own session, the pipes as fds 0-2 and every other descriptor
closed, a fresh private directory as cwd, rlimits, no supplementary groups, the run's unprivileged uid/gid,
`no_new_privs`. After each run the server kills every process of that uid (`kill(-1)` from a process of that
uid, which no fork can race) and reaps them (it is PID 1: orphans come to it).
"""

import builtins
import ctypes
import json
import os
import resource
import shutil
import signal
import socket
import struct
import sys
import time
import traceback

_HEADER = struct.Struct(">I")
_PR_SET_NO_NEW_PRIVS = 38


def send(sock, message):
    data = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv(sock):
    """The next message and the file descriptors that came with it; (None, []) at EOF."""
    head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 3)
    if not head:
        return None, fds
    while len(head) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(head))
        if not more:
            return None, fds
        head += more
    (size,) = _HEADER.unpack(head)
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


def _quit(code=None):
    raise SystemExit(code)


def run_program(code, uid, limits, fds, box, libc):
    """In the forked child: confine this process, run `code` as `__main__`, exit. Never returns."""
    rc = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for name in os.listdir("/proc/self/fd"):
            if int(name) > 2:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        os.chdir(box)
        mib = 1 << 20
        # CPU: SIGXCPU at the limit (reported as "cpu-limit"), the kernel's SIGKILL a second later
        for which, soft, hard in ((resource.RLIMIT_AS, limits["memory_mb"] * mib, limits["memory_mb"] * mib),
                                  (resource.RLIMIT_CPU, limits["cpu_s"], limits["cpu_s"] + 1),
                                  (resource.RLIMIT_NPROC, limits["nproc"], limits["nproc"]),
                                  (resource.RLIMIT_NOFILE, limits["nofile"], limits["nofile"]),
                                  (resource.RLIMIT_FSIZE, limits["fsize_mb"] * mib, limits["fsize_mb"] * mib),
                                  (resource.RLIMIT_CORE, 0, 0)):
            resource.setrlimit(which, (soft, hard))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError("prctl(PR_SET_NO_NEW_PRIVS) failed")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.argv = ["main.py"]
        builtins.exit = builtins.quit = _quit  # what `site` would add (-S leaves them out)
    except BaseException:  # noqa: BLE001 - confinement failed: never run the program
        os._exit(120)
    try:
        exec(compile(code, "main.py", "exec"), {"__name__": "__main__", "__file__": "main.py",
                                                 "__builtins__": builtins})
        rc = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            rc = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            rc = 1
    except BaseException as error:  # noqa: BLE001 - what the interpreter would print, from the program's frame on
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        rc = 1
    finally:
        try:
            if "threading" in sys.modules:
                sys.modules["threading"]._shutdown()  # wait for non-daemon threads, as the interpreter does
        except BaseException:  # noqa: BLE001
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(rc & 0xFF if rc >= 0 else 1)


def kill_uid(uid):
    """SIGKILL every process of `uid` (from a process of that uid: kill(-1) is atomic against forks), then reap."""
    killer = os.fork()
    if killer == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left: the run's processes, orphans and the killer are all reaped
        if pid == 0:
            time.sleep(0.001)


def finish(pid, uid, wait_s, box):
    """Wait up to `wait_s` for the child, then kill what is left of the run; its exit status."""
    deadline = time.monotonic() + max(0.0, wait_s)
    status, timed_out = None, False
    while True:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(0.0005)
    kill_uid(uid)
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None  # reaped by kill_uid's loop: it was killed
    shutil.rmtree(box, ignore_errors=True)
    if status is None:
        return -signal.SIGKILL, timed_out
    return (os.waitstatus_to_exitcode(status), timed_out)


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    libc = ctypes.CDLL(None, use_errno=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.makedirs("/boxes", mode=0o711, exist_ok=True)
    send(sock, {"ready": os.getpid()})
    runs = 0
    while True:
        message, fds = recv(sock)
        if message is None:
            return
        runs += 1
        uid = message["uid"]
        box = f"/boxes/{runs}"
        os.mkdir(box, 0o700)
        os.chown(box, uid, uid)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            run_program(message["code"], uid, message["limits"], fds, box, libc)
        for fd in fds:
            os.close(fd)
        send(sock, {"pid": pid})
        message, _ = recv(sock)
        if message is None:
            kill_uid(uid)
            return
        returncode, timed_out = finish(pid, uid, message["wait_s"], box)
        send(sock, {"returncode": returncode, "timed_out": timed_out})


if __name__ == "__main__":
    main()
