"""code_execution end to end: extraction, assert tests, stdin/stdout tests, real sandbox."""

import pytest

from rewards.code import extract_program, run_tests
from rewards import RewardCallError, code_execution

GOOD = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
IO = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"


def test_extract_last_python_block():
    assert extract_program("```python\nx=1\n```\ntext\n```python\nx=2\n```") == "x=2\n"
    assert extract_program("print(1)") == "print(1)"


def test_assert_tests_fraction():
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 5\nassert add(0, 0) == 0"
    assert run_tests(extract_program(GOOD), tests)["passed"] == 2
    assert code_execution([GOOD], tests=[tests]) == [2 / 3]


def test_stdin_stdout_tests_and_formats():
    pairs = {"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "11\n"]}
    assert code_execution([IO], tests=[pairs]) == [0.5]
    as_list = [{"input": "1 2", "output": "3"}]
    assert code_execution([[{"role": "assistant", "content": IO}]], tests=[as_list]) == [1.0]


def test_no_tests_is_not_applicable_and_logs():
    logged = {}
    assert code_execution([GOOD, GOOD], tests=[None, "assert add(1,1)==2"], log_extra=logged.__setitem__) == [None, 1.0]
    assert logged["code_reason"] == ["no-tests", ""]


def test_faked_marker_does_not_pass():
    cheat = "print('PASS 0')\nimport sys\nsys.exit(0)"
    assert code_execution([cheat], tests=["assert False"]) == [0.0]


def test_mismatched_inputs_and_outputs_score_zero_with_a_reason():
    logged = {}
    pairs = {"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n"]}  # used to score 1.0: zip dropped the second input
    assert code_execution([IO], tests=[pairs], log_extra=logged.__setitem__) == [0.0]
    assert logged["code_reason"] == ["tests: 2 inputs but 1 outputs"]


@pytest.mark.parametrize(("tests", "reason"), [
    ({"inputs": ["1 2\n"]}, "tests: outputs is not a list"),
    ([{"input": "1 2"}], "tests: pair 0 has no output"),  # a missing output used to be "", which prints nothing
    ([{"input": "1 2", "output": None}], "tests: an output is None"),
    ({"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}, "tests: call-based tests (fn_name) are not supported"),
    (["assert add(1, 2) == 3", None], "tests: item 1 is None"),
    (42, "tests: a value of type int is no test spec"),
    ([{"input": {"a": 1}, "output": "3"}], "tests: an input is of type dict"),
])
def test_malformed_tests_score_zero_with_a_reason(tests, reason):
    assert run_tests("print(3)", tests) == {"passed": 0, "total": 0, "reason": reason}
    assert code_execution([GOOD], tests=[tests]) == [0.0]


@pytest.mark.parametrize("tests", [[], {"inputs": [], "outputs": []}, "", "import math\ndef helper():\n    pass"])
def test_no_tests_never_pay(tests):
    logged = {}
    assert code_execution(["print(1)"], tests=[tests], log_extra=logged.__setitem__) == [None]
    assert logged["code_reason"][0].startswith("no-tests")


def test_setup_statements_are_not_tests():
    # imports and definitions used to count as passed tests: half marks for a program that defines nothing
    assert code_execution(["print('hi')"], tests=["import math\nassert add(1, 2) == 3"]) == [0.0]
    assert run_tests(extract_program(GOOD), "import math\nassert add(1, 2) == 3")["total"] == 1
    # HumanEval style: a checker defined, then called; defining it alone checks nothing
    humaneval = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n"
    assert code_execution([GOOD, "def add(a, b):\n    return 0"], tests=[humaneval + "check(add)\n"] * 2) == [1.0, 0.0]
    assert code_execution(["def add(a, b):\n    return 0"], tests=[humaneval]) == [None]
    loop = "for a, b in [(1, 2), (3, 4)]:\n    assert add(a, b) == a + b"
    assert code_execution([GOOD, "add = max"], tests=[loop] * 2) == [1.0, 0.0]


def test_a_completion_without_text_scores_zero_with_a_reason():
    logged = {}
    scores = code_execution([None, 7, GOOD], tests=["assert add(1, 2) == 3", "assert add(1, 2) == 3", None],
                            log_extra=logged.__setitem__)
    assert scores == [0.0, 0.0, None]
    assert logged["code_reason"] == ["bad-input: NoneType", "bad-input: int", "no-tests"]


def test_a_malformed_call_is_a_reward_call_error():
    with pytest.raises(RewardCallError, match="^code_execution: completions is None"):
        code_execution(None, tests=["assert True"])
    with pytest.raises(RewardCallError, match="completions is a str.*wrap a single completion in a list"):
        code_execution(GOOD, tests=["assert add(1, 2) == 3"])
    with pytest.raises(RewardCallError, match="column 'tests' is a str"):
        code_execution([GOOD], tests="assert add(1, 2) == 3")  # used to be read as one test per character
    with pytest.raises(RewardCallError, match="2 completions but 1 value in column 'tests'"):
        code_execution([GOOD, GOOD], tests=["assert add(1, 2) == 3"])


def test_all_or_nothing_variant_pays_only_a_full_pass():
    from rewards.code import CodeExecution

    tests = "assert f(1) == 2\nassert f(2) == 3\nassert f(3) == 5"
    half = "```python\ndef f(x):\n    return x + 1\n```"  # passes 2 of 3
    full = "```python\ndef f(x):\n    return {1: 2, 2: 3, 3: 5}[x]\n```"
    assert code_execution([half, full], tests=[tests, tests]) == [pytest.approx(2 / 3), 1.0]
    pass_all = CodeExecution(partial_credit=False)
    assert pass_all([half, full, "no code"], tests=[tests, tests, tests]) == [0.0, 1.0, 0.0]
    assert pass_all([half], tests=[None]) == [None] and pass_all.__name__ == "code_pass_all"
