"""The table of problem sets: `DATA_SOURCES` names every set and the splits it has.

`load_split(name, "test", ...)` (evaluation) and `load_problems(data_config)` (training) go through it, so a
test-only set can never be trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

from model.config import ConfigError
from problems.code_benchmarks import load_humaneval, load_mbpp
from problems.math_benchmarks import load_aime, load_gsm8k, load_math500, load_math_train
from problems.problem import Problem
from problems.synthetic_code import split_synthetic_code
from problems.synthetic_math import split_synthetic
from problems.synthetic_tools import TOOL_SHARE, split_synthetic_tools


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
    DataSource("humaneval", "HumanEval", ("test",), load_humaneval),
    DataSource("mbpp", "MBPP (hub only)", ("train", "test"), load_mbpp,
               hub_only=True),
    DataSource("gsm8k", "GSM8K", ("train", "test"), load_gsm8k),
    DataSource("math_train", "MATH train (hub only)", ("train",), lambda split: load_math_train(), hub_only=True),
    DataSource("math500", "MATH-500", ("test",), lambda split: load_math500(), aliases=("math",)),
    DataSource("aime2024", "AIME 2024", ("test",), lambda split: load_aime(2024), aliases=("aime24",)),
    DataSource("aime2025", "AIME 2025", ("test",), lambda split: load_aime(2025), aliases=("aime25",)),
    DataSource("synthetic_tools", "synthetic multi-digit arithmetic, for the Python tool", ("train", "test"), None,
               aliases=("tools",)),
)}
ALIASES = {alias: source.name for source in DATA_SOURCES.values() for alias in source.aliases}
# Every accepted name, each source's aliases after it ("math" keeps meaning MATH-500, as configs spell it).
DATASET_NAMES: tuple[str, ...] = tuple(name for source in DATA_SOURCES.values()
                                      for name in (source.name, *source.aliases))
TRAIN_DATASETS: tuple[str, ...] = tuple(name for name, source in DATA_SOURCES.items() if source.has("train"))
TEST_DATASETS: tuple[str, ...] = tuple(name for name, source in DATA_SOURCES.items() if source.has("test"))


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
               levels: Sequence[int] = (1, 2, 3), tool_traces: float = TOOL_SHARE) -> list[Problem]:
    """The `split` problems of dataset `name`, the arguments meaning what the DataConfig fields of the same names do.

    Real datasets: the first `num_train` (train split) or `num_eval` (test split) problems, 0 = all of them.
    Synthetic: always the stream `split_synthetic(num_train, num_eval or SYNTHETIC_EVAL_SIZE, seed, levels)`, so the
    held-out problems never overlap the training ones, the training problems do not depend on which evaluation set
    is chosen, and the held-out ones not on `num_train`. Synthetic training needs `num_train` > 0. `tool_traces`:
    synthetic_tools' share of reference solutions that call the tool (the questions do not depend on it).

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
    split_stream = {"synthetic_code": split_synthetic_code,
                    "synthetic_tools": partial(split_synthetic_tools, tool_share=tool_traces)}.get(source.name,
                                                                                                  split_synthetic)
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
                 levels=data_config.levels, tool_traces=getattr(data_config, "tool_traces", TOOL_SHARE))
    return load_split(data_config.train, "train", **sizes), load_split(data_config.eval, "test", **sizes)
