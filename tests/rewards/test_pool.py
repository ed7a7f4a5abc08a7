"""The hard-limit worker pool, run for real: timeouts, memory, crashes, threads, asyncio, Ray."""

import asyncio
import os
import pickle
import threading
import time

import pytest

from rewards.pool import GradingPool, get_default_pool


def _slow(seconds):
    time.sleep(seconds)
    return seconds


def _spin():
    while True:
        pass


def _allocate(n_bytes):
    return len(bytearray(n_bytes))


def _grow_list():
    chunks = []
    while True:
        chunks.append(b"x" * (1 << 20))


def _exit_hard():
    os._exit(3)


def _chatty(x):
    print("noise on stdout that must not corrupt the protocol" * 100)
    return x * 2


def _raise():
    raise ValueError("boom")


@pytest.fixture(scope="module")
def pool():
    p = GradingPool(num_workers=2, timeout=5.0, memory_mb=512, preload=())
    yield p
    p.shutdown()


def test_map_keeps_order_and_values(pool):
    results = pool.map(abs, [(-i,) for i in range(50)])
    assert [r.value for r in results] == list(range(50))
    assert all(r.ok and r.reason == "" for r in results)


def test_timeout_kills_and_replaces_worker(pool):
    restarts = pool.restarts
    start = time.monotonic()
    results = pool.map(_spin, [()], timeout=0.5)
    assert time.monotonic() - start < 2.0
    assert results[0].reason == "timeout" and not results[0].ok
    assert pool.restarts == restarts + 1
    assert pool.map(abs, [(-7,)])[0].value == 7  # the replacement works


@pytest.mark.parametrize("fn, args", [(_allocate, (8 << 30,)), (_grow_list, ())])
def test_memory_limit(pool, fn, args):
    result = pool.map(fn, [args], timeout=20)[0]
    assert result.reason == "memory"
    assert pool.map(abs, [(-1,)])[0].value == 1


def test_crash_and_error_are_reasons(pool):
    crashed, failed = pool.map(_exit_hard, [()])[0], pool.map(_raise, [()])[0]
    assert crashed.reason.startswith("crashed")
    assert failed.reason.startswith("error: ValueError")


def test_stdout_noise_does_not_break_protocol(pool):
    assert [r.value for r in pool.map(_chatty, [(1,), (2,)])] == [2, 4]


def test_from_threads_and_asyncio(pool):
    out = {}

    def work(k):
        out[k] = [r.value for r in pool.map(abs, [(-k,), (-k - 1,)])]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {k: [k, k + 1] for k in range(8)}
    results = asyncio.run(pool.amap(abs, [(-3,), (-4,)]))
    assert [r.value for r in results] == [3, 4]


def test_parallel_runs_use_both_workers(pool):
    start = time.monotonic()
    results = pool.map(_slow, [(0.5,), (0.5,)])
    assert all(r.ok for r in results)
    assert time.monotonic() - start < 0.95


def test_pool_is_not_picklable_and_shuts_down():
    p = GradingPool(num_workers=1, preload=())
    pids = [r.value for r in p.map(os.getpid, [()])]  # the worker's own pid, as it reports it
    with pytest.raises(TypeError):
        pickle.dumps(p)
    p.shutdown()
    time.sleep(0.2)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    assert p.map(abs, [(-1,)])[0].reason.startswith("error: pool closed")


def test_default_pool_is_shared():
    assert get_default_pool() is get_default_pool()


@pytest.mark.slow
def test_inside_ray_actor():
    import tempfile

    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp_dir = tempfile.mkdtemp(prefix="rr-ray-", dir="/tmp")  # short: AF_UNIX paths are capped at 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    try:

        @ray.remote(max_concurrency=4)
        class Grader:
            def grade(self, completions, answers):
                from rewards import math_accuracy

                return math_accuracy(completions, answer=answers)

        actor = Grader.remote()
        refs = [actor.grade.remote(["\\boxed{2}", "\\boxed{3}"], ["2", "2"]) for _ in range(4)]
        assert ray.get(refs, timeout=120) == [[1.0, 0.0]] * 4
    finally:
        ray.shutdown()
