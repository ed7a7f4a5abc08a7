"""Format reward, overlong penalty and the weighted combiner."""

import pickle

import pytest

from rewards import (FormatReward, LengthPenalty, RewardCallError, WeightedReward, format_reward, length_penalty,
                     math_accuracy)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("<think>2+2=4</think> So \\boxed{4}.", 1.0),
        ("<think>sum</think>\n#### 4", 1.0),
        ("<think>sum</think><answer>4</answer>", 1.0),
        ("<think>sum</think> four", 0.0),  # no final answer
        ("<think></think> \\boxed{4}", 0.0),  # empty reasoning
        ("\\boxed{4}", 0.0),  # no think block
        ("<think>a</think><think>b</think>\\boxed{4}", 0.0),
        ("<think>a</think>", 0.0),
    ],
)
def test_format_reward(text, score):
    assert format_reward([text]) == [score]


def test_format_configurable_and_chat():
    reward = FormatReward(think_tags=("<reasoning>", "</reasoning>"), prompt_opens_think=True)
    assert reward([[{"role": "assistant", "content": "work</reasoning>\\boxed{1}"}]]) == [1.0]
    logged = {}
    format_reward(["x"], log_extra=logged.__setitem__)
    assert logged["format_reason"] == ["missing or misplaced think block"]


def test_length_penalty():
    pen = LengthPenalty(max_len=100, cache=20)
    assert pen(["a"] * 3, completion_ids=[[0] * 50, [0] * 90, [0] * 120]) == [0.0, -0.5, -1.0]
    assert length_penalty(["short"]) == [0.0]
    with pytest.raises(ValueError):
        LengthPenalty(max_len=10, cache=10)


def test_weighted_combination_reports_components():
    def broken(completions, **kwargs):
        raise RuntimeError("third-party bug")

    combo = WeightedReward({"acc": (math_accuracy, 1.0), "fmt": (format_reward, 0.5), "bad": (broken, 1.0)})
    logged = {}
    scores = combo(["<think>x</think> \\boxed{4}", "\\boxed{5}"], answer=["4", None], log_extra=logged.__setitem__)
    assert scores == [1.5, 0.0]
    assert logged["reward/acc"] == [1.0, None] and logged["reward/fmt"] == [1.0, 0.0]
    assert "RuntimeError" in combo.last_errors["bad"]
    assert pickle.loads(pickle.dumps(WeightedReward({"fmt": (format_reward, 1.0)})))(["x"]) == [0.0]


def test_format_explain_says_what_is_missing():
    texts = ["<think>2+2=4</think> So \\boxed{4}.", "<think>sum</think> four", "\\boxed{4}"]
    scores, reasons = format_reward.explain(texts, answer=["4"] * 3)
    assert scores == format_reward(texts) == [1.0, 0.0, 0.0]
    assert reasons == ["ok", "no final answer (boxed, #### or answer tags)", "missing or misplaced think block"]


def test_format_and_length_malformed_calls_raise_and_bad_samples_score_zero():
    for reward in (format_reward, format_reward.explain, length_penalty):
        with pytest.raises(RewardCallError, match="completions is a str.*wrap a single completion in a list"):
            reward("<think>a</think> \\boxed{1}")  # used to be scored character by character
        with pytest.raises(RewardCallError, match="completions is None"):
            reward(None)
    with pytest.raises(RewardCallError, match="^format_reward: 2 completions but 1 value in column 'answer'"):
        format_reward(["a", "b"], answer=["4"])
    with pytest.raises(RewardCallError, match="^length_penalty: 2 completions but 1 value in column 'completion_ids'"):
        LengthPenalty(max_len=100, cache=20)(["a", "b"], completion_ids=[[0] * 90])  # used to fall back to chars
    assert format_reward.explain([None, 3]) == ([0.0, 0.0], ["no text", "no text"])
    assert LengthPenalty(max_len=100, cache=20)([None, "a"], completion_ids=[None, [0] * 90]) == [0.0, -0.5]


def test_weighted_reward_raises_for_a_malformed_call_but_keeps_a_component_s_bug():
    combo = WeightedReward({"acc": (math_accuracy, 1.0), "fmt": (format_reward, 0.5)})
    with pytest.raises(RewardCallError, match="^weighted_reward: completions is a str"):
        combo("\\boxed{4}", answer=["4"])
    with pytest.raises(RewardCallError, match="^weighted_reward: 2 completions but 1 value in column 'answer'"):
        combo(["\\boxed{4}", "\\boxed{5}"], answer=["4"])  # used to score the math component 0 silently
    with pytest.raises(RewardCallError, match="^math_accuracy: column 'answer' is a str"):
        combo(["\\boxed{4}"], answer="4")  # a component's own call check is not swallowed as a component bug
    assert combo([None, "\\boxed{4}"], answer=["4", "4"]) == [0.0, 1.0]


def test_weighted_reward_score_keeps_not_applicable_apart_from_zero_and_gives_reasons():
    from rewards import math_accuracy

    combo = WeightedReward({"acc": (math_accuracy, 1.0)})
    scored = combo.score(["\\boxed{4}", "\\boxed{4}"], answer=["4", None])
    assert scored["total"] == [1.0, None] and scored["components"]["acc"] == [1.0, None]
    assert scored["reasons"]["acc"][0].startswith("string-equal") and scored["reasons"]["acc"][1] == "no gold"
    assert combo(["\\boxed{4}", "\\boxed{4}"], answer=["4", None]) == [1.0, None]  # TRL reads None as NaN


def test_each_reward_says_which_dataset_columns_it_needs():
    """What the trainer checks at start-up (rl.rewarding.column_errors): a declared attribute, or a user function's
    keyword parameters without defaults (TRL passes every column by name)."""
    from rewards import code_execution, format_reward, length_penalty, math_accuracy, math_steps
    from rewards.calls import missing_columns, required_columns

    assert required_columns(math_accuracy) == [("answer", "solution")]
    assert required_columns(code_execution) == [("tests",)]
    assert required_columns(format_reward) == required_columns(length_penalty) == required_columns(math_steps) == []

    def mine(completions, gold, difficulty=1, log_extra=None, **kwargs):
        return [0.0] * len(completions)

    assert required_columns(mine) == [("gold",)]
    assert missing_columns(math_accuracy, ["id", "solution"]) == []
    assert missing_columns(code_execution, ["id", "answer"]) == [("tests",)]


def test_code_format_takes_a_program_as_the_final_answer_and_math_format_does_not():
    from rewards.format import code_format_reward

    program = "<think>plan</think>\n```python\ndef solve(n):\n    return n\n```"
    assert code_format_reward([program, "<think>plan</think>\n```python\n```", "<think>p</think> \\boxed{4}"]) == \
        [1.0, 0.0, 0.0]
    assert format_reward([program]) == [0.0]  # math's format is not paid for a code block
