"""problems: synthetic problems, bundled dataset loaders (offline), the sources table, prompts, the HF dataset view."""

from __future__ import annotations

import re

import pytest

from model.config import ConfigError
from problems import (Problem, build_prompt, gsm8k_answer, hub, load_aime, load_gsm8k, load_math500, sources,
                      split_synthetic, synthetic_math, synthetic_problems, to_hf_dataset)

LINE = re.compile(r"^(\d+) ([+\-*]) (\d+) = (\d+)$")
SOLUTION = re.compile(r"^<think>\n((?:\d+ [+\-*] \d+ = \d+\n)+)</think>\nThe answer is \\boxed\{(\d+)\}\.$")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never touch the network: loaders must take the bundled copies."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


# ------------------------------------------------------------------------------------------------ synthetic


def test_synthetic_is_deterministic_and_seed_dependent():
    first = synthetic_problems(50, seed=7, levels=[1, 2, 3])
    assert first == synthetic_problems(50, seed=7, levels=[1, 2, 3])
    assert [p.question for p in first] != [p.question for p in synthetic_problems(50, seed=8, levels=[1, 2, 3])]
    assert len({p.question for p in first}) == 50 and len({p.id for p in first}) == 50


@pytest.mark.parametrize("levels", [[1], [2], [3], [1, 2, 3]])
def test_solutions_have_one_correct_line_per_operation(levels):
    problems = synthetic_problems(300, seed=1, levels=levels)
    assert {p.level for p in problems} == set(levels)
    for problem in problems:
        match = SOLUTION.match(problem.solution)
        assert match, problem.solution
        lines = match.group(1).strip().split("\n")
        assert len(lines) == problem.level
        previous = None
        for line in lines:
            a, op, b, c = LINE.match(line).groups()
            assert eval(f"{a} {op} {b}") == int(c)  # noqa: S307 - digits and one operator, checked by LINE
            assert previous is None or int(a) == previous  # each step works on the running total
            previous = int(c)
        assert match.group(2) == problem.answer == str(previous)
        assert int(problem.answer) >= 0
        assert problem.source == "synthetic"


def test_synthetic_numbers_stay_small_per_level():
    for level, bound in ((1, 20), (2, 50), (3, 50)):
        for problem in synthetic_problems(200, seed=2, levels=[level]):
            numbers = [int(x) for x in re.findall(r"\d+", problem.question)]
            assert max(numbers) < bound, problem.question
            totals = [int(line.split(" = ")[1]) for line in problem.solution.split("\n")[1:-2]]
            assert max(totals) <= synthetic_math.LIMITS[level][2], problem.solution


def test_synthetic_language_is_templated_and_small():
    problems = synthetic_problems(500, seed=3, levels=[1, 2, 3])
    words = {w for p in problems for w in re.findall(r"[A-Za-z]+", p.question)}
    assert len(words) < 80, sorted(words)
    assert all(p.question.endswith("now?") for p in problems)
    # Several templates per level: every operator and both openings occur.
    text = " ".join(p.solution for p in problems)
    assert all(f" {op} " in text for op in "+-*")
    assert any("bags of" in p.question for p in problems) and any(" has " in p.question for p in problems)


def test_split_synthetic_is_disjoint_and_stable():
    train, held_out = split_synthetic(400, 100, seed=0, levels=[1, 2, 3])
    assert len(train) == 400 and len(held_out) == 100
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert {p.level for p in held_out} == {1, 2, 3}
    # The held-out set does not move when the training set grows.
    _, again = split_synthetic(1000, 100, seed=0, levels=[1, 2, 3])
    assert [p.question for p in again] == [p.question for p in held_out]


def test_synthetic_rejects_bad_levels():
    with pytest.raises(ValueError):
        synthetic_problems(3, seed=0, levels=[])
    with pytest.raises(ValueError):
        synthetic_problems(3, seed=0, levels=[0])


# ------------------------------------------------------------------------------------------------ real datasets


def test_offline_loaders_return_the_bundled_sets():
    gsm_test = load_gsm8k("test")
    assert len(gsm_test) == 1319
    assert gsm_test[0].answer == "18" and gsm_test[0].source == "gsm8k" and "####" in gsm_test[0].solution
    assert len(load_math500()) == 500
    math = load_math500()
    assert {p.level for p in math} == {1, 2, 3, 4, 5}
    assert math[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    for year in (2024, 2025):
        aime = load_aime(year)
        assert len(aime) == 30 and all(p.answer.isdigit() and 0 <= int(p.answer) <= 999 for p in aime)
        assert len({p.id for p in aime}) == 30
    assert load_aime(2024)[0].answer == "204"


def test_gsm8k_answer_strips_thousands_separators():
    assert gsm8k_answer("so 1,000 + 234 = <<1000+234=1234>>1,234\n#### 1,234") == "1234"
    assert all("," not in p.answer and p.answer.lstrip("-").replace(".", "").isdigit()
               for p in load_gsm8k("train"))


def test_loaders_reject_unknown_splits():
    with pytest.raises(ValueError):
        load_gsm8k("validation")
    with pytest.raises(ValueError):
        load_aime(2023)


def test_math_train_needs_the_hub_and_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="DigitalLearningGmbH/MATH-lighteval is not bundled in data/"):
        sources.load_split("math_train", "train")


