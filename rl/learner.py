"""Learner: holds the policy being trained, computes its logprobs of rollouts and applies GRPO updates.

A Learner is one process (a Ray actor in the pipeline); rl/learner_group.py drives the N learners that train one
policy together with FSDP2 (rl/sharding.py). What a learner needs around it lives beside it: the policy's loading,
checkpoint layout and forward (rl/policy.py), the loss and optimiser settings it reads (rl/learner_settings.py) and
its optimizer and schedule (rl/optimizer.py).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from model import Transformer, save_pretrained
from model.fp8 import apply_precision, autocast_dtype
from rl import algos
from rl.batch import LearnerBatch
from rl.learner_settings import LearnerSettings
from rl.optimizer import make_optimizer
from rl.policy import checkpoint_state_dict, forward_completions, forward_positions, load_policy, resolve_device
from rl.sft import check_mtp_weight
from rl.sharding import Collectives, full_tensor, join_process_group
from rl.weight_sync import serialize_weights

LEARNER_STATE = "learner_state.pt"


class Learner:
    """The policy, its optimizer and scheduler, and the reference policy when beta > 0.

    One learner is one process. Several (world_size > 1) train one policy together: each holds a shard of
    every parameter and of the optimizer state (FSDP2, `fully_shard` per transformer block), takes its part
    of each mini-batch (LearnerBatch.shard) and the gradients are reduced across them (NCCL on GPUs, gloo on
    CPUs). The loss of each part is weighted so that W learners take exactly the step one learner would take
    on the whole batch (algos.shard_loss_weight).
    """

    def __init__(self, checkpoint: str, settings: LearnerSettings, total_steps: int, max_completion_length: int,
                 seed: int = 0, threads: int = 1, temperature: float = 1.0, device: str = "cpu",
                 precision: str = "fp32", rank: int = 0, world_size: int = 1,
                 store_address: tuple[str, int] | None = None, implementation: str = "auto", pack: bool = False,
                 micro_batch_positions: int = 0):
        """
        Args:
            checkpoint: the policy's folder (see load_policy); the reference policy, when beta > 0, is its copy.
            settings: the loss and optimiser settings (LearnerSettings.from_config of a run's algorithm section).
            total_steps: GRPO steps of the run (the learning-rate schedule spans them).
            max_completion_length: the rollout's max_new_tokens (dr_grpo's constant normaliser).
            seed: torch's seed in this process.
            threads: torch threads (the learner works while the rollout workers wait, so it may use all cores).
            temperature: the rollout sampling temperature; logprobs are those of logits / temperature.
            device: "cpu", "cuda" or "auto".
            precision: "fp32", "bf16" (bf16 autocast of the forward and backward; fp32 master weights,
                optimizer state and loss), or "fp8": bf16 autocast, and the MLA and expert projections' GEMMs in FP8
                as DeepSeek-V3 trains (model/fp8.py; our DeepSeek-V3 class only).
            rank, world_size: this learner's place among the learners training one policy.
            store_address: (host, port) of the torch.distributed TCPStore the learners meet at; needed when
                world_size > 1. Given with world_size 1, the learner is an FSDP group of one (the code path of
                a multi-GPU group, testable on one device).
            implementation: which model class runs the policy (see load_policy).
            pack: run our Transformer on packed rows (sequences end to end, no padding between them) instead
                of padded ones; other model classes always run padded rows.
            micro_batch_positions: the most padded positions one forward and backward runs; a mini-batch is cut
                into length-sorted micro-batches under it and their gradients accumulated (0: whole mini-batches).
        """
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.settings = settings
        self.max_completion_length = max_completion_length
        self.temperature = temperature
        self.device = resolve_device(device)
        self.autocast_dtype = autocast_dtype(precision)
        self.precision = precision
        self.rank, self.world_size = rank, world_size
        self.implementation = implementation
        if world_size > 1 and store_address is None:
            raise ValueError("world_size > 1 needs the store_address the learners meet at")
        # with a store address, in a process group and the policy sharded with FSDP2
        self.collectives = Collectives(self.device, world_size, distributed=store_address is not None)
        if self.collectives.distributed:
            join_process_group(store_address, rank, world_size, self.device)
        self.policy = self.collectives.shard(self._load(checkpoint))
        self.pack = pack and isinstance(self.policy, Transformer)
        check_mtp_weight(self.policy, settings.mtp_weight, "algorithm.mtp_weight")
        # With the MTP loss on, the MTP modules' gradients are clipped on their own, so the rest of the policy
        # takes exactly the step it takes without the loss.
        mtp_ids = {id(p) for p in self.policy.mtp.parameters()} if settings.mtp_weight > 0 else set()
        self.clip_groups = [[p for p in self.policy.parameters() if id(p) not in mtp_ids]]
        if mtp_ids:
            self.clip_groups.append(list(self.policy.mtp.parameters()))
        self.micro_batch_positions = micro_batch_positions
        self.reference = None
        if settings.beta > 0:
            self.reference = self.collectives.shard(self._load(checkpoint)).eval().requires_grad_(False)
        self.optimizer, self.scheduler = make_optimizer(self.policy, settings, total_steps)
        self.loss_spec = algos.get_loss_spec(settings.loss_type)  # an unknown loss_type fails here, before any rollout
        self.version = 0  # GRPO updates taken (saved with the learner's state)

    def _load(self, checkpoint: str) -> torch.nn.Module:
        """The policy in checkpoint as this learner computes with it (fp8: its FP8 linear layers swapped in; the
        parameters and their names are the checkpoint's either way)."""
        policy = load_policy(checkpoint, implementation=self.implementation)
        if self.precision == "fp8" and not isinstance(policy, Transformer):
            raise ValueError(f"precision fp8 runs our DeepSeek-V3 class only; {checkpoint} loads as "
                             f"{type(policy).__name__}: use bf16")
        return apply_precision(policy, self.precision)

    def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray  # lazy: a learner outside Ray (tests, benchmarks) does not import it

        return ray.get_runtime_context().get_node_id()

    # ------------------------------------------------------------------ forward passes
    def _completion_logprobs(self, model: torch.nn.Module, batch: LearnerBatch
                             ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Logprobs (B, L) of the completion tokens under model (at the sampling temperature), the (B, L, V)
        logits they came from, and the model's whole output."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            logits, output = forward_completions(model, batch, self.pack)
        return algos.selective_log_softmax(logits, batch.completion_ids, self.temperature), logits, output

    @torch.no_grad()
    def logprobs(self, batch: LearnerBatch) -> torch.Tensor:
        """The current policy's logprobs (B, L) of the batch's completions (eval mode: no load counting)."""
        self.policy.eval()
        return self._completion_logprobs(self.policy, batch.to(self.device))[0]

    # ------------------------------------------------------------------ the update
    def train_step(self, batch: LearnerBatch | list[LearnerBatch]) -> dict[str, float]:
        """num_iterations passes over the batch, one optimizer step per mini-batch.

        A mini-batch runs forward and backward in micro-batches of at most `micro_batch_positions` padded
        positions (LearnerBatch.micro_batches), whose gradients add up to the mini-batch's: each micro-batch's
        loss is weighted by its share of the mini-batch, as a data-parallel shard's is (algos.shard_loss_weight).

        batch: the whole batch (a single learner splits it into settings.mini_batches), or this learner's
        mini-batches as LearnerBatch.shard cut them (every learner of a group gets the same count).
        """
        started = time.perf_counter()
        settings = self.settings
        mini_batches = batch.chunks(settings.mini_batches) if isinstance(batch, LearnerBatch) else list(batch)
        mini_batches = [chunk.to(self.device) for chunk in mini_batches]
        micro = [self._micro_batches(chunk) for chunk in mini_batches]  # micro[i][j]: mini-batch i's part j
        # Fully on-policy (one pass, one mini-batch): the old logprobs are the training forward's own, detached,
        # as in TRL; otherwise they are computed once before the first update.
        on_policy = settings.num_iterations == 1 and len(mini_batches) == 1
        old_logprobs = [[None if on_policy else self.logprobs(part) for part in parts] for parts in micro]
        references = [[None] * len(parts) for parts in micro]
        if self.reference is not None:
            with torch.no_grad():
                references = [[self._completion_logprobs(self.reference, part)[0] for part in parts]
                              for parts in micro]
        weights, balance_weights, entropy_weights, num_items = self._shard_weights(micro)
        token_shares = [_token_shares(parts) for parts in micro]  # a part's share of its mini-batch's token means
        sums: dict[str, list[float]] = {}
        self.policy.train()
        for _ in range(settings.num_iterations):
            for i, parts in enumerate(micro):
                self.optimizer.zero_grad(set_to_none=True)
                step_metrics: dict[str, float] = {}
                for j, part in enumerate(parts):
                    part_metrics, old_logprobs[i][j] = self._accumulate_gradients(
                        part, old_logprobs[i][j], references[i][j], weights[i][j], balance_weights[i][j],
                        entropy_weights[i][j], num_items)
                    for key, value in part_metrics.items():
                        share = 1.0 if key in self.SUMMED else token_shares[i][j]
                        step_metrics[key] = step_metrics.get(key, 0.0) + value * share
                grad_norm = torch.nn.utils.clip_grad_norm_(self.clip_groups[0], settings.max_grad_norm)
                if len(self.clip_groups) > 1:
                    mtp_norm = torch.nn.utils.clip_grad_norm_(self.clip_groups[1], settings.max_grad_norm)
                    step_metrics["mtp/grad_norm"] = full_tensor(mtp_norm).item()
                self.optimizer.step()
                self.scheduler.step()
                step_metrics["grad_norm"] = full_tensor(grad_norm).item()
                if hasattr(self.policy, "update_balance_bias") and settings.balance_bias_speed > 0:
                    self.collectives.sum_expert_load(self.policy)
                    step_metrics |= self.policy.update_balance_bias(settings.balance_bias_speed)
                for key, value in step_metrics.items():
                    sums.setdefault(key, []).append(value)
        self.version += 1
        elapsed = time.perf_counter() - started
        forwards = settings.num_iterations + (0 if on_policy else 1) + (self.reference is not None)
        parts = [part for parts in micro for part in parts]
        tokens = sum(part.sequence_lengths().sum().item() for part in parts)
        metrics = (self._mismatch_metrics([lp for lps in old_logprobs for lp in lps], parts)
                   | {key: sum(values) / len(values) for key, values in sums.items()}
                   | {"throughput/learner_tokens_per_s": tokens * forwards / max(elapsed, 1e-9),
                      "learner/padding_frac": 1.0 - tokens / sum(forward_positions(part, self.pack) for part in parts),
                      "learner/micro_batches": len(parts) / len(micro)})
        metrics = self.collectives.mean_over_learners(metrics)
        metrics["throughput/learner_tokens_per_s"] *= self.world_size  # all learners together
        return metrics | {"lr": self.scheduler.get_last_lr()[0], "time/learn_s": elapsed}

    # Metrics that are already the mini-batch's sums of its weighted parts (the others are token means).
    SUMMED = ("loss", "actor/pg_loss")

    def _accumulate_gradients(self, part: LearnerBatch, old_logprobs: torch.Tensor | None,
                              reference_logprobs: torch.Tensor | None, weight: float, balance_weight: float,
                              entropy_weight: float, num_items: float) -> tuple[dict[str, float], torch.Tensor]:
        """Forward and backward of one micro-batch, its loss weighted by its share of the mini-batch; the gradients
        add to those already there. old_logprobs None: this forward's own (fully on-policy).

        Returns:
            its metrics (loss and pg_loss weighted: the parts' sum is the mini-batch's), and the old logprobs used.
        """
        settings = self.settings
        logprobs, logits, output = self._completion_logprobs(self.policy, part)
        if old_logprobs is None:
            old_logprobs = logprobs.detach()
        correction = None
        if settings.rollout_correction_cap is not None:
            correction = algos.truncated_importance_weights(old_logprobs, part.rollout_logprobs,
                                                            part.completion_mask, settings.rollout_correction_cap)
        loss, loss_metrics = algos.policy_loss(
            logprobs, old_logprobs, part.advantages, part.completion_mask,
            loss_type=settings.loss_type, epsilon_low=settings.epsilon_low,
            epsilon_high=settings.epsilon_high, beta=settings.beta, ref_logprobs=reference_logprobs,
            max_completion_length=self.max_completion_length, num_items_in_batch=num_items,
            importance_sampling_level=settings.importance_sampling_level,
            kl_bias_correction=settings.kl_bias_correction, importance_sampling_ratio=correction,
            **({"delta": settings.delta} if settings.delta is not None else {}))
        balance = getattr(output, "balance_loss", 0.0)  # MoE sequence-wise balance term
        with torch.set_grad_enabled(settings.entropy_coeff != 0):  # graph only when the loss uses it
            entropy = algos.masked_mean(algos.entropy_from_logits(logits.float() / self.temperature),
                                        part.completion_mask)
        # this part's share of the mini-batch's loss; the entropy term is a token mean over the whole mini-batch
        total = loss * weight + balance * balance_weight - settings.entropy_coeff * entropy * entropy_weight
        if settings.mtp_weight > 0:  # a token mean, weighted as the entropy is
            mtp, mtp_metrics = self._mtp_loss(part)
            total = total + settings.mtp_weight * mtp * entropy_weight
            loss_metrics |= mtp_metrics
        if part.has_teacher_distribution:  # on-policy distillation's full KL: a token mean, weighted as above
            kl = algos.masked_mean(algos.reverse_kl_to_teacher(logits, part.teacher_logprobs, part.teacher_ids,
                                                               self.temperature), part.completion_mask)
            total = total + kl * entropy_weight
            loss_metrics["distill/reverse_kl_full"] = kl.detach()
        (total * self.world_size).backward()  # FSDP averages gradients over the learners
        metrics = {"loss": loss.item(), "entropy": entropy.item()} | {k: float(v) for k, v in loss_metrics.items()}
        for key in self.SUMMED:  # the mini-batch's loss once summed over parts and averaged over the learners
            metrics[key] *= weight * self.world_size
        return metrics, old_logprobs

    def _mtp_loss(self, part: LearnerBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The MTP modules' loss on the part's completions (algos.mtp_loss; truncated ones too: they are the
        policy's own tokens all the same), the modules' inputs detached from the trunk.

        A forward of its own, so the training forward and its gradients are untouched; in eval mode, so that it
        counts no expert load a second time (the training forward has counted it) and adds no balance term.
        """
        self.policy.eval()
        try:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                output = self.policy(part.input_ids, with_mtp=True, mtp_detached=True,
                                     logits_at=part.input_ids.new_zeros(0))
        finally:
            self.policy.train()
        return algos.mtp_loss(output.mtp_logits, part.input_ids, part.completion_token_mask(truncated_too=True))

    def _micro_batches(self, chunk: LearnerBatch) -> list[LearnerBatch]:
        """A mini-batch's micro-batches (LearnerBatch.micro_batches). Learners of a group must run as many
        forward and backward passes (each is a collective), so one with fewer parts gets padding rows."""
        parts = chunk.micro_batches(self.micro_batch_positions)
        if self.collectives.distributed:
            most = int(self.collectives.all_reduce(torch.tensor([len(parts)]), op="max").item())
            parts += [chunk.padding_row()] * (most - len(parts))
        return parts

    def _shard_weights(self, micro: list[list[LearnerBatch]]) -> tuple[list[list[float]], list[list[float]],
                                                                    list[list[float]], float]:
        """Per micro-batch j of mini-batch i, the weight of its policy loss (algos.shard_loss_weight: its share of
        the mini-batch over all learners), of its MoE balance term (a mean over sequences: its share of the rows;
        none for a part of padding rows only) and of its entropy term (a token mean: its share of the tokens), all
        1.0 for a single learner with whole mini-batches; and the token-sum-global normaliser: the whole batch's
        completion tokens over all learners / mini-batches."""
        local = torch.tensor([[sum(part.is_sample.sum().item() for part in parts),
                               sum(part.completion_mask.sum().item() for part in parts)] for parts in micro],
                             dtype=torch.float64)
        summed = self.collectives.all_reduce(local)
        loss_weights = [[algos.shard_loss_weight(self.loss_spec.agg, len(part), part.completion_mask.sum().item(),
                                                 summed[i, 0].item(), summed[i, 1].item()) for part in parts]
                        for i, parts in enumerate(micro)]
        balance_weights = [[algos.shard_loss_weight("seq-mean-token-mean", len(part), 0.0, summed[i, 0].item(), 0.0)
                            if part.is_sample.any() else 0.0 for part in parts] for i, parts in enumerate(micro)]
        entropy_weights = [[algos.shard_loss_weight("token-mean", len(part), part.completion_mask.sum().item(),
                                                    summed[i, 0].item(), summed[i, 1].item()) for part in parts]
                           for i, parts in enumerate(micro)]
        return loss_weights, balance_weights, entropy_weights, summed[:, 1].sum().item() / len(micro)

    @staticmethod
    def _mismatch_metrics(learner_logprobs: list[torch.Tensor], parts: list[LearnerBatch]) -> dict[str, float]:
        """How far the learner's logprobs of the sampled tokens are from the rollout engine's, before the update.

        learner_logprobs: each part's (B_i, L_i) logprobs, in the order of parts.
        """
        rollout = torch.cat([part.rollout_logprobs.flatten() for part in parts])
        mask = torch.cat([part.completion_mask.flatten() for part in parts])
        learner_logprobs = torch.cat([lp.flatten() for lp in learner_logprobs]).float()
        diff = (learner_logprobs - rollout).abs() * mask
        n_tokens = mask.sum().clamp(min=1).item()
        return {"mismatch/logprob_abs_diff_mean": diff.sum().item() / n_tokens,
                "mismatch/logprob_abs_diff_max": diff.max().item(),
                # KL(rollout || learner) on the sampled tokens (k3 estimator)
                "mismatch/kl": (algos.k3_kl(learner_logprobs, rollout) * mask).sum().item() / n_tokens}

    # ------------------------------------------------------------------ weights and state
    def checkpoint_weights(self) -> dict[str, torch.Tensor] | None:
        """The policy's whole weights on the CPU, in checkpoint layout (rank 0; None on the others; every learner
        must call: sharded weights are gathered)."""
        state_dict = self.collectives.full_state_dict(self.policy)
        if self.rank != 0:
            return None
        return checkpoint_state_dict(self.policy, state_dict)

    def weights_blob(self) -> bytes | None:
        """Checkpoint-layout weights serialised for the rollout workers (rank 0; None on the others)."""
        weights = self.checkpoint_weights()
        return None if weights is None else serialize_weights(weights)

    def save(self, folder: str) -> None:
        """The policy in HF format plus optimizer, scheduler, RNG state and version (into folder; rank 0 writes,
        every learner must call)."""
        folder = Path(folder)
        weights = self.collectives.full_state_dict(self.policy)
        optimizer = get_optimizer_state_dict(self.policy, self.optimizer,
                                             options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        reference = None if self.reference is None else self.collectives.full_state_dict(self.reference)
        if self.rank != 0:
            return
        if isinstance(self.policy, Transformer):
            save_pretrained(self.policy, folder, state_dict=weights)
        else:
            self.policy.save_pretrained(folder, state_dict=weights)
        state = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                 "version": self.version, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                 "numpy_rng": np.random.get_state(), "reference": reference}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        torch.save(state, folder / LEARNER_STATE)

    def load(self, folder: str) -> None:
        """Restore what save() wrote (the policy weights come from the same folder; every learner reads it)."""
        folder = Path(folder)
        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.policy, load_policy(folder, implementation=self.implementation).state_dict(),
                             options=full)
        state = torch.load(folder / LEARNER_STATE, weights_only=False)
        set_optimizer_state_dict(self.policy, self.optimizer, state["optimizer"], options=full)
        self.scheduler.load_state_dict(state["scheduler"])
        self.version = state["version"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.reference is not None and state.get("reference") is not None:
            set_model_state_dict(self.reference, state["reference"], options=full)


def _token_shares(parts: list[LearnerBatch]) -> list[float]:
    """Each part's share of the completion tokens of all of them (what a token mean over the whole weighs it by)."""
    tokens = [part.completion_mask.sum().item() for part in parts]
    return [count / max(sum(tokens), 1.0) for count in tokens]
