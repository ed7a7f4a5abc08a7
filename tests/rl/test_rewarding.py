"""rl.rewarding: the reward stage's per-sample reasons, with the real reward functions and grading pool."""

from rl.rewarding import RewardWorker

COMPLETIONS = ["<think>\n2 + 2 = 4\n</think>\nThe answer is \\boxed{4}.", "<think>\n2 + 2 = }.", "no answer"]
COLUMNS = {"answer": ["4", "4", "4"], "solution": [None, None, None]}


def test_score_returns_reasons_of_the_functions_that_explain_themselves():
    worker = RewardWorker(["math_accuracy", "format", "length_penalty"], [1.0, 0.5, 1.0])
    scored = worker.score(COMPLETIONS, COLUMNS)
    assert set(scored) == {"total", "components", "errors", "reasons", "seconds"}
    assert scored["components"]["math_accuracy"] == [1.0, 0.0, 0.0]
    assert scored["total"] == [1.5, 0.0, 0.0] and scored["errors"] == {}
    assert scored["reasons"]["math_accuracy"] == ["string-equal (boxed): extracted '4', gold '4'",
                                                  "unfinished-text (last number '2' is not an answer)", "no-answer"]
    assert scored["reasons"]["format"] == ["ok", "missing or misplaced think block",
                                           "missing or misplaced think block"]
    assert scored["reasons"]["length_penalty"] == [None, None, None]  # no explain method: no reasons


def test_a_failing_function_gives_its_error_as_every_sample_s_reason():
    worker = RewardWorker(["json:loads", "format"])  # json.loads(list, answer=...) raises TypeError
    scored = worker.score(COMPLETIONS, COLUMNS)
    assert scored["components"]["json:loads"] == [0.0, 0.0, 0.0]
    assert all(r.startswith("failed: TypeError") for r in scored["reasons"]["json:loads"])
    assert scored["reasons"]["format"][0] == "ok"


def test_not_applicable_stays_none_and_is_left_out_of_the_total():
    """None (no gold for a sample) is not 0: the component stays None, the total sums what applies, and a sample
    no function applies to has total None (the trainer's advantages then leave it out of its group)."""
    worker = RewardWorker(["math_accuracy", "format"], [1.0, 0.5])
    scored = worker.score(["\\boxed{4}", "\\boxed{4}"], {"answer": ["4", None]})
    assert scored["components"]["math_accuracy"] == [1.0, None]
    assert scored["total"] == [1.0, 0.0]  # format applies to both (and fails both: no think block)
    alone = RewardWorker(["math_accuracy"]).score(["\\boxed{4}", "\\boxed{4}"], {"answer": ["4", None]})
    assert alone["total"] == [1.0, None]


def test_the_names_the_config_accepts_are_the_registry_s():
    from rl.rewarding import REWARD_NAMES, _registry, reward_name_error

    assert tuple(_registry(1.0)) == REWARD_NAMES
    assert all(reward_name_error(name) is None for name in REWARD_NAMES)
    assert reward_name_error("json:loads") is None and "not callable" in reward_name_error("math:pi")
