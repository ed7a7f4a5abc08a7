"""A search tree whose nodes are reasoning steps, and MCTS over it.

One `SearchContext` per problem holds the generator, the reward callables, the budget and the `TokenCounter`, and
is the only code that calls the generator or a reward model, so no method can spend compute it does not count.

MCTS is AlphaZero's loop (as OpenR/TS-LLM run it on steps): select a leaf by PUCT, evaluate it (a value function
such as a PRM, a rollout to the end checked by the verifier, or a weighted mix), expand it with k sampled next
steps whose priors are their probabilities normalised among siblings, and back the value up the path. Plain PUCT is
known not to improve monotonically with budget on LLM steps, so `selection="gumbel"` instead decides each step by
Gumbel top-k sampling with sequential halving at the root (Danihelka et al. 2022), PUCT below it.

Two departures from AlphaZero, both so that the budget buys new solutions. A confident policy samples the same
step again and again, so k samples often make one or two children, and such a tree is soon finished with budget
left: selection passes over finished subtrees instead of re-scoring their solutions, and a node whose children are
all finished is widened (sampled again for steps it does not have) until sampling brings nothing new. And a search
whose budget ends before any solution is finished completes its best leaf greedily, so it always answers.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from model.vllm_engine import prompt_seed
from rewards.extract import find_last_boxed, normalize_answer
from rewards.math_answer import parse_number
from search.generator import STEP_DELIMITER, Continuation, StepGenerator, TokenCounter, split_steps

__all__ = ["Node", "SearchContext", "ValueFn", "Verifier", "MCTS", "mcts", "check_mcts_options", "puct_score",
           "backup", "is_terminal", "step_priors", "choose_answer", "answer_key", "finish_best_leaf"]

ValueFn = Callable[[str, list[str]], float]  # (problem, steps so far, maybe none) -> estimated P(correct) in [0, 1]
Verifier = Callable[[str], bool]  # a whole solution's text -> is its answer correct (the gold is bound inside)


@dataclass(eq=False)
class Node:
    """One reasoning step; the root is the empty step before the first."""

    step: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprob: float = 0.0  # of this step given its prefix
    prior: float = 1.0  # exp(logprob) normalised among siblings
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    visits: int = 0
    value_sum: float = 0.0
    score: float | None = None  # this node's own evaluation, computed once
    terminal: bool = False
    saturated: bool = False  # sampling more next steps here brought none that was not a child already
    pruned: bool = False  # valued at or below MCTS's prune_at, so its path ended here: nothing below is searched
    exhausted: bool = False  # terminal, pruned, or saturated with every child exhausted: nothing left below
    stop_reason: str = "step"
    answer: str | None = None  # the last \boxed{} of a terminal node's solution
    correct: bool | None = None  # the verifier's verdict, where it was asked

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def depth(self) -> int:
        return len(self.path())

    def path(self) -> list[Node]:
        """The steps from the first to this one (the root left out)."""
        nodes, node = [], self
        while node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def text(self) -> str:
        return "".join(n.step for n in self.path())

    def ids(self) -> list[int]:
        return [t for n in self.path() for t in n.token_ids]

    def nodes(self) -> Iterator[Node]:
        """This node and all below it, depth first."""
        yield self
        for child in self.children:
            yield from child.nodes()


def is_terminal(step: str, stop_reason: str) -> bool:
    """A step ends a solution when it states a boxed answer or the text ended (eos, or a runaway step cut at
    max_tokens: continuing it would only make one longer step)."""
    return stop_reason != "step" or find_last_boxed(step) is not None


def step_priors(logprobs: list[float]) -> list[float]:
    """Softmax of the steps' logprobs: each step's probability normalised among its siblings."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return [w / sum(weights) for w in weights]


def backup(node: Node, value: float) -> None:
    """Add one visit of `value` to the node and every ancestor, and mark subtrees with nothing left to search."""
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node.exhausted = (node.terminal or node.pruned
                          or (node.saturated and all(c.exhausted for c in node.children)))
        node = node.parent


