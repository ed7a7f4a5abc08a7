"""Hostile programs against the real sandbox: each is contained, scores 0, leaves the host unchanged."""

import os
import shutil
import socket
import threading
import time

import pytest

from rewards.code import code_execution, run_tests
from rewards.sandbox import SandboxLimits, isolation, run_sandboxed

NAMESPACES = isolation().startswith("namespaces")
needs_ns = pytest.mark.skipif(not NAMESPACES, reason=f"sandbox without namespaces here: {isolation()}")
LIMITS = SandboxLimits(wall_s=3.0, cpu_s=3)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(code, stdin=""):
    start = time.monotonic()
    result = run_sandboxed(code, stdin, LIMITS)
    assert time.monotonic() - start < LIMITS.wall_s + 2, "answer not within the wall limit"
    return result


def test_normal_program_runs():
    result = _run("print(int(input()) * 2)", "21\n")
    assert result.returncode == 0 and result.stdout.strip() == "42" and result.reason == ""


@needs_ns
@pytest.mark.parametrize("path", [os.path.join(REPO, "pyproject.toml"), os.path.expanduser("~/.bashrc"), "/tmp"])
def test_cannot_read_repository_home_or_tmp(path):
    result = _run(f"import os; p={path!r}; print(os.path.isfile(p) and open(p).read()[:20] or os.listdir(p) if os.path.exists(p) else 'ABSENT')")
    assert "[project]" not in result.stdout
    assert result.stdout.strip() in ("ABSENT", "[]", "False", ""), result.stdout


@needs_ns
def test_data_in_an_unexpected_top_level_folder_is_hidden():
    # CI clones the repository under /check/...: no fixed list of folders may be assumed.
    folder = f"/rr-sandbox-test-{os.getpid()}"
    os.makedirs(folder)
    try:
        with open(os.path.join(folder, "secret.txt"), "w") as f:
            f.write("hunter2")
        result = _run(f"import os; print(os.listdir({folder!r}) if os.path.exists({folder!r}) else 'ABSENT')")
        assert result.stdout.strip() in ("ABSENT", "[]"), result.stdout
    finally:
        shutil.rmtree(folder)


def test_cannot_read_secrets_from_environment(monkeypatch):
    monkeypatch.setenv("REASONRL_TEST_SECRET", "hunter2")
    result = _run("import os; print(sorted(os.environ))")
    assert "REASONRL_TEST_SECRET" not in result.stdout and "hunter2" not in result.stdout


@needs_ns
def test_cannot_write_outside(tmp_path):
    target = tmp_path / "pwned"
    code = f"""
for p in [{str(target)!r}, '/usr/pwned', '/etc/pwned', '/pwned']:
    try:
        open(p, 'w').write('x'); print('WROTE', p)
    except OSError as e:
        print('denied', p)
"""
    result = _run(code)
    assert "WROTE" not in result.stdout
    assert not target.exists() and not os.path.exists("/usr/pwned") and not os.path.exists("/pwned")


@needs_ns
def test_no_network_not_even_host_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    code = f"""
import socket
print('interfaces', [n for _, n in socket.if_nameindex()])
print('routes', len(open('/proc/net/route').read().splitlines()[1:]))
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=1); print('CONNECTED')
except OSError as e:
    print('refused', type(e).__name__)
"""
    result = _run(code)
    time.sleep(0.2)
    server.close()
    assert "interfaces ['lo']" in result.stdout and "routes 0" in result.stdout
    assert "CONNECTED" not in result.stdout and accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None


