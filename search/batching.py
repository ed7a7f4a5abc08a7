"""Many searches on one engine at once.

A search is sequential: sample a step, score it, select, sample again. On a small policy an engine call is mostly
fixed cost (scheduling, one forward pass for a handful of sequences), so searches run one after another leave the
engine nearly idle. `solve_many(..., concurrency=N)` runs N searches in threads instead. Their generator calls and
reward-model calls meet at a `Rendezvous`, which holds each call until every running search is waiting on one and
then makes one engine call for all the generator calls (and one batched call for the reward model's).

Each search still draws its own seeds and counts its own tokens, so what it samples does not depend on which
searches it was batched with (up to the engine's float arithmetic over a different batch), and budgets compare
as before: batching changes the wall time, not the compute a search is charged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from search.generator import Continuation, GenerationRequest, StepGenerator, continue_each

__all__ = ["Rendezvous", "BatchedGenerator", "BatchedValue", "map_concurrently"]


@dataclass
class _Call:
    batch_fn: Callable[[list], list]  # items -> one result per item
    item: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Rendezvous:
    """Merges the calls of a group of `members` threads: a call waits until every member still in the group is
    waiting on one, then the calls are grouped by their batch function and each group is made as one call (by
    whichever thread arrived last). The group is fixed up front, so no member is served alone while the others are
    still starting; a member that is done must `leave()`. With no members left, a call is served at once."""

    def __init__(self, members: int):
        self._lock = threading.Lock()
        self._members = members
        self._pending: list[_Call] = []

    def leave(self) -> None:
        """A member is done: the others no longer wait for its calls."""
        with self._lock:
            self._members -= 1
            ready = self._take_if_all_waiting()
        self._run(ready)  # the others may all have been waiting for this one to call or leave

    def call(self, batch_fn: Callable[[list], list], item: Any) -> Any:
        """`batch_fn([item, ...])[i]` for this call's item, made together with the other members' pending calls."""
        call = _Call(batch_fn, item)
        with self._lock:
            self._pending.append(call)
            ready = self._take_if_all_waiting()
        self._run(ready)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def _take_if_all_waiting(self) -> list[_Call]:
        # a member has at most one call pending (call blocks), so this many pending means every member waits
        if self._pending and len(self._pending) >= self._members:
            ready, self._pending = self._pending, []
            return ready
        return []

    @staticmethod
    def _run(calls: list[_Call]) -> None:
        groups: dict[Callable, list[_Call]] = {}
        for call in calls:
            groups.setdefault(call.batch_fn, []).append(call)  # bound methods of one object compare equal
        for batch_fn, group in groups.items():
            try:
                results = batch_fn([call.item for call in group])
                if len(results) != len(group):
                    raise RuntimeError(f"{batch_fn} returned {len(results)} results for {len(group)} items")
                for call, result in zip(group, results):
                    call.result = result
            except BaseException as error:  # every waiting search sees the failure, none hangs
                for call in group:
                    call.error = error
            for call in group:
                call.done.set()


class BatchedGenerator:
    """A StepGenerator whose calls from the members of a Rendezvous become one engine call: the wrapped generator's
    `continue_requests` (VllmStepGenerator's: one `generate` with a SamplingParams per request) where it has one,
    else its `continue_prefix` per request."""

    def __init__(self, generator: StepGenerator, rendezvous: Rendezvous):
        self.generator, self.rendezvous = generator, rendezvous
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer may refuse concurrent use ("Already borrowed")

    def continue_prefix(self, prefix_ids: list[int], k: int, *, max_tokens: int, temperature: float,
                        stop: Sequence[str], seed: int | None) -> list[Continuation]:
        request = GenerationRequest(list(prefix_ids), k, max_tokens, temperature, tuple(stop), seed)
        return self.rendezvous.call(self._continue_requests, request)

    def _continue_requests(self, requests: list[GenerationRequest]) -> list[list[Continuation]]:
        return continue_each(self.generator, requests)

    def encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return self.generator.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        with self._tokenizer_lock:
            return self.generator.decode(ids)


class BatchedValue:
    """A value function whose calls from the members of a Rendezvous are scored together: with the wrapped
    function's `many([(problem, steps), ...])` where it has one (a learned reward model's batched forward pass),
    else one call per item."""

    def __init__(self, value_fn: Callable[[str, list[str]], float], rendezvous: Rendezvous):
        self.value_fn, self.rendezvous = value_fn, rendezvous

    def __call__(self, problem: str, steps: list[str]) -> float:
        return self.rendezvous.call(self._many, (problem, list(steps)))

    def _many(self, items: list[tuple[str, list[str]]]) -> list[float]:
        many = getattr(self.value_fn, "many", None)
        if many is not None:
            return list(many(items))
        return [self.value_fn(problem, steps) for problem, steps in items]


def map_concurrently(fn: Callable[[StepGenerator, Any, Any], Any], items: Sequence[Any], concurrency: int,
                     generator: StepGenerator, value_fn: Callable | None = None) -> list:
    """[fn(generator, value_fn, item) for item in items], `concurrency` items at a time in threads whose generator
    and value-function calls are batched; results in item order. The first error stops the threads taking new
    items and is raised once they have finished."""
    threads = min(concurrency, len(items))
    rendezvous = Rendezvous(members=threads)
    batched_generator = BatchedGenerator(generator, rendezvous)
    batched_value = BatchedValue(value_fn, rendezvous) if value_fn is not None else None
    results: list = [None] * len(items)
    errors: list[BaseException] = []
    queue = iter(range(len(items)))
    queue_lock = threading.Lock()

    def work() -> None:
        try:
            while not errors:
                with queue_lock:
                    index = next(queue, None)
                if index is None:
                    return
                results[index] = fn(batched_generator, batched_value, items[index])
        except BaseException as error:
            errors.append(error)
        finally:
            rendezvous.leave()

    workers = [threading.Thread(target=work, name=f"search-{i}", daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results
