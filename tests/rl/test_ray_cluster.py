"""rl.ray_cluster: what a killed driver's local Ray cluster leaves running is cleared by the next start, and nothing
else is touched."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import rl.ray_cluster
from rl.ray_cluster import clear_dead_clusters, processes_holding

REPO = Path(__file__).resolve().parents[2]


def holding_a_file_in(folder: Path) -> subprocess.Popen:
    """A process that keeps a log file open in `folder` (as a Ray agent keeps its session's log) until killed."""
    folder.mkdir(parents=True, exist_ok=True)
    script = f"import time\nlog = open({str(folder / 'agent.log')!r}, 'a')\nprint('ready', flush=True)\ntime.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    return process


def record(records: Path, session: Path, pid: int, started: float) -> Path:
    records.mkdir(parents=True, exist_ok=True)
    path = records / f"{session.name}.json"
    path.write_text(json.dumps({"driver_pid": pid, "driver_started": started, "session_dir": str(session)}))
    return path


def test_a_dead_driver_s_leftovers_are_stopped_and_a_live_driver_s_are_not(tmp_path, monkeypatch):
    records = tmp_path / "records"
    monkeypatch.setattr(rl.ray_cluster, "RECORDS", records)
    dead_session, live_session = tmp_path / "session_1_111", tmp_path / "session_2_222"
    orphan, live_agent = holding_a_file_in(dead_session / "logs"), holding_a_file_in(live_session / "logs")
    other = holding_a_file_in(tmp_path / "session_1_1110")  # another session, whose name starts alike
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # the dead driver
    dead_record = record(records, dead_session, finished.pid, 0.0)
    live_record = record(records, live_session, os.getpid(), psutil.Process().create_time())
    try:
        assert [p.pid for p in processes_holding(dead_session)] == [orphan.pid]
        messages = []
        assert clear_dead_clusters(messages.append) == [orphan.pid]
        orphan.wait(timeout=10)  # stopped (and reaped by the clearing, so its exit status is not ours to read)
        assert live_agent.poll() is None and other.poll() is None
        assert not dead_record.exists() and live_record.exists()
        assert len(messages) == 1 and messages[0].startswith("stopped 1 process (") and str(orphan.pid) in messages[0]
        assert messages[0].endswith(f"left running by the Ray cluster of a run whose driver (pid {finished.pid}) "
                                    f"died: {dead_session}")
        assert clear_dead_clusters(messages.append) == [] and len(messages) == 1
    finally:
        for process in (orphan, live_agent, other):
            process.kill()
            process.wait()


DRIVER = textwrap.dedent("""
    import sys, time
    from rl.ray_cluster import join_or_start
    join_or_start(None, num_cpus=1)
    import ray
    print(ray.get_runtime_context().get_node_id(), flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_the_next_start_clears_what_a_killed_driver_s_ray_cluster_left(tmp_path):
    """kill -9 of a driver that started a local cluster leaves Ray's dashboard and runtime-env agents running (a
    minute or more, about 230 MB); the next join_or_start stops them before it starts its own cluster."""
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip(), "the driver did not start its cluster"
        records = list(rl.ray_cluster.RECORDS.glob(f"session_*_{driver.pid}.json"))
        assert len(records) == 1, "the driver did not record its cluster"
        session = Path(json.loads(records[0].read_text())["session_dir"])
        deadline = time.time() + 60
        while len(processes_holding(session)) < 3 and time.time() < deadline:  # raylet, GCS, agents, ...
            time.sleep(1)
        agents = [p for p in processes_holding(session) if p.name().endswith("Agent")]
        assert len(agents) == 2, [p.name() for p in processes_holding(session)]
    finally:
        driver.kill()
        driver.wait()
    time.sleep(5)
    assert all(agent.is_running() for agent in agents)  # the premise: they outlive the driver
    second = textwrap.dedent("""
        from rl.ray_cluster import join_or_start
        join_or_start(None, num_cpus=1)
        print("started")
    """)
    done = subprocess.run([sys.executable, "-c", second], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"left running by the Ray cluster of a run whose driver (pid {driver.pid}) died" in done.stdout
    assert not any(agent.is_running() for agent in agents)
    assert not processes_holding(session)
