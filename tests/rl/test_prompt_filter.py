"""GRESO's temporal filter (rl.prompt_filter): streaks, the skipping draw, the adaptive exploration probability."""

import pytest

from problems import Problem
from rl.prompt_cursor import PromptCursor
from rl.prompt_filter import EXPLORE_MIN, EXPLORE_START, EXPLORE_STEP, ZeroVarianceFilter


def problems(n):
    return [Problem(id=f"p{i}", question=f"q{i}", answer=str(i), solution=None, source="synthetic", level=1)
            for i in range(n)]


def test_prompts_never_seen_are_all_kept_so_the_first_epoch_is_the_cursors_own_order():
    data = problems(20)
    plain, filtered = PromptCursor(data, seed=3), PromptCursor(data, seed=3)
    chosen, skipped = ZeroVarianceFilter(seed=0).select(filtered, 8, step=0)
    assert skipped == 0 and chosen == plain.next_batch(8)


def test_a_prompt_is_kept_with_probability_explore_to_the_power_of_its_streak():
    data = problems(100)
    gate = ZeroVarianceFilter(seed=0)
    gate.streak = {p.id: (1 if i < 50 else 2) for i, p in enumerate(data)}  # p = 0.5: kept 1/2 and 1/4 of the time
    kept = {1: 0, 2: 0}
    offered = {1: 0, 2: 0}
    cursor = PromptCursor(data, seed=0)
    for step in range(200):
        before = cursor.state_dict()
        chosen, skipped = gate.select(cursor, 10, step)
        drawn = PromptCursor(data, seed=0)
        drawn.load_state_dict(before)
        for p in drawn.next_batch(len(chosen) + skipped):  # every problem the draw looked at, kept or not
            offered[gate.streak[p.id]] += 1
        for p in chosen:
            kept[gate.streak[p.id]] += 1
    # about 2000 offers of each kind: a binomial's standard error is about 0.011, the margins are 4 of them
    assert kept[1] / offered[1] == pytest.approx(0.5, abs=0.045)
    assert kept[2] / offered[2] == pytest.approx(0.25, abs=0.04)


def test_with_every_prompt_predicted_zero_variance_a_draw_still_ends_after_one_pass():
    data = problems(30)
    gate = ZeroVarianceFilter(seed=0)
    gate.streak = {p.id: 50 for p in data}
    gate.explore = EXPLORE_MIN
    chosen, skipped = gate.select(PromptCursor(data), 8, step=0)
    assert len(chosen) == 8 and skipped == len(data)


def test_without_skipping_the_draw_is_the_cursors_and_streaks_are_still_measured():
    data = problems(10)
    gate = ZeroVarianceFilter(skip=False)
    gate.streak = {p.id: 3 for p in data}
    chosen, skipped = gate.select(PromptCursor(data, seed=1), 5, step=0)
    assert skipped == 0 and chosen == PromptCursor(data, seed=1).next_batch(5)


def test_streaks_count_zero_variance_groups_in_a_row_and_the_metrics_score_the_prediction():
    gate = ZeroVarianceFilter(target=0.25)
    first = gate.update(["a", "b", "c", "d"], [True, True, False, False])
    assert first["prompts/predicted_zero_variance"] == 0 and first["prompts/seen_before"] == 0
    assert gate.streak == {"a": 1, "b": 1, "c": 0, "d": 0}
    # a and b were predicted: a is zero-variance again (a hit), b is not; c was not predicted and is (a miss)
    second = gate.update(["a", "b", "c", "e"], [True, False, True, True])
    assert gate.streak == {"a": 2, "b": 0, "c": 1, "d": 0, "e": 1}
    assert second["prompts/seen_before"] == 3
    assert second["prompts/predicted_zero_variance"] == 2 and second["prompts/prediction_hits"] == 1
    assert second["prompts/zero_variance_seen_before"] == 2  # a and c: recall 1/2
    assert second["prompts/zero_variance_frac"] == 0.75


def test_exploration_falls_while_the_zero_variance_share_is_above_target_and_rises_below_within_bounds():
    gate = ZeroVarianceFilter(target=0.25)
    gate.update(["a", "b"], [True, False])  # share 0.5 > 0.25: skip more
    assert gate.explore == pytest.approx(EXPLORE_START - EXPLORE_STEP)
    gate.update(["a", "b", "c", "d", "e"], [True, False, False, False, False])  # 0.2 < 0.25: skip less
    assert gate.explore == pytest.approx(EXPLORE_START)
    for _ in range(200):
        gate.update(["a"], [True])
    assert gate.explore == EXPLORE_MIN
    for _ in range(200):
        gate.update(["a"], [False])
    assert gate.explore == 1.0


def test_a_filter_restored_from_its_state_draws_what_the_original_draws():
    data = problems(40)
    gate, cursor = ZeroVarianceFilter(seed=5), PromptCursor(data, seed=2)
    for step in range(6):
        chosen, _ = gate.select(cursor, 8, step)
        gate.update([p.id for p in chosen], [int(p.id[1:]) % 3 == 0 for p in chosen])
    twin, twin_cursor = ZeroVarianceFilter(seed=5), PromptCursor(data, seed=2)
    twin.load_state_dict(gate.state_dict())
    twin_cursor.load_state_dict(cursor.state_dict())
    assert twin.select(twin_cursor, 8, step=6) == gate.select(cursor, 8, step=6)
