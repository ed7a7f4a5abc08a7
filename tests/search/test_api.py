"""search.solve: one call shape for every method, exact token accounting, budgets, JSON export of the tree."""

import json

import pytest

from search import METHODS, Node, SearchContext, solve, tree_to_dict
from search.api import check_options, method_options


def test_mcts_solves_what_greedy_gets_wrong(order_of_operations):
    generator, value = order_of_operations
    greedy = solve(generator.prompt, generator, "greedy", gold="14")
    assert (greedy.answer, greedy.correct) == ("20", False)
    searched = solve(generator.prompt, generator, "mcts", budget_tokens=200, value_fn=value, gold="14",
                     num_children=2)
    assert (searched.answer, searched.correct, searched.value) == ("14", True, 1.0)
    assert searched.steps == ["Multiply first: 3*4=12.\n", "Then 2+12=14.\n", "The answer is \\boxed{14}."]


def test_prompt_as_text_or_ids_searches_the_same(order_of_operations):
    generator, value = order_of_operations
    by_text = solve(generator.prompt, generator, "mcts", value_fn=value, num_children=2)
    by_ids = solve(generator.encode(generator.prompt), generator, "mcts", value_fn=value, num_children=2)
    assert by_text.to_dict() == by_ids.to_dict()


def test_every_token_is_counted_exactly(order_of_operations):
    generator, value = order_of_operations
    read = []
    result = solve(generator.prompt, generator, "mcts", value_fn=lambda p, steps: read.append(steps) or value(p, steps),
                   num_children=2)
    tokens = result.tokens
    assert tokens.policy == generator.generated > 0
    assert tokens.policy_calls == len(generator.calls)
    assert tokens.prefill == sum(c["prefix"] for c in generator.calls)
    assert tokens.reward_calls == len(read)
    assert tokens.reward == sum(len(generator.prompt) + len("".join(steps)) for steps in read)


def test_prefill_a_prefix_cache_would_hold_is_counted(order_of_operations):
    generator, _ = order_of_operations
    ctx = SearchContext(generator, generator.encode(generator.prompt), generator.prompt)
    add_first = ctx.expand(Node(), 2)[0]
    assert ctx.counter.prefill_cached == 0  # nothing was cached before the first call
    ctx.expand(add_first, 1)
    assert ctx.counter.prefill_cached == len(generator.prompt) + len("Add first: 2+3=5.\n")  # the whole prefix
    assert ctx.counter.prefill == 2 * len(generator.prompt) + len("Add first: 2+3=5.\n")


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_mcts_stops_starting_calls_once_the_budget_is_spent(selection, fake):
    generator = fake({}, default=[("Keep going.", 0.5), ("Try again.", 0.5)])
    result = solve(generator.prompt, generator, "mcts", budget_tokens=300, value_fn=lambda p, s: 0.5,
                   selection=selection)
    *search_calls, finish = generator.calls  # nothing finished: one greedy call past the budget, to answer
    per_call = [c["generated"] for c in search_calls]
    assert sum(per_call[:-1]) < 300 <= sum(per_call)
    assert finish["k"] == 1 and result.tokens.policy == generator.generated
    assert result.answer is None and result.steps == []  # the endless tree's greedy finish has no answer either


def test_json_export_holds_every_node_and_marks_the_chosen_path(order_of_operations):
    generator, value = order_of_operations
    result = solve(generator.prompt, generator, "mcts", value_fn=value, gold="14", num_children=2)
    data = json.loads(result.to_json())
    assert data["answer"] == "14" and data["tokens"]["policy"] == result.tokens.policy
    root, chosen = result.tree, result.chosen
    assert tree_to_dict(root, chosen) == data["tree"]  # nothing lost or changed on the way through JSON
    for exported, node in _pairs(data["tree"], root):
        assert (exported["step"], exported["visits"], exported["value"]) == (node.step, node.visits, node.value)
    assert chosen.text() == "".join(data["steps"]) and chosen.answer == "14"
    marked = [node for exported, node in _pairs(data["tree"], root) if exported["chosen"]]
    assert marked == [root, *chosen.path()]
    assert {"step", "prior", "visits", "value", "correct", "terminal"} <= set(data["tree"])


def _pairs(exported, node):
    """(exported dict, node) for every node, walking the export and the tree together."""
    yield exported, node
    for exported_child, child in zip(exported["children"], node.children, strict=True):
        yield from _pairs(exported_child, child)


def test_every_method_answers_through_solve(order_of_operations):
    generator, value = order_of_operations
    for method in METHODS:
        result = solve(generator.prompt, generator, method, budget_tokens=400, value_fn=value, gold="14")
        assert result.answer in ("14", "20") and result.tokens.policy > 0, method
        assert result.correct == (result.answer == "14"), method


