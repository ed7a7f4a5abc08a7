"""`solve`: one problem, one search method, a token budget -> the answer, its path, the tokens spent and the tree.

    result = search.solve("Tom has 5 apples. He buys 3 more. How many now?", model="runs/demo/checkpoints/step_110",
                          method="mcts", budget_tokens=2000)

Every method runs through a `SearchContext` (search/context.py), so the same counter measures all of them; the
methods and their options are search/methods.py's table. The tree exports to JSON (each node: step, prior, visits,
value, verdict; the chosen path marked) and to a page for a browser (search/html.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from problems import Problem, build_prompt
from rewards.tools import check_tools
from search.batching import map_concurrently
from search.context import SearchContext
from search.generator import StepGenerator, TokenCounter, split_steps
from search.html import tree_html
from search.methods import CONTEXT_OPTIONS, METHODS, build_algorithm, check_options, method_options
from search.reward_models import step_checker_value
from search.task import MathTask, Task, ValueFn, Verifier, require, verifier_for
from search.tools import ToolStepGenerator
from search.tree import Node, tree_to_dict, values_tied
from search.vllm_generator import load_generator

__all__ = ["METHODS", "SearchResult", "solve", "method_options", "check_options", "solve_many", "verifier_for",
           "tree_to_dict"]


@dataclass
class SearchResult:
    method: str
    answer: str | None  # the chosen solution's answer (math: its last \boxed{}); None when no solution was finished
    steps: list[str]  # the chosen solution, step by step
    value: float | None  # the chosen solution's value (MCTS, reward models) or vote share (self-consistency)
    correct: bool | None  # the verifier's verdict on the chosen solution, where a verifier or gold was given
    tokens: TokenCounter
    tree: Node
    chosen: Node | None
    values_tied: bool = False  # every candidate solution had the same value: the tie-breaks chose (search.tree)
    policy_text: str = ""  # the chosen solution as the policy wrote it: the steps less the tools' outputs
    tool_calls: int = 0  # the tool calls in the chosen solution

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "tree": tree_to_dict(self.tree, self.chosen)}

    def summary(self) -> dict[str, Any]:
        """What a batch of searches reports back (no tree: trees can be large): answer, steps (with the tools'
        outputs), policy_text (without them: what is graded), its tool calls, value, verdict, tokens, and whether
        the values told the candidates apart."""
        return {"method": self.method, "answer": self.answer, "steps": self.steps, "policy_text": self.policy_text,
                "tool_calls": self.tool_calls,
                "value": self.value, "correct": self.correct, "tokens": self.tokens.to_dict(),
                "values_tied": self.values_tied}

    def to_json(self, **dumps_kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **dumps_kwargs)

    def to_html(self, title: str = "search tree") -> str:
        """A self-contained page to open in a browser (search/html.py): every node, the chosen path marked."""
        return tree_html(self.to_dict(), title)


def solve(problem: str | Sequence[int], generator: StepGenerator | None = None, method: str = "mcts", *,
          model: str | Path | None = None, budget_tokens: int = 4096, value_fn: ValueFn | None = None,
          verifier: Verifier | None = None, gold: object = None, task: Task | None = None,
          progress: Callable[[int], None] | None = None, speculative_tokens: int = 0, tools: Sequence[str] = (),
          tool_timeout_s: float = 5.0, max_observation_tokens: int = 64, **options: Any) -> SearchResult:
    """Search for the answer to one problem.

    Give the engine as `generator`, or a checkpoint folder as `model`: its vLLM engine and tokenizer are then started
    on the first call and reused by later ones (`search.vllm_generator.load_generator`), the question is put in the
    chat template, and a node is valued as `reasonrl solve` values it (`default_evaluation`).

    Args:
        problem: with `generator`, the prompt as text (chat template already applied) or as token ids; with `model`,
            the question as text (or the prompt's token ids).
        generator: the policy engine (search.generator.StepGenerator).
        method: a key of METHODS.
        model: a checkpoint folder, instead of `generator`.
        budget_tokens: policy tokens to spend; no generator call starts once they are spent, so the last call may
            pass the budget by up to one call's tokens (`result.tokens.policy` is what was spent).
        value_fn: (problem, steps) -> [0, 1]: the PRM / ORM / value model.
        verifier: solution text -> correct; built from `gold` when only that is given. MCTS uses it in search only
            with `rollout_weight > 0`; otherwise it only grades the result.
        gold: the gold answer.
        task: the task (search.task.Task) instead of value_fn, verifier and gold (default: a MathTask of them).
        progress: called with the policy tokens spent after every engine call (a progress bar for a long search).
        speculative_tokens: with `model`, tokens its MTP layers draft a step in the engine (0 = none).
        tools: tools the policy may call as it writes (["python"]; search/tools.py): a step that closes a call
            carries the call's output (at most `max_observation_tokens`, `tool_timeout_s` a call), whose tokens are
            prefill, not policy tokens. The generator must have a tokenizer (a VllmStepGenerator, or `model`).
        options: SearchContext's (temperature, step_temperature, max_step_tokens, max_tokens, max_depth, seed) and
            the method's (`method_options(method)`).

    Returns:
        The answer, the chosen solution's steps, its value and verdict, the tokens spent and the tree.

    Raises:
        ValueError: a budget < 1, an unknown method or option, a value or combination the method refuses, or a value
            function or verifier it needs and lacks; all before any generation.
    """
    if (generator is None) == (model is None):
        raise ValueError("solve needs the engine: give a generator or a model (a checkpoint folder), not both")
    if speculative_tokens and model is None:
        raise ValueError("speculative_tokens sets up the engine of a model folder; a generator's engine has its own")
    if tools:
        check_tools(tools, "tools")
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise ValueError(f"budget_tokens must be an integer >= 1 (policy tokens to spend), got {budget_tokens!r}")
    if task is not None and (value_fn, verifier, gold) != (None, None, None):
        raise ValueError("give the task, or its value_fn, verifier and gold, not both")
    if model is not None and task is None and value_fn is None:
        value_fn, options = default_evaluation(method, options, gold)
    algorithm = build_algorithm(method, options)
    if task is None:
        task = MathTask(value_fn, verifier if verifier is not None or gold is None else verifier_for(gold))
    require(task, algorithm.requires, method)
    if model is not None:
        generator = load_generator(model, speculative_tokens)
        if isinstance(problem, str):
            question = Problem("solve", problem, "" if gold is None else str(gold), None, "solve", None)
            problem = build_prompt(question, generator.tokenizer)
    prompt_ids = generator.encode(problem) if isinstance(problem, str) else list(problem)
    text = problem if isinstance(problem, str) else generator.decode(prompt_ids)
    if tools:
        generator = ToolStepGenerator(generator, tools, tool_timeout_s, max_observation_tokens)
    ctx = SearchContext(generator, prompt_ids, text, task=task, budget_tokens=budget_tokens, progress=progress,
                        **{name: value for name, value in options.items() if name in CONTEXT_OPTIONS})
    try:
        tree, chosen, value = algorithm(ctx)
    finally:
        if tools:
            generator.shutdown()
    solution = chosen.text() if chosen else ""  # shown with the tools' outputs; graded without them
    return SearchResult(method=method, answer=chosen.answer if chosen else None,
                        steps=split_steps(solution, task.step_end), value=value,
                        correct=bool(task.verifier(chosen.policy_text())) if task.verifier and chosen else None,
                        policy_text=chosen.policy_text() if chosen else "",
                        tool_calls=sum(n.tool_calls for n in chosen.path()) if chosen else 0,
                        tokens=ctx.counter, tree=tree, chosen=chosen, values_tied=values_tied(tree.nodes()))


def default_evaluation(method: str, options: dict[str, Any], gold: object) -> tuple[ValueFn | None, dict[str, Any]]:
    """How a node is valued when the caller gives no value function, as `reasonrl solve` does: MCTS with a gold
    answer (and neither scored rollouts nor path expansion) by rollouts to the end checked against it
    (`rollout_weight` 1 unless given); otherwise by the sympy step checker's share of valid equations (a rule-based
    process reward, no training needed).

    Returns:
        The value function (None where rollouts alone value a node) and the options with that default.
    """
    if (method == "mcts" and gold is not None and not options.get("scored_rollouts")
            and options.get("expansion", "children") != "path"):
        options = {"rollout_weight": 1.0, **options}
    return (None if options.get("rollout_weight") == 1.0 else step_checker_value), options


def solve_many(prompts: Sequence[Sequence[int]], generator: StepGenerator, method: str, *, budget_tokens: int,
               seeds: Sequence[int | None], value_fn: ValueFn | None = None, concurrency: int = 1,
               tools: Sequence[str] = (), tool_timeout_s: float = 5.0, max_observation_tokens: int = 64,
               **options: Any) -> list[dict[str, Any]]:
    """`solve` on each prompt, prompt i with seeds[i]; each result's `summary()` (no verifier: the caller grades the
    answers, e.g. in the rewards pool). With `concurrency` > 1 that many searches run at once in threads, their
    engine and reward-model calls merged into batched calls (search/batching.py); each search's samples, tokens
    and answer are its own either way. With `tools`, as `solve`'s, every search's calls of a batched engine call
    run in the sandbox at once."""
    check_options(method, options)
    if tools:
        generator = ToolStepGenerator(generator, tools, tool_timeout_s, max_observation_tokens)

    def one(generator: StepGenerator, value_fn: ValueFn | None, item: tuple[Sequence[int], int | None]) -> dict:
        prompt, seed = item
        return solve(list(prompt), generator, method, budget_tokens=budget_tokens, value_fn=value_fn, seed=seed,
                     **options).summary()

    items = list(zip(prompts, seeds, strict=True))
    try:
        if concurrency <= 1:
            return [one(generator, value_fn, item) for item in items]
        return map_concurrently(one, items, concurrency, generator, value_fn)
    finally:
        if tools:
            generator.shutdown()