@pytest.mark.parametrize(
    ("name", "code", "reasons"),
    [
        ("infinite loop", "while True: pass", {"timeout", "cpu-limit", ""}),
        ("endless output", "while True: print('x' * 10000)", {"output-limit"}),
        ("memory bomb", "x = bytearray(1 << 34)", {"memory"}),
        ("growing memory", "x = []\nwhile True: x.append(bytearray(1 << 24))", {"memory"}),
        ("fork bomb", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", {"timeout", "cpu-limit", ""}),
        ("sleep", "import time; time.sleep(100)", {"timeout"}),
    ],
)
def test_resource_attacks_are_contained(name, code, reasons):
    result = _run(code)
    assert result.reason in reasons or result.returncode != 0, (name, result)
    assert run_tests(code, "assert True", LIMITS)["passed"] <= 1


@needs_ns
def test_fork_bomb_leaves_no_process():
    _run("import os\nfor _ in range(10000):\n    try: os.fork()\n    except OSError: pass\nimport time; time.sleep(50)")
    # The kernel tears a PID namespace down asynchronously: 5 s was passed (5.4 s) on cores loaded 12-24. What is
    # checked is that no process stays, so the wait is long; the loop ends as soon as none is left.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) >= 60000]
        if not leftovers:
            break
        time.sleep(0.2)
    assert leftovers == []


def _uid(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return -1


@needs_ns
def test_kill_parent_signals_os_system_subprocess_ctypes():
    code = """
import os, signal, subprocess, ctypes
for pid in (os.getppid(), 1, %d):
    try:
        os.kill(pid, signal.SIGKILL); print('KILLED', pid)
    except OSError as e:
        print('nokill', pid, type(e).__name__)
print('system', os.system('ls /work >/dev/null 2>&1; echo $?'))
print('sub', subprocess.run(['cat', '/etc/shadow'], capture_output=True).returncode)
libc = ctypes.CDLL(None)
print('setuid', libc.setuid(0))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
""" % os.getpid()
    result = _run(code)
    assert f"KILLED {os.getpid()}" not in result.stdout
    assert "setuid -1" in result.stdout and "sub 1" in result.stdout
    assert os.getpid() > 0  # we are alive


def test_hostile_samples_score_zero():
    hostile = [
        "```python\nwhile True: pass\n```",
        "```python\nimport os\nos.kill(os.getppid(), 9)\n```",
        "```python\nimport sys; sys.exit(0)\n```",
        "```python\nx = bytearray(1 << 34)\n```",
    ]
    scores = code_execution(hostile, tests=["assert add(1, 2) == 3"] * len(hostile))
    assert scores == [0.0] * len(hostile)


@needs_ns
def test_a_daemonized_child_dies_with_its_run():
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print('parent done')
"""
    result = _run(code)
    assert "parent done" in result.stdout
    time.sleep(0.2)
    assert [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) >= 60000] == []


@needs_ns
def test_each_run_has_a_fresh_private_box():
    first = _run("import os; open('left-behind', 'w').write('x'); print(os.getcwd())")
    second = _run("import os; print(os.getcwd(), os.listdir('.'), sorted(os.listdir('/boxes')) if os.access('/boxes', os.R_OK) else 'no-listing')")
    assert first.returncode == 0 and second.returncode == 0
    assert "left-behind" not in second.stdout and "no-listing" in second.stdout


def test_interpreter_behaviour_of_a_script():
    assert _run("exit(3)").returncode == 3 and _run("quit()").returncode == 0
    assert _run("import sys; sys.exit('bye')").stderr.strip() == "bye"
    crash = _run("def f():\n    raise ValueError('boom')\nf()")
    assert crash.returncode == 1 and 'File "main.py", line 3' in crash.stderr and "ValueError: boom" in crash.stderr
    assert "_zygote" not in crash.stderr and "run_program" not in crash.stderr
    assert _run("import sys; print(sys.argv, __name__)").stdout.strip() == "['main.py'] __main__"
    assert _run("import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.2), print('late'))).start()").stdout == "late\n"


def test_large_input_that_is_never_read_does_not_block():
    result = _run("print('ignored my input')", "x" * (1 << 20))
    assert result.stdout == "ignored my input\n" and result.reason == ""
    echoed = _run("import sys; print(len(sys.stdin.read()))", "y" * (1 << 20))
    assert echoed.stdout.strip() == str(1 << 20)


@needs_ns
def test_a_dead_fork_server_is_replaced():
    import rewards.sandbox as sandbox

    assert _run("print(1)").stdout == "1\n"
    sandbox._zygote.proc.kill()
    sandbox._zygote.proc.wait()
    assert _run("print(2)").stdout == "2\n"
