"""Deprecated alias, kept for one release: code problems moved to `problems.synthetic_code` and
`problems.code_benchmarks` (`from problems import synthetic_code_problems, load_humaneval`)."""

from problems.code_benchmarks import code_question, load_humaneval, load_mbpp, mbpp_problem  # noqa: F401
from problems.synthetic_code import (ENTRY_POINT, split_synthetic_code, synthetic_code_problem,  # noqa: F401
                                     synthetic_code_problems)
