"""A scripted, deterministic generator for search's unit tests: one character is one token, and a table maps each
sequence of steps taken so far to the next steps the "policy" may write, with their probabilities."""

from __future__ import annotations

import math
import random

import pytest

from search.context import SearchContext
from search.generator import STEP_DELIMITER, Continuation, split_steps
from search.task import MathTask

PROMPT = "Q: 2+3*4?\n"

# Greedy (the most probable step each time) adds first and answers 20; the correct solution starts with the
# less probable step.
ORDER_OF_OPERATIONS = {
    (): [("Add first: 2+3=5.", 0.6), ("Multiply first: 3*4=12.", 0.4)],
    ("Add first: 2+3=5.",): [("Then 5*4=20.", 1.0)],
    ("Add first: 2+3=5.", "Then 5*4=20."): [("The answer is \\boxed{20}.", 1.0)],
    ("Multiply first: 3*4=12.",): [("Then 2+12=14.", 1.0)],
    ("Multiply first: 3*4=12.", "Then 2+12=14."): [("The answer is \\boxed{14}.", 1.0)],
}
CORRECT_PATH = ("Multiply first: 3*4=12.", "Then 2+12=14.", "The answer is \\boxed{14}.")


class FakeGenerator:
    """Meets search.generator.StepGenerator over a table of steps.

    In step mode (a stop string given) sample i of a call is option c * k + i modulo the number of options, c the
    calls made on that prefix before (so k samples cover every option, and repeat them when k is larger, and a
    prefix sampled again continues where the last call stopped); temperature 0 repeats the most probable option. To the
    end of text (stop=[]) each sample walks the table with a seeded random choice per step (the most probable
    option at temperature 0). A step with no entry after it ends the text ("eos"); with `default` set, a missing
    entry gets the default options instead, so the tree never ends. Every call is logged.
    """

    def __init__(self, table, prompt=PROMPT, default=None):
        self.table, self.prompt, self.default = table, prompt, default
        self.calls: list[dict] = []  # per call: prefix length, k, tokens generated, step mode, temperature
        self.step_calls: dict[str, int] = {}  # step-mode calls made so far per prefix text

    def encode(self, text):
        return [ord(ch) for ch in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def options(self, steps):
        return self.table.get(tuple(steps), self.default) or []

    def continue_prefix(self, prefix_ids, k, *, max_tokens, temperature, stop, seed):
        text = self.decode(prefix_ids)
        assert text.startswith(self.prompt)
        steps = [s.removesuffix(STEP_DELIMITER) for s in split_steps(text[len(self.prompt):])]
        if stop:
            first = self.step_calls.get(text, 0) * k
            self.step_calls[text] = self.step_calls.get(text, 0) + 1
            out = [self._step(steps, first + i, temperature, max_tokens) for i in range(k)]
        else:
            out = [self._to_end(steps, random.Random(f"{seed}-{i}"), temperature, max_tokens) for i in range(k)]
        self.calls.append({"prefix": len(prefix_ids), "k": k, "generated": sum(c.num_tokens for c in out),
                           "step": bool(stop), "temperature": temperature})
        return out

    def _step(self, steps, i, temperature, max_tokens):
        options = self.options(steps)
        step, p = max(options, key=lambda o: o[1]) if temperature == 0 else options[i % len(options)]
        return self._continuation([(step, p)], steps, max_tokens)

    def _to_end(self, steps, rng, temperature, max_tokens):
        taken, steps = [], list(steps)
        while self.options(steps) and sum(len(s) + 1 for s, _ in taken) <= max_tokens:
            options = self.options(steps)
            if temperature == 0:
                choice = max(options, key=lambda o: o[1])
            else:
                choice = rng.choices(options, weights=[p for _, p in options])[0]
            taken.append(choice)
            steps.append(choice[0])
        return self._continuation(taken, steps[:len(steps) - len(taken)], max_tokens)

    def _continuation(self, taken, steps, max_tokens):
        """Text for the steps taken after `steps`: each ends with the delimiter unless the text ends after it."""
        text, path = "", list(steps)
        for step, _ in taken:
            path.append(step)
            text += step + (STEP_DELIMITER if self.options(path) else "")
        reason = "step" if self.options(path) else "eos"
        if len(text) > max_tokens:
            text, reason = text[:max_tokens], "length"
        return Continuation(self.encode(text), text, sum(math.log(p) for _, p in taken), reason)

    @property
    def generated(self):
        return sum(c["generated"] for c in self.calls)


def perfect_value(correct_path):
    """A value function that knows the answer: 1 on a prefix of the correct solution, else 0."""
    def value(problem, steps):
        taken = tuple(s.removesuffix(STEP_DELIMITER) for s in steps)
        return 1.0 if taken == correct_path[:len(taken)] else 0.0
    return value


def make_context(generator, value_fn=None, verifier=None, **options):
    """A SearchContext on the scripted generator's prompt, its task a MathTask with the value function and verifier."""
    return SearchContext(generator, generator.encode(generator.prompt), generator.prompt,
                         task=MathTask(value_fn, verifier), **options)


@pytest.fixture
def context():
    """make_context, for tests that build a SearchContext themselves."""
    return make_context


@pytest.fixture
def fake():
    return FakeGenerator


@pytest.fixture
def order_of_operations():
    return FakeGenerator(ORDER_OF_OPERATIONS), perfect_value(CORRECT_PATH)


@pytest.fixture
def value_knowing():
    """perfect_value, for tests with their own tables."""
    return perfect_value