def test_hub_is_not_tried_offline(monkeypatch):
    def fail(*_, **__):
        raise AssertionError("the hub was probed while HF_HUB_OFFLINE=1")

    monkeypatch.setattr(hub, "_hub_reachable", fail)
    assert hub.hub_offline()
    assert len(load_aime(2025)) == 30


# ------------------------------------------------------------------------------------------------ prompts, HF view


def test_build_prompt_uses_the_chat_template():
    from model import load_tokenizer

    tokenizer = load_tokenizer()
    problem = synthetic_problems(1, seed=0, levels=[1])[0]
    ids = build_prompt(problem, tokenizer)
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    text = tokenizer.decode(ids)
    assert text.startswith(tokenizer.bos_token) and problem.question in text
    assert text.endswith("<｜Assistant｜>")
    with_system = tokenizer.decode(build_prompt(problem, tokenizer, system_prompt="Reason step by step."))
    assert "Reason step by step." in with_system and len(with_system) > len(text)


def test_build_prompt_without_a_chat_template_is_plain_text():
    """A base model's tokenizer has no chat template: the prompt is text it can continue."""
    from model import load_tokenizer

    tokenizer = load_tokenizer()
    tokenizer.chat_template = None
    problem = synthetic_problems(1, seed=0, levels=[1])[0]
    text = tokenizer.decode(build_prompt(problem, tokenizer, system_prompt="Reason step by step."),
                            skip_special_tokens=True)
    assert text == f"Reason step by step.\n\nProblem: {problem.question}\nSolution:"


def test_few_shot_prompts_show_worked_examples_first():
    """A base model sees "Problem: ... Solution: ..." pairs before the problem; a chat model earlier turns."""
    from model import load_tokenizer
    from problems import few_shot_examples

    problem = load_gsm8k("test")[0]
    examples = few_shot_examples("gsm8k", 2)
    assert examples[0].question == load_gsm8k("train")[0].question
    assert examples[0].solution.endswith("The answer is \\boxed{72}.") and "<<" not in examples[0].solution
    tokenizer = load_tokenizer()
    chat = tokenizer.decode(build_prompt(problem, tokenizer, examples=examples))
    assert chat.count("<｜User｜>") == 3 and chat.count("<｜Assistant｜>") == 3
    assert chat.index(examples[1].solution) < chat.index(problem.question) and chat.endswith("<｜Assistant｜>")
    tokenizer.chat_template = None
    plain = tokenizer.decode(build_prompt(problem, tokenizer, examples=examples), skip_special_tokens=True)
    assert plain == "".join(f"Problem: {e.question}\nSolution: {e.solution}\n\n" for e in examples) + \
        f"Problem: {problem.question}\nSolution:"


def test_few_shot_examples_never_come_from_the_evaluated_problems():
    """Synthetic examples come from the training stream (disjoint from the held-out set); sets without a
    training split (MATH-500, AIME, a user's file) take the project's own examples, which grade as correct."""
    from rewards import math_accuracy
    from problems import FEW_SHOT_MATH, few_shot_examples, load_split

    held_out = {p.question for p in load_split("synthetic", "test", levels=[1])}
    shots = few_shot_examples("synthetic", 4, levels=[1])
    assert len(shots) == 4 and not {s.question for s in shots} & held_out
    for name in ("math500", "aime24", "mine"):
        assert few_shot_examples(name, 3) == FEW_SHOT_MATH[:3]
    assert math_accuracy([e.solution for e in FEW_SHOT_MATH], answer=[e.answer for e in FEW_SHOT_MATH]) == [1.0] * 4
    assert few_shot_examples("aime25", 0) == []
    with pytest.raises(ConfigError, match="at most 4 few-shot examples"):
        few_shot_examples("math500", 5)


def test_to_hf_dataset_columns():
    problems = synthetic_problems(6, seed=0, levels=[1, 2]) + load_aime(2024)[:2]
    dataset = to_hf_dataset(problems)
    assert {"prompt", "question", "answer", "solution", "level", "source", "id"} <= set(dataset.column_names)
    assert len(dataset) == 8
    assert dataset[0]["prompt"] == [{"role": "user", "content": problems[0].question}]
    assert dataset[7]["level"] is None and dataset[0]["level"] == 1


