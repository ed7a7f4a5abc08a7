"""search.tree: backup, the answer rules, and steps split at the delimiter."""

import pytest

from search.generator import split_steps
from search.task import MathTask
from search.tree import Node, backup, choose_answer, values_tied


def test_backup_adds_a_visit_and_the_value_along_the_path():
    root = Node()
    a = Node(step="a", parent=root)
    b = Node(step="b", parent=a)
    root.children, a.children = [a], [b]
    backup(b, 0.5)
    backup(a, 1.0)
    assert (b.visits, b.value_sum) == (1, 0.5)
    assert (a.visits, a.value_sum, a.value) == (2, 1.5, 0.75)
    assert (root.visits, root.value_sum) == (2, 1.5)
    assert not a.exhausted  # b is not terminal
    b.terminal = True
    backup(b, 0.5)
    assert b.exhausted and not a.exhausted  # a may still be widened: sampled again for steps it does not have
    a.saturated = root.saturated = True
    backup(b, 0.5)
    assert b.exhausted and a.exhausted and root.exhausted


def test_answer_selection_by_value_visits_and_vote():
    root = Node()
    spec = [("7", 0.9, 1), ("9", 0.6, 3), ("9.0", 0.5, 2), ("11", 0.1, 0)]  # "9.0" votes with "9"; "11" unvisited
    for answer, value, visits in spec:
        root.children.append(Node(parent=root, terminal=True, answer=answer, visits=visits, value_sum=value * visits))
    vote_key = MathTask().vote_key
    assert choose_answer(root.nodes(), "value", vote_key).answer == "7"
    assert choose_answer(root.nodes(), "visits", vote_key).answer == "9"
    assert choose_answer(root.nodes(), "vote", vote_key).answer == "9"  # .6 + .5 beats .9
    with pytest.raises(ValueError):
        choose_answer(root.nodes(), "loudest", vote_key)


def test_steps_split_at_the_delimiter_and_join_back():
    text = "First.\nSecond.\nThe answer is \\boxed{3}."
    assert split_steps(text) == ["First.\n", "Second.\n", "The answer is \\boxed{3}."]
    assert "".join(split_steps(text)) == text and split_steps("") == []
    assert split_steps("a; b; c", "; ") == ["a; ", "b; ", "c"]  # another task's delimiter


def _solution(root: Node, steps: list[tuple[str, float]], answer: str, visits: int, value: float) -> Node:
    node = root
    for text, logprob in steps:
        child = Node(text, logprob=logprob, parent=node)
        node.children.append(child)
        node = child
    node.terminal, node.answer, node.visits, node.value_sum = True, answer, visits, value * visits
    return node


@pytest.mark.parametrize("how", ["value", "visits", "vote"])
def test_values_that_do_not_discriminate_fall_to_visits_then_the_solutions_probability(how):
    """Every candidate valued 0 (a checker with nothing to check): the answer is never simply the first candidate,
    which once was the path of prior 7e-5."""
    root = Node()
    _solution(root, [("a", -9.6)], "1", visits=1, value=0.0)            # improbable, first in the tree
    likely = _solution(root, [("b", -0.1)], "2", visits=1, value=0.0)
    visited = _solution(root, [("c", -3.0)], "3", visits=3, value=0.0)
    assert values_tied(root.nodes())
    assert choose_answer(root.nodes(), how, MathTask().vote_key) is visited
    visited.visits = 1
    assert choose_answer(root.nodes(), how, MathTask().vote_key) is likely
    likely.value_sum = 0.5
    assert not values_tied(root.nodes()) and choose_answer(root.nodes(), how, MathTask().vote_key) is likely
