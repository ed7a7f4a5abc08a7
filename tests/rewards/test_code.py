"""code_execution end to end: extraction, assert tests, stdin/stdout tests, real sandbox."""

from rewards.code import extract_program, run_tests
from rewards import code_execution

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
