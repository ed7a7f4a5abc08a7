"""Supervised warm start: fine-tune the policy on reference solutions (prompt tokens are not trained on),
so that GRPO starts from a policy whose reward is not zero."""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from model import load_tokenizer
from model.checkpoint import save_pretrained
from model.fp8 import apply_precision, autocast_dtype
from rl.algos import mtp_loss
from rewards.tools import observation_ids, split_observations
from rl.batch import LearnerBatch, RolloutBatch, Sample, Segment
from rl.config import ConfigError
from rl.data import build_prompt
from rl.policy import forward_completions, load_policy


def solution_segments(solution: str, tokenizer) -> list[Segment]:
    """A reference solution + eos as the segments a rollout would make of it: the policy's text tokenized, each
    tool output (rewards.tools.split_observations) tokenized as an observation is (rewards.tools.observation_ids),
    so the warm start learns the calls and not the outputs (they are masked out of its loss, as in GRPO)."""
    segments = []
    for piece, observed in split_observations(solution):
        if observed:
            segments.append(Segment(observation_ids(tokenizer, piece, max_tokens=len(piece) + 64), None))
        else:
            ids = tokenizer(piece, add_special_tokens=False).input_ids
            segments.append(Segment(ids, [0.0] * len(ids)))
    segments.append(Segment([tokenizer.eos_token_id], [0.0]))
    return segments


def sft_batch(problems, tokenizer, system_prompt: str | None = None, max_tokens: int | None = None) -> LearnerBatch:
    """Prompt + reference solution + eos per problem, as a LearnerBatch (advantages unused); the solution is cut
    so that prompt + solution fit in max_tokens. A solution that calls a tool holds its output as observation
    tokens, which the loss does not count (solution_segments)."""
    samples = []
    for problem in problems:
        prompt = build_prompt(problem, tokenizer, system_prompt)
        sample = Sample.from_segments(prompt, solution_segments(problem.solution, tokenizer), truncated=False)
        if max_tokens is not None:
            keep = max(max_tokens - len(prompt), 0)
            sample.completion_ids, sample.rollout_logprobs = sample.completion_ids[:keep], sample.rollout_logprobs[:keep]
            sample.observation_spans = [(a, min(b, keep)) for a, b in sample.observation_spans if a < keep]
        if any(sample.policy_mask()):
            samples.append(sample)
    rollouts = RolloutBatch(samples, group_ids=torch.arange(len(samples)), advantages=torch.zeros(len(samples)))
    return LearnerBatch.from_rollouts(rollouts,
                                      pad_id=tokenizer.pad_token_id, mask_truncated=False)


def mtp_depth(policy: torch.nn.Module) -> int:
    """The policy's MTP modules (DeepSeek-V3's depth D; num_nextn_predict_layers); 0 for a policy without them."""
    return getattr(getattr(policy, "args", None), "num_nextn_predict_layers", 0)


def check_mtp_weight(policy: torch.nn.Module, mtp_weight: float, field: str = "sft.mtp_weight") -> None:
    """A ConfigError naming field when an MTP loss weight is set for a policy without MTP modules."""
    if mtp_weight > 0 and mtp_depth(policy) == 0:
        raise ConfigError(f"{field}: is {mtp_weight:g}, but the policy has no MTP modules "
                          "(num_nextn_predict_layers = 0 in its config.json); set it to 0 or start from a policy "
                          "with MTP layers")


def supervised_finetune(policy: torch.nn.Module, problems: list, tokenizer, *, steps: int, batch_size: int,
                        lr: float, seed: int = 0, system_prompt: str | None = None, max_tokens: int | None = None,
                        mtp_weight: float = 0.0, precision: str = "fp32", log=print) -> list[float]:
    """Train policy in place on the problems' reference solutions; returns the (next-token) loss of each step.

    Args:
        mtp_weight: DeepSeek-V3's lambda: the step's loss is the next-token loss + mtp_weight x the MTP loss
            (rl.algos.mtp_loss over the solution tokens). 0 leaves the MTP modules untrained and the run as it was.
        precision: the learner's precision (trainer.precision): fp32, bf16 autocast, or fp8 (the policy's FP8
            linear layers are swapped in, in place: model.fp8.to_fp8; its parameters stay the same).

    Raises:
        ConfigError: mtp_weight > 0 for a policy without MTP modules, before any step.
    """
    check_mtp_weight(policy, mtp_weight)
    apply_precision(policy, precision)
    dtype = autocast_dtype(precision)
    device = next(policy.parameters()).device.type
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(steps // 10, 1)) * max(0.1, 1 - s / max(steps, 1)))
    losses, started = [], time.perf_counter()
    policy.train()
    for step in range(steps):
        batch = sft_batch(rng.sample(problems, min(batch_size, len(problems))), tokenizer, system_prompt, max_tokens)
        # Packed rows run no MTP modules: with the MTP loss on, the padded rows (the same next-token logits).
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            logits, output = forward_completions(policy, batch, pack=mtp_weight == 0)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.completion_ids.flatten(), reduction="none")
        loss = (loss * batch.completion_mask.flatten()).sum() / batch.completion_mask.sum()
        total = loss + getattr(output, "balance_loss", 0.0)
        mtp_metrics = {}
        if mtp_weight > 0:
            auxiliary, mtp_metrics = mtp_loss(output.mtp_logits, batch.input_ids, batch.completion_token_mask())
            total = total + mtp_weight * auxiliary
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if hasattr(policy, "update_balance_bias"):
            policy.update_balance_bias(1e-3)
        losses.append(loss.item())
        if log and (step % 50 == 0 or step == steps - 1):
            mtp = "".join(f", {name} {value.item():.3f}" for name, value in mtp_metrics.items())
            log(f"sft step {step + 1}/{steps}: loss {loss.item():.3f}{mtp} ({time.perf_counter() - started:.0f}s)")
    policy.eval()
    return losses


def sft_from_checkpoint(checkpoint: str | Path, out: str | Path, problems: list, *, steps: int, batch_size: int,
                        lr: float, seed: int = 0, threads: int = 2, system_prompt: str | None = None,
                        max_tokens: int | None = None, mtp_weight: float = 0.0, log=print) -> Path:
    """Load a checkpoint, fine-tune it on the problems' solutions (with mtp_weight x the MTP loss), save it to
    out."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    policy = load_policy(checkpoint)
    tokenizer = load_tokenizer(checkpoint)
    supervised_finetune(policy, problems, tokenizer, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                        system_prompt=system_prompt, max_tokens=max_tokens, mtp_weight=mtp_weight, log=log)
    save_pretrained(policy, out, tokenizer_dir=checkpoint)
    return Path(out)
