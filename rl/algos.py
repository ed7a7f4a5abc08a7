"""GRPO math as pure tensor functions: advantages, KL, log-probabilities, policy losses and their aggregation.

Nothing here reads a config object or touches a model: every function takes tensors and explicit scalars, so the
learner, the tests and the TRL parity test call exactly the same code. Shapes use B = completions in the batch,
T = completion tokens (padded), V = vocabulary size, G = group size (completions per prompt).

Policy losses live in a registry (`@register_loss("grpo")`, `get_loss_spec("grpo")`) and follow TRL 1.16's
`GRPOTrainer._compute_loss` term for term (importance ratio, clip-higher, two-sided clipping, GSPO
sequence-level ratios, the k3 KL with its importance-sampling bias correction, vLLM importance-sampling
weights); `agg_loss` is the single home of the normalisers that distinguish `grpo`, `bnpo`, `dr_grpo` and `dapo`.
Advantage estimators live in a registry too (`@register_adv_est("grpo")`, `get_adv_estimator("reverse_kl")`):
GRPO's group-relative advantage per completion, and on-policy distillation's per-token teacher signal;
`reverse_kl_to_teacher` is that distillation's other signal, the exact KL to the teacher's next-token distribution.
One deliberate difference: TRL divides `grpo`/`bnpo`/`dr_grpo` by the gradient-accumulation steps inside the loss;
here the caller owns accumulation (a learner that splits one batch into k micro-batches divides by k, or passes
`num_items_in_batch` for the token-sum modes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor

# ------------------------------------------------------------------------------------------------ small helpers


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over the positions where `mask` is non-zero.

    Args:
        x: values, any shape broadcastable with `mask`.
        mask: 0/1 (bool or float) weights, same shape as `x` (or broadcastable to it).
        dim: dimension to reduce; None reduces everything.

    Returns:
        The masked mean; an all-masked row gives 0 (the denominator is clamped to 1, as TRL does), not NaN.
    """
    mask = mask.to(x.dtype) if x.is_floating_point() else mask.float()
    x = x * mask
    mask = mask.expand_as(x)
    if dim is None:
        return x.sum() / mask.sum().clamp(min=1.0)
    return x.sum(dim) / mask.sum(dim).clamp(min=1.0)