def test_unknown_methods_and_options_are_refused(order_of_operations):
    generator, value = order_of_operations
    with pytest.raises(ValueError, match="unknown method"):
        solve(generator.prompt, generator, "bogo_search")
    with pytest.raises(ValueError, match="beam has no option beam_widht: its options are .*beam_width"):
        solve(generator.prompt, generator, "beam", value_fn=value, beam_widht=2)
    with pytest.raises(ValueError, match="expansion='path' runs with selection='puct'"):
        check_options("mcts", {"expansion": "path", "selection": "gumbel"})  # what the CLI checks before vLLM starts
    with pytest.raises(ValueError, match="unknown answer selection 'votes'"):
        solve(generator.prompt, generator, "mcts", value_fn=value, answer_by="votes")
    assert generator.calls == []  # refused before any generation
    assert {"temperature", "step_temperature", "scored_rollouts", "selection"} <= set(method_options("mcts"))


def test_html_view_shows_every_node_and_marks_the_chosen_path(order_of_operations):
    from html.parser import HTMLParser

    generator, value = order_of_operations
    result = solve(generator.prompt, generator, "mcts", budget_tokens=2000, gold="14", num_children=2,
                   rollout_weight=1.0)  # values from verified rollouts: the leaves carry their verdicts
    page = result.to_html(title="2+3*4 <search>")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page  # self-contained
    assert "2+3*4 &lt;search&gt;" in page  # text is escaped

    class Boxes(HTMLParser):
        def __init__(self):
            super().__init__()
            self.boxes, self.chosen = 0, 0

        def handle_starttag(self, tag, attrs):
            if tag == "details":
                self.boxes += 1
                self.chosen += ("class", "chosen") in attrs

    boxes = Boxes()
    boxes.feed(page)
    assert boxes.boxes == sum(1 for _ in result.tree.nodes())
    assert boxes.chosen == 1 + len(result.chosen.path())  # the root and each chosen step
    for step in result.steps:
        assert step.rstrip("\n") in page
    assert "✔ correct" in page and "✘ wrong" in page  # the verified leaves of both branches


def test_solve_takes_a_generator_or_a_model_and_names_a_missing_checkpoint_before_any_engine(order_of_operations,
                                                                                             tmp_path):
    from model.config import ConfigError

    generator, value = order_of_operations
    with pytest.raises(ValueError, match="give a generator or a model"):
        solve(generator.prompt, method="greedy")
    with pytest.raises(ValueError, match="not both"):
        solve(generator.prompt, generator, "greedy", model=tmp_path)
    with pytest.raises(ConfigError, match="no such checkpoint folder"):
        solve("What is 2 + 2?", model=tmp_path / "nowhere", method="greedy")
    with pytest.raises(ValueError, match="unknown answer selection"):  # options are checked first
        solve("What is 2 + 2?", model=tmp_path / "nowhere", method="mcts", answer_by="votes")


SOLVE_FROM_A_CHECKPOINT = """
import json, sys
from problems import Problem, build_prompt
from search import solve, vllm_generator
from search.reward_models import step_checker_value

checkpoint, question = sys.argv[1], "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"
options = dict(method="mcts", budget_tokens=120, max_step_tokens=16, max_tokens=48, num_children=2)
runs = {"first": solve(question, model=checkpoint, **options), "again": solve(question, model=checkpoint, **options),
        "gold": solve(question, model=checkpoint, gold="8", **options)}
generator = vllm_generator.load_generator(checkpoint)
prompt = build_prompt(Problem("q", question, "8", None, "q", None), generator.tokenizer)
runs["by_hand"] = solve(prompt, generator, value_fn=step_checker_value, **options)
runs["gold_by_hand"] = solve(prompt, generator, gold="8", rollout_weight=1.0, **options)
print(json.dumps({"engines": vllm_generator._load_generator.cache_info().currsize,
                  **{name: result.to_dict() for name, result in runs.items()}}))
"""


def test_solve_from_a_checkpoint_starts_one_engine_and_searches_as_with_a_generator(tiny_checkpoint):
    """`solve(question, model=...)` on the real engine, in its own process as a user runs it: the engine is started
    once for all the searches, and each searches exactly as `solve(prompt_ids, generator, ...)` with the prompt
    built by hand and `reasonrl solve`'s value (the step checker; with a gold answer, MCTS's verified rollouts)."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", SOLVE_FROM_A_CHECKPOINT, str(tiny_checkpoint)],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])  # vLLM's lines may come first
    assert out["engines"] == 1
    assert out["first"] == out["again"] == out["by_hand"] and out["first"]["tokens"]["policy"] > 0
    assert out["gold"] == out["gold_by_hand"] and out["gold"]["tokens"]["policy"] > 0


@pytest.mark.parametrize("budget", [0, -5, 2.5, None])
def test_a_budget_that_is_not_a_positive_integer_is_refused_before_any_generation(order_of_operations, budget):
    generator, value = order_of_operations
    with pytest.raises(ValueError, match="budget_tokens must be an integer >= 1"):
        solve(generator.prompt, generator, "mcts", value_fn=value, budget_tokens=budget)
    assert generator.calls == []
