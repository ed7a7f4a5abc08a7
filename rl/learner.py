"""Learner: holds the policy being trained, computes its logprobs of rollouts and applies GRPO updates.

Runs as a Ray actor (see `learner_actor`); on GPUs several learners would shard one policy with FSDP
(not built yet: one learner process today). Policies are our DeepSeek-V3 Transformer for checkpoints of
that architecture and transformers' own class for any other Hugging Face causal LM.
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl import algos
from rl.batch import LearnerBatch, completion_logits

LEARNER_STATE = "learner_state.pt"


def load_policy(checkpoint: str | Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Our Transformer for a DeepseekV3ForCausalLM folder, transformers' AutoModelForCausalLM otherwise."""
    from model import ModelArgs, load_pretrained
    from model.config import ConfigError

    try:
        ModelArgs.load(Path(checkpoint) / "config.json")
    except ConfigError as error:
        if "not DeepseekV3ForCausalLM" not in str(error):
            raise
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=dtype)
    return load_pretrained(checkpoint, dtype=dtype)


def checkpoint_state_dict(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The policy's weights in checkpoint layout (what vLLM's loader and save_pretrained expect)."""
    from model import Transformer, to_hf_state_dict

    if isinstance(policy, Transformer):
        return to_hf_state_dict(policy)
    from transformers.core_model_loading import revert_weight_conversion  # transformers 5 fuses MoE experts

    return revert_weight_conversion(policy, policy.state_dict())


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int):
    """Multiplier of the base learning rate at optimizer step s: linear warm-up, then constant/linear/cosine."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        if schedule == "linear":
            return 1.0 - progress
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0
    return factor


