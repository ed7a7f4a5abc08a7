"""Test-time search over reasoning steps: MCTS and its baselines, at budgets counted in generated tokens.

`solve(problem, generator, method=..., budget_tokens=...)` runs one method on one problem with any engine that meets
`StepGenerator` (search/generator.py). Methods: "mcts" (PUCT or Gumbel sequential halving), "greedy",
"self_consistency", "best_of_n", "weighted_best_of_n", "beam" (with a PRM) and "dvts".
"""

from search.api import METHODS, SearchResult, solve, solve_many, tree_from_dict, tree_to_dict, verifier_for
from search.generator import STEP_DELIMITER, Continuation, StepGenerator, TokenCounter, split_steps
from search.tree import MCTS, Node, SearchContext, choose_answer, is_terminal, puct_score

__all__ = ["METHODS", "SearchResult", "solve", "solve_many", "tree_from_dict", "tree_to_dict", "verifier_for", "STEP_DELIMITER",
           "Continuation", "StepGenerator", "TokenCounter", "split_steps", "MCTS", "Node", "SearchContext",
           "choose_answer", "is_terminal", "puct_score"]
