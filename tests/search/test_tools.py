"""Search with tools: a step that closes a python call carries the call's output, run for real in the sandbox; its
tokens are prefill, never policy tokens a budget counts."""

import pytest

from model import load_tokenizer
from rewards.tools import OUTPUT_CLOSE, OUTPUT_OPEN
from search import solve
from search.generator import Continuation
from search.tools import ToolStepGenerator

SOLUTION = ["<think>\n", "```python\n", "print(6 * 7)\n", "```\n", "</think>\n", "The answer is \\boxed{42}."]


class ScriptedGenerator:
    """Writes SOLUTION: one step a call in step mode, the rest of it (up to a call's closing fence) to the end of
    text; logs each call's prefix length and sampled tokens."""

    def __init__(self, solution=SOLUTION, output="42"):
        self.tokenizer = load_tokenizer()
        self.calls = []
        self.solution, self.output = solution, output

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids):
        return self.tokenizer.decode(ids)

    def written(self, prefix):
        text = self.decode(prefix)
        return text[text.index("<think>"):] if "<think>" in text else ""

    def continue_prefix(self, prefix, k, *, max_tokens, temperature, stop, seed):
        done = self.written(prefix)
        rest = "".join(self.solution)[len(done.replace(OUTPUT_OPEN + self.output + OUTPUT_CLOSE, "")):]
        if "\n" in stop:  # one step
            text = next(step for step in self.solution if rest.startswith(step))
        else:  # to the end, or to the fence that closes a call (the tool generator's stop string)
            cut = rest.find("\n```\n")
            text = rest if cut < 0 else rest[:cut + 5]
        ids = self.encode(text)
        self.calls.append((len(prefix), len(ids)))
        return [Continuation(ids, text, -0.1 * len(ids), "step" if text.endswith("\n") else "eos") for _ in range(k)]


def test_a_step_that_closes_a_call_carries_its_output_and_the_budget_counts_only_the_policys_tokens():
    generator = ScriptedGenerator()
    prompt = generator.encode("Q: 6 * 7?\n")
    result = solve(prompt, generator, "beam", budget_tokens=500, tools=["python"], tool_timeout_s=2.0, beam_width=1,
                   value_fn=lambda problem, steps: 0.5,
                   num_children=1)  # step by step
    assert result.answer == "42"
    assert "".join(result.steps[3:7]) == "```\n" + OUTPUT_OPEN + "42" + OUTPUT_CLOSE  # the call and its output
    policy = sum(generated for _, generated in generator.calls)
    observation = sum(len(generator.encode(piece)) for piece in (OUTPUT_OPEN, "42", OUTPUT_CLOSE))
    assert result.tokens.policy == policy  # the output is not the policy's
    assert result.tokens.prefill == sum(prefix for prefix, _ in generator.calls)
    assert generator.calls[4][0] == generator.calls[3][0] + generator.calls[3][1] + observation  # read as prefill
    steps = [node.step for node in result.chosen.path()]  # the call's step (a node of the tree) holds its output
    assert "```\n" + OUTPUT_OPEN + "42" + OUTPUT_CLOSE in steps and "</think>\n" in steps


def test_greedy_answers_through_the_tool_in_one_whole_sample():
    generator = ScriptedGenerator()
    result = solve(generator.encode("Q: 6 * 7?\n"), generator, "greedy", budget_tokens=500, tools=["python"],
                   tool_timeout_s=2.0)
    assert result.answer == "42" and len(generator.calls) == 2
    assert result.tokens.policy == sum(generated for _, generated in generator.calls)


