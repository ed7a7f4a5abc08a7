"""The math answer reward, with TRL's reward-function signature.

`math_accuracy(completions, answer=..., **kwargs) -> list[float | None]` grades each
completion with `rewards.math_answer.grade_answer` inside the worker pool, so a
hostile answer costs at most the time limit and never the caller's thread.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rewards.calls import RewardCallError, check_call
from rewards.extract import completion_text
from rewards.math_answer import Verdict, grade_answer
from rewards.pool import TaskResult, get_default_pool

__all__ = ["MathAccuracy", "math_accuracy", "grade_batch"]


def grade_batch(
    preds: Sequence[object],
    golds: Sequence[object],
    timeout: float = 5.0,
    memory_mb: float | None = 1024,
) -> list[Verdict]:
    """Grade many (prediction text, gold) pairs in parallel in the default pool.

    Args:
        preds: Completion texts (anything else is graded 0 with a reason).
        golds: Gold answers, one per prediction.
        timeout: Wall-time limit per sample, seconds.
        memory_mb: Address-space budget per sample, MiB.

    Returns:
        One `Verdict` per pair; a sample over its limit gets
        `Verdict(False, reason="timeout")` (or `"memory"`).

    Raises:
        RewardCallError: when `preds` and `golds` differ in length (a malformed call).
    """
    if len(preds) != len(golds):
        raise RewardCallError(f"grade_batch: {len(preds)} predictions but {len(golds)} gold answers")
    pool = get_default_pool()
    results = pool.map(grade_answer, list(zip(preds, golds)), timeout=timeout, memory_mb=memory_mb)
    return [_to_verdict(r) for r in results]


def _to_verdict(result: TaskResult) -> Verdict:
    if result.ok and isinstance(result.value, Verdict):
        return result.value
    return Verdict(False, reason=result.reason or "error: no verdict")


class MathAccuracy:
    """Reward 1.0 when a completion's final answer equals the gold answer, else 0.0.

    A callable class rather than a closure so that it pickles (it travels to Ray
    actors); it holds only settings, and uses the pool of the process it runs in.

    Args:
        timeout: Wall-time limit per sample, seconds.
        memory_mb: Address-space budget per sample, MiB.
        gold_columns: Dataset columns tried in order for the gold answer.

    Example:
        >>> MathAccuracy()(["so \\\\boxed{4}"], answer=["4"])
        [1.0]
    """

    __name__ = "math_accuracy"  # TRL logs rewards under their function name

    required_columns = [("answer", "solution")]  # the gold: either column (rewards.calls.required_columns)

    def __init__(
        self,
        timeout: float = 5.0,
        memory_mb: float | None = 1024,
        gold_columns: Sequence[str] = ("answer", "solution", "gold"),
    ):
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.gold_columns = tuple(gold_columns)

    def details(self, completions: Sequence[Any], **kwargs: Any) -> list[Verdict | None]:
        """Grade completions, keeping each verdict.

        Args:
            completions: Strings or chat message lists.
            **kwargs: Dataset columns, one value per completion; the gold is the first of `gold_columns` given.

        Returns:
            One `Verdict` per completion, None where the sample has no gold answer.

        Raises:
            RewardCallError: for a malformed call (see `rewards.calls.check_call`), or no gold column at all.
        """
        completions = check_call(self.__name__, completions, kwargs, read=self.gold_columns)
        if not any(column in kwargs for column in self.gold_columns):  # not a sample without gold: no gold at all
            raise RewardCallError(f"{self.__name__}: no gold answers: pass the dataset's column as "
                                  f"{self.gold_columns[0]}=[...] (one per completion; or "
                                  f"{', '.join(self.gold_columns[1:])})")
        golds = self._golds(len(completions), kwargs)
        texts = [completion_text(c) for c in completions]
        out: list[Verdict | None] = [None] * len(completions)
        todo = []
        for i, (completion, text, gold) in enumerate(zip(completions, texts, golds)):
            if gold is not None and text is None:  # nothing to grade: the reason names what came instead
                out[i] = Verdict(False, reason=f"bad-input: {type(completion).__name__}")
            elif gold is not None:
                todo.append(i)
        verdicts = grade_batch([texts[i] for i in todo], [golds[i] for i in todo], self.timeout, self.memory_mb)
        for i, verdict in zip(todo, verdicts):
            out[i] = verdict
        return out

    def __call__(
        self,
        completions: Sequence[Any],
        log_extra: Callable[[str, list], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """Score completions; `answer` (or `solution`) arrives as a keyword column.

        Args:
            completions: Strings or chat message lists.
            log_extra: TRL's per-sample logging hook `log_extra(column, values)`;
                receives the extracted answers, parsed forms and reasons.
            **kwargs: Dataset columns, one value per completion.

        Returns:
            1.0 / 0.0 per completion, None where the gold is missing ("not applicable").

        Raises:
            RewardCallError: for a malformed call: `completions` not a list or tuple (a bare string, None),
                or a column whose length is not the number of completions.
        """
        verdicts = self.details(completions, **kwargs)
        if log_extra is not None:
            log_extra("answer_extracted", [v.extracted if v else None for v in verdicts])
            log_extra("gold_parsed", [v.gold_parsed if v else None for v in verdicts])
            log_extra("answer_parsed", [v.pred_parsed if v else None for v in verdicts])
            log_extra("math_reason", [v.reason if v else "no gold" for v in verdicts])
        return _scores(verdicts)

    def explain(self, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float | None], list[str]]:
        """The scores `__call__` gives and, from the same grading, why: one line per sample.

        Each reason is `Verdict.summary`, e.g. `"numeric-not-equal: extracted '6', gold '30'"`,
        `"no-answer"`, `"timeout"`; `"no gold"` where the score is None.

        Args:
            completions: Strings or chat message lists.
            **kwargs: Dataset columns, one value per completion.

        Returns:
            `(scores, reasons)`: the scores of a call and one reason per sample.

        Example:
            >>> MathAccuracy().explain(["so \\\\boxed{4}"], answer=["4"])
            ([1.0], ["string-equal (boxed): extracted '4', gold '4'"])
        """
        verdicts = self.details(completions, **kwargs)
        return _scores(verdicts), [v.summary() if v else "no gold" for v in verdicts]

    def _golds(self, n: int, kwargs: dict) -> list[object]:
        """The first gold column's values (the call is checked: a list of `n`), else None each."""
        for column in self.gold_columns:
            values = kwargs.get(column)
            if values is not None:
                return list(values)
        return [None] * n


def _scores(verdicts: Sequence[Verdict | None]) -> list[float | None]:
    return [None if v is None else float(v.correct) for v in verdicts]


math_accuracy = MathAccuracy()
