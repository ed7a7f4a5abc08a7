"""One problem's search: the generator, the task, the budget and the `TokenCounter`, and the only calls that spend
them.

`SearchContext` is the only code that calls the generator or the task's value function and verifier, so no
algorithm can spend compute it does not count. It is also where every per-search state lives (the counter, and
through it each call's seed): the algorithms keep none, so one algorithm object can run many searches at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from model.vllm_engine import prompt_seed
from search.generator import Continuation, StepGenerator, TokenCounter, split_steps
from search.task import MathTask, Task, require
from search.tree import Node, backup, step_priors

__all__ = ["SearchContext", "finish_best_leaf"]


@dataclass
class SearchContext:
    """One problem's search: the generator, the task, budget and counter, and the calls that spend them.

    Attributes:
        generator: the policy engine.
        prompt_ids: the problem's prompt, chat template applied, as token ids.
        problem: the prompt as text (what the task's value function reads with the steps).
        task: how steps end, answers are read and voted, and solutions valued and checked.
        budget_tokens: policy tokens; a call starts only while fewer have been spent.
        max_step_tokens: one sampled step.
        max_tokens: one whole solution (greedy, samples, rollouts).
        max_depth: steps; a node this deep is terminal.
        temperature: of whole solutions and rollouts.
        step_temperature: of the next-step samples that expand a tree (None: `temperature`); above it, expansions
            are more diverse than the rollouts that value them.
        seed: call i samples with `prompt_seed(seed, i)`: reproducible, and no two calls share seeds.
        counter: the compute spent so far, by kind.
        progress: called with the policy tokens spent (at most the budget) after every generator call, for a
            progress bar.
    """

    generator: StepGenerator
    prompt_ids: list[int]
    problem: str
    task: Task = field(default_factory=MathTask)
    budget_tokens: int = 4096
    max_step_tokens: int = 256
    max_tokens: int = 1024
    max_depth: int = 32
    temperature: float = 1.0
    step_temperature: float | None = None
    seed: int | None = 0
    counter: TokenCounter = field(default_factory=TokenCounter)
    progress: Callable[[int], None] | None = None

    @property
    def out_of_budget(self) -> bool:
        return self.counter.policy >= self.budget_tokens

    def sample(self, node: Node, k: int, *, whole: bool, temperature: float | None = None) -> list[Continuation]:
        """k continuations of the node's prefix: its next step, or (whole) the rest of the solution."""
        prefix = self.prompt_ids + node.ids()
        # vLLM seeds a call's k samples s, s+1, ..., s+k-1: consecutive call seeds would repeat samples between
        # calls on the same prefix (self-consistency's batches), so each call's seed is a 64-bit mix
        seed = prompt_seed(self.seed, self.counter.policy_calls)
        out = self.generator.continue_prefix(
            prefix, k, max_tokens=self.max_tokens if whole else self.max_step_tokens,
            temperature=self.temperature if temperature is None else temperature,
            stop=[] if whole else [self.task.step_end], seed=seed)
        self.counter.record_generation(prefix, out)
        if self.progress is not None:
            self.progress(min(self.counter.policy, self.budget_tokens))
        return out

    def expand(self, node: Node, k: int) -> list[Node]:
        """Sample k next steps and hang the new distinct ones under the node (a repeat adds no information). A node
        expanded again (widened) whose samples are all steps it has already is marked saturated."""
        known = {tuple(c.token_ids) for c in node.children}
        new: dict[tuple[int, ...], Continuation] = {}
        for c in self.sample(node, k, whole=False, temperature=self.step_temperature):
            if tuple(c.token_ids) not in known:
                new.setdefault(tuple(c.token_ids), c)
        node.saturated = node.saturated or (bool(known) and not new)
        self._attach(node, list(new.values()))
        return node.children

    def step(self, node: Node) -> Node:
        """Sample one next step: the child the node already has with that step, or a new one."""
        (sampled,) = self.sample(node, 1, whole=False, temperature=self.step_temperature)
        for child in node.children:
            if child.token_ids == sampled.token_ids:
                return child
        return self._attach(node, [sampled])[0]

    def complete(self, node: Node, k: int, *, temperature: float | None = None) -> list[Node]:
        """Sample k whole solutions from the node, each one terminal child (repeats kept: they are votes)."""
        new = self._attach(node, self.sample(node, k, whole=True, temperature=temperature))
        for child in new:
            child.terminal = True
            child.answer = self.task.answer(child.policy_text())
        return new

    def reward(self, node: Node) -> float:
        """The task's value function (a PRM on a partial solution, an ORM on a whole one) on the node's steps."""
        require(self.task, ["value_fn"], "this method")
        self.counter.record_reward(len(self.prompt_ids) + len(node.ids()))
        return float(self.task.value_fn(self.problem, split_steps(node.text(), self.task.step_end)))

    def verify(self, text: str) -> bool:
        """The task's verifier on a finished solution."""
        require(self.task, ["verifier"], "this method")
        return bool(self.task.verifier(text))

    def _attach(self, node: Node, continuations: list[Continuation]) -> list[Node]:
        new = [Node(step=c.text, policy_step=c.policy_text, tool_calls=c.tool_calls, token_ids=list(c.token_ids),
                    logprob=c.logprob, parent=node, stop_reason=c.stop_reason,
                    terminal=self.task.is_terminal(c.own_text(), c.stop_reason))
               for c in continuations]
        node.children.extend(new)
        for child, prior in zip(node.children, step_priors([c.logprob for c in node.children])):
            child.prior = prior
        for child in new:
            child.terminal = child.terminal or child.depth >= self.max_depth
            child.answer = self.task.answer(child.policy_text()) if child.terminal else None
        return new


def finish_best_leaf(ctx: SearchContext, root: Node, evaluate: Callable[[Node], float]) -> Node | None:
    """When a tree search ends with no answered solution (its budget spent before any path finished): follow the
    best-valued children from the root to a leaf and finish that solution at temperature 0, so the search still
    answers. This one call starts past the budget; its tokens are counted like any other.

    Returns:
        The finished solution, evaluated by `evaluate` and backed up, or None when the best leaf is a solution
        without an answer.
    """
    node = root
    while node.children:
        parent = node  # an unvisited child is valued at its parent's value (first-play urgency), ties by prior
        node = max(node.children, key=lambda c: (c.value if c.visits else parent.value, c.visits > 0, c.prior))
    if node.terminal:
        return None
    (solution,) = ctx.complete(node, 1, temperature=0.0)
    backup(solution, evaluate(solution))
    return solution if solution.answer is not None else None