# ------------------------------------------------------------------------------------------------ cursor


def test_problem_is_a_plain_dataclass():
    problem = Problem("x", "q", "1", None, "synthetic", None)
    assert problem.solution is None and problem.level is None


# ------------------------------------------------------------------------------------------------ the dataset table


def data_config(**fields):
    """A DataConfig's fields (defaults from rl.config, unvalidated so every registry name can be tried)."""
    import dataclasses
    from types import SimpleNamespace

    from rl.config import DataConfig

    return SimpleNamespace(**{**dataclasses.asdict(DataConfig()), **fields})


def test_synthetic_train_and_eval_are_the_disjoint_split():
    train, held_out = sources.load_problems(data_config(train="synthetic", eval="synthetic", num_train=300, num_eval=40))
    assert (train, held_out) == split_synthetic(300, 40, seed=0, levels=[1, 2, 3])  # what runs so far trained on
    assert len(train) == 300 and len(held_out) == 40
    assert not {p.question for p in train} & {p.question for p in held_out}


def test_synthetic_eval_of_0_is_the_standard_held_out_set():
    _, held_out = sources.load_problems(data_config(train="synthetic", eval="synthetic", num_train=10, num_eval=0))
    assert len(held_out) == sources.SYNTHETIC_EVAL_SIZE == 200


@pytest.mark.parametrize("name, source, size", [("gsm8k", "gsm8k", 1319), ("math", "math500", 500),
                                                ("math500", "math500", 500), ("aime2024", "aime2024", 30),
                                                ("aime25", "aime2025", 30)])
def test_synthetic_train_with_any_eval_set(name, source, size):
    config = data_config(train="synthetic", eval=name, num_train=50, num_eval=0)
    train, evaluation = sources.load_problems(config)
    assert len(evaluation) == size and {p.source for p in evaluation} == {source}
    # The synthetic training problems do not depend on the evaluation set chosen.
    same_train, _ = sources.load_problems(data_config(train="synthetic", eval="synthetic", num_train=50, num_eval=0))
    assert train == same_train and {p.source for p in train} == {"synthetic"}
    limited = sources.load_problems(data_config(train="synthetic", eval=name, num_train=50, num_eval=7))[1]
    assert limited == evaluation[:7]


def test_gsm8k_train_with_synthetic_eval():
    train, held_out = sources.load_problems(data_config(train="gsm8k", eval="synthetic", num_train=100, num_eval=30))
    assert len(train) == 100 and all(p.id.startswith("gsm8k-train-") for p in train)
    # The same held-out problems as a synthetic run with this num_eval, never one of its training problems.
    synthetic_train, synthetic_held_out = split_synthetic(500, 30, seed=0, levels=[1, 2, 3])
    assert held_out == synthetic_held_out
    assert not {p.question for p in held_out} & {p.question for p in synthetic_train}


def test_gsm8k_train_and_test_limits():
    train, test = sources.load_problems(data_config(train="gsm8k", eval="gsm8k", num_train=0, num_eval=0))
    assert len(train) == 7473 and len(test) == 1319
    assert all(p.id.startswith("gsm8k-train-") for p in train) and all(p.id.startswith("gsm8k-test-") for p in test)
    train, test = sources.load_problems(data_config(train="gsm8k", eval="gsm8k", num_train=20, num_eval=5))
    assert [p.id for p in train] == [f"gsm8k-train-{i}" for i in range(20)] and len(test) == 5


@pytest.mark.parametrize("name, title", [("math", "MATH-500"), ("math500", "MATH-500"), ("aime24", "AIME 2024"),
                                         ("aime2025", "AIME 2025")])
def test_training_on_a_test_set_is_refused(name, title):
    with pytest.raises(ValueError, match=rf"data\.train: '{name}' is {title}, a test set") as raised:
        sources.load_problems(data_config(train=name, eval="synthetic"))
    assert "Train on one of 'synthetic', 'synthetic_code', 'mbpp', 'gsm8k'" in str(raised.value)


@pytest.mark.parametrize("field_name", ["train", "eval"])
def test_unknown_dataset_names_the_field_and_the_choices(field_name):
    with pytest.raises(ValueError, match=rf"data\.{field_name}: must be one of 'synthetic', .*'gsm8k', .*got 'mnist'"):
        sources.load_problems(data_config(**{field_name: "mnist"}))


def test_synthetic_training_needs_a_size():
    with pytest.raises(ValueError, match="num_train > 0"):
        sources.load_problems(data_config(train="synthetic", num_train=0))