def test_a_whole_sample_goes_on_after_each_call():
    generator = ScriptedGenerator()
    tools = ToolStepGenerator(generator, timeout_s=2.0)
    try:
        (whole,) = tools.continue_prefix(generator.encode("Q: 6 * 7?\n"), 1, max_tokens=200, temperature=1.0,
                                         stop=[], seed=3)
    finally:
        tools.shutdown()
    assert whole.text == "".join(SOLUTION[:4]) + OUTPUT_OPEN + "42" + OUTPUT_CLOSE + "".join(SOLUTION[4:])
    assert whole.stop_reason == "eos" and len(generator.calls) == 2
    assert whole.prefill_tokens == generator.calls[1][0]  # the second call read the first part and the output
    assert whole.num_tokens == sum(generated for _, generated in generator.calls) == len(whole.token_ids) - \
        whole.inserted_tokens


def test_an_answer_only_the_tool_printed_is_not_taken():
    """The program prints a boxed answer and the policy never states one: the search has no answer, and the gold
    grades the policy's words as wrong, though the solution shown holds the tool's \\boxed{42}."""
    solution = ["<think>\n", "```python\n", "print(chr(92) + 'boxed{' + str(6 * 7) + '}')\n", "```\n", "</think>\n",
                "I do not know."]
    for method, options in (("greedy", {}), ("beam", {"beam_width": 1, "num_children": 1})):
        generator = ScriptedGenerator(solution, output="\\boxed{42}")
        result = solve(generator.encode("Q: 6 * 7?\n"), generator, method, budget_tokens=500, tools=["python"],
                       tool_timeout_s=2.0, gold="42", value_fn=lambda problem, steps: 0.5, **options)
        assert result.answer is None and not result.correct  # beam: no solution finished with an answer
        if method == "greedy":  # its one sample is the solution, with the tool's output shown
            assert OUTPUT_OPEN + "\\boxed{42}" + OUTPUT_CLOSE in "".join(result.steps), result.steps
            assert result.policy_text == "".join(solution) and result.correct is False


def test_a_solutions_tool_calls_are_counted_where_they_ran_not_read_from_its_text():
    """A program that prints the output fence itself: its solution shows two fences and made one call."""
    solution = ["<think>\n", "```python\n", "print('`' * 3 + 'output')\n", "```\n", "</think>\n",
                "The answer is \\boxed{42}."]
    for method, options in (("greedy", {}), ("beam", {"beam_width": 1, "num_children": 1})):
        generator = ScriptedGenerator(solution, output="```output")
        result = solve(generator.encode("Q: 6 * 7?\n"), generator, method, budget_tokens=500, tools=["python"],
                       tool_timeout_s=2.0, value_fn=lambda problem, steps: 0.5, **options)
        assert "".join(result.steps).count(OUTPUT_OPEN) == 2, result.steps
        assert result.tool_calls == 1 and result.summary()["tool_calls"] == 1
    assert solve(generator.encode("Q: 6 * 7?\n"), ScriptedGenerator(), "greedy", budget_tokens=500).tool_calls == 0


def test_batched_searches_with_tools_answer_as_searches_run_one_at_a_time():
    """solve_many with tools and concurrency: the searches' calls meet in one tool generator, each search's seeds
    its own, so the answers and the tokens spent are those of the searches run one after another."""
    from search import solve_many

    prompts = [ScriptedGenerator().encode(f"Q{i}: 6 * 7?\n") for i in range(3)]
    one_by_one, batched = (solve_many(prompts, ScriptedGenerator(), "self_consistency", budget_tokens=500,
                                      seeds=[1, 2, 3], concurrency=concurrency, tools=["python"], tool_timeout_s=2.0,
                                      n=2) for concurrency in (1, 3))
    assert [s["answer"] for s in batched] == [s["answer"] for s in one_by_one] == ["42"] * 3
    assert [s["tokens"] for s in batched] == [s["tokens"] for s in one_by_one]
    assert all(s["policy_text"] == "".join(SOLUTION) and OUTPUT_OPEN in "".join(s["steps"]) for s in batched)


def test_an_unknown_tool_is_refused_before_any_generation():
    generator = ScriptedGenerator()
    with pytest.raises(ValueError, match="tools: unknown tool 'bash'"):
        solve(generator.encode("Q?\n"), generator, "greedy", budget_tokens=100, tools=["bash"])
    assert generator.calls == []
