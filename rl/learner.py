"""Learner: holds the policy being trained, computes its logprobs of rollouts and applies GRPO updates.

A Learner is one process (a Ray actor in the pipeline); a LearnerGroup is the N learners that train one
policy together with FSDP2 (one per GPU; on CPUs over gloo, which the tests use). Policies are our
DeepSeek-V3 Transformer for checkpoints of that architecture and transformers' own class for any other
Hugging Face causal LM.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl import algos
from rl.batch import LearnerBatch, PackedRows

LEARNER_STATE = "learner_state.pt"


def load_policy(checkpoint: str | Path, dtype: torch.dtype = torch.float32,
                implementation: str = "auto") -> torch.nn.Module:
    """The policy of a checkpoint folder.

    implementation: "auto" = our Transformer for a DeepseekV3ForCausalLM folder and transformers'
    AutoModelForCausalLM for any other; "transformers" = transformers' class for every folder (to compare).
    """
    from model import ModelArgs, load_pretrained
    from model.config import ConfigError

    if implementation not in ("auto", "transformers"):
        raise ValueError(f"implementation must be 'auto' or 'transformers', got {implementation!r}")
    ours = implementation == "auto"
    if ours:
        try:
            ModelArgs.load(Path(checkpoint) / "config.json")
        except ConfigError as error:
            if "not DeepseekV3ForCausalLM" not in str(error):
                raise
            ours = False
    if ours:
        return load_pretrained(checkpoint, dtype=dtype)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=dtype)


def checkpoint_state_dict(policy: torch.nn.Module, state_dict: dict[str, torch.Tensor] | None = None
                          ) -> dict[str, torch.Tensor]:
    """The policy's weights (or the given full state_dict of it) in checkpoint layout (what vLLM's loader
    and save_pretrained expect)."""
    from model import Transformer, to_hf_state_dict

    if isinstance(policy, Transformer):
        return to_hf_state_dict(policy, state_dict)
    from transformers.core_model_loading import revert_weight_conversion  # transformers 5 fuses MoE experts

    return revert_weight_conversion(policy, policy.state_dict() if state_dict is None else state_dict)


# Packed rows are used when they cut the positions a forward runs by at least this share; a smaller saving is
# within a learner step's run-to-run noise here (about 10%), and the plain causal layout stays the simplest. The
# demo's batches (experiments/results/levers.json) have sequences of similar lengths: ~10% padding, and no two of
# them fit one row of the longest one's length, so they stay padded.
PACK_MIN_SAVING = 0.1


def packed_rows(batch: LearnerBatch, pack: bool) -> PackedRows | None:
    """The batch as packed rows, when pack is set and packing saves at least PACK_MIN_SAVING of the positions."""
    if not pack:
        return None
    rows = batch.packed
    return rows if rows.input_ids.numel() <= (1 - PACK_MIN_SAVING) * batch.input_ids.numel() else None


def forward_completions(model: torch.nn.Module, batch: LearnerBatch, pack: bool) -> tuple[torch.Tensor, Any]:
    """The logits (B, L, V) that predict the batch's completion tokens, and the model's whole output.

    Our Transformer computes the LM head at those positions only, over packed rows when pack is set and packing
    pays (packed_rows: no padding between sequences); other models run the padded rows whole.
    """
    from model import Transformer

    if not isinstance(model, Transformer):
        output = model(batch.input_ids)
        return output.logits.flatten(0, 1)[batch.logit_index()], output
    rows = packed_rows(batch, pack)
    if rows is not None:
        index = rows.logit_index
        output = model(rows.input_ids, segment_ids=rows.segment_ids, logits_at=index.flatten(), with_mtp=False)
    else:
        index = batch.logit_index()
        output = model(batch.input_ids, logits_at=index.flatten())
    return output.logits.view(*index.shape, -1), output


def forward_positions(batch: LearnerBatch, pack: bool) -> int:
    """The positions a learner forward of the batch runs, in the layout forward_completions chooses."""
    rows = packed_rows(batch, pack)
    return (rows.input_ids if rows is not None else batch.input_ids).numel()


def padding_fraction(batch: LearnerBatch, pack: bool) -> float:
    """The share of the positions a learner forward runs that hold padding, in the layout forward_completions
    chooses."""
    return 1.0 - batch.sequence_lengths().sum().item() / forward_positions(batch, pack)


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


def parameter_groups(policy: torch.nn.Module, lr: float, norm_lr_scale: float = 1.0) -> list[dict]:
    """AdamW's parameter groups: the RMSNorm gains (names ending in "norm.weight") at lr * norm_lr_scale, the rest
    at lr; one group when the scale is 1 (and when the policy has no such gains), so an optimizer state saved
    before this setting existed still loads."""
    named = list(policy.named_parameters())
    gains = [p for name, p in named if name.endswith("norm.weight")]
    rest = [p for name, p in named if not name.endswith("norm.weight")]
    if norm_lr_scale == 1.0 or not gains:
        return [{"params": [p for _, p in named], "lr": lr}]
    return [{"params": rest, "lr": lr}, {"params": gains, "lr": lr * norm_lr_scale}]


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu; a cuda request without a GPU is a clear error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"learner device {device!r} asked for, but this process sees no GPU "
                           "(on Ray, the learner actor must request num_gpus)")
    return torch.device(device)


class Learner:
    """The policy, its optimizer and scheduler, and the reference policy when beta > 0.

    One learner is one process. Several (world_size > 1) train one policy together: each holds a shard of
    every parameter and of the optimizer state (FSDP2, `fully_shard` per transformer block), takes its part
    of each mini-batch (LearnerBatch.shard) and the gradients are reduced across them (NCCL on GPUs, gloo on
    CPUs). The loss of each part is weighted so that W learners take exactly the step one learner would take
    on the whole batch (algos.shard_loss_weight).
    """

    def __init__(self, checkpoint: str, algorithm: Any, total_steps: int, max_completion_length: int,
                 seed: int = 0, threads: int = 1, temperature: float = 1.0, device: str = "cpu",
                 precision: str = "fp32", rank: int = 0, world_size: int = 1,
                 store_address: tuple[str, int] | None = None, implementation: str = "auto", pack: bool = False,
                 micro_batch_positions: int = 0):
        """
        Args:
            algorithm: an AlgorithmConfig (rl/config.py).
            total_steps: GRPO steps of the run (the learning-rate schedule spans them).
            max_completion_length: the rollout's max_new_tokens (dr_grpo's constant normaliser).
            threads: torch threads (the learner works while the rollout workers wait, so it may use all cores).
            temperature: the rollout sampling temperature; logprobs are those of logits / temperature.
            device: "cpu", "cuda" or "auto".
            precision: "fp32", or "bf16" (bf16 autocast of the forward and backward; fp32 master weights,
                optimizer state and loss).
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
        from model import Transformer

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.algorithm = algorithm
        self.max_completion_length = max_completion_length
        self.temperature = temperature
        self.device = resolve_device(device)
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
        self.rank, self.world_size = rank, world_size
        self.implementation = implementation
        if world_size > 1 and store_address is None:
            raise ValueError("world_size > 1 needs the store_address the learners meet at")
        self.distributed = store_address is not None  # in a process group, the policy sharded with FSDP2
        if self.distributed:
            self._join_process_group(store_address)
        self.policy = self._prepare(load_policy(checkpoint, implementation=implementation))
        self.pack = pack and isinstance(self.policy, Transformer)
        self.micro_batch_positions = micro_batch_positions
        self.reference = None
        if algorithm.beta > 0:
            self.reference = self._prepare(load_policy(checkpoint, implementation=implementation)
                                           ).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.policy, algorithm.lr, algorithm.norm_lr_scale),
                                           lr=algorithm.lr, weight_decay=algorithm.weight_decay)
        updates = total_steps * algorithm.num_iterations * algorithm.mini_batches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(algorithm.lr_schedule, algorithm.warmup_steps, updates))
        self.loss_spec = algos.get_loss_spec(algorithm.loss_type)  # an unknown loss_type fails here, before any rollout
        self.version = 0  # GRPO updates taken (saved with the learner's state)

    def _join_process_group(self, store_address: tuple[str, int]) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            raise RuntimeError("this process already has a torch.distributed process group (an in-process vLLM "
                               "engine makes one): a sharded learner needs a process of its own, e.g. its Ray actor")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device.index or 0)
        store = dist.TCPStore(store_address[0], store_address[1], is_master=False)
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", store=store, rank=self.rank,
                                world_size=self.world_size)

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Onto the device; with several learners, sharded: one FSDP unit per transformer block, then the rest."""
        model = model.to(self.device)
        if not self.distributed:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # An explicit mesh: fully_shard's default one is on the GPU whenever one is visible, CPU learners too.
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        blocks = getattr(model, "layers", None) or getattr(getattr(model, "model", None), "layers", [])
        for block in blocks:
            fully_shard(block, mesh=mesh)
        return fully_shard(model, mesh=mesh)

    def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray

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

        batch: the whole batch (a single learner splits it into algorithm.mini_batches), or this learner's
        mini-batches as LearnerBatch.shard cut them (every learner of a group gets the same count).
        """
        started = time.perf_counter()
        algorithm = self.algorithm
        mini_batches = batch.chunks(algorithm.mini_batches) if isinstance(batch, LearnerBatch) else list(batch)
        mini_batches = [chunk.to(self.device) for chunk in mini_batches]
        micro = [self._micro_batches(chunk) for chunk in mini_batches]  # micro[i][j]: mini-batch i's part j
        # Fully on-policy (one pass, one mini-batch): the old logprobs are the training forward's own, detached,
        # as in TRL; otherwise they are computed once before the first update.
        on_policy = algorithm.num_iterations == 1 and len(mini_batches) == 1
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
        for _ in range(algorithm.num_iterations):
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
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), algorithm.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                step_metrics["grad_norm"] = _full(grad_norm).item()
                if hasattr(self.policy, "update_balance_bias") and algorithm.balance_bias_speed > 0:
                    self._all_reduce_expert_load()
                    step_metrics |= self.policy.update_balance_bias(algorithm.balance_bias_speed)
                for key, value in step_metrics.items():
                    sums.setdefault(key, []).append(value)
        self.version += 1
        elapsed = time.perf_counter() - started
        forwards = algorithm.num_iterations + (0 if on_policy else 1) + (self.reference is not None)
        parts = [part for parts in micro for part in parts]
        tokens = sum(part.sequence_lengths().sum().item() for part in parts)
        metrics = (self._mismatch_metrics([lp for lps in old_logprobs for lp in lps], parts)
                   | {key: sum(values) / len(values) for key, values in sums.items()}
                   | {"throughput/learner_tokens_per_s": tokens * forwards / max(elapsed, 1e-9),
                      "learner/padding_frac": 1.0 - tokens / sum(forward_positions(part, self.pack) for part in parts),
                      "learner/micro_batches": len(parts) / len(micro)})
        metrics = self._mean_over_learners(metrics)
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
        algorithm = self.algorithm
        logprobs, logits, output = self._completion_logprobs(self.policy, part)
        if old_logprobs is None:
            old_logprobs = logprobs.detach()
        correction = None
        if getattr(algorithm, "rollout_correction_cap", None) is not None:
            correction = algos.truncated_importance_weights(old_logprobs, part.rollout_logprobs,
                                                            part.completion_mask, algorithm.rollout_correction_cap)
        loss, loss_metrics = algos.policy_loss(
            logprobs, old_logprobs, part.advantages, part.completion_mask,
            loss_type=algorithm.loss_type, epsilon_low=algorithm.epsilon_low,
            epsilon_high=algorithm.epsilon_high, beta=algorithm.beta, ref_logprobs=reference_logprobs,
            max_completion_length=self.max_completion_length, num_items_in_batch=num_items,
            importance_sampling_level=algorithm.importance_sampling_level,
            kl_bias_correction=algorithm.kl_bias_correction, importance_sampling_ratio=correction,
            **({"delta": algorithm.delta} if algorithm.delta is not None else {}))
        balance = getattr(output, "balance_loss", 0.0)  # MoE sequence-wise balance term
        with torch.set_grad_enabled(algorithm.entropy_coeff != 0):  # graph only when the loss uses it
            entropy = algos.masked_mean(algos.entropy_from_logits(logits.float() / self.temperature),
                                        part.completion_mask)
        # this part's share of the mini-batch's loss; the entropy term is a token mean over the whole mini-batch
        total = loss * weight + balance * balance_weight - algorithm.entropy_coeff * entropy * entropy_weight
        (total * self.world_size).backward()  # FSDP averages gradients over the learners
        metrics = {"loss": loss.item(), "entropy": entropy.item()} | {k: float(v) for k, v in loss_metrics.items()}
        for key in self.SUMMED:  # the mini-batch's loss once summed over parts and averaged over the learners
            metrics[key] *= weight * self.world_size
        return metrics, old_logprobs

    def _micro_batches(self, chunk: LearnerBatch) -> list[LearnerBatch]:
        """A mini-batch's micro-batches (LearnerBatch.micro_batches). Learners of a group must run as many
        forward and backward passes (each is a collective), so one with fewer parts gets padding rows."""
        parts = chunk.micro_batches(self.micro_batch_positions)
        if self.distributed:
            most = int(self._all_reduce(torch.tensor([len(parts)]), op="max").item())
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
        summed = self._all_reduce(local)
        loss_weights = [[algos.shard_loss_weight(self.loss_spec.agg, len(part), part.completion_mask.sum().item(),
                                                 summed[i, 0].item(), summed[i, 1].item()) for part in parts]
                        for i, parts in enumerate(micro)]
        balance_weights = [[algos.shard_loss_weight("seq-mean-token-mean", len(part), 0.0, summed[i, 0].item(), 0.0)
                            if part.is_sample.any() else 0.0 for part in parts] for i, parts in enumerate(micro)]
        entropy_weights = [[algos.shard_loss_weight("token-mean", len(part), part.completion_mask.sum().item(),
                                                    summed[i, 0].item(), summed[i, 1].item()) for part in parts]
                           for i, parts in enumerate(micro)]
        return loss_weights, balance_weights, entropy_weights, summed[:, 1].sum().item() / len(micro)

    def _all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """tensor reduced over the learners ("sum" or "max"), as a new CPU tensor (itself for a single learner)."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        reduced = tensor.to(self.device, copy=True)  # all_reduce works in place
        dist.all_reduce(reduced, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return reduced.cpu()

    def _mean_over_learners(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over the learners (maxima: the maximum)."""
        if not self.distributed:
            return metrics
        keys = sorted(metrics)
        maxima = [k for k in keys if k.endswith("_max")]
        means = [k for k in keys if k not in maxima]
        summed = self._all_reduce(torch.tensor([metrics[k] for k in means], dtype=torch.float64))
        result = {k: v / self.world_size for k, v in zip(means, summed.tolist())}
        if maxima:
            largest = self._all_reduce(torch.tensor([metrics[k] for k in maxima], dtype=torch.float64), op="max")
            result |= dict(zip(maxima, largest.tolist()))
        return result

    def _all_reduce_expert_load(self) -> None:
        """Every learner counts the expert load of its own tokens; the bias update needs the load of all of
        them (and then stays identical on every learner)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for name, buffer in self.policy.named_buffers():
            if name.endswith("expert_load"):
                dist.all_reduce(buffer)

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

    def gradients(self) -> dict[str, torch.Tensor] | None:
        """The gradients the last optimizer step applied (after clipping), whole and on the CPU, by parameter name
        (rank 0; None on the others; every learner must call: sharded gradients are gathered)."""
        grads = {name: _full(p.grad).detach().cpu() for name, p in self.policy.named_parameters() if p.grad is not None}
        return grads if self.rank == 0 else None

    # ------------------------------------------------------------------ weights and state
    def _full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's whole weights on the CPU (gathered from every learner: all must call; only rank 0
        gets them, the others an empty dict)."""
        if not self.distributed:
            return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def weights_blob(self) -> bytes | None:
        """Checkpoint-layout weights serialised for the rollout workers (rank 0; None on the others)."""
        from rl.weight_sync import serialize_weights

        state_dict = self._full_state_dict(self.policy)
        if self.rank != 0:
            return None
        return serialize_weights(checkpoint_state_dict(self.policy, state_dict))

    def save(self, folder: str) -> None:
        """The policy in HF format plus optimizer, scheduler, RNG state and version (into folder; rank 0 writes,
        every learner must call)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        from model import Transformer, save_pretrained

        folder = Path(folder)
        weights = self._full_state_dict(self.policy)
        optimizer = get_optimizer_state_dict(self.policy, self.optimizer,
                                             options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        reference = None if self.reference is None else self._full_state_dict(self.reference)
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
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

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


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor (sharded learners' grad norm) as a plain tensor."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def learner_actor(num_cpus: float = 1, num_gpus: float = 0, resources: dict[str, float] | None = None) -> Any:
    """The Learner class as a Ray actor class."""
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {})(Learner)


class LearnerGroup:
    """The learner actors that train one policy, driven as one: every call goes to all of them (the
    collectives inside need every learner), each learner gets its shard of the batch, and what one learner
    answers for all (metrics, weights) comes from rank 0.

    The learners meet at a torch.distributed TCPStore that this driver-side object hosts (so no learner
    has to be asked for an address first); a checkpoint folder must be reachable by every learner.
    """

    def __init__(self, checkpoint: str, algorithm: Any, total_steps: int, max_completion_length: int, *,
                 num_learners: int = 1, device: str = "cpu", precision: str = "fp32", temperature: float = 1.0,
                 seed: int = 0, threads: int = 1, resources: dict[str, float] | None = None, pack: bool = False,
                 micro_batch_positions: int = 0):
        """
        Args:
            device: "cpu" or "cuda" (each learner actor then asks Ray for one GPU).
            threads: torch threads of each learner.
            Others: as Learner.
        """
        self.store, store_address = None, None
        if num_learners > 1:
            import ray
            from torch.distributed import TCPStore

            host = ray.util.get_node_ip_address()
            self.store = TCPStore(host, 0, is_master=True, wait_for_workers=False)
            store_address = (host, self.store.port)
        # CPU learners share the cores one learner would have (Ray's CPU count is what placement reads).
        on_gpu = device == "cuda"
        actor_class = learner_actor(num_cpus=1 if on_gpu else 1 / num_learners, num_gpus=1 if on_gpu else 0,
                                    resources=resources)
        self.actors = [actor_class.remote(checkpoint, algorithm, total_steps, max_completion_length, seed=seed,
                                          threads=threads, temperature=temperature, device=device,
                                          precision=precision, rank=rank, world_size=num_learners, pack=pack,
                                          micro_batch_positions=micro_batch_positions, store_address=store_address)
                       for rank in range(num_learners)]
        self.mini_batches = algorithm.mini_batches
        self._pending: list = []  # calls of ranks > 0 whose answers nobody reads (see weights_blob)

    def _call_all(self, method: str, *args) -> list:
        import ray

        calls = [getattr(actor, method).remote(*args) for actor in self.actors]
        results = ray.get(self._pending + calls)[len(self._pending):]
        self._pending = []
        return results

    def ready(self) -> bool:
        return all(self._call_all("ready"))

    def train_step(self, batch: LearnerBatch) -> dict[str, float]:
        """One GRPO update on the batch; the metrics are averaged over the learners."""
        import ray

        shards = batch.shard(len(self.actors), self.mini_batches)
        calls = [actor.train_step.remote(shard) for actor, shard in zip(self.actors, shards)]
        results = ray.get(self._pending + calls)[len(self._pending):]
        self._pending = []
        return results[0]

    def weights_blob(self) -> Any:
        """An ObjectRef to rank 0's serialised weights (to hand to the rollout workers without a copy through
        this driver). The other ranks' calls are collected at the next group call."""
        calls = [actor.weights_blob.remote() for actor in self.actors]
        self._pending += calls[1:]
        return calls[0]

    def save(self, folder: str) -> None:
        self._call_all("save", folder)

    def gradients(self) -> dict[str, torch.Tensor]:
        """The gradients of the last optimizer step (Learner.gradients), gathered from all learners."""
        return self._call_all("gradients")[0]

    def load(self, folder: str) -> None:
        self._call_all("load", folder)

    def node_ids(self) -> list[str]:
        return self._call_all("node_id")

    def kill(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
