"""Skipping prompts predicted to teach nothing, before they are rolled out (GRESO's temporal filter).

A GRPO group whose completions all score alike (all right or all wrong) has zero advantage everywhere: its
generation is wasted (DAPO drops such groups after paying for them). GRESO (Zheng et al. 2025, "Act Only When It
Pays", arXiv 2506.02177) observed that this is consistent over time: a prompt zero-variance in one epoch is likely
to be so again in the next. So before the rollout, a prompt whose last `z` groups were all zero-variance is kept only
with probability p ** z, and the exploration probability p adapts after every step: down when the batch's share of
zero-variance groups is above a target (skip more), up when it is below (skip less), so that no prompt is starved.
GRESO keeps one p for all-right and one for all-wrong prompts; here one p serves both (our rewards need not be
binary, so "right" and "wrong" are not defined for every reward function).

The filter also measures its own premise whether or not it skips: of the prompts it predicts zero-variance (a streak
of at least one), how many were zero-variance again (precision), and how many of all zero-variance groups it had
predicted (recall). `ZeroVarianceFilter.update` returns them as metrics.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

EXPLORE_START = 0.5  # GRESO's starting exploration probability
EXPLORE_STEP = 0.01  # change of p per step (GRESO's delta)
EXPLORE_MIN = 0.05  # a prompt with a streak of one is always kept at least this often


class ZeroVarianceFilter:
    """Per-prompt streaks of zero-variance groups, and the draw of the next batch that skips likely ones.

    Args:
        target: the share of zero-variance groups per batch the exploration probability steers toward.
        skip: draw batches with skipping (`select`); False = only track streaks and measure the prediction.
        seed: seeds each step's draws (with the step), so a resumed run draws the same prompts.
    """

    def __init__(self, target: float = 0.25, skip: bool = True, seed: int = 0):
        self.target, self.skip, self.seed = target, skip, seed
        self.explore = EXPLORE_START
        self.streak: dict[str, int] = {}  # problem id -> zero-variance groups in a row, as last seen

    def keep_probability(self, problem_id: str) -> float:
        return self.explore ** self.streak.get(problem_id, 0)

    def select(self, cursor: Any, n: int, step: int) -> tuple[list, int]:
        """The next `n` problems from `cursor` (rl.prompt_cursor.PromptCursor), each kept with its keep_probability, and
        how many were skipped. At most one pass over the dataset is skipped in one call; past that, every problem
        drawn is kept (a run whose every prompt is predicted zero-variance still trains)."""
        if not self.skip:
            return cursor.next_batch(n), 0
        rng = random.Random(self.seed * 1_000_003 + step)
        chosen, skipped = [], 0
        while len(chosen) < n:
            problem = cursor.next_batch(1)[0]
            if skipped < len(cursor.problems) and rng.random() >= self.keep_probability(problem.id):
                skipped += 1
            else:
                chosen.append(problem)
        return chosen, skipped

    def update(self, problem_ids: Sequence[str], zero_variance: Sequence[bool]) -> dict[str, float]:
        """Record one batch's groups (one problem id and one zero-variance flag per group); adapt the exploration
        probability; return the prediction's metrics for this batch."""
        seen = [pid in self.streak for pid in problem_ids]
        predicted = [self.streak.get(pid, 0) > 0 for pid in problem_ids]
        for pid, flat in zip(problem_ids, zero_variance):
            self.streak[pid] = self.streak.get(pid, 0) + 1 if flat else 0
        share = sum(zero_variance) / max(len(zero_variance), 1)
        step = -EXPLORE_STEP if share > self.target else EXPLORE_STEP
        self.explore = min(1.0, max(EXPLORE_MIN, self.explore + step))
        # precision = hits / predicted; recall = hits / zero-variance groups of prompts seen before
        return {"prompts/zero_variance_frac": share,
                "prompts/seen_before": float(sum(seen)),
                "prompts/predicted_zero_variance": float(sum(predicted)),
                "prompts/prediction_hits": float(sum(p and z for p, z in zip(predicted, zero_variance))),
                "prompts/zero_variance_seen_before": float(sum(s and z for s, z in zip(seen, zero_variance))),
                "prompts/explore_p": self.explore}

    def state_dict(self) -> dict[str, Any]:
        return {"explore": self.explore, "streak": dict(self.streak)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.explore, self.streak = float(state["explore"]), {str(k): int(v) for k, v in state["streak"].items()}
