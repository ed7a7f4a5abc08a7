"""rl.prompt_cursor: the resumable, epoch-shuffling prompt order."""

from __future__ import annotations

import json

import pytest

from problems import synthetic_problems
from rl.prompt_cursor import PromptCursor


def test_cursor_covers_each_epoch_and_reshuffles():
    problems = synthetic_problems(10, seed=0, levels=[1])
    cursor = PromptCursor(problems, seed=3)
    epoch0 = cursor.next_batch(10)
    epoch1 = cursor.next_batch(10)
    assert sorted(p.id for p in epoch0) == sorted(p.id for p in problems) == sorted(p.id for p in epoch1)
    assert [p.id for p in epoch0] != [p.id for p in epoch1]
    assert cursor.epoch == 1
    unshuffled = PromptCursor(problems, shuffle=False).next_batch(12)
    assert [p.id for p in unshuffled] == [p.id for p in problems] + [p.id for p in problems[:2]]


def test_cursor_resumes_exactly():
    problems = synthetic_problems(7, seed=0, levels=[1, 2])
    original = PromptCursor(problems, seed=11)
    for _ in range(3):
        original.next_batch(3)  # 9 problems: one batch crossed an epoch boundary
    state = json.loads(json.dumps(original.state_dict()))  # what a checkpoint stores
    resumed = PromptCursor(problems, seed=0)
    resumed.load_state_dict(state)
    for _ in range(5):
        assert resumed.next_batch(4) == original.next_batch(4)
    with pytest.raises(ValueError, match="7 problems"):
        PromptCursor(problems[:5]).load_state_dict(state)
