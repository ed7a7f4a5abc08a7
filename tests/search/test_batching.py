"""Concurrent searches with batched engine calls (search/batching.py): the rendezvous merges one call per waiting
search into one batch, failures reach every waiting search, and searches run concurrently answer exactly as they
do one after another (on a generator whose samples depend only on their seeds)."""

import random
import threading

import pytest

from search.api import solve_many
from search.batching import BatchedValue, Rendezvous, map_concurrently


@pytest.fixture
def seeded_fake(fake):
    """conftest's scripted generator with step samples drawn from the call's seed, so that a search's samples do not
    depend on the calls other searches made before it; `requests` counts continue_prefix calls, `batches` holds the
    sizes of batched calls."""

    class SeededFake(fake):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.requests, self.batches = 0, []
            self._lock = threading.Lock()

        def _step(self, steps, i, temperature, max_tokens):
            if temperature == 0:
                return super()._step(steps, i, temperature, max_tokens)
            options = self.options(steps)
            choice = self._rng.choices(options, weights=[p for _, p in options])[0]
            return self._continuation([choice], steps, max_tokens)

        def continue_prefix(self, prefix_ids, k, *, max_tokens, temperature, stop, seed):
            with self._lock:
                self.requests += 1
                self._rng = random.Random(f"step-{seed}")
                return super().continue_prefix(prefix_ids, k, max_tokens=max_tokens, temperature=temperature,
                                               stop=stop, seed=seed)

        def continue_requests(self, requests):
            self.batches.append(len(requests))
            return [self.continue_prefix(r.prefix_ids, r.k, max_tokens=r.max_tokens, temperature=r.temperature,
                                         stop=list(r.stop), seed=r.seed) for r in requests]

    return SeededFake


def run_members(member, n):
    """member(0), ..., member(n - 1), each in its own thread; all must finish within 30 s (none hangs)."""
    threads = [threading.Thread(target=member, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_each_batch_holds_one_call_from_every_waiting_thread():
    rendezvous, sizes = Rendezvous(members=4), []

    def double(items):
        sizes.append(len(items))
        return [2 * x for x in items]

    results = {}

    def member(name):
        results[name] = [rendezvous.call(double, name * 100 + i) for i in range(name + 2)]
        rendezvous.leave()

    run_members(member, 4)
    assert results == {n: [2 * (n * 100 + i) for i in range(n + 2)] for n in range(4)}
    assert sizes == [4, 4, 3, 2, 1]  # each round waits for every member still making calls


def test_a_failing_batch_reaches_every_caller_and_nothing_hangs(order_of_operations):
    def fail(items):
        raise ValueError(f"engine down ({len(items)} items)")

    with pytest.raises(ValueError, match="engine down"):
        map_concurrently(lambda generator, value_fn, item: generator.rendezvous.call(fail, item), list(range(6)), 3,
                         order_of_operations[0])


def test_a_value_function_with_many_is_called_once_per_batch():
    calls = []

    class Scorer:
        def __call__(self, problem, steps):
            raise AssertionError("the batched path should call many")

        def many(self, items):
            calls.append(len(items))
            return [len(steps) / 10 for _, steps in items]

    rendezvous = Rendezvous(members=3)
    value = BatchedValue(Scorer(), rendezvous)
    out = {}

    def member(n):
        out[n] = value("problem", ["step\n"] * n)
        rendezvous.leave()

    run_members(member, 3)
    assert out == {0: 0.0, 1: 0.1, 2: 0.2} and calls == [3]


@pytest.mark.parametrize("method,options", [
    ("mcts", {"num_children": 2}),
    ("mcts", {"num_children": 2, "scored_rollouts": True, "answer_by": "vote"}),
    ("beam", {"beam_width": 2, "num_children": 2}),
    ("best_of_n", {}),
    ("self_consistency", {}),
])
def test_concurrent_searches_answer_exactly_as_sequential_ones_in_fewer_engine_calls(method, options, seeded_fake,
                                                                                    order_of_operations):
    scripted, value_fn = order_of_operations
    prompts = [scripted.encode(scripted.prompt)] * 8
    seeds = list(range(8))
    runs = {}
    for concurrency in (1, 4):
        generator = seeded_fake(scripted.table)
        runs[concurrency] = (solve_many(prompts, generator, method, budget_tokens=120, seeds=seeds,
                                        value_fn=value_fn, concurrency=concurrency, **options), generator)
    (sequential, one_by_one), (concurrent, batched) = runs[1], runs[4]
    assert concurrent == sequential  # answers, steps, values and every token count
    assert one_by_one.batches == [] and one_by_one.requests == sum(s["tokens"]["policy_calls"] for s in sequential)
    assert sum(batched.batches) == batched.requests == one_by_one.requests
    assert len(batched.batches) < batched.requests and max(batched.batches) > 1
