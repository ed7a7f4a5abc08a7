"""search.methods: the one table of methods, their options and what each refuses. `check_options` (the command line's
check) and `solve` refuse the same options with the same message, before any generation."""

import dataclasses
import inspect
import re

import pytest

from search import solve
from search.context import SearchContext
from search.evaluation import ScoredRollout, StateValue, VerifiedRollout
from search.gumbel import GumbelMCTS
from search.mcts import MCTS
from search.methods import CONTEXT_OPTIONS, METHODS, build_algorithm, build_mcts, check_options, method_options
from search.path_expansion import PathMCTS
from search.task import NEEDS

REFUSED = [
    ("mcts", {"selection": "ucb"}, "unknown selection 'ucb'"),
    ("mcts", {"expansion": "leaves"}, "unknown expansion 'leaves'"),
    ("mcts", {"answer_by": "votes"}, "unknown answer selection 'votes'"),
    ("mcts", {"rollout_weight": 1.5}, r"rollout_weight must be in \[0, 1\], got 1.5"),
    ("mcts", {"rollout_weight": -0.5, "scored_rollouts": True}, r"rollout_weight must be in \[0, 1\]"),
    ("mcts", {"scored_rollouts": True, "rollout_weight": 0.5}, "scored_rollouts replaces rollout_weight"),
    ("mcts", {"expansion": "path", "rollout_weight": 1.0}, "it takes neither scored_rollouts nor rollout_weight"),
    ("mcts", {"expansion": "path", "selection": "gumbel"}, "expansion='path' runs with selection='puct'"),
    ("beam", {"answer_by": "loudest"}, "unknown answer selection 'loudest'"),
    ("dvts", {"answer_by": "loudest"}, "unknown answer selection 'loudest'"),
    ("greedy", {"n": 4}, "greedy has no option n: its options are max_depth, max_step_tokens"),
    ("self_consistency", {"answer_by": "vote"}, "self_consistency has no option answer_by"),
    ("retrieval", {}, "unknown method 'retrieval'"),
    # values of the wrong type or range: the engine would refuse them only after it started
    ("mcts", {"num_children": "abc"}, "mcts option num_children must be an integer, got 'abc'"),
    ("mcts", {"num_children": -2}, "mcts option num_children must be >= 1, got -2"),
    ("mcts", {"num_children": True}, "mcts option num_children must be an integer, got True"),
    ("mcts", {"max_tokens": "abc"}, "mcts option max_tokens must be an integer, got 'abc'"),
    ("best_of_n", {"max_step_tokens": 0}, "best_of_n option max_step_tokens must be >= 1, got 0"),
    ("mcts", {"c_init": float("nan")}, "mcts option c_init must be a finite number, got nan"),
    ("mcts", {"temperature": -1.0}, "mcts option temperature must be >= 0"),
    ("mcts", {"prune_at": "low", "expansion": "path"}, "mcts option prune_at must be a finite number or null"),
]


@pytest.mark.parametrize("method, options, message", REFUSED)
def test_check_options_and_solve_refuse_the_same_options_before_any_generation(method, options, message,
                                                                               order_of_operations):
    generator, value = order_of_operations
    with pytest.raises(ValueError, match=message):
        check_options(method, options)
    with pytest.raises(ValueError, match=message):
        solve(generator.prompt, generator, method, value_fn=value, gold="14", **options)
    assert generator.calls == []


def test_every_method_builds_from_its_defaults_and_lists_its_options():
    assert set(CONTEXT_OPTIONS) <= {f.name for f in dataclasses.fields(SearchContext)}
    for method, build in METHODS.items():
        own = set(inspect.signature(build).parameters)
        assert all(p.default is not inspect.Parameter.empty for p in inspect.signature(build).parameters.values())
        assert method_options(method) == sorted(own | set(CONTEXT_OPTIONS)), method
        assert set(build_algorithm(method, {}).requires) <= set(NEEDS), method
        assert callable(build_algorithm(method, {"temperature": 0.5, "seed": 3})), method  # the context's pass by


@pytest.mark.parametrize("options, kind, evaluation", [
    ({}, MCTS, StateValue()),
    ({"scored_rollouts": True}, MCTS, ScoredRollout()),
    ({"rollout_weight": 0.5}, MCTS, VerifiedRollout(0.5)),
    ({"selection": "gumbel", "top_k": 2}, GumbelMCTS, StateValue()),
    ({"expansion": "path", "prune_at": 0.0}, PathMCTS, StateValue()),
])
def test_mcts_options_pick_the_variant_and_how_it_values_a_node(options, kind, evaluation):
    built = build_mcts(**options)
    assert type(built) is kind
    assert {MCTS: lambda b: b.evaluation, GumbelMCTS: lambda b: b.puct.evaluation,
            PathMCTS: lambda b: b.evaluation}[kind](built) == evaluation


@pytest.mark.parametrize("method, options, needs", [
    ("beam", {}, "value_fn"), ("dvts", {}, "value_fn"), ("best_of_n", {}, "value_fn"),
    ("weighted_best_of_n", {}, "value_fn"), ("mcts", {}, "value_fn"), ("mcts", {"expansion": "path"}, "value_fn"),
    ("mcts", {"rollout_weight": 1.0}, "verifier"),
])
def test_what_a_method_needs_from_the_task_is_named_before_any_generation(method, options, needs,
                                                                         order_of_operations):
    generator, _ = order_of_operations
    with pytest.raises(ValueError, match=re.escape(f"{method} needs {NEEDS[needs]}")):
        solve(generator.prompt, generator, method, **options)
    assert generator.calls == []
    for free in ("greedy", "self_consistency"):  # these need nothing but the policy
        assert solve(generator.prompt, generator, free, budget_tokens=100).tokens.policy > 0
