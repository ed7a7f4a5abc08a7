"""Problems: what a task is, where problems come from, and how a problem becomes a prompt.

- `problem.py`: the `Problem` type (math and code), drawing distinct problems, the held-out split, the
  `datasets.Dataset` export for TRL.
- `synthetic_math.py`, `synthetic_code.py`, `synthetic_tools.py`: the seeded generators the tiny policy learns on
  (and gold step labels; the tool task's reference solutions call the Python tool or not).
- `math_benchmarks.py` (GSM8K, MATH, AIME), `code_benchmarks.py` (HumanEval, MBPP), `custom.py` (a user's JSON
  Lines file), `hub.py` (the hub when it answers, else the copies in data/).
- `sources.py`: `DATA_SOURCES`, the one table of problem sets and their splits; `load_split`, `load_problems`.
- `prompts.py`: `build_prompt` (chat template or plain) and few-shot examples.

It imports `rewards` (to read a reference solution's boxed answer) and `model` (ConfigError); evals, search and rl
import it.
"""

from problems.code_benchmarks import code_question, load_humaneval, load_mbpp, mbpp_problem
from problems.custom import jsonl_rows, load_custom
from problems.math_benchmarks import gsm8k_answer, load_aime, load_gsm8k, load_math500, load_math_train
from problems.problem import Problem, distinct_problems, held_out_first, to_hf_dataset
from problems.prompts import FEW_SHOT_MATH, build_prompt, few_shot_examples, gsm8k_solution_as_boxed
from problems.sources import (ALIASES, DATA_SOURCES, DATASET_NAMES, SYNTHETIC_EVAL_SIZE, TEST_DATASETS,
                              TRAIN_DATASETS, DataSource, data_source, load_problems, load_split, split_error)
from problems.synthetic_code import split_synthetic_code, synthetic_code_problem, synthetic_code_problems
from problems.synthetic_math import (reference_step_correct, split_synthetic, synthetic_problem,
                                     synthetic_problems)
from problems.synthetic_tools import split_synthetic_tools, synthetic_tool_problem, synthetic_tool_problems

__all__ = ["ALIASES", "DATASET_NAMES", "DATA_SOURCES", "FEW_SHOT_MATH", "SYNTHETIC_EVAL_SIZE", "TEST_DATASETS",
           "TRAIN_DATASETS", "DataSource", "Problem", "build_prompt", "code_question", "data_source",
           "distinct_problems", "few_shot_examples", "gsm8k_answer", "gsm8k_solution_as_boxed", "held_out_first",
           "jsonl_rows", "load_aime", "load_custom", "load_gsm8k", "load_humaneval", "load_math500",
           "load_math_train", "load_mbpp", "load_problems", "load_split", "mbpp_problem", "reference_step_correct",
           "split_error", "split_synthetic", "split_synthetic_code", "split_synthetic_tools",
           "synthetic_code_problem", "synthetic_code_problems", "synthetic_problem", "synthetic_problems",
           "synthetic_tool_problem", "synthetic_tool_problems", "to_hf_dataset"]
