"""search.context: expansion and priors, terminal nodes, and the task's rules applied as the tree grows."""

import math

import pytest

from search.tree import Node


def test_expansion_merges_repeated_steps_and_normalises_priors(order_of_operations, context):
    generator, _ = order_of_operations
    ctx = context(generator)
    root = Node()
    children = ctx.expand(root, 4)  # the fake samples A, B, A, B
    assert [c.step for c in children] == ["Add first: 2+3=5.\n", "Multiply first: 3*4=12.\n"]
    assert [c.prior for c in children] == pytest.approx([0.6, 0.4])
    assert [c.logprob for c in children] == pytest.approx([math.log(0.6), math.log(0.4)])
    assert ctx.counter.policy == generator.generated == 2 * (18 + 24)  # repeats were generated, so they count
    leaf = ctx.expand(ctx.expand(children[1], 2)[0], 1)[0]
    assert leaf.terminal and leaf.answer == "14" and leaf.stop_reason == "eos"
    assert leaf.text() == "Multiply first: 3*4=12.\nThen 2+12=14.\nThe answer is \\boxed{14}."
    assert ctx.prompt_ids + leaf.ids() == generator.encode(generator.prompt + leaf.text())


def test_nodes_past_max_depth_are_terminal(fake, context):
    ctx = context(fake({}, default=[("Keep going.", 1.0)]), max_depth=2)
    first = ctx.expand(Node(), 1)[0]
    second = ctx.expand(first, 1)[0]
    assert not first.terminal and second.terminal and second.answer is None


def test_the_value_function_reads_the_steps_and_its_tokens_are_counted(order_of_operations, context):
    generator, _ = order_of_operations
    read = []
    ctx = context(generator, value_fn=lambda problem, steps: read.append((problem, steps)) or 0.25)
    leaf = ctx.expand(ctx.expand(Node(), 2)[1], 1)[0]
    assert ctx.reward(leaf) == 0.25
    assert read == [(generator.prompt, ["Multiply first: 3*4=12.\n", "Then 2+12=14.\n"])]
    assert (ctx.counter.reward_calls, ctx.counter.reward) == (1, len(generator.prompt) + len(leaf.text()))
    with pytest.raises(ValueError, match="needs a verifier"):
        ctx.verify(leaf.text())
