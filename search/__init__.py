"""Test-time search over reasoning steps: MCTS and its baselines, at budgets counted in generated tokens.

`solve("question", model="checkpoint", method="mcts", budget_tokens=2000)` starts (once) a vLLM engine for the
checkpoint and searches; `solve(prompt, generator, method=..., budget_tokens=...)` runs on any engine that meets
`StepGenerator` (search/generator.py). The layers, from the bottom:

- `task.py`: the task apart from the search (how a step ends, how an answer is read and voted, what values and
  checks a solution): `Task`, `MathTask`.
- `tree.py`: `Node`, `backup`, the answer rules; `context.py`: `SearchContext`, the one caller of the engine and
  the reward models, counting every token.
- `evaluation.py`, `mcts.py`, `gumbel.py`, `path_expansion.py`, `baselines.py`: the algorithms.
- `methods.py`: `METHODS`, the one table of methods and their options; `api.py`: `solve`, `solve_many`.
"""

from search.api import METHODS, SearchResult, check_options, method_options, solve, solve_many, verifier_for
from search.baselines import DVTS, BeamSearch, BestOfN, Greedy, SelfConsistency, WeightedBestOfN
from search.context import SearchContext
from search.generator import STEP_DELIMITER, Continuation, StepGenerator, TokenCounter, split_steps
from search.gumbel import GumbelMCTS
from search.mcts import MCTS, puct_score
from search.path_expansion import PathMCTS
from search.task import MathTask, Task
from search.tree import Node, Outcome, choose_answer, tree_to_dict

__all__ = ["METHODS", "SearchResult", "check_options", "method_options", "solve", "solve_many", "verifier_for",
           "Task", "MathTask", "Node", "Outcome", "SearchContext", "choose_answer", "tree_to_dict", "MCTS",
           "GumbelMCTS", "PathMCTS", "puct_score", "Greedy", "SelfConsistency", "BestOfN", "WeightedBestOfN",
           "BeamSearch", "DVTS", "STEP_DELIMITER", "Continuation", "StepGenerator", "TokenCounter", "split_steps"]