class Learner:
    """The policy, its optimizer and scheduler, and the reference policy when beta > 0."""

    def __init__(self, checkpoint: str, algorithm: Any, total_steps: int, max_completion_length: int,
                 seed: int = 0, threads: int = 1):
        """
        Args:
            algorithm: an AlgorithmConfig (rl/config.py).
            total_steps: GRPO steps of the run (the learning-rate schedule spans them).
            max_completion_length: the rollout's max_new_tokens (dr_grpo's constant normaliser).
            threads: torch threads (the learner works while the rollout workers wait, so it may use all cores).
        """
        torch.set_num_threads(threads)
        self.max_completion_length = max_completion_length
        torch.manual_seed(seed)
        self.algorithm = algorithm
        self.policy = load_policy(checkpoint)
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False) if algorithm.beta > 0 else None
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=algorithm.lr,
                                           weight_decay=algorithm.weight_decay)
        updates = total_steps * algorithm.num_iterations * algorithm.mini_batches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(algorithm.lr_schedule, algorithm.warmup_steps, updates))
        algos.get_loss_fn(algorithm.loss_type)  # an unknown loss_type fails here, before any rollout
        self.version = 0  # optimizer steps taken; rollout workers report which version sampled a batch

    def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    # ------------------------------------------------------------------ forward passes
    def _completion_logprobs(self, model: torch.nn.Module, batch: LearnerBatch) -> torch.Tensor:
        """Logprobs (B, L) of the completion tokens under model."""
        logits = completion_logits(model(batch.input_ids).logits, batch.completion_start,
                                   batch.completion_ids.size(1))
        return algos.selective_log_softmax(logits, batch.completion_ids)

    @torch.no_grad()
    def logprobs(self, batch: LearnerBatch) -> torch.Tensor:
        """The current policy's logprobs (B, L) of the batch's completions (eval mode: no load counting)."""
        self.policy.eval()
        return self._completion_logprobs(self.policy, batch)

    # ------------------------------------------------------------------ the update
    def train_step(self, batch: LearnerBatch) -> dict[str, float]:
        """num_iterations passes over the batch in mini_batches, one optimizer step per mini-batch."""
        started = time.perf_counter()
        algorithm = self.algorithm
        mask = batch.completion_mask
        # Fully on-policy (one pass, one mini-batch): the old logprobs are the training forward's own, detached,
        # as in TRL; otherwise they are computed once before the first update.
        on_policy = algorithm.num_iterations == 1 and algorithm.mini_batches == 1
        old_logprobs = None if on_policy else self.logprobs(batch)
        reference = None
        if self.reference is not None:
            with torch.no_grad():
                reference = self._completion_logprobs(self.reference, batch)
        # dapo-style losses normalise by the tokens of the whole batch, split evenly over the mini-batches
        tokens_per_mini_batch = mask.sum() / algorithm.mini_batches
        sums: dict[str, list[float]] = {}
        self.policy.train()
        chunk_index = torch.arange(len(batch.advantages)).tensor_split(algorithm.mini_batches)
        for _ in range(algorithm.num_iterations):
            for chunk, index in zip(batch.chunks(algorithm.mini_batches), chunk_index):
                output = self.policy(chunk.input_ids)
                logits = completion_logits(output.logits, chunk.completion_start, chunk.completion_ids.size(1))
                logprobs = algos.selective_log_softmax(logits, chunk.completion_ids)
                if old_logprobs is None:
                    old_logprobs = logprobs.detach()
                loss, loss_metrics = algos.policy_loss(
                    logprobs, old_logprobs[index], chunk.advantages, chunk.completion_mask,
                    loss_type=algorithm.loss_type, epsilon_low=algorithm.epsilon_low,
                    epsilon_high=algorithm.epsilon_high, beta=algorithm.beta,
                    ref_logprobs=None if reference is None else reference[index],
                    max_completion_length=self.max_completion_length, num_items_in_batch=tokens_per_mini_batch,
                    importance_sampling_level=algorithm.importance_sampling_level,
                    kl_bias_correction=algorithm.kl_bias_correction,
                    **({"delta": algorithm.delta} if algorithm.delta is not None else {}))
                total = loss + getattr(output, "balance_loss", 0.0)  # MoE sequence-wise balance term
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), algorithm.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                with torch.no_grad():
                    entropy = algos.masked_mean(algos.entropy_from_logits(logits), chunk.completion_mask)
                step_metrics = {"loss": loss.item(), "grad_norm": grad_norm.item(), "entropy": entropy.item()}
                step_metrics |= {k: float(v) for k, v in loss_metrics.items()}
                if hasattr(self.policy, "update_balance_bias") and algorithm.balance_bias_speed > 0:
                    step_metrics |= self.policy.update_balance_bias(algorithm.balance_bias_speed)
                for key, value in step_metrics.items():
                    sums.setdefault(key, []).append(value)
        self.version += 1
        elapsed = time.perf_counter() - started
        forwards = algorithm.num_iterations + (0 if on_policy else 1) + (self.reference is not None)
        return (self._mismatch_metrics(old_logprobs, batch)
                | {key: sum(values) / len(values) for key, values in sums.items()}
                | {"lr": self.scheduler.get_last_lr()[0], "time/learn_s": elapsed,
                   "throughput/learner_tokens_per_s": batch.input_ids.numel() * forwards / max(elapsed, 1e-9)})

    @staticmethod
    def _mismatch_metrics(learner_logprobs: torch.Tensor, batch: LearnerBatch) -> dict[str, float]:
        """How far the learner's logprobs of the sampled tokens are from the rollout engine's, before the update."""
        mask = batch.completion_mask
        diff = (learner_logprobs - batch.rollout_logprobs).abs() * mask
        n_tokens = mask.sum().clamp(min=1).item()
        return {"mismatch/logprob_abs_diff_mean": diff.sum().item() / n_tokens,
                "mismatch/logprob_abs_diff_max": diff.max().item(),
                # KL(rollout || learner) on the sampled tokens (k3 estimator)
                "mismatch/kl": (algos.k3_kl(learner_logprobs, batch.rollout_logprobs) * mask).sum().item() / n_tokens}

    # ------------------------------------------------------------------ weights and state
    def weights_blob(self) -> bytes:
        """Checkpoint-layout weights serialised for the rollout workers."""
        from rl.weight_sync import serialize_weights

        return serialize_weights(checkpoint_state_dict(self.policy))

    def save(self, folder: str) -> None:
        """The policy in HF format plus optimizer, scheduler, RNG state and version (into folder)."""
        from model import Transformer, save_pretrained

        folder = Path(folder)
        if isinstance(self.policy, Transformer):
            save_pretrained(self.policy, folder)
        else:
            self.policy.save_pretrained(folder)
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "version": self.version, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                 "numpy_rng": np.random.get_state()}
        if self.reference is not None:
            state["reference"] = self.reference.state_dict()
        torch.save(state, folder / LEARNER_STATE)

    def load(self, folder: str) -> None:
        """Restore what save() wrote (the policy weights come from the same folder)."""
        folder = Path(folder)
        self.policy.load_state_dict(load_policy(folder).state_dict())
        state = torch.load(folder / LEARNER_STATE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.version = state["version"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        if self.reference is not None and "reference" in state:
            self.reference.load_state_dict(state["reference"])


def learner_actor(num_cpus: float = 1, resources: dict[str, float] | None = None) -> Any:
    """The Learner class as a Ray actor class."""
    import ray

    return ray.remote(num_cpus=num_cpus, resources=resources or {})(Learner)
