"""The teacher of on-policy distillation: a policy that only scores. Given the student's sampled completions it
returns its own log-probability of every sampled token (distill.kl=sampled) or its whole next-token distribution at
each completion position (distill.kl=full), one forward per batch (no generation, no optimizer), in its own Ray
actor. It loads and runs the policy as the learner does (rl/policy.py).

`check_teacher_vocabulary` is the check made before any actor starts: the teacher reads the student's token ids, so
both must share one tokenizer and one vocabulary.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import ray
import torch

from model import load_tokenizer
from model.config import ConfigError, preset
from model.fp8 import autocast_dtype
from rl import algos
from rl.batch import LearnerBatch
from rl.policy import forward_completions, load_policy, resolve_device

PRESET_PREFIX = "preset:"


class Teacher:
    """A frozen policy that scores the student's samples (wrap with `ray.remote`, see `teacher_actor`)."""

    def __init__(self, checkpoint: str, *, temperature: float = 1.0, device: str = "cpu", precision: str = "fp32",
                 threads: int = 1, pack: bool = True, micro_batch_positions: int = 0):
        """
        Args:
            checkpoint: the teacher's folder (our DeepSeek-V3 layout or any Hugging Face causal LM; rl.policy).
            temperature: the student's sampling temperature: the teacher's logprobs are those of its logits /
                temperature, as the student's are, so a teacher equal to the student scores every token as it does.
            device: "cpu", "cuda" or "auto".
            precision: "fp32", or "bf16" (autocast of the forward; logprobs in fp32); "fp8" (the student's FP8
                training) scores in bf16: the frozen teacher has no GEMMs to train.
            threads: torch threads (the teacher works while the rollout workers and the learner wait).
            pack: run our Transformer on packed rows when that saves positions (rl.policy.packed_rows).
            micro_batch_positions: the most padded positions one forward runs; a batch is cut into row chunks
                under it (0: the batch whole).
        """
        torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.autocast_dtype = autocast_dtype(precision)
        self.temperature = temperature
        self.pack = pack
        self.micro_batch_positions = micro_batch_positions
        self.policy = load_policy(checkpoint).to(self.device).eval().requires_grad_(False)

    def ready(self) -> bool:
        return True

    @torch.no_grad()
    def logprobs(self, batch: LearnerBatch) -> torch.Tensor:
        """The teacher's log-probabilities (B, L) of the batch's completion tokens, on the CPU (padding positions
        hold whatever the logits there give; the estimator masks them)."""
        width = batch.completion_ids.size(1)
        pieces = [algos.selective_log_softmax(logits, part.completion_ids, self.temperature).float().cpu()
                  for part, logits in self._completion_logits(batch)]
        return torch.cat([_pad_columns(piece, width) for piece in pieces])

    @torch.no_grad()
    def distributions(self, batch: LearnerBatch, top_k: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What distill.kl=full learns from, from one forward: the teacher's log-probabilities (B, L) of the
        sampled tokens (for the logged reverse KL), and its next-token distribution at each completion position
        (rl.algos.teacher_distribution: (B, L, V) logprobs and (B, L, 0) ids, or with top_k its k likeliest tokens,
        (B, L, k) each), on the CPU."""
        width = batch.completion_ids.size(1)
        sampled, logprobs, ids = [], [], []
        for part, logits in self._completion_logits(batch):
            sampled.append(_pad_columns(algos.selective_log_softmax(logits, part.completion_ids, self.temperature)
                                        .float().cpu(), width))
            part_logprobs, part_ids = algos.teacher_distribution(logits, self.temperature, top_k)
            logprobs.append(_pad_columns(part_logprobs.cpu(), width))
            ids.append(_pad_columns(part_ids.cpu(), width))
        return torch.cat(sampled), torch.cat(logprobs), torch.cat(ids)

    def _completion_logits(self, batch: LearnerBatch) -> Iterator[tuple[LearnerBatch, torch.Tensor]]:
        """(part, logits) for each row chunk of the batch, in row order: the chunk trimmed to its own longest
        sequence, on the device, and its (rows, L_part, V) logits at the completion positions."""
        chunks = 1
        if self.micro_batch_positions > 0:
            chunks = min(len(batch), math.ceil(batch.input_ids.numel() / self.micro_batch_positions))
        for chunk in batch.chunks(chunks):
            part = chunk.trimmed().to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                logits, _ = forward_completions(self.policy, part, self.pack)
            yield part, logits


def _pad_columns(x: torch.Tensor, width: int) -> torch.Tensor:
    """x (rows, L_part, ...) zero-padded along its second axis to `width` completion columns."""
    padding = [0, 0] * (x.dim() - 2) + [0, width - x.size(1)]
    return torch.nn.functional.pad(x, padding)


def teacher_actor(num_cpus: float = 0, num_gpus: float = 0, resources: dict[str, float] | None = None) -> Any:
    """The Teacher class as a Ray actor class. On CPUs it asks Ray for no CPU, as the reward worker does: the stages
    of a step take turns, so it uses the cores while the rollout workers and the learner wait."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {})(Teacher)


# ------------------------------------------------------------------------------------------------ the check


def policy_vocabulary(path: str) -> tuple[Any, int]:
    """The tokenizer and the vocabulary size (rows of the embedding) of a policy: a checkpoint folder, a hub name,
    or 'preset:NAME' (the project's tokenizer, whose size `model.init_pretrained` gives the preset)."""
    if path.startswith(PRESET_PREFIX):
        preset(path[len(PRESET_PREFIX):])  # an unknown preset is named here
        tokenizer = load_tokenizer()
        return tokenizer, len(tokenizer)
    if Path(path).is_dir():
        return load_tokenizer(path), int(json.loads((Path(path) / "config.json").read_text())["vocab_size"])
    # lazy: only a hub name needs transformers' config loader
    from transformers import AutoConfig

    return load_tokenizer(path), int(AutoConfig.from_pretrained(path).vocab_size)


def vocabulary_differences(teacher: tuple[Any, int], student: tuple[Any, int]) -> list[str]:
    """How a teacher's (tokenizer, vocabulary size) differs from a student's: one phrase each, empty when alike."""
    (teacher_tokenizer, teacher_size), (student_tokenizer, student_size) = teacher, student
    differences = []
    if teacher_size != student_size:
        differences.append(f"vocabulary size {teacher_size} (the student's: {student_size})")
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab != student_vocab:
        changed = sorted(token for token in teacher_vocab.keys() | student_vocab.keys()
                         if teacher_vocab.get(token) != student_vocab.get(token))
        differences.append(f"{len(changed)} tokens with other ids or missing (e.g. {', '.join(map(repr, changed[:3]))})")
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(teacher_tokenizer, name) != getattr(student_tokenizer, name):
            differences.append(f"{name} {getattr(teacher_tokenizer, name)} (the student's: "
                               f"{getattr(student_tokenizer, name)})")
    return differences


def check_teacher_vocabulary(teacher: str, student: str) -> None:
    """Raise ConfigError naming distill.teacher when the teacher's tokenizer or vocabulary differs from the
    student's (model.path): it scores the student's token ids, which must mean the same tokens to both."""
    differences = vocabulary_differences(policy_vocabulary(teacher), policy_vocabulary(student))
    if differences:
        raise ConfigError(f"distill.teacher: {teacher} does not share the student's tokenizer and vocabulary "
                          f"(model.path {student}): {'; '.join(differences)}. On-policy distillation scores the "
                          "student's token ids with the teacher, so both must use one tokenizer.")
