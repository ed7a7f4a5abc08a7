"""The resumable order in which training draws its prompts."""

from __future__ import annotations

import random
from typing import Any, Sequence

from problems import Problem


class PromptCursor:
    """Endless, seeded, epoch-shuffling iteration over problems, resumable exactly.

    Epoch e visits every problem once in the order of `random.Random(seed * 1_000_003 + e)`; a batch that runs past
    the end of an epoch continues into the next. `state_dict()` after k batches, loaded into a fresh cursor over
    the same problems, yields exactly the batches k+1, k+2, ... of the original run.
    """

    def __init__(self, problems: Sequence[Problem], seed: int = 0, shuffle: bool = True):
        if not problems:
            raise ValueError("PromptCursor needs at least one problem")
        self.problems = list(problems)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_batch(self, n: int) -> list[Problem]:
        """The next `n` problems (crossing into a new, reshuffled epoch when needed)."""
        batch = []
        while len(batch) < n:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            batch.append(self.problems[self._order[self.position]])
            self.position += 1
        return batch

    def state_dict(self) -> dict[str, int | bool]:
        """JSON-serialisable position: seed, shuffle, epoch, position and the number of problems."""
        return {"seed": self.seed, "shuffle": self.shuffle, "epoch": self.epoch, "position": self.position,
                "num_problems": len(self.problems)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at `state`; ValueError if it was taken over a different number of problems."""
        if state["num_problems"] != len(self.problems):
            raise ValueError(f"cursor state is for {state['num_problems']} problems, this cursor has "
                             f"{len(self.problems)}")
        self.seed, self.shuffle = int(state["seed"]), bool(state["shuffle"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)