def answer_key(answer: str) -> str:
    """What votes compare: the normalised answer, and a plain number as its exact value ("9.0" and "9" vote
    together), the form evals' maj@n votes with."""
    normalized = normalize_answer(answer)
    number = parse_number(normalized)
    return str(number[0]) if number else normalized


def choose_answer(nodes: Iterable[Node], how: str = "value") -> Node | None:
    """The solution to answer with, among the evaluated terminal nodes that have an answer.

    "value": the highest value; "visits": the most visited (ties by value); "vote": the answer whose solutions'
    values sum highest (answers compared by `answer_key`), then its best solution.
    """
    finals = [n for n in nodes if n.terminal and n.answer is not None and n.visits > 0]
    if not finals:
        return None
    if how == "value":
        return max(finals, key=lambda n: n.value)
    if how == "visits":
        return max(finals, key=lambda n: (n.visits, n.value))
    if how == "vote":
        totals: dict[str, float] = defaultdict(float)
        for n in finals:
            totals[answer_key(n.answer)] += n.value
        winner = max(totals, key=totals.get)
        return max((n for n in finals if answer_key(n.answer) == winner), key=lambda n: n.value)
    raise ValueError(f"unknown answer selection {how!r}: use 'value', 'visits' or 'vote'")


@dataclass
class SearchContext:
    """One problem's search: the generator, reward callables, budget and counter, and the calls that spend them."""

    generator: StepGenerator
    prompt_ids: list[int]
    problem: str
    value_fn: ValueFn | None = None
    verifier: Verifier | None = None
    budget_tokens: int = 4096  # policy tokens; a call starts only while fewer have been spent
    max_step_tokens: int = 256
    max_tokens: int = 1024  # one whole solution (greedy, samples, rollouts)
    max_depth: int = 32  # steps; a node this deep is terminal
    temperature: float = 1.0
    step_temperature: float | None = None  # of the next-step samples that expand a tree (None: `temperature`);
    # above it, expansions are more diverse than the rollouts that value them
    seed: int | None = 0  # call i samples with prompt_seed(seed, i): reproducible, and no two calls share seeds
    counter: TokenCounter = field(default_factory=TokenCounter)

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
            stop=[] if whole else [STEP_DELIMITER], seed=seed)
        self.counter.record_generation(prefix, out)
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
            child.answer = find_last_boxed(child.text())
        return new

    def reward(self, node: Node) -> float:
        """The value function (a PRM on a partial solution, an ORM on a whole one) on the node's steps."""
        if self.value_fn is None:
            raise ValueError("this method needs a value_fn (a reward model)")
        self.counter.record_reward(len(self.prompt_ids) + len(node.ids()))
        return float(self.value_fn(self.problem, split_steps(node.text())))

    def verify(self, text: str) -> bool:
        if self.verifier is None:
            raise ValueError("this method needs a verifier (or the gold answer)")
        return bool(self.verifier(text))

    def _attach(self, node: Node, continuations: list[Continuation]) -> list[Node]:
        new = [Node(step=c.text, token_ids=list(c.token_ids), logprob=c.logprob, parent=node,
                    stop_reason=c.stop_reason, terminal=is_terminal(c.text, c.stop_reason))
               for c in continuations]
        node.children.extend(new)
        for child, prior in zip(node.children, step_priors([c.logprob for c in node.children])):
            child.prior = prior
        for child in new:
            child.terminal = child.terminal or child.depth >= self.max_depth
            child.answer = find_last_boxed(child.text()) if child.terminal else None
        return new


def finish_best_leaf(ctx: SearchContext, root: Node, evaluate: Callable[[Node], float]) -> Node | None:
    """When a tree search ends with no answered solution (its budget spent before any path finished): follow the
    best-valued children from the root to a leaf and finish that solution at temperature 0, so the search still
    answers. This one call starts past the budget; its tokens are counted like any other. Returns the finished
    solution, evaluated and backed up, or None when the best leaf is a solution without an answer."""
    node = root
    while node.children:
        parent = node  # an unvisited child is valued at its parent's value (first-play urgency), ties by prior
        node = max(node.children, key=lambda c: (c.value if c.visits else parent.value, c.visits > 0, c.prior))
    if node.terminal:
        return None
    (solution,) = ctx.complete(node, 1, temperature=0.0)
    backup(solution, evaluate(solution))
    return solution if solution.answer is not None else None


