"""search.task: the math task's rules (when a step ends a solution, its answer, what votes compare, the verifier from a
gold answer), what an algorithm needs from a task, and a task of another shape driving the same algorithms."""

from dataclasses import dataclass

import pytest

from search import solve
from search.task import MathTask, require, verifier_for


@pytest.mark.parametrize("step, stop_reason, terminal", [
    ("The answer is \\boxed{14}.\n", "step", True),
    ("Then 2+12=14.\n", "step", False),
    ("Then 2+12=14.", "eos", True),
    ("Then 2+12=1", "length", True),
    ("An empty box \\boxed{} is no answer.\n", "step", False),
])
def test_terminal_detection(step, stop_reason, terminal):
    assert MathTask().is_terminal(step, stop_reason) is terminal


def test_the_math_answer_is_the_last_box_and_votes_compare_values():
    task = MathTask()
    assert task.answer("First \\boxed{3}, then \\boxed{14}.") == "14"
    assert task.answer("No box here.") is None and task.answer("An empty \\boxed{}.") is None
    assert task.vote_key("9.0") == task.vote_key("9") != task.vote_key("7")


def test_the_verifier_from_a_gold_answer_grades_the_solution():
    verify = verifier_for("14")
    assert verify("Multiply first.\nThe answer is \\boxed{14}.")
    assert not verify("Add first.\nThe answer is \\boxed{20}.")


def test_require_names_what_the_task_lacks():
    require(MathTask(value_fn=lambda p, s: 0.5), ["value_fn"], "beam")
    with pytest.raises(ValueError, match="beam needs a value_fn"):
        require(MathTask(), ["value_fn"], "beam")
    with pytest.raises(ValueError, match="mcts needs a verifier"):
        require(MathTask(value_fn=lambda p, s: 0.5), ["value_fn", "verifier"], "mcts")


@dataclass(frozen=True)
class FinalLineTask:
    """A task of another shape: a solution ends at a line "Final: X", numbers may be written as words."""

    value_fn: object = None
    verifier: object = None
    step_end: str = "\n"

    def is_terminal(self, step, stop_reason):
        return stop_reason != "step" or step.startswith("Final:")

    def answer(self, solution):
        return solution.rsplit("Final: ", 1)[1].split("\n")[0] if "Final: " in solution else None

    def vote_key(self, answer):
        return {"fourteen": "14"}.get(answer, answer)


# The policy writes its answer on a "Final:" line and then keeps talking.
FINAL_LINES = {
    (): [("Think.", 1.0)],
    ("Think.",): [("Final: fourteen", 0.5), ("Final: 14", 0.5)],
    **{("Think.", f"Final: {a}"): [("More words.", 1.0)] for a in ("fourteen", "14")},
}


def test_the_algorithms_read_steps_answers_and_votes_from_the_task(fake):
    generator = fake(FINAL_LINES)
    voted = solve(generator.prompt, generator, "self_consistency", task=FinalLineTask(), n=4)
    assert voted.answer in ("fourteen", "14") and voted.value == 1.0  # the task's vote key: one answer, all votes
    assert solve(generator.prompt, generator, "self_consistency", n=4).answer is None  # no \boxed{}: no math answer
    searched = solve(generator.prompt, generator, "mcts", task=FinalLineTask(value_fn=lambda p, s: 0.5),
                     num_children=2)
    finals = [n for n in searched.tree.nodes() if n.step.startswith("Final:")]
    assert finals and all(n.terminal and not n.children for n in finals)  # the task said where a solution ends
    assert searched.answer in ("fourteen", "14") and searched.steps[-1].startswith("Final:")
    with pytest.raises(ValueError, match="task, or its value_fn"):
        solve(generator.prompt, generator, "greedy", task=FinalLineTask(), gold="14")
