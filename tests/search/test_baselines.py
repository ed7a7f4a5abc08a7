"""search.baselines: greedy, self-consistency, best-of-N, weighted best-of-N, beam search with a PRM and DVTS."""

from collections import Counter

import pytest

from search.baselines import DVTS, BeamSearch, BestOfN, Greedy, SelfConsistency, WeightedBestOfN
from search.task import MathTask

# The single most probable solution answers 7; three less probable phrasings answer 9 (written "9" or "9.0").
MAJORITY = {
    (): [("Seven it is.", 0.28), ("Nine, one way.", 0.24), ("Nine, another way.", 0.24), ("Nine, a third way.", 0.24)],
    ("Seven it is.",): [("The answer is \\boxed{7}.", 1.0)],
    ("Nine, one way.",): [("The answer is \\boxed{9}.", 1.0)],
    ("Nine, another way.",): [("The answer is \\boxed{9.0}.", 1.0)],
    ("Nine, a third way.",): [("The answer is \\boxed{9}.", 1.0)],
}
# An outcome reward model that likes 7 best, but not by as much as 9 outnumbers it.
ORM_SCORES = {"7": 0.5, "9": 0.45, "9.0": 0.45}

FOUR_WAYS = {
    (): [(f"Way {w}.", p) for w, p in zip("ABCD", (0.1, 0.2, 0.3, 0.4))],
    **{(f"Way {w}.",): [(f"Check {w}.", 1.0)] for w in "ABCD"},
    **{(f"Way {w}.", f"Check {w}."): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABCD"},
}
PRM_SCORES = {"A": 0.9, "B": 0.2, "C": 0.8, "D": 0.1}  # by the way a partial solution took


def orm(problem, steps):
    return ORM_SCORES[steps[-1].split("{")[1].split("}")[0]]


def prm(problem, steps):
    return PRM_SCORES[steps[0][len("Way ")]]


answer_key = MathTask().vote_key


def answers(root):
    return Counter(answer_key(c.answer) for c in root.children)


def test_greedy_takes_the_most_probable_solution(fake, context):
    ctx = context(fake(MAJORITY))
    root, chosen, _ = Greedy()(ctx)
    assert chosen.answer == "7" and len(root.children) == 1
    assert chosen.text() == "Seven it is.\nThe answer is \\boxed{7}."


def test_self_consistency_picks_the_majority_answer(fake, context):
    generator = fake(MAJORITY)
    root, chosen, share = SelfConsistency(n=16, batch=4)(context(generator, budget_tokens=10_000))
    votes = answers(root)
    assert len(root.children) == 16 and [c["k"] for c in generator.calls] == [4, 4, 4, 4]
    assert votes.most_common(1)[0][0] == "9" and votes["9"] > votes["7"]  # "9" and "9.0" vote together
    assert answer_key(chosen.answer) == "9" and share == votes["9"] / 16


def test_best_of_n_picks_the_solution_the_orm_scores_highest(fake, context):
    root, chosen, value = BestOfN(n=16)(context(fake(MAJORITY), value_fn=orm, budget_tokens=10_000))
    assert chosen.answer == "7" and value == 0.5
    assert all(c.score == ORM_SCORES[c.answer] and c.visits == 1 for c in root.children)


def test_weighted_best_of_n_sums_orm_scores_per_answer(fake, context):
    root, chosen, _ = WeightedBestOfN(n=16)(context(fake(MAJORITY), value_fn=orm, budget_tokens=10_000))
    totals = Counter()
    for c in root.children:
        totals[answer_key(c.answer)] += ORM_SCORES[c.answer]
    assert totals["9"] > totals["7"] and answer_key(chosen.answer) == "9"


def test_beam_search_keeps_the_top_b_partial_solutions_by_prm(fake, context):
    ctx = context(fake(FOUR_WAYS), value_fn=prm, budget_tokens=10_000)
    root, chosen, value = BeamSearch(beam_width=2, num_children=4)(ctx)
    expanded = sorted(c.step for c in root.children if c.children)
    assert expanded == ["Way A.\n", "Way C.\n"]  # the PRM's top 2 of 4, not the prior's (D, C)
    assert chosen.answer == "A" and value == 0.9
    assert ctx.counter.reward_calls == 4 + 2 + 2  # every candidate scored once


def test_dvts_grows_one_beam_per_first_step_and_votes(fake, context):
    ctx = context(fake(FOUR_WAYS), value_fn=prm, budget_tokens=10_000)
    root, chosen, _ = DVTS(num_subtrees=4, num_children=2)(ctx)
    finished = [n for n in root.nodes() if n.terminal]
    assert sorted(n.answer for n in finished) == ["A", "B", "C", "D"]
    assert chosen.answer == "A"


INFINITE = dict(table={}, default=[("Keep going.", 0.5), ("Try again.", 0.5)])


@pytest.mark.parametrize("method, options", [
    (SelfConsistency, {}), (BestOfN, {}), (BeamSearch, {"beam_width": 2}), (DVTS, {"num_subtrees": 2}),
])
def test_no_call_starts_once_the_budget_is_spent(method, options, fake, context):
    generator = fake(**INFINITE)
    ctx = context(generator, value_fn=lambda p, s: 0.5, budget_tokens=300, max_tokens=100)
    method(**options)(ctx)
    calls = generator.calls
    if method in (BeamSearch, DVTS):  # no solution finished: one greedy call past the budget answers (context.py)
        assert calls[-1]["k"] == 1
        calls = calls[:-1]
    per_call = [c["generated"] for c in calls]
    assert sum(per_call[:-1]) < 300 <= sum(per_call)
    assert ctx.counter.policy == generator.generated