SATURATED_MASS = 0.01  # path expansion: a node whose children hold all but this much probability is not branched off


def unsampled_mass(node: Node) -> float:
    """The probability that a new sample of the node's next step is none of its children's steps."""
    return max(0.0, 1.0 - sum(math.exp(child.logprob) for child in node.children))


def puct_c(parent: Node, c_init: float = 1.25, c_base: float = 19652) -> float:
    """PUCT's exploration weight c(N) = c_init + log((1 + N + c_base) / c_base), N the parent's visits."""
    return c_init + math.log((1 + parent.visits + c_base) / c_base)


def puct_score(parent: Node, child: Node, c_init: float = 1.25, c_base: float = 19652) -> float:
    """AlphaZero's PUCT: Q + c(N) * P * sqrt(N) / (1 + n) (c(N): `puct_c`). An unvisited child's Q is 0."""
    c = puct_c(parent, c_init, c_base)
    return child.value + c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)


class MCTS:
    """Select, evaluate, expand, back up. `select_score(parent, child)` is the selection rule (PUCT by default).

    Evaluation, computed once per node: `(1 - rollout_weight) * value_fn + rollout_weight * verified_rollout`; or,
    with `scored_rollouts`, the value_fn on one sampled finish of the node's solution (an outcome score that needs
    no gold), the finish kept in the tree as a terminal child so that every simulation also adds a candidate answer.

    With `expansion="path"` a simulation adds a whole path instead of k children: it descends while a child's PUCT
    score beats branching off at the node, then samples one step at a time to the end of the solution, every step
    kept as a node and valued by the value_fn; the end's value is backed up. Branching off is a pseudo-child whose
    prior is the probability the node's children leave unsampled and whose value is the node's own, so a confident
    step that keeps failing is abandoned for the rarer ones, and a prefix is never sampled twice. A step valued at
    or below `prune_at` (0: the step checker found a false equation) ends its path: no tokens are spent finishing a
    solution already wrong, and the next simulation branches off above it.
    """

    def __init__(self, ctx: SearchContext, *, num_children: int = 4, rollout_weight: float = 0.0,
                 scored_rollouts: bool = False, select_score: Callable[[Node, Node], float] = puct_score,
                 max_simulations: int = 1000, c_visit: float = 50.0, c_scale: float = 1.0,
                 expansion: str = "children", prune_at: float | None = None, c_init: float = 1.25,
                 c_base: float = 19652):
        check_mcts_options(rollout_weight=rollout_weight, scored_rollouts=scored_rollouts, expansion=expansion)
        if (rollout_weight < 1.0 or scored_rollouts) and ctx.value_fn is None:
            raise ValueError("MCTS needs a value_fn unless rollout_weight=1 (rollouts checked by the verifier)")
        if rollout_weight > 0.0 and ctx.verifier is None:
            raise ValueError("rollout_weight > 0 needs a verifier (or the gold answer)")
        self.expansion, self.prune_at, self.c_init, self.c_base = expansion, prune_at, c_init, c_base
        self.ctx, self.num_children, self.rollout_weight = ctx, num_children, rollout_weight
        self.scored_rollouts = scored_rollouts
        self.select_score, self.max_simulations = select_score, max_simulations
        self.c_visit, self.c_scale = c_visit, c_scale  # Gumbel's sigma(q) = (c_visit + max visits) * c_scale * q
        self.simulations = 0

    def search(self, root: Node) -> Node:
        """Simulate from the root until the budget is spent or nothing is left to expand."""
        simulate = self.simulate_path if self.expansion == "path" else self.simulate
        while not self.ctx.out_of_budget and not root.exhausted and self.simulations < self.max_simulations:
            simulate(root)
        return root

    def simulate(self, start: Node) -> None:
        leaf = self.select(start)
        value = self.evaluate(leaf)
        if not leaf.terminal and not leaf.saturated:
            self.ctx.expand(leaf, self.num_children)
        backup(leaf, value)
        self.simulations += 1

    def select(self, node: Node) -> Node:
        """Descend by the selection rule over the children with something left to search (re-selecting a scored
        solution would spend a simulation and learn nothing) to a leaf, or to a node whose every child is
        exhausted: that one is widened, sampled again for steps it does not have yet."""
        while node.children and not node.terminal:
            candidates = [child for child in node.children if not child.exhausted]
            if not candidates:
                break
            node = max(candidates, key=lambda child: self.select_score(node, child))
        return node

    def simulate_path(self, root: Node) -> None:
        """Path expansion (see the class): select where to branch off, sample a path from there step by step to
        the end (or to a pruned step, or until the budget is spent), back up the value where it stopped."""
        node = self.select_branch(root)
        while not node.terminal and not node.pruned and not self.ctx.out_of_budget:
            node = self.ctx.step(node)
            node.parent.saturated = unsampled_mass(node.parent) < SATURATED_MASS
            if self.prune_at is not None and self.evaluate(node) <= self.prune_at:
                node.pruned = True
                break
        backup(node, self.evaluate(node))
        self.simulations += 1

    def select_branch(self, node: Node) -> Node:
        """Descend by PUCT, with absolute step probabilities as priors, while the best child with something left
        to search scores above branching off at the node (a new step: prior the unsampled mass, value the node's
        own); return the node to branch off at."""
        while not node.terminal:
            explore = puct_c(node, self.c_init, self.c_base) * math.sqrt(node.visits)

            def score(child: Node) -> float:
                return child.value + explore * math.exp(child.logprob) / (1 + child.visits)

            branch = (-math.inf if node.saturated else
                      (self.evaluate(node) if node.parent else 0.0) + explore * unsampled_mass(node))
            best = max((child for child in node.children if not child.exhausted), default=None, key=score)
            if best is None or branch >= score(best):
                return node
            node = best
        return node

    def evaluate(self, node: Node) -> float:
        if node.score is None and self.scored_rollouts:
            node.score = self.ctx.reward(node) if node.terminal else self.scored_rollout(node)
        elif node.score is None:
            w = self.rollout_weight
            learned = self.ctx.reward(node) if w < 1.0 else 0.0
            checked = float(self.verified_rollout(node)) if w > 0.0 else 0.0
            node.score = (1.0 - w) * learned + w * checked
        return node.score

    def scored_rollout(self, node: Node) -> float:
        """The value_fn's score of one sampled finish of the node's solution; the finish stays in the tree as a
        terminal child holding that score as its one visit (the simulation backs it up from the node)."""
        (finish,) = self.ctx.complete(node, 1)
        finish.score = self.ctx.reward(finish)
        finish.visits, finish.value_sum, finish.exhausted = 1, finish.score, True
        return finish.score

    def verified_rollout(self, node: Node) -> bool:
        """Whether a sampled finish of the node's solution is correct (a terminal node is its own finish)."""
        if node.terminal:
            node.correct = self.ctx.verify(node.text())
            return node.correct
        finish = self.ctx.sample(node, 1, whole=True)[0]
        return self.ctx.verify(node.text() + finish.text)

    # Gumbel top-k with sequential halving at the root (Danihelka et al. 2022, "Policy improvement by planning
    # with Gumbel"): sample top_k distinct steps by Gumbel noise + log prior, then in ceil(log2 top_k) phases give
    # each remaining step an equal share of the simulations and keep the better half by g + logit + sigma(q).

    def search_gumbel(self, root: Node, simulations_per_step: int = 16, top_k: int = 4) -> Node:
        """Decide one step at a time by sequential halving, then descend into it; returns where it stopped."""
        rng = random.Random(self.ctx.seed)
        node = root
        while not node.terminal and not self.ctx.out_of_budget:
            node = self.sequential_halving(node, simulations_per_step, top_k, rng)
        if node.terminal and node.visits == 0:  # a lone child is taken unsimulated: evaluate it so it can be chosen
            self.simulate(node)
        return node

    def sequential_halving(self, root: Node, num_simulations: int, top_k: int, rng: random.Random) -> Node:
        if not root.children:
            self.ctx.expand(root, self.num_children)
        gumbel = {id(c): -math.log(-math.log(max(rng.random(), 1e-12))) for c in root.children}

        def score(c: Node) -> float:
            return gumbel[id(c)] + math.log(c.prior) + self.sigma(root, c)

        remaining = sorted(root.children, key=score, reverse=True)[:top_k]  # no visits yet: sigma is 0
        phases = max(1, math.ceil(math.log2(len(remaining))))
        while len(remaining) > 1 and not self.ctx.out_of_budget:
            share = max(1, num_simulations // (phases * len(remaining)))
            for child in remaining:
                for _ in range(share):
                    if self.ctx.out_of_budget:
                        break
                    self.simulate(child)
            remaining = sorted(remaining, key=score, reverse=True)[:(len(remaining) + 1) // 2]
        return max(remaining, key=score)

    def sigma(self, root: Node, child: Node) -> float:
        """Gumbel's monotone transform of a value in [0, 1], growing with the root's most visited child."""
        max_visits = max(c.visits for c in root.children)
        return (self.c_visit + max_visits) * self.c_scale * child.value if child.visits else 0.0


def check_mcts_options(*, selection: str = "puct", answer_by: str = "value", rollout_weight: float = 0.0,
                       scored_rollouts: bool = False, expansion: str = "children", **_: object) -> None:
    """The option values and combinations `mcts` refuses (ValueError), checkable before any engine starts."""
    if selection not in ("puct", "gumbel"):
        raise ValueError(f"unknown selection {selection!r}: use 'puct' or 'gumbel'")
    if answer_by not in ("value", "visits", "vote"):
        raise ValueError(f"unknown answer selection {answer_by!r}: use 'value', 'visits' or 'vote'")
    if expansion not in ("children", "path"):
        raise ValueError(f"unknown expansion {expansion!r}: use 'children' or 'path'")
    if not 0.0 <= rollout_weight <= 1.0:
        raise ValueError(f"rollout_weight must be in [0, 1], got {rollout_weight}")
    if scored_rollouts and rollout_weight > 0.0:
        raise ValueError("scored_rollouts replaces rollout_weight: give one of them")
    if expansion == "path" and (scored_rollouts or rollout_weight > 0.0):
        raise ValueError("expansion='path' values each step of its path with the value_fn: it takes neither "
                         "scored_rollouts nor rollout_weight")
    if expansion == "path" and selection != "puct":
        raise ValueError("expansion='path' runs with selection='puct'")


def mcts(ctx: SearchContext, *, num_children: int = 4, selection: str = "puct", answer_by: str = "value",
         rollout_weight: float = 0.0, scored_rollouts: bool = False, c_init: float = 1.25, c_base: float = 19652,
         max_simulations: int = 1000, simulations_per_step: int = 16, top_k: int = 4, expansion: str = "children",
         prune_at: float | None = None) -> tuple[Node, Node | None, float | None]:
    """MCTS over steps: PUCT from the root until the budget is spent (`selection="puct"`), or a step at a time by
    Gumbel sequential halving (`selection="gumbel"`); a simulation expands k children (`expansion="children"`) or
    a whole sampled path (`"path"`, PUCT only; see MCTS). Returns (root, chosen terminal node, its value)."""
    check_mcts_options(selection=selection, answer_by=answer_by, rollout_weight=rollout_weight,
                       scored_rollouts=scored_rollouts, expansion=expansion)
    searcher = MCTS(ctx, num_children=num_children, rollout_weight=rollout_weight, scored_rollouts=scored_rollouts,
                    max_simulations=max_simulations, expansion=expansion, prune_at=prune_at, c_init=c_init,
                    c_base=c_base, select_score=lambda parent, child: puct_score(parent, child, c_init, c_base))
    root = Node()
    if selection == "puct":
        searcher.search(root)
        chosen = choose_answer(root.nodes(), answer_by)
    else:
        reached = searcher.search_gumbel(root, simulations_per_step, top_k)
        chosen = choose_answer(reached.nodes(), answer_by) or choose_answer(root.nodes(), answer_by)
    chosen = chosen or finish_best_leaf(ctx, root, searcher.evaluate)
    return root, chosen, chosen.value if chosen else None
