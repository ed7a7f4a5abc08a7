"""Problems: seeded synthetic arithmetic, the GSM8K / MATH-500 / AIME evaluation sets, prompts, and a resumable cursor.

One table, `DATA_SOURCES`, names every problem set and the splits it has; `load_problems(data_config)` (training)
and `load_split(name, "test", ...)` (evaluation) go through it, so a test-only set can never be trained on.

Real datasets load through the `datasets` library from the hub when it answers quickly, otherwise (and always with
`HF_HUB_OFFLINE=1`) from the bundled JSON Lines copies in data/ (see data/SOURCES.md). Synthetic problems are the
embedded default's curriculum: templated, small-vocabulary word problems whose reference solutions use exactly the
format the SFT warm start teaches and the rewards parse:

    <think>
    7 + 5 = 12
    </think>
    The answer is \\boxed{12}.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from model.config import ConfigError

logger = logging.getLogger(__name__)

DATA_DIR = Path(os.environ.get("REASONRL_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))
HUB_TIMEOUT_S = 3.0  # a reachable hub answers a TCP connect in well under a second


@dataclass
class Problem:
    """One problem with its gold answer.

    Attributes:
        id: unique within its source, e.g. "gsm8k-test-17", "syn-2-00041", "2024-I-1".
        question: the text shown to the policy.
        answer: the gold final answer as a string ("12", "\\frac{1}{2}").
        solution: a reference solution (for synthetic problems, the exact SFT target), or None.
        source: "synthetic", "gsm8k", "math500", "aime2024", "aime2025".
        level: difficulty (synthetic: number of operations; MATH: 1-5), or None.
        tests: a code problem's hidden tests (assert statements, the `code_execution` reward's format); None for
            math. A code problem's `answer` is a reference program (rl/code_data.py).
        entry_point: the function a code problem asks for.
    """

    id: str
    question: str
    answer: str
    solution: str | None
    source: str
    level: int | None
    tests: str | None = None
    entry_point: str | None = None


# ------------------------------------------------------------------------------------------------ synthetic

NAMES = [("Tom", "he", "him"), ("Anna", "she", "her"), ("Ben", "he", "him"), ("Lily", "she", "her"),
         ("Sam", "he", "him"), ("Mia", "she", "her"), ("Max", "he", "him"), ("Emma", "she", "her")]
OBJECTS = ["apples", "books", "coins", "stickers", "pencils", "cards", "marbles", "cookies"]
# One sentence per operation; {p} is the subject pronoun, {o} the object pronoun, {f} a friend, {n} the operand.
ADD = ["{P} buys {n} more.", "{P} finds {n} more.", "{F} gives {o} {n} more."]
SUB = ["{P} gives {n} to {f}.", "{P} loses {n}.", "{P} sells {n}."]
MUL = ["Then {p} has {n} times as many.", "After that {p} has {n} times as many."]
QUESTIONS = ["How many {obj} does {name} have now?", "How many {obj} does {p} have now?"]
# Per level: operand bound for + and -, largest multiplier, and a cap that keeps running totals small.
LIMITS = {1: (20, 9, 100), 2: (50, 4, 200), 3: (50, 3, 300)}


def _operation(rng: random.Random, total: int, level: int) -> tuple[str, int]:
    """Pick an operation that keeps the running total a non-negative integer no larger than the level's cap."""
    bound, max_mul, cap = LIMITS[min(level, 3)]
    choices = [op for op, ok in (("+", total < cap), ("-", total > 0), ("*", 1 <= total and total * 2 <= cap)) if ok]
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(1, min(bound - 1, cap - total))
    if op == "-":
        return op, rng.randint(1, min(total, bound - 1))
    return op, rng.randint(2, min(max_mul, cap // total))


def _apply(total: int, op: str, n: int) -> int:
    return total + n if op == "+" else total - n if op == "-" else total * n


def synthetic_problem(rng: random.Random, level: int, index: int = 0) -> Problem:
    """One word problem of `level` operations, its gold answer, and a one-line-per-operation reference solution.

    Two openings: "Tom has 7 apples." followed by `level` operation sentences, or (when the level allows a
    product) "Tom buys 3 bags of apples. Each bag has 4 apples." which is itself the first operation.
    """
    if level < 1:
        raise ValueError(f"synthetic levels start at 1, got {level}")
    bound, max_mul, cap = LIMITS[min(level, 3)]
    name, pronoun, obj_pronoun = rng.choice(NAMES)
    friend = rng.choice([n for n, _, _ in NAMES if n != name])
    obj = rng.choice(OBJECTS)
    fill = dict(p=pronoun, P=pronoun.capitalize(), o=obj_pronoun, f=friend, F=friend)
    sentences, lines = [], []
    if rng.random() < 0.3:
        bags = rng.randint(2, max_mul)
        per_bag = rng.randint(2, min(bound - 1, 12, cap // bags))
        sentences.append(f"{name} buys {bags} bags of {obj}. Each bag has {per_bag} {obj}.")
        total = bags * per_bag
        lines.append(f"{bags} * {per_bag} = {total}")
    else:
        total = rng.randint(1, bound - 1)
        sentences.append(f"{name} has {total} {obj}.")
    while len(lines) < level:
        op, n = _operation(rng, total, level)
        template = rng.choice(ADD if op == "+" else SUB if op == "-" else MUL)
        sentences.append(template.format(n=n, **fill))
        result = _apply(total, op, n)
        lines.append(f"{total} {op} {n} = {result}")
        total = result
    sentences.append(rng.choice(QUESTIONS).format(obj=obj, name=name, p=pronoun))
    solution = "<think>\n" + "\n".join(lines) + "\n</think>\nThe answer is \\boxed{" + str(total) + "}."
    return Problem(id=f"syn-{level}-{index:05d}", question=" ".join(sentences), answer=str(total),
                   solution=solution, source="synthetic", level=level)


def synthetic_problems(n: int, seed: int, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """`n` distinct synthetic problems, levels taken round-robin from `levels`; the same list for the same seed.

    Raises:
        ValueError: for an empty `levels`, a level < 1, or an `n` the templates cannot fill with distinct questions.
    """
    return distinct_problems(synthetic_problem, n, seed, levels, "synthetic problems", max_draws=20 * n + 1000)


def distinct_problems(make: Callable[[random.Random, int, int], Problem], n: int, seed: int, levels: Sequence[int],
                      what: str, max_draws: int) -> list[Problem]:
    """`n` problems `make(rng, level, index)` with distinct questions, levels round-robin, from one rng seeded
    with `seed` (the same list for the same seed); a repeated question is drawn again, `max_draws` at most."""
    if not levels:
        raise ValueError("levels must not be empty")
    rng = random.Random(seed)
    problems: list[Problem] = []
    seen: set[str] = set()
    draws = 0
    while len(problems) < n:
        draws += 1
        if draws > max_draws:
            raise ValueError(f"could not draw {n} distinct {what} for levels {list(levels)}")
        problem = make(rng, levels[len(problems) % len(levels)], len(problems))
        if problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems


def held_out_first(problems: list[Problem], n_eval: int, prefix: str) -> tuple[list[Problem], list[Problem]]:
    """(training, held-out) from one de-duplicated stream whose first `n_eval` problems are held out (so the
    held-out set stays the same when the training size changes); ids become "<prefix>-eval-<level>-<i>" and
    "<prefix>-train-<level>-<i>"."""
    held_out, train = problems[:n_eval], problems[n_eval:]
    for i, problem in enumerate(held_out):
        problem.id = f"{prefix}-eval-{problem.level}-{i:05d}"
    for i, problem in enumerate(train):
        problem.id = f"{prefix}-train-{problem.level}-{i:05d}"
    return train, held_out


def split_synthetic(n_train: int, n_eval: int, seed: int, levels: Sequence[int] = (1, 2, 3),
                    ) -> tuple[list[Problem], list[Problem]]:
    """Training and held-out problems with disjoint question texts (drawn from one de-duplicated stream).

    Evaluation problems come first in the stream, so the held-out set stays the same when `n_train` changes.
    """
    return held_out_first(synthetic_problems(n_eval + n_train, seed, levels), n_eval, "syn")


# ------------------------------------------------------------------------------------------------ real datasets


def hub_offline() -> bool:
    """True when the hub must not be tried: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no answer within
    HUB_TIMEOUT_S (checked once per process, so an unreachable hub costs at most one short timeout)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return not _hub_reachable()


@lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=HUB_TIMEOUT_S):
            return True
    except OSError:
        return False


def _load_rows(hub: tuple[str, str | None, str] | None, local: str | None) -> list[dict[str, Any]]:
    """Rows from the hub dataset (name, config, split) if reachable, else from data/<local> (JSON Lines); a
    dataset with no bundled copy (local None) needs the hub."""
    import datasets

    if hub is not None and not hub_offline():
        name, config, split = hub
        try:
            return list(datasets.load_dataset(name, config, split=split))
        except Exception as error:  # noqa: BLE001 - any hub failure means "use the bundled copy"
            if local is None:
                raise FileNotFoundError(f"hub dataset {name} ({split}) could not be loaded and no copy is bundled "
                                        f"in data/: {error}") from error
            logger.warning("hub dataset %s unavailable (%s); using bundled %s", name, error, local)
    if local is None:
        raise FileNotFoundError(f"hub dataset {hub[0] if hub else '?'} is not bundled in data/ and the hub is "
                                "unreachable or switched off (HF_HUB_OFFLINE): it needs a machine with the hub")
    path = DATA_DIR / local
    if not path.exists():
        raise FileNotFoundError(f"bundled dataset {path} is missing (set REASONRL_DATA_DIR to the data/ folder)")
    return list(datasets.load_dataset("json", data_files=str(path), split="train"))


def gsm8k_answer(answer_text: str) -> str:
    """GSM8K's gold answer: the text after '#### ', without thousands separators ("1,000" -> "1000")."""
    return answer_text.split("####")[-1].strip().replace(",", "")


def load_gsm8k(split: str = "train") -> list[Problem]:
    """GSM8K (openai/gsm8k, config main): 7473 train / 1319 test problems."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    rows = _load_rows(("openai/gsm8k", "main", split), f"gsm8k_{split}.jsonl")
    return [Problem(id=f"gsm8k-{split}-{i}", question=row["question"], answer=gsm8k_answer(row["answer"]),
                    solution=row["answer"], source="gsm8k", level=None) for i, row in enumerate(rows)]


def _math_level(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())  # the hub copy may say "Level 3"
    return int(digits) if digits else None


def load_math500() -> list[Problem]:
    """MATH-500 (HuggingFaceH4/MATH-500): 500 competition problems, levels 1-5, LaTeX answers."""
    rows = _load_rows(("HuggingFaceH4/MATH-500", None, "test"), "math500_test.jsonl")
    return [Problem(id=row.get("unique_id") or f"math500-{i}", question=row["problem"], answer=str(row["answer"]),
                    solution=row.get("solution"), source="math500", level=_math_level(row.get("level")))
            for i, row in enumerate(rows)]


MATH_TRAIN_HUB = ("DigitalLearningGmbH/MATH-lighteval", "default", "train")


def load_math_train() -> list[Problem]:
    """MATH's 7500 training problems (disjoint from its test set, hence from MATH-500), from the hub only: no copy
    is bundled. MATH gives no separate answer: the gold answer is the last \\boxed{} of the reference solution."""
    from rewards.extract import find_last_boxed

    rows = _load_rows(MATH_TRAIN_HUB, None)
    problems = [Problem(id=f"math-train-{i}", question=row["problem"], answer=find_last_boxed(row["solution"]) or "",
                        solution=row["solution"], source="math", level=_math_level(row.get("level")))
                for i, row in enumerate(rows)]
    return [problem for problem in problems if problem.answer]


AIME_HUB = {2024: ("HuggingFaceH4/aime_2024", None, "train"), 2025: ("math-ai/aime25", None, "test")}


def load_aime(year: int = 2024) -> list[Problem]:
    """AIME of `year` (2024: HuggingFaceH4/aime_2024, 2025: math-ai/aime25): 30 problems, integer answers."""
    if year not in AIME_HUB:
        raise ValueError(f"AIME year must be one of {sorted(AIME_HUB)}, got {year}")
    rows = _load_rows(AIME_HUB[year], f"aime{year % 100}.jsonl")
    return [Problem(id=str(row.get("id") or f"aime{year}-{i}"), question=row["problem"],
                    answer=str(int(row["answer"])) if str(row["answer"]).strip().isdigit() else str(row["answer"]),
                    solution=row.get("solution"), source=f"aime{year}", level=None) for i, row in enumerate(rows)]


# ------------------------------------------------------------------------------------------------ the dataset table

SYNTHETIC_EVAL_SIZE = 200  # synthetic problems held out when num_eval is 0 (there is no "whole" synthetic set)


@dataclass(frozen=True)
class DataSource:
    """A named problem set and the splits it has.

    Attributes:
        name: the canonical name ("math500"); `aliases` name it too ("math").
        title: how people call it, for messages ("MATH-500").
        splits: the splits it has: "train" (may be trained on) and/or "test" (evaluation only).
        load: split -> problems, for the real datasets; None for the synthetic generator, which
            `load_split` draws itself (its held-out problems must stay disjoint from its training ones).
        aliases: other accepted names.
        hub_only: no copy ships with the project: loading needs the Hugging Face hub.
    """

    name: str
    title: str
    splits: tuple[str, ...]
    load: Callable[[str], list[Problem]] | None
    aliases: tuple[str, ...] = ()
    hub_only: bool = False

    def has(self, split: str) -> bool:
        return split in self.splits


DATA_SOURCES: dict[str, DataSource] = {source.name: source for source in (
    DataSource("synthetic", "synthetic arithmetic", ("train", "test"), None),
    DataSource("synthetic_code", "synthetic one-line Python functions", ("train", "test"), None,
               aliases=("code",)),
    DataSource("humaneval", "HumanEval", ("test",), lambda split: _code_loader("humaneval")(split)),
    DataSource("mbpp", "MBPP (hub only)", ("train", "test"), lambda split: _code_loader("mbpp")(split),
               hub_only=True),
    DataSource("gsm8k", "GSM8K", ("train", "test"), load_gsm8k),
    DataSource("math_train", "MATH train (hub only)", ("train",), lambda split: load_math_train(), hub_only=True),
    DataSource("math500", "MATH-500", ("test",), lambda split: load_math500(), aliases=("math",)),
    DataSource("aime2024", "AIME 2024", ("test",), lambda split: load_aime(2024), aliases=("aime24",)),
    DataSource("aime2025", "AIME 2025", ("test",), lambda split: load_aime(2025), aliases=("aime25",)),
)}
ALIASES = {alias: source.name for source in DATA_SOURCES.values() for alias in source.aliases}
# Every accepted name, each source's aliases after it ("math" keeps meaning MATH-500, as configs spell it).
DATASET_NAMES: tuple[str, ...] = tuple(name for source in DATA_SOURCES.values()
                                      for name in (source.name, *source.aliases))
TRAIN_DATASETS: tuple[str, ...] = tuple(name for name, source in DATA_SOURCES.items() if source.has("train"))
TEST_DATASETS: tuple[str, ...] = tuple(name for name, source in DATA_SOURCES.items() if source.has("test"))


def _code_loader(name: str) -> Callable[[str], list[Problem]]:
    from rl.code_data import LOADERS

    return LOADERS[name]


def split_error(name: str, split: str) -> str | None:
    """Why dataset `name` cannot give its `split` split ("train" or "test"), or None when it can.

    The message is worded to follow a field name ("data.train: <message>"): an unknown name lists every accepted
    one; a test-only set asked for training says it is a test set and lists the sets that can be trained on.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    source = DATA_SOURCES.get(ALIASES.get(name, name))
    if source is None:
        return f"must be one of {', '.join(map(repr, DATASET_NAMES))}, got {name!r}"
    if split == "train" and not source.has("train"):
        return (f"{name!r} is {source.title}, a test set: training on it would train on the evaluation problems. "
                f"Train on one of {', '.join(map(repr, TRAIN_DATASETS))}")
    if split == "test" and not source.has("test"):
        return (f"{name!r} is {source.title}, a training set with no held-out split. Evaluate on one of "
                f"{', '.join(map(repr, TEST_DATASETS))}")
    return None


def data_source(name: str, split: str) -> DataSource:
    """The source registered under `name` (or an alias), checked to have `split`; ValueError saying why not."""
    error = split_error(name, split)
    if error is not None:
        raise ConfigError(f"{split} dataset: {error}")
    return DATA_SOURCES[ALIASES.get(name, name)]


def load_split(name: str, split: str, *, num_train: int = 0, num_eval: int = 0, seed: int = 0,
               levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """The `split` problems of dataset `name`, the arguments meaning what the DataConfig fields of the same names do.

    Real datasets: the first `num_train` (train split) or `num_eval` (test split) problems, 0 = all of them.
    Synthetic: always the stream `split_synthetic(num_train, num_eval or SYNTHETIC_EVAL_SIZE, seed, levels)`, so the
    held-out problems never overlap the training ones, the training problems do not depend on which evaluation set
    is chosen, and the held-out ones not on `num_train`. Synthetic training needs `num_train` > 0.

    Raises:
        ValueError: for an unknown name, a test-only set asked for training, or synthetic training with num_train 0.
    """
    source = data_source(name, split)
    if source.load is not None:
        problems = source.load(split)
        limit = num_train if split == "train" else num_eval
        return problems[:limit] if limit else problems
    if split == "train" and num_train <= 0:
        raise ValueError("synthetic training needs num_train > 0 (there is no 'whole' synthetic set)")
    if source.name == "synthetic_code":
        from rl.code_data import split_synthetic_code as split_stream
    else:
        split_stream = split_synthetic
    train, held_out = split_stream(num_train if split == "train" else 0, num_eval or SYNTHETIC_EVAL_SIZE, seed, levels)
    return train if split == "train" else held_out


def load_problems(data_config: Any) -> tuple[list[Problem], list[Problem]]:
    """(training problems, held-out problems) for a DataConfig (fields train, eval, num_train, num_eval, seed,
    levels): `data_config.train`'s train split and `data_config.eval`'s test split, through `load_split`.

    Raises:
        ValueError: naming the field, for an unknown dataset or a test-only set (MATH-500, AIME) given as data.train.
    """
    for field_name, split in (("train", "train"), ("eval", "test")):
        error = split_error(getattr(data_config, field_name), split)
        if error is not None:
            raise ValueError(f"data.{field_name}: {error}")
    sizes = dict(num_train=data_config.num_train, num_eval=data_config.num_eval, seed=data_config.seed,
                 levels=data_config.levels)
    return load_split(data_config.train, "train", **sizes), load_split(data_config.eval, "test", **sizes)


def load_custom(path: str | Path, *, problem_field: str = "problem", answer_field: str = "answer",
                id_field: str | None = "id") -> list[Problem]:
    """A user's benchmark: a JSON Lines file with one problem per row, its fields named by the arguments (a row
    without the id field gets "<file stem>-<line>"). The source is the file's stem.

    Raises:
        ConfigError: the file is missing or not JSON Lines, or a row lacks the problem or answer field (the message
            names the file, the line and the fields the row has).
    """
    from evals.predictions import jsonl_rows

    path = Path(path)
    problems = []
    for number, row in jsonl_rows(path, "benchmark", ConfigError):
        for name, option in ((problem_field, "--problem-field"), (answer_field, "--answer-field")):
            if name not in row:
                raise ConfigError(f"{path}:{number}: no field {name!r} (the row has {', '.join(row)}; name the "
                                  f"field with {option})")
        problem_id = row.get(id_field) if id_field else None
        problems.append(Problem(id=str(problem_id) if problem_id is not None else f"{path.stem}-{number}",
                                question=str(row[problem_field]), answer=str(row[answer_field]),
                                solution=row.get("solution"), source=path.stem, level=None))
    if not problems:
        raise ConfigError(f"benchmark file {path} holds no problems")
    return problems


# ------------------------------------------------------------------------------------------------ prompts


def build_prompt(problem: Problem, tokenizer: Any, system_prompt: str | None = None,
                 examples: Sequence[Problem] = ()) -> list[int]:
    """Chat-templated prompt token ids, ending with the assistant turn's opening (add_generation_prompt); for a
    tokenizer without a chat template (a base model), the plain prompt "Problem: ...\\nSolution:".

    Args:
        problem: the problem whose question becomes the user message.
        tokenizer: a Hugging Face tokenizer with a chat template (the project's: `model.load_tokenizer()`).
        system_prompt: optional system message (e.g. Qwen2.5-Math's "Please reason step by step, and put your
            final answer within \\boxed{}.").
        examples: worked examples shown first (few-shot; `few_shot_examples`): in the plain prompt as earlier
            "Problem: ... Solution: ..." pairs, in a chat as earlier user/assistant turns.
    """
    if not getattr(tokenizer, "chat_template", None):  # a base model: a plain prompt it can continue
        shots = "".join(f"Problem: {e.question}\nSolution: {e.solution}\n\n" for e in examples)
        text = (f"{system_prompt}\n\n" if system_prompt else "") + shots + f"Problem: {problem.question}\nSolution:"
        return list(tokenizer(text, add_special_tokens=True)["input_ids"])
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for example in examples:
        messages += [{"role": "user", "content": example.question}, {"role": "assistant", "content": example.solution}]
    messages.append({"role": "user", "content": problem.question})
    # transformers 5 returns a BatchEncoding unless return_dict=False.
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(ids)


# Worked examples for sets without a training split of their own (MATH-500, AIME, a user's file), written for this
# project in MATH's style: short reasoning, then the final answer boxed as the grader reads it first.
FEW_SHOT_MATH = [
    Problem("shot-1", "What is the value of $2^5 - 3^3$?", "5",
            "$2^5 = 32$ and $3^3 = 27$, so $2^5 - 3^3 = 32 - 27 = 5$.\nThe answer is \\boxed{5}.", "few-shot", None),
    Problem("shot-2", "Solve for $x$: $4x - 7 = 2x + 9$.", "8",
            "Subtracting $2x$ from both sides gives $2x - 7 = 9$, so $2x = 16$ and $x = 8$.\n"
            "The answer is \\boxed{8}.", "few-shot", None),
    Problem("shot-3", "A rectangle has perimeter 30 and one side of length 9. What is its area?", "54",
            "The two sides add up to half the perimeter, $15$, so the other side is $15 - 9 = 6$ and the area is "
            "$9 \\cdot 6 = 54$.\nThe answer is \\boxed{54}.", "few-shot", None),
    Problem("shot-4", "Write $\\frac{18}{24}$ in lowest terms.", "\\frac{3}{4}",
            "The greatest common divisor of 18 and 24 is 6, and $18 = 6 \\cdot 3$, $24 = 6 \\cdot 4$.\n"
            "The answer is \\boxed{\\frac{3}{4}}.", "few-shot", None),
]


def gsm8k_solution_as_boxed(solution: str) -> str:
    """A GSM8K reference solution in the form our prompts teach: calculator annotations <<48/2=24>> dropped and the
    "#### 72" line written "The answer is \\boxed{72}."."""
    reasoning, _, answer = re.sub(r"<<[^>]*>>", "", solution).rpartition("####")
    return f"{reasoning.strip()}\nThe answer is \\boxed{{{answer.strip().replace(',', '')}}}."


def few_shot_examples(bench: str, k: int, *, seed: int = 0, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """k worked examples for a few-shot prompt (a base model's): from the benchmark's own training split when it
    has one (the synthetic and synthetic-code train streams, disjoint from their held-out problems; GSM8K train),
    else FEW_SHOT_MATH (none for HumanEval).

    Raises:
        ConfigError: k < 0, or more examples than the source has (FEW_SHOT_MATH holds 4).
    """
    if k < 0:
        raise ConfigError(f"few-shot examples must be >= 0, got {k}")
    if k == 0:
        return []
    name = ALIASES.get(bench, bench)
    if name in ("synthetic", "synthetic_code"):
        return load_split(name, "train", num_train=k, seed=seed, levels=levels)
    if name == "humaneval":
        raise ConfigError("humaneval: no few-shot examples for code sets yet (its prompt already shows the "
                          "function to complete)")
    if name == "gsm8k":
        return [replace(p, solution=gsm8k_solution_as_boxed(p.solution)) for p in load_gsm8k("train")[:k]]
    if k > len(FEW_SHOT_MATH):
        raise ConfigError(f"{bench}: at most {len(FEW_SHOT_MATH)} few-shot examples (it has no training split; the "
                          f"examples are rl.data.FEW_SHOT_MATH), got {k}")
    return FEW_SHOT_MATH[:k]


def reference_step_correct(problem: Problem, steps: Sequence[str]) -> list[bool]:
    """Which steps of a solution to a synthetic problem are right, judged against its reference solution (the gold
    process labels reward models are measured on; independent of the sympy checker, which sees arithmetic only).

    Equation line k ("45 * 2 = 90") is right when it is the reference's equation k, up to spaces: the right operation
    on the right numbers with the right result. The answer step (the one with \\boxed) is right when its answer is the
    gold. Other steps ("<think>", "</think>", blank) are right.
    """
    from rewards.extract import find_last_boxed

    think = (problem.solution or "").partition("<think>")[2].partition("</think>")[0]
    reference = [line.replace(" ", "") for line in think.splitlines() if "=" in line]
    correct, equations = [], 0
    for step in steps:
        text = step.strip()
        if "\\boxed" in text:
            correct.append(find_last_boxed(text) == problem.answer)
        elif "=" in text:
            correct.append(equations < len(reference) and text.replace(" ", "") == reference[equations])
            equations += 1
        else:
            correct.append(True)
    return correct


def to_hf_dataset(problems: Sequence[Problem]) -> Any:
    """A `datasets.Dataset` with columns id, prompt (conversational, as TRL expects), question, answer, solution,
    level, source: ready for `trl.GRPOTrainer(train_dataset=...)` with reward functions reading `answer`."""
    import datasets

    rows = [{"prompt": [{"role": "user", "content": p.question}], **asdict(p)} for p in problems]
    return datasets.Dataset.from_list(rows)


# ------------------------------------------------------------------------------------------------ cursor


class PromptCursor:
    """Endless, seeded, epoch-shuffling iteration over problems, resumable exactly.

    Epoch e visits every problem once in the order of `random.Random(seed * 1_000_003 + e)`; a batch that runs past
    the end of an epoch continues into the next. `state_dict()` after k batches, loaded into a fresh cursor over
    the same problems, yields exactly the batches k+1, k+2, ... of the original run.
    """

    def __init__(self, problems: Sequence[Problem], seed: int = 0, shuffle: bool = True):
        if not problems:
            raise ValueError("PromptCursor needs at least one problem")
        self.problems = list(problems)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_batch(self, n: int) -> list[Problem]:
        """The next `n` problems (crossing into a new, reshuffled epoch when needed)."""
        batch = []
        while len(batch) < n:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            batch.append(self.problems[self._order[self.position]])
            self.position += 1
        return batch

    def state_dict(self) -> dict[str, int | bool]:
        """JSON-serialisable position: seed, shuffle, epoch, position and the number of problems."""
        return {"seed": self.seed, "shuffle": self.shuffle, "epoch": self.epoch, "position": self.position,
                "num_problems": len(self.problems)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at `state`; ValueError if it was taken over a different number of problems."""
        if state["num_problems"] != len(self.problems):
            raise ValueError(f"cursor state is for {state['num_problems']} problems, this cursor has "
                             f"{len(self.problems)}")
        self.seed, self.shuffle = int(state["seed"]), bool(state["shuffle"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)