def test_table_names_and_splits():
    assert sources.DATASET_NAMES == ("synthetic", "synthetic_code", "code", "humaneval", "mbpp", "gsm8k", "math_train",
                                  "math500", "math", "aime2024", "aime24", "aime2025", "aime25", "synthetic_tools",
                                  "tools")
    assert sources.TRAIN_DATASETS == ("synthetic", "synthetic_code", "mbpp", "gsm8k", "math_train", "synthetic_tools")
    assert "HumanEval, a test set" in sources.split_error("humaneval", "train")
    assert all(sources.split_error(name, "test") is None for name in sources.DATASET_NAMES if name != "math_train")
    assert "a training set with no held-out split" in sources.split_error("math_train", "test")
    assert sources.data_source("math", "test").name == "math500"
    with pytest.raises(ValueError, match="split must be"):
        sources.split_error("gsm8k", "validation")


def test_load_split_is_what_evaluation_reads():
    assert sources.load_split("aime24", "test") == load_aime(2024)
    assert sources.load_split("math", "test", num_eval=3) == load_math500()[:3]
    # Synthetic: a shorter held-out set is the start of the standard one (the stream puts evaluation first).
    assert sources.load_split("synthetic", "test", num_eval=5, seed=3) == split_synthetic(0, 200, 3)[1][:5]


# ------------------------------------------------------------------------------------------------ a user's file


def test_a_user_benchmark_with_repeated_ids_is_refused_naming_them(tmp_path):
    from problems import load_custom

    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "a", "problem": "1+1", "answer": "2"}\n{"id": "b", "problem": "2+2", "answer": "4"}\n'
                    '{"id": "a", "problem": "3+3", "answer": "6"}\n')
    with pytest.raises(ConfigError, match=r"1 id is used by more than one row \('a'\)"):
        load_custom(path)
    assert [p.id for p in load_custom(path, id_field=None)] == ["mine-1", "mine-2", "mine-3"]


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    from problems import load_custom

    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"problem": "1+1", "answer": "2"}\n'.encode() + '{"problem": "café", "answer": "2"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9"):
        load_custom(path)


def test_synthetic_tool_problems_are_exact_disjoint_and_solved_both_ways():
    from problems import split_synthetic_tools
    from rewards.tools import ToolRunner, find_call, split_observations

    train, held_out = split_synthetic_tools(300, 60, seed=3, levels=[1, 2, 3])
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert split_synthetic_tools(300, 60, seed=3, levels=[1, 2, 3])[1] == held_out  # seeded
    assert split_synthetic_tools(100, 60, seed=3, levels=[1, 2, 3])[1] == held_out  # independent of n_train
    calls = [p for p in train if "```python" in p.solution]
    assert 0.35 < len(calls) / len(train) < 0.65  # both habits for the warm start
    for problem in train:
        expression = problem.question.removeprefix("What is ").removesuffix("?")
        assert eval(expression) == int(problem.answer)  # noqa: S307 - our own generated arithmetic
        assert problem.solution.endswith("\\boxed{" + problem.answer + "}.")
        pieces = split_observations(problem.solution)
        if problem in calls:  # the output written where the tool's goes
            assert [observed for _, observed in pieces] == [False, True, False] and pieces[1][0] == problem.answer
        else:  # every line of arithmetic right
            assert len(pieces) == 1
            for line in problem.solution.splitlines():
                if " = " in line:
                    left, right = line.split(" = ")
                    assert eval(left) == int(right)  # noqa: S307
    # each traced program prints the answer when run
    runner = ToolRunner(timeout_s=2.0, num_workers=2)
    try:
        programs = [find_call(split_observations(p.solution)[0][0]) for p in calls[:6]]
        assert runner.run(programs) == [p.answer for p in calls[:6]]
    finally:
        runner.shutdown()


def test_the_tool_task_without_tool_traces_asks_the_same_questions():
    from problems import split_synthetic_tools
    from rl.config import Config

    half, _ = split_synthetic_tools(80, 10, seed=1, levels=[1, 2])
    none, _ = split_synthetic_tools(80, 10, seed=1, levels=[1, 2], tool_share=0.0)
    assert [p.question for p in half] == [p.question for p in none]
    assert any("```python" in p.solution for p in half) and not any("```python" in p.solution for p in none)
    config = Config.from_dict({"data": {"train": "synthetic_tools", "eval": "synthetic_tools", "num_train": 80,
                                        "num_eval": 10, "seed": 1, "levels": [1, 2], "tool_traces": 0.0}})
    assert [p.solution for p in sources.load_problems(config.data)[0]] == [p.solution for p in none]
