"""Format and length rewards (cheap string checks, run in the caller's process).

The policy's chat format is DeepSeek-R1 style: `<think> ... </think>` followed by the
answer, the final answer in `\\boxed{}` or after `####`; `<answer>...</answer>`
is accepted too. Tags are configurable.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from rewards.calls import check_call
from rewards.extract import completion_text

__all__ = ["FormatReward", "format_reward", "CodeFormatReward", "code_format_reward", "LengthPenalty",
           "length_penalty"]


class FormatReward:
    """1.0 when a completion is `<think>reasoning</think> answer` with a final answer.

    Args:
        think_tags: Opening and closing tags of the reasoning block.
        answer_tags: Tags of an explicit answer block (accepted as the answer).
        require_final_answer: Also require `\\boxed{}`, `####` or an answer block after the reasoning (with
            `code_answer`: a non-empty fenced code block, a code task's answer, instead).
        prompt_opens_think: The chat template already opened `<think>` in the prompt
            (DeepSeek-R1 does), so the completion may start inside the block.
        code_answer: the final answer is a program (`code_format_reward`), not a math answer.

    Example:
        >>> format_reward(["<think>2+2=4</think> The answer is \\\\boxed{4}."])
        [1.0]
    """

    __name__ = "format_reward"

    def __init__(self, think_tags: tuple[str, str] = ("<think>", "</think>"),
                 answer_tags: tuple[str, str] = ("<answer>", "</answer>"),
                 require_final_answer: bool = True, prompt_opens_think: bool = False, code_answer: bool = False):
        self.think_tags = tuple(think_tags)
        self.code_answer = code_answer
        self.answer_tags = tuple(answer_tags)
        self.require_final_answer = require_final_answer
        self.prompt_opens_think = prompt_opens_think

    def check(self, text: str | None) -> tuple[bool, str]:
        """Check one completion's format.

        Args:
            text: The completion text (anything else is "no text").

        Returns:
            `(ok, reason)`: `reason` is `"ok"` or what is missing or misplaced.
        """
        if not isinstance(text, str):
            return False, "no text"
        open_t, close_t = (re.escape(t) for t in self.think_tags)
        opening = f"(?:{open_t})?" if self.prompt_opens_think else open_t
        m = re.match(rf"\s*{opening}(.*?){close_t}(.*)\Z", text, re.S)
        if not m:
            return False, "missing or misplaced think block"
        reasoning, rest = m.group(1), m.group(2)
        if not reasoning.strip():
            return False, "empty reasoning"
        if self.think_tags[0] in rest or self.think_tags[1] in rest:
            return False, "more than one think block"
        if not rest.strip():
            return False, "nothing after the reasoning"
        if self.require_final_answer:
            a_open, a_close = (re.escape(t) for t in self.answer_tags)
            if self.code_answer:
                if not re.search(r"```[^\n]*\n.*?\S.*?```", rest, re.S):
                    return False, "no final answer (a non-empty fenced code block)"
            elif not (re.search(rf"{a_open}.+?{a_close}", rest, re.S) or "\\boxed" in rest or "####" in rest):
                return False, "no final answer (boxed, #### or answer tags)"
        return True, "ok"

    def __call__(self, completions: Sequence[Any], log_extra=None, **kwargs: Any) -> list[float]:
        """Score completions (TRL signature); a malformed call raises `rewards.RewardCallError`."""
        scores, reasons = self.explain(completions, **kwargs)
        if log_extra is not None:
            log_extra("format_reason", reasons)
        return scores

    def explain(self, completions: Sequence[Any], **kwargs: Any) -> tuple[list[float], list[str]]:
        """The scores `__call__` gives and why (`"ok"` or what is missing), one reason per sample."""
        completions = check_call(self.__name__, completions, kwargs)
        checks = [self.check(completion_text(c)) for c in completions]
        return [1.0 if ok else 0.0 for ok, _ in checks], [reason for _, reason in checks]


class LengthPenalty:
    """DAPO's soft overlong penalty: 0 up to `max_len - cache`, then linear to -1.

    Length is counted in tokens when `completion_ids` (TRL passes them) or a
    tokenizer is given, else in characters / `chars_per_token`.

    Args:
        max_len: The generation limit (tokens).
        cache: The soft zone before it (tokens).
        chars_per_token: Used only when no token ids are available.
    """

    __name__ = "length_penalty"

    def __init__(self, max_len: int = 4096, cache: int = 512, chars_per_token: float = 4.0):
        if not 0 <= cache < max_len:
            raise ValueError(f"need 0 <= cache < max_len, got cache={cache}, max_len={max_len}")
        self.max_len, self.cache, self.chars_per_token = max_len, cache, chars_per_token

    def penalty(self, length: float) -> float:
        """The penalty for one completion of `length` tokens (in [-1, 0])."""
        soft_start = self.max_len - self.cache
        if length <= soft_start:
            return 0.0
        if length >= self.max_len:
            return -1.0
        return -(length - soft_start) / max(self.cache, 1)

    def __call__(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                 **kwargs: Any) -> list[float]:
        """Score completions (TRL signature); a malformed call (`completion_ids` of another length than
        `completions` included) raises `rewards.RewardCallError`."""
        completions = check_call(self.__name__, completions, {**kwargs, "completion_ids": completion_ids},
                                 read=("completion_ids",))
        if completion_ids is not None:
            # a sample whose ids are missing (None) is measured in characters, as without ids
            lengths = [len(ids) if hasattr(ids, "__len__") and not isinstance(ids, str)
                       else len(completion_text(c) or "") / self.chars_per_token
                       for ids, c in zip(completion_ids, completions)]
        else:
            lengths = [len(completion_text(c) or "") / self.chars_per_token for c in completions]
        return [self.penalty(n) for n in lengths]


format_reward = FormatReward()


class CodeFormatReward(FormatReward):
    """`<think>plan</think>` then a non-empty fenced code block (code tasks' format reward)."""

    __name__ = "code_format_reward"

    def __init__(self, **kwargs: Any):
        super().__init__(code_answer=True, **kwargs)


code_format_reward = CodeFormatReward()
length_penalty = LengthPenalty()