def selective_log_softmax(logits: Tensor, ids: Tensor, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """Log-probability of the chosen tokens, `log_softmax(logits / temperature)[..., ids]`.

    Computed as `logit[id] - logsumexp(logits)` over row chunks, so no full (.., V) log-softmax copy is kept
    alive; half-precision logits are upcast chunk by chunk (a bf16 logsumexp loses ~1e-2 nats).

    Args:
        logits: (..., V) unnormalised scores.
        ids: (...) chosen token ids (int64).
        temperature: the sampling temperature the logprobs refer to (vLLM reports logprobs after it).
        chunk_size: rows per chunk.

    Returns:
        (...) log-probabilities in float32 (or the logits' dtype if wider).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    out_dtype = torch.promote_types(logits.dtype, torch.float32)
    flat_logits, flat_ids = logits.reshape(-1, logits.size(-1)), ids.reshape(-1)
    pieces = []
    for rows, row_ids in zip(flat_logits.split(chunk_size), flat_ids.split(chunk_size)):
        rows = rows.to(out_dtype)
        if temperature != 1.0:
            rows = rows / temperature
        chosen = rows.gather(-1, row_ids.unsqueeze(-1)).squeeze(-1)
        pieces.append(chosen - torch.logsumexp(rows, dim=-1))
    return torch.cat(pieces).view(ids.shape)


def entropy_from_logits(logits: Tensor, chunk_size: int = 1024) -> Tensor:
    """Shannon entropy (nats) of `softmax(logits)` along the last axis, e.g. (B, T, V) -> (B, T).

    Uses H = logsumexp(z) - sum(softmax(z) * z), which stays finite for very peaked or -inf-masked logits
    (the naive -sum(p log p) gives 0 * -inf = NaN there), chunked over rows to bound memory.
    """
    out_dtype = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.reshape(-1, logits.size(-1))
    pieces = []
    for rows in flat.split(chunk_size):
        rows = rows.to(out_dtype)
        probs = torch.softmax(rows, dim=-1)
        weighted = torch.where(probs > 0, probs * rows, torch.zeros_like(rows))
        pieces.append(torch.logsumexp(rows, dim=-1) - weighted.sum(-1))
    return torch.cat(pieces).view(logits.shape[:-1])


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi || pi_ref) (Schulman): exp(ref - logp) - (ref - logp) - 1, >= 0.

    Args:
        logprobs: (B, T) policy log-probabilities of the sampled tokens.
        ref_logprobs: (B, T) reference-policy log-probabilities of the same tokens.
    """
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


# ------------------------------------------------------------------------------------------------ advantages


def _group_index(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, int]:
    """Each sample's group as 0..n_groups-1 (any integer ids accepted), and the number of groups."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if group_ids.shape != rewards.shape:
        raise ValueError(f"group_ids {tuple(group_ids.shape)} must have the shape of rewards {tuple(rewards.shape)}")
    unique, index = torch.unique(group_ids, return_inverse=True)
    return index, unique.numel()


def _group_sum(values: Tensor, index: Tensor, n_groups: int) -> Tensor:
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, index, values)


def compute_grpo_advantages(rewards: Tensor, group_ids: Tensor, scale_by_std: bool = True, eps: float = 1e-4
                            ) -> Tensor:
    """Group-relative advantages A_i = (r_i - mean_g) / (std_g + eps), or r_i - mean_g (Dr. GRPO).

    The std is the unbiased sample std (Bessel's correction, divisor G - 1), as TRL's `nanstd` computes it in
    `GRPOTrainer` (scale_rewards="group"); eps = 1e-4 is TRL's. Rewards may contain NaN (a completion no reward
    function could score): it is left out of its group's mean and std and gets advantage 0, as in TRL. A group of
    one has std 0 (TRL's convention), so its only sample gets advantage 0.

    Args:
        rewards: (N,) one reward per completion.
        group_ids: (N,) the group (prompt) of each completion, as verl's `index`: any integer ids, in any order,
            groups of any size.
        scale_by_std: divide by the group std (GRPO); False gives Dr. GRPO's unscaled advantages.
        eps: added to the std, so zero-variance groups give 0 rather than NaN.

    Returns:
        (N,) advantages, same dtype as rewards.
    """
    index, n_groups = _group_index(rewards, group_ids)
    scored = ~torch.isnan(rewards)
    count = _group_sum(scored.to(rewards.dtype), index, n_groups)
    mean = _group_sum(torch.where(scored, rewards, 0.0), index, n_groups) / count.clamp(min=1)
    advantages = rewards - mean[index]
    if scale_by_std:
        squares = _group_sum(torch.where(scored, advantages, 0.0) ** 2, index, n_groups)
        std = (squares / (count - 1).clamp(min=1)).sqrt()  # 0 for a group of one
        advantages = advantages / (std[index] + eps)
    return torch.nan_to_num(advantages, nan=0.0)


def zero_variance_groups(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """True for every sample whose group's rewards are all equal (no learning signal; DAPO drops these groups).

    Args:
        rewards: (N,) rewards (NaN = not scored, ignored).
        group_ids: (N,) the group of each sample (see compute_grpo_advantages).

    Returns:
        (N,) bool mask.
    """
    index, n_groups = _group_index(rewards, group_ids)
    scored = ~torch.isnan(rewards)
    high = torch.full((n_groups,), -torch.inf, dtype=rewards.dtype).scatter_reduce(
        0, index, torch.where(scored, rewards, -torch.inf), "amax")
    low = torch.full((n_groups,), torch.inf, dtype=rewards.dtype).scatter_reduce(
        0, index, torch.where(scored, rewards, torch.inf), "amin")
    flat = torch.isclose(high, low) | (high == -torch.inf)  # a group nobody could score teaches nothing either
    return flat[index]


# ------------------------------------------------------------------------------------------------ estimator registry


@dataclass(frozen=True)
class AdvantageInputs:
    """What an advantage estimator may read (B completions, T completion tokens, padded).

    Attributes:
        rewards: (B,) each completion's total rule reward; NaN where no reward function applies.
        group_ids: (B,) the prompt (group) of each completion (see compute_grpo_advantages).
        mask: (B, T) 1 for the completion tokens that count, or None for an estimator that reads no tokens.
        logprobs: (B, T) the sampling policy's log-probabilities of the sampled tokens, or None.
        teacher_logprobs: (B, T) a teacher's log-probabilities of the same tokens, or None.
    """

    rewards: Tensor
    group_ids: Tensor
    mask: Tensor | None = None
    logprobs: Tensor | None = None
    teacher_logprobs: Tensor | None = None


class AdvantageEstimator(Protocol):
    """A registered estimator: (inputs, options) -> (B,) advantages per completion or (B, T) per token."""

    def __call__(self, inputs: AdvantageInputs, **options: float | bool) -> Tensor: ...


_ADV_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_adv_est(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Register an advantage estimator under `name` (verl's `register_adv_est`).

    Raises:
        ValueError: if `name` is already taken by another function.
    """

    def decorator(fn: AdvantageEstimator) -> AdvantageEstimator:
        if name in _ADV_ESTIMATORS and _ADV_ESTIMATORS[name] is not fn:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        _ADV_ESTIMATORS[name] = fn
        return fn

    return decorator


def get_adv_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered under `name`; ValueError listing the valid names if there is none."""
    if name not in _ADV_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {', '.join(adv_estimator_names())}")
    return _ADV_ESTIMATORS[name]


def adv_estimator_names() -> list[str]:
    """Registered advantage estimators, sorted."""
    return sorted(_ADV_ESTIMATORS)


@register_adv_est("grpo")
def grpo_advantages(inputs: AdvantageInputs, *, scale_by_std: bool = True, eps: float = 1e-4,
                    **_: float | bool) -> Tensor:
    """GRPO's (B,) group-relative advantage of each completion's rule reward (compute_grpo_advantages)."""
    return compute_grpo_advantages(inputs.rewards, inputs.group_ids, scale_by_std=scale_by_std, eps=eps)


@register_adv_est("reverse_kl")
def reverse_kl_advantages(inputs: AdvantageInputs, *, rule_reward_weight: float = 0.0, scale_by_std: bool = True,
                          eps: float = 1e-4, **_: float | bool) -> Tensor:
    """On-policy distillation's (B, T) per-token advantage: A_t = log pi_teacher(x_t) - log pi_student(x_t).

    Its negative is the single-sample estimate of the reverse KL(pi_student || pi_teacher) at token t, on the
    student's own samples (Agarwal et al. 2024, GKD; Thinking Machines 2025): a policy-gradient step with it
    lowers the reverse KL, pulling up the tokens the teacher finds likelier than the student does and down the
    others. With rule_reward_weight w > 0, w times the rule reward's GRPO advantage of the completion is added to
    every one of its tokens. Masked tokens get 0.

    Args:
        inputs: mask, logprobs (the student's: the sampling policy's) and teacher_logprobs, all (B, T); rewards
            and group_ids when rule_reward_weight > 0.
        rule_reward_weight: weight of the rule reward's GRPO advantage; 0 = the teacher's signal alone.
        scale_by_std, eps: of that GRPO advantage (see compute_grpo_advantages).

    Returns:
        (B, T) advantages, float32 (or the logprobs' dtype if wider).
    """
    if inputs.logprobs is None or inputs.teacher_logprobs is None or inputs.mask is None:
        raise ValueError("the reverse_kl estimator needs mask, logprobs and teacher_logprobs")
    if inputs.teacher_logprobs.shape != inputs.logprobs.shape or inputs.mask.shape != inputs.logprobs.shape:
        raise ValueError(f"teacher_logprobs {tuple(inputs.teacher_logprobs.shape)}, logprobs "
                         f"{tuple(inputs.logprobs.shape)} and mask {tuple(inputs.mask.shape)} must have one shape")
    dtype = torch.promote_types(inputs.logprobs.dtype, torch.float32)
    advantages = inputs.teacher_logprobs.to(dtype) - inputs.logprobs.to(dtype)
    if rule_reward_weight:
        rule = compute_grpo_advantages(inputs.rewards, inputs.group_ids, scale_by_std=scale_by_std, eps=eps)
        advantages = advantages + rule_reward_weight * rule.to(dtype)[:, None]
    return torch.where(inputs.mask.bool(), advantages, 0.0)  # not a product: a -inf logprob at padding stays out


# ------------------------------------------------------------------------------------------------ distributions


def teacher_distribution(logits: Tensor, temperature: float = 1.0, top_k: int = 0) -> tuple[Tensor, Tensor]:
    """What a teacher hands the learner of on-policy distillation at each position: its next-token
    log-probabilities at the sampling temperature, over the whole vocabulary or over its top_k likeliest tokens.

    Args:
        logits: (B, T, V) the teacher's logits at the positions predicting the completion tokens.
        temperature: the student's sampling temperature (both distributions are taken at it).
        top_k: 0 = the whole vocabulary; k > 0 = the k likeliest tokens (k >= V is the whole vocabulary).

    Returns:
        (logprobs, ids): the whole vocabulary: (B, T, V) float32 log-probabilities and an empty (B, T, 0) ids
        tensor (the logprobs are in token order); top_k: (B, T, k) log-probabilities (normalized over the whole
        vocabulary, likeliest first) and their (B, T, k) token ids.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    if top_k <= 0 or top_k >= logits.size(-1):
        return logprobs, torch.zeros(*logits.shape[:-1], 0, dtype=torch.long, device=logits.device)
    return logprobs.topk(top_k, dim=-1)


def reverse_kl_to_teacher(logits: Tensor, teacher_logprobs: Tensor, teacher_ids: Tensor,
                          temperature: float = 1.0) -> Tensor:
    """The exact reverse KL(pi_student || pi_teacher) of the next-token distributions at each position (GKD,
    Agarwal et al. 2024, with beta = 1), differentiable in the student's logits.

    On the student's own samples this is the expectation, over every next token, of what the sampled-token
    `reverse_kl` estimator sees for one: the student learns which token the teacher wanted, not only that the
    sampled one was worse. With the teacher's top-k tokens (teacher_ids not empty) both distributions are
    renormalized over those k, a KL that ignores the mass either puts elsewhere.

    Args:
        logits: (B, T, V) the student's logits at the same positions.
        teacher_logprobs, teacher_ids: teacher_distribution's output, (B, T, V) and (B, T, 0), or (B, T, k) each.
        temperature: the sampling temperature the teacher's logprobs were taken at.

    Returns:
        (B, T) KL in nats per position, >= 0 (float32, or the logits' dtype if wider); the caller masks it.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    student = torch.log_softmax(logits.to(dtype) / temperature, dim=-1)
    teacher = teacher_logprobs.to(dtype)
    if teacher_ids.size(-1) > 0:  # renormalize both over the teacher's top-k tokens
        student = student.gather(-1, teacher_ids)
        student = student - torch.logsumexp(student, dim=-1, keepdim=True)
        teacher = teacher - torch.logsumexp(teacher, dim=-1, keepdim=True)
    elif teacher.shape != student.shape:
        raise ValueError(f"teacher_logprobs {tuple(teacher.shape)} must cover the student's whole vocabulary "
                         f"{tuple(student.shape)} when teacher_ids is empty")
    return (student.exp() * (student - teacher)).sum(-1)  # both finite: log-softmaxes of finite logits


# ------------------------------------------------------------------------------------------------ aggregation

AGG_MODES = ("seq-mean-token-mean", "token-mean", "token-sum-norm", "token-sum-global", "seq-mean-token-sum")


def agg_loss(
    per_token_loss: Tensor,
    mask: Tensor,
    mode: str,
    max_completion_length: int | None = None,
    num_items_in_batch: Tensor | float | None = None,
) -> Tensor:
    """Reduce a per-token loss to a scalar: the single home of every loss type's normaliser.

    Args:
        per_token_loss: (B, T), or (B, 1) for sequence-level terms (broadcast over the mask).
        mask: (B, T) 1 for completion tokens that count.
        mode: one of
            - "seq-mean-token-mean" (TRL `grpo`, `sapo`): mean over sequences of each sequence's token mean.
            - "token-mean" (TRL `bnpo`): token sum / tokens in this (local) batch.
            - "token-sum-norm" (TRL `dr_grpo`): token sum / (B * max_completion_length).
            - "token-sum-global" (TRL `dapo`, `cispo`, `vespo`): token sum / `num_items_in_batch`, the number of
              tokens in the whole (global, accumulated) batch; without it, the local count (then = "token-mean").
            - "seq-mean-token-sum" (TRL `luspo`): mean over sequences of each sequence's token sum.
        max_completion_length: the constant of "token-sum-norm".
        num_items_in_batch: global token count for "token-sum-global".

    Returns:
        0-d loss tensor.
    """
    mask = mask.to(per_token_loss.dtype)
    masked = per_token_loss * mask
    if mode == "seq-mean-token-mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if mode == "token-mean":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if mode == "token-sum-norm":
        if not max_completion_length:
            raise ValueError("agg mode 'token-sum-norm' (dr_grpo) needs max_completion_length")
        return masked.sum() / (per_token_loss.size(0) * max_completion_length)
    if mode == "token-sum-global":
        total = mask.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, dtype=mask.dtype)
        return masked.sum() / total.clamp(min=1.0)
    if mode == "seq-mean-token-sum":
        return masked.sum(-1).mean()
    raise ValueError(f"unknown aggregation mode {mode!r}; valid: {', '.join(AGG_MODES)}")


def shard_loss_weight(mode: str, local_rows: float, local_tokens: float, global_rows: float,
                      global_tokens: float) -> float:
    """The factor that turns one data-parallel shard's `agg_loss` into its share of the global batch's loss.

    With W learners each holding part of a mini-batch, the sum over shards of `weight * agg_loss(shard)`
    equals `agg_loss` of the whole mini-batch on one learner, for every mode: sequence means are re-weighted
    by the shard's share of the rows, a local token mean by its share of the tokens; "token-sum-global" is
    already global through `num_items_in_batch`. (Data-parallel wrappers average gradients over W, so a
    learner back-propagates `W * weight * loss`.)

    Args:
        mode: the aggregation mode (`LossSpec.agg`).
        local_rows: rows of the shard's mini-batch (its padding rows included: they sit in its denominator).
        local_tokens: completion tokens counted by the shard's mask.
        global_rows: real rows of the mini-batch over all shards (padding rows excluded).
        global_tokens: completion tokens of the mini-batch over all shards.
    """
    if mode == "token-sum-global":
        return 1.0
    if mode == "token-mean":
        return local_tokens / max(global_tokens, 1.0)
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum", "token-sum-norm"):
        return local_rows / max(global_rows, 1.0)
    raise ValueError(f"unknown aggregation mode {mode!r}; valid: {', '.join(AGG_MODES)}")


# ------------------------------------------------------------------------------------------------ loss registry


@dataclass(frozen=True)
class LossTerms:
    """What every per-token policy term sees (shapes: B completions, T tokens; L = T or 1 at sequence level).

    Attributes:
        logprobs: (B, T) current-policy log-probabilities (carry the gradient).
        log_ratio: (B, T) logprobs - old_logprobs, token level.
        ratio: (B, L) importance ratio pi/pi_old at the chosen level (token, or GSPO's per-sequence geometric mean).
        advantages: (B, 1) or (B, T).
        mask: (B, T) completion mask.
        importance_sampling_ratio: (B, T) or (B, 1) rollout-engine correction weights pi_old/pi_vllm, or None.
    """

    logprobs: Tensor
    log_ratio: Tensor
    ratio: Tensor
    advantages: Tensor
    mask: Tensor
    importance_sampling_ratio: Tensor | None


class PerTokenLossFn(Protocol):
    """A registered policy term: (terms, hyper-parameters) -> ((B, L) per-token loss, metrics)."""

    def __call__(self, terms: LossTerms, **hparams: float | None) -> tuple[Tensor, dict[str, Tensor]]: ...


@dataclass(frozen=True)
class LossSpec:
    """A registry entry: the per-token term, its aggregation mode, and whether it applies the vLLM IS weights."""

    fn: PerTokenLossFn
    agg: str
    applies_is_ratio: bool = True
    options: frozenset[str] = frozenset()


_LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, agg: str, applies_is_ratio: bool = True, options: Sequence[str] = (),
                  ) -> Callable[[PerTokenLossFn], PerTokenLossFn]:
    """Register a per-token policy term under `name`, aggregated with `agg` (see `agg_loss`).

    `options` names extra keyword hyper-parameters the term reads (beyond the built-in `LOSS_OPTIONS`), so that
    `policy_loss` accepts them; `applies_is_ratio=False` if the term folds the rollout IS weights in itself.

    Raises:
        ValueError: if `agg` is unknown or `name` is already taken by another function.
    """
    if agg not in AGG_MODES:
        raise ValueError(f"unknown aggregation mode {agg!r}; valid: {', '.join(AGG_MODES)}")

    def decorator(fn: PerTokenLossFn) -> PerTokenLossFn:
        if name in _LOSSES and _LOSSES[name].fn is not fn:
            raise ValueError(f"loss {name!r} is already registered")
        _LOSSES[name] = LossSpec(fn, agg, applies_is_ratio, frozenset(options))
        return fn

    return decorator


def get_loss_spec(name: str) -> LossSpec:
    """The registry entry for `name`; ValueError listing the valid names if there is none."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss_type {name!r}; valid: {', '.join(loss_names())}")
    return _LOSSES[name]


def loss_names() -> list[str]:
    """Registered loss types, sorted."""
    return sorted(_LOSSES)


def _clip_metrics(ratio: Tensor, advantages: Tensor, mask: Tensor, epsilon_low: float, epsilon_high: float,
                  ) -> dict[str, Tensor]:
    # The clip fractions count only tokens whose gradient clipping actually removed (TRL's definition).
    low = ((ratio < 1 - epsilon_low) & (advantages < 0)).float()
    high = ((ratio > 1 + epsilon_high) & (advantages > 0)).float()
    return {"actor/clip_frac_low": _token_or_seq_mean(low, mask),
            "actor/clip_frac_high": _token_or_seq_mean(high, mask),
            "actor/clip_frac": _token_or_seq_mean(torch.maximum(low, high), mask)}


def _token_or_seq_mean(x: Tensor, mask: Tensor) -> Tensor:
    # A (B, 1) sequence-level quantity is averaged over sequences; a (B, T) one over completion tokens.
    if x.size(-1) == 1 and mask.size(-1) != 1:
        return x.mean().detach()
    return masked_mean(x, mask).detach()


@register_loss("grpo", agg="seq-mean-token-mean")
@register_loss("bnpo", agg="token-mean")
@register_loss("dr_grpo", agg="token-sum-norm")
@register_loss("dapo", agg="token-sum-global")
@register_loss("luspo", agg="seq-mean-token-sum")
def clipped_surrogate(terms: LossTerms, *, epsilon_low: float, epsilon_high: float, delta: float | None = None,
                      **_: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A), with DAPO's clip-higher
    (eps_high > eps_low) and INTELLECT-2's two-sided clipping (r capped at `delta` in the unclipped branch)."""
    ratio, advantages = terms.ratio, terms.advantages
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    if delta is not None:
        ratio = torch.clamp(ratio, max=delta)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    return per_token, _clip_metrics(ratio, advantages, terms.mask, epsilon_low, epsilon_high)


@register_loss("cispo", agg="token-sum-global")
def cispo(terms: LossTerms, *, epsilon_high: float, **_: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    """MiniMax-M1's CISPO: -sg(min(r, eps_high)) A log pi; the ratio is clipped, the gradient always flows
    (through log pi), so no token is silenced. Here `epsilon_high` is the cap itself (TRL: eps_max, e.g. 5.0)."""
    capped = torch.clamp(terms.ratio, max=epsilon_high).detach()
    per_token = -capped * terms.advantages * terms.logprobs
    clipped = ((terms.ratio > epsilon_high) & (terms.advantages > 0)).float()
    return per_token, {"actor/clip_frac": _token_or_seq_mean(clipped, terms.mask)}


@register_loss("sapo", agg="seq-mean-token-mean")
def sapo(terms: LossTerms, *, sapo_temperature_pos: float = 1.0, sapo_temperature_neg: float = 1.05,
         **_: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    """Soft Adaptive Policy Optimization: a sigmoid gate 4/tau * sigmoid(tau (r - 1)) replaces the hard clip
    (its slope at r = 1 is 1, like the plain surrogate); tau_pos for A > 0, tau_neg otherwise."""
    tau = torch.where(terms.advantages > 0, sapo_temperature_pos, sapo_temperature_neg)
    per_token = -torch.sigmoid(tau * (terms.ratio - 1)) * 4 / tau * terms.advantages
    return per_token, {}


@register_loss("vespo", agg="token-sum-global", applies_is_ratio=False)
def vespo(terms: LossTerms, *, vespo_k_pos: float = 2.0, vespo_lambda_pos: float = 3.0, vespo_k_neg: float = 3.0,
          vespo_lambda_neg: float = 2.0, **_: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    """VESPO: -phi(w) A log pi with a detached Gamma weight phi(w) = e^lam w^k e^{-lam w} of the sequence ratio w
    (token log-ratios summed, times the rollout IS weights); k, lambda depend on the sign of A."""
    with torch.no_grad():
        floor = math.log(1e-8)  # TRL clamps log w at log(1e-8) and 20
        seq_log_ratio = (torch.clamp(terms.log_ratio, -20.0, 20.0) * terms.mask).sum(-1, keepdim=True)
        if terms.importance_sampling_ratio is not None:
            log_is = torch.clamp(torch.log(terms.importance_sampling_ratio), floor, 20.0)
            seq_log_ratio = seq_log_ratio + log_is.sum(-1, keepdim=True)
        log_w = torch.clamp(seq_log_ratio, floor, 20.0)
        positive = terms.advantages >= 0
        k = torch.where(positive, vespo_k_pos, vespo_k_neg)
        lam = torch.where(positive, vespo_lambda_pos, vespo_lambda_neg).clamp(min=1e-4)
        phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    per_token = -phi * terms.advantages * terms.logprobs
    return per_token, {"actor/vespo_phi": _token_or_seq_mean(phi, terms.mask)}


@register_loss("sft", agg="token-mean", applies_is_ratio=False)
def negative_log_likelihood(terms: LossTerms, **_: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    """Supervised fine-tuning's loss: -log pi of each completion token, a token mean over the batch (rl/sft.py's
    and TRL's SFT loss); the advantages and ratios are not read. What the learner trains distillation traces with."""
    return -terms.logprobs, {}


# ------------------------------------------------------------------------------------------------ rollout correction


def truncated_importance_weights(old_logprobs: Tensor, rollout_logprobs: Tensor, mask: Tensor, cap: float) -> Tensor:
    """Truncated importance sampling (TIS, Yao et al. 2025): per-token weights min(pi_old / pi_rollout, cap) that
    correct the loss for the rollout engine sampling from a slightly different distribution than the learner's
    (bf16 engine vs fp32 learner, other kernels). Masked tokens get 0.

    Args:
        old_logprobs: (B, T) the learner's logprobs of the sampled tokens before the update.
        rollout_logprobs: (B, T) the rollout engine's logprobs of the same tokens.
        mask: (B, T) 1 for tokens that count.
        cap: the truncation C (TIS uses 2); larger keeps more of the correction, with more variance.
    """
    return torch.exp((old_logprobs - rollout_logprobs).clamp(max=math.log(cap))) * mask


# ------------------------------------------------------------------------------------------------ the policy loss

LOSS_OPTIONS = {"delta", "sapo_temperature_pos", "sapo_temperature_neg", "vespo_k_pos", "vespo_lambda_pos",
                "vespo_k_neg", "vespo_lambda_neg"}


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    loss_type: str,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.28,
    beta: float = 0.0,
    ref_logprobs: Tensor | None = None,
    max_completion_length: int | None = None,
    num_items_in_batch: Tensor | float | None = None,
    importance_sampling_level: str = "token",
    kl_bias_correction: bool = True,
    importance_sampling_ratio: Tensor | None = None,
    **hparams: float | None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The GRPO-family policy loss of `loss_type`, with TRL 1.16's semantics.

    Args:
        logprobs: (B, T) current-policy log-probabilities of the completion tokens (requires grad).
        old_logprobs: (B, T) log-probabilities under the policy that sampled (detached).
        advantages: (B,) per completion, or (B, T) per token.
        mask: (B, T) 1 for completion tokens that count (0 for padding and masked truncated completions).
        loss_type: a registered name (`loss_names()`): grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo, sft.
        epsilon_low: lower clip, r >= 1 - epsilon_low.
        epsilon_high: upper clip, r <= 1 + epsilon_high (clip-higher); for cispo the ratio cap itself.
        beta: weight of the k3 KL to the reference policy; 0 turns it off (and ref_logprobs is not needed).
        ref_logprobs: (B, T) reference log-probabilities, required when beta > 0.
        max_completion_length: the dr_grpo normaliser.
        num_items_in_batch: completion tokens in the whole global batch (dapo, cispo, vespo); default local count.
        importance_sampling_level: "token", or "sequence" (GSPO: one ratio per sequence, the exp of the mean
            token log-ratio).
        kl_bias_correction: multiply the per-token KL by the importance ratio (DeepSeek-V3.2's unbiased KL
            gradient; TRL's `use_bias_correction_kl`, default True there too).
        importance_sampling_ratio: optional (B, T) or (B, 1) weights correcting the rollout engine's sampling
            mismatch (TRL's vLLM IS correction); multiplies the policy term (vespo folds it into its weight).
        **hparams: loss-specific options: delta (two-sided clip), sapo_temperature_pos/neg, vespo_k_pos/neg,
            vespo_lambda_pos/neg.

    Returns:
        (loss, metrics): a 0-d loss, and detached 0-d metrics "actor/pg_loss", "actor/ratio_mean", the clip
        fractions of the clipped losses ("actor/clip_frac_low", "actor/clip_frac_high", "actor/clip_frac") and
        "actor/kl" when beta > 0.
    """
    spec = get_loss_spec(loss_type)
    unknown = set(hparams) - LOSS_OPTIONS - spec.options
    if unknown:  # the loss terms accept **_, so a misspelt option would otherwise be silently ignored
        raise TypeError(f"unknown policy_loss option(s) {sorted(unknown)}; valid: {sorted(LOSS_OPTIONS)}")
    if importance_sampling_level not in ("token", "sequence"):
        raise ValueError(f"importance_sampling_level must be 'token' or 'sequence', got {importance_sampling_level!r}")
    mask = mask.to(logprobs.dtype)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)

    log_ratio = logprobs - old_logprobs
    if importance_sampling_level == "sequence":
        log_weights = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_weights = log_ratio
    ratio = torch.exp(log_weights)

    terms = LossTerms(logprobs, log_ratio, ratio, advantages, mask, importance_sampling_ratio)
    per_token, metrics = spec.fn(terms, epsilon_low=epsilon_low, epsilon_high=epsilon_high, **hparams)
    if importance_sampling_ratio is not None and spec.applies_is_ratio:
        per_token = per_token * importance_sampling_ratio
    metrics["actor/pg_loss"] = agg_loss(per_token.detach(), mask, spec.agg, max_completion_length,
                                        num_items_in_batch)

    if beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("beta != 0 needs ref_logprobs")
        kl = k3_kl(logprobs, ref_logprobs)
        if kl_bias_correction:
            kl = kl * ratio
        per_token = per_token + beta * kl
        metrics["actor/kl"] = _token_or_seq_mean(kl, mask)

    loss = agg_loss(per_token, mask, spec.agg, max_completion_length, num_items_in_batch)
    metrics["actor/ratio_mean"] = _token_or_seq_mean(ratio, mask)
    return loss, metrics


# ---------------------------------------------------------------------------------------------- multi-token prediction


def mtp_loss(mtp_logits: Sequence[Tensor], input_ids: Tensor, loss_mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """DeepSeek-V3's multi-token-prediction loss (section 2.2, eq. 24-25) before its weight lambda: per depth d,
    the cross-entropy of the depth-d module's logits at position i against token i + 1 + d, a token mean over
    loss_mask; then the mean over depths. The caller adds lambda x loss to the main loss.

    Args:
        mtp_logits: per depth d = 1..D, (B, S - d, V) logits (PolicyOutput.mtp_logits); the one at position i
            predicts input token i + 1 + d, so its last position has no target.
        input_ids: (B, S) the sequences the logits were computed on.
        loss_mask: (B, S) 1 where an input token is a target that counts (a completion token, not prompt or
            padding), indexed by the target token's own position.

    Returns:
        The loss (a scalar; 0 with no depth) and metrics: `mtp/loss_d{d}` and `mtp/accuracy_d{d}` (top-1
        agreement of the module with the target token) per depth, and `mtp/loss` (the mean, unweighted).
    """
    seqlen = input_ids.size(1)
    metrics: dict[str, Tensor] = {}
    depth_losses = []
    for depth, logits in enumerate(mtp_logits, start=1):
        usable = seqlen - 1 - depth  # positions i whose target i + 1 + depth exists
        if usable <= 0:
            break
        logits = logits[:, :usable]
        targets = input_ids[:, 1 + depth:]
        mask = loss_mask[:, 1 + depth:]
        cross_entropy = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                                          reduction="none").view_as(targets)
        depth_loss = masked_mean(cross_entropy, mask)
        depth_losses.append(depth_loss)
        metrics[f"mtp/loss_d{depth}"] = depth_loss.detach()
        metrics[f"mtp/accuracy_d{depth}"] = masked_mean((logits.argmax(-1) == targets).float(), mask).detach()
    loss = torch.stack(depth_losses).mean() if depth_losses else input_ids.new_zeros((), dtype=torch.float32)
    metrics["mtp/loss"] = loss.detach()
    return loss, metrics
