"""The one batch type that travels rollout -> reward -> learner, and the padded tensors the learner takes.

A RolloutBatch is filled stage by stage, and each stage reads what the earlier ones wrote instead of re-deriving it:
the rollout workers give the samples (token ids, the engine's logprobs, truncation); the trainer names each sample's
group (`group_ids`), attaches the dataset columns and decodes the text once (`completions`, model.decode_completion:
the same text evaluation grades); the reward stage adds the total reward, each reward function's score and reason
(None = not applicable, kept apart from 0: a sample no function applies to has a NaN total and is left out of its
group's statistics); the trainer adds the advantages (one per completion, or one per token for on-policy
distillation). A sample that called tools holds the tools' outputs (observation tokens) between its own tokens; the
learner's mask leaves them out of every loss. `LearnerBatch.from_rollouts` turns the kept samples into padded
tensors, which the learner may lay out as packed rows (`PackedRows`) instead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch


@dataclass
class Segment:
    """A run of completion tokens of one kind: the policy's (sampled, each with the engine's logprob) or an
    observation's (a tool's output, inserted: no logprobs, never trained on)."""

    token_ids: list[int]
    logprobs: list[float] | None  # None for an observation


@dataclass
class Sample:
    """One completion of one prompt, as a rollout worker returns it.

    With tools (rl/tool_rollout.py) a completion is several segments, the policy's turns with the tools' outputs
    between them: `completion_ids` holds them all in order, `observation_spans` says which are inserted.
    """

    prompt_ids: list[int]
    completion_ids: list[int]  # every token after the prompt: the policy's, and observations between its turns
    rollout_logprobs: list[float]  # the engine's logprob of each completion token, of the distribution it sampled
    #                               (processed: after temperature and top-p), which the learner's logits / T match;
    #                               NaN on observation tokens (nothing sampled them)
    truncated: bool  # stopped by a limit (tokens, turns) rather than by end-of-sequence
    observation_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) completion positions of
    #                                                                          inserted (tool output) tokens

    @classmethod
    def from_segments(cls, prompt_ids: list[int], segments: Sequence[Segment], truncated: bool) -> "Sample":
        completion_ids: list[int] = []
        logprobs: list[float] = []
        spans = []
        for segment in segments:
            if segment.logprobs is None:
                spans.append((len(completion_ids), len(completion_ids) + len(segment.token_ids)))
                logprobs += [math.nan] * len(segment.token_ids)
            else:
                logprobs += segment.logprobs
            completion_ids += segment.token_ids
        return cls(list(prompt_ids), completion_ids, logprobs, truncated, spans)

    def segments(self) -> list[Segment]:
        """The completion as policy and observation segments, in order."""
        cuts = sorted({0, len(self.completion_ids)} | {i for span in self.observation_spans for i in span})
        observed = set(self.observation_spans)
        return [Segment(self.completion_ids[a:b], None if (a, b) in observed else self.rollout_logprobs[a:b])
                for a, b in zip(cuts, cuts[1:])]

    def policy_ids(self) -> list[int]:
        """The completion tokens the policy wrote, observations left out: the text rewards and evaluation grade,
        so no answer is paid that only a tool's output holds."""
        return [t for t, own in zip(self.completion_ids, self.policy_mask()) if own]

    def policy_mask(self) -> list[bool]:
        """True for each completion token the policy sampled, False for observation tokens."""
        mask = [True] * len(self.completion_ids)
        for start, end in self.observation_spans:
            mask[start:end] = [False] * (end - start)
        return mask


@dataclass
class RolloutBatch:
    """Samples with their groups, dataset columns, text, rewards and advantages (one value per sample each).

    Sample i answers prompt `group_ids[i]`; group-relative statistics (rl.algos) read the ids, never positions.
    """

    samples: list[Sample]
    group_ids: torch.Tensor  # (N,) long
    columns: dict[str, list[Any]] = field(default_factory=dict)  # dataset columns per sample (id, answer, level...)
    completions: list[str] = field(default_factory=list)  # decoded completion text per sample
    rewards: torch.Tensor | None = None  # (N,) weighted total; NaN where no reward function applies
    reward_components: dict[str, list[float | None]] = field(default_factory=dict)  # function -> score or None
    reward_reasons: dict[str, list[str | None]] = field(default_factory=dict)  # function -> why it scored so
    advantages: torch.Tensor | None = None  # (N,) per completion, or (N, L) per completion token (zero-padded)

    @classmethod
    def from_groups(cls, samples: list[Sample], rows: Sequence[dict[str, Any]], group_size: int,
                    completions: list[str] | None = None) -> "RolloutBatch":
        """Samples laid out group after group (what a rollout worker returns for n=group_size), one row of
        dataset columns per group; every column reaches the reward functions as a keyword argument (TRL's rule)."""
        if len(samples) != len(rows) * group_size:
            raise ValueError(f"{len(samples)} samples for {len(rows)} prompts x {group_size}")
        names = list(rows[0]) if rows else []
        columns = {name: [row[name] for row in rows for _ in range(group_size)] for name in names}
        return cls(samples=samples, group_ids=torch.arange(len(rows)).repeat_interleave(group_size),
                   columns=columns, completions=completions or [])

    def __len__(self) -> int:
        return len(self.samples)

    def add_rewards(self, scored: dict[str, Any]) -> None:
        """Take the reward stage's result (rl.rewarding.RewardWorker.score): totals (None -> NaN), per-function
        scores and reasons."""
        self.rewards = torch.tensor([math.nan if t is None else t for t in scored["total"]],
                                    dtype=torch.float64)  # float64 holds each Python float total exactly
        self.reward_components = scored["components"]
        self.reward_reasons = scored["reasons"]

    def group(self, group_id: int) -> list[int]:
        """Indices of the samples of one group, in batch order."""
        return (self.group_ids == group_id).nonzero().flatten().tolist()

    def select(self, keep: torch.Tensor) -> "RolloutBatch":
        """The samples where keep (N,) is True, with everything the batch carries for them."""
        index = keep.nonzero().flatten().tolist()

        def pick(values: Sequence[Any]) -> list[Any]:
            return [values[i] for i in index]

        return RolloutBatch(
            samples=pick(self.samples), group_ids=self.group_ids[keep],
            columns={k: pick(v) for k, v in self.columns.items()},
            completions=pick(self.completions) if self.completions else [],
            rewards=None if self.rewards is None else self.rewards[keep],
            reward_components={k: pick(v) for k, v in self.reward_components.items()},
            reward_reasons={k: pick(v) for k, v in self.reward_reasons.items()},
            advantages=None if self.advantages is None else self.advantages[keep])


@dataclass
class LearnerBatch:
    """Padded tensors for the learner. B samples, T = longest prompt + completion, L = longest completion.

    Each row is prompt + completion + right padding, so a causal model needs no attention mask for the real
    tokens. Completion token j of row b sits at input position completion_start[b] + j and is predicted
    from the logits at the position before it.

    A tool's output between the policy's turns is part of the completion (the policy's later tokens read it) but
    not of the loss: completion_mask is 0 on it, so no loss, KL, entropy, importance ratio or mismatch metric
    counts it, and its rollout_logprobs are 0 placeholders.
    """

    input_ids: torch.Tensor  # (B, T)
    completion_start: torch.Tensor  # (B,) index in input_ids of the first completion token
    completion_mask: torch.Tensor  # (B, L) 1.0 for the policy tokens the loss counts (0 for padding, observation
    #                                 tokens and masked truncations)
    completion_ids: torch.Tensor  # (B, L)
    rollout_logprobs: torch.Tensor  # (B, L)
    advantages: torch.Tensor  # (B,) per completion, or (B, L) per completion token (on-policy distillation)
    is_sample: torch.Tensor  # (B,) bool: False for a padding row that evens out data-parallel shards
    completion_lengths: torch.Tensor  # (B,) completion tokens of each row (masked out of the loss or not)
    policy_mask: torch.Tensor | None = None  # (B, L) 1.0 for the tokens the policy sampled, 0 for observation
    #                                           tokens (a tool's output) and padding; None: every completion token
    # On-policy distillation with distill.kl=full: the teacher's next-token distribution at each completion position
    # (rl.algos.teacher_distribution), which the learner's loss pulls the student's toward. None: (B, L, 0), none.
    teacher_logprobs: torch.Tensor | None = None  # (B, L, V) the whole vocabulary, or (B, L, k) its top k
    teacher_ids: torch.Tensor | None = None  # (B, L, k) the top k's token ids; (B, L, 0) with the whole vocabulary

    FIELDS = ("input_ids", "completion_start", "completion_mask", "completion_ids", "rollout_logprobs", "advantages",
              "is_sample", "completion_lengths", "policy_mask", "teacher_logprobs", "teacher_ids")

    def __post_init__(self) -> None:
        if self.policy_mask is None:
            offsets = torch.arange(self.completion_ids.size(1), device=self.completion_ids.device)
            self.policy_mask = (offsets[None, :] < self.completion_lengths[:, None]).float()
        if self.teacher_logprobs is None:
            self.teacher_logprobs = self.rollout_logprobs.new_zeros(*self.completion_ids.shape, 0)
        if self.teacher_ids is None:
            self.teacher_ids = self.completion_ids.new_zeros(*self.completion_ids.shape, 0)

    @property
    def has_teacher_distribution(self) -> bool:
        """Whether the rows carry a teacher's next-token distributions for the learner's KL term."""
        return self.teacher_logprobs.size(-1) > 0

    @classmethod
    def from_rollouts(cls, batch: RolloutBatch, pad_id: int, mask_truncated: bool) -> "LearnerBatch":
        samples = batch.samples
        n = len(samples)
        seq_len = max(len(s.prompt_ids) + len(s.completion_ids) for s in samples)
        comp_len = max(max(len(s.completion_ids) for s in samples), 1)
        input_ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
        completion_ids = torch.full((n, comp_len), pad_id, dtype=torch.long)
        completion_mask = torch.zeros(n, comp_len)
        policy_mask = torch.zeros(n, comp_len)
        rollout_logprobs = torch.zeros(n, comp_len)
        for row, sample in enumerate(samples):
            tokens = sample.prompt_ids + sample.completion_ids
            input_ids[row, :len(tokens)] = torch.tensor(tokens)
            length = len(sample.completion_ids)
            completion_ids[row, :length] = torch.tensor(sample.completion_ids, dtype=torch.long)
            policy_mask[row, :length] = torch.tensor(sample.policy_mask(), dtype=torch.float)
            # observation tokens have no logprob (NaN in the sample): 0 here, where the masks keep them out
            rollout_logprobs[row, :length] = torch.tensor(sample.rollout_logprobs).nan_to_num(0.0)
            if not (mask_truncated and sample.truncated):
                completion_mask[row, :length] = policy_mask[row, :length]
        return cls(input_ids=input_ids,
                   completion_start=torch.tensor([len(s.prompt_ids) for s in samples]),
                   completion_mask=completion_mask, completion_ids=completion_ids,
                   rollout_logprobs=rollout_logprobs, advantages=_token_columns(batch.advantages.float(), comp_len),
                   is_sample=torch.ones(n, dtype=torch.bool),
                   completion_lengths=torch.tensor([len(s.completion_ids) for s in samples]), policy_mask=policy_mask)

    def __len__(self) -> int:
        return self.input_ids.size(0)

    def sequence_lengths(self) -> torch.Tensor:
        """(B,) prompt + completion tokens of each row (the row's padding left out)."""
        return self.completion_start + self.completion_lengths

    def logit_index(self) -> torch.Tensor:
        """(B, L): where in the flattened (B * T) input positions the logits predicting each completion token
        are (completion token j of row b: position completion_start[b] + j - 1; past the row's end, clamped
        to its last position, masked out of the loss anyway)."""
        seq_len = self.input_ids.size(1)
        offsets = torch.arange(self.completion_ids.size(1), device=self.input_ids.device)
        positions = (self.completion_start[:, None] - 1 + offsets[None, :]).clamp(max=seq_len - 1)
        return positions + seq_len * torch.arange(len(self), device=self.input_ids.device)[:, None]

    def completion_token_mask(self, truncated_too: bool = False) -> torch.Tensor:
        """(B, T) the completion mask laid on the input positions: 1.0 where input token t of row b is a completion
        token that counts (completion token j of row b sits at completion_start[b] + j), 0 for prompt and padding.
        truncated_too: every sampled token of a sample counts, a masked truncated completion's too (what an MTP
        module learns the policy's tokens from), not only those the policy loss counts."""
        seq_len, comp_len = self.input_ids.shape[1], self.completion_mask.size(1)
        offsets = torch.arange(comp_len, device=self.input_ids.device)[None, :]
        completion = self.completion_mask
        if truncated_too:  # every token the policy sampled (never an observation's)
            completion = self.policy_mask * self.is_sample[:, None].to(completion.dtype)
        mask = completion.new_zeros(len(self), seq_len + comp_len)
        return mask.scatter_(1, self.completion_start[:, None] + offsets, completion)[:, :seq_len]

    @functools.cached_property
    def packed(self) -> "PackedRows":
        """The rows' sequences laid end to end without padding between them (see PackedRows); computed once, as
        every forward of a learner step and its padding metric read it."""
        return PackedRows.pack(self)

    def chunks(self, n_chunks: int) -> list["LearnerBatch"]:
        """Split along the batch axis into n_chunks (for mini-batches); empty chunks are left out."""
        parts = [getattr(self, name).tensor_split(n_chunks) for name in self.FIELDS]
        return [LearnerBatch(**dict(zip(self.FIELDS, values))) for values in zip(*parts) if len(values[0])]

    def micro_batches(self, max_positions: int) -> list["LearnerBatch"]:
        """The rows cut into micro-batches of at most max_positions padded positions each (rows x the part's
        longest sequence; a longer sequence gets a part of its own), longest sequences first and together, each
        part trimmed to its own longest sequence and completion, so short sequences run none of the long ones'
        padding (verl's dynamic batch size). max_positions 0: the batch whole, untrimmed."""
        if max_positions <= 0:
            return [self]
        lengths = self.sequence_lengths()
        order = lengths.argsort(descending=True, stable=True).tolist()
        parts: list[list[int]] = []
        for row in order:  # sorted longest first, so a part's first row sets its width
            if parts and (len(parts[-1]) + 1) * lengths[parts[-1][0]].item() <= max_positions:
                parts[-1].append(row)
            else:
                parts.append([row])
        return [self.rows(torch.tensor(part)).trimmed() for part in parts]

    def rows(self, index: torch.Tensor) -> "LearnerBatch":
        """The rows at index (a 1-D tensor of row numbers), in that order."""
        return LearnerBatch(**{name: getattr(self, name)[index.to(self.input_ids.device)] for name in self.FIELDS})

    def trimmed(self) -> "LearnerBatch":
        """The same rows with the padding columns no row needs cut off (T = longest sequence, L = longest
        completion)."""
        seq_len = self.sequence_lengths().max().item()
        comp_len = max(self.completion_lengths.max().item(), 1)
        fields = {name: getattr(self, name) for name in self.FIELDS}
        fields["input_ids"] = fields["input_ids"][:, :seq_len]
        for name in ("completion_mask", "completion_ids", "rollout_logprobs", "policy_mask", "teacher_logprobs",
                     "teacher_ids"):
            fields[name] = fields[name][:, :comp_len]
        fields["advantages"] = _token_columns(fields["advantages"], comp_len)
        return LearnerBatch(**fields)

    def padding_row(self) -> "LearnerBatch":
        """One row that takes part in the forward and backward passes but counts for nothing (no completion
        token in the mask, advantage 0, is_sample False)."""
        fields = {name: getattr(self, name)[:1].clone() for name in self.FIELDS}
        fields["completion_mask"].zero_()
        fields["policy_mask"].zero_()
        fields["advantages"].zero_()
        fields["is_sample"].zero_()
        return LearnerBatch(**fields)

    def to(self, device: torch.device | str) -> "LearnerBatch":
        return LearnerBatch(**{name: getattr(self, name).to(device) for name in self.FIELDS})

    def shard(self, n_shards: int, mini_batches: int) -> list[list["LearnerBatch"]]:
        """The batch cut for n_shards data-parallel learners: shard r's mini-batch i is the r-th part of the
        i-th of `mini_batches` chunks, so mini-batch i over all shards is exactly the one a single learner
        takes. A part that would be empty gets one padding row (every learner must run each step's
        collectives).

        Returns:
            shards[r][i]: learner r's mini-batch i.
        """
        if len(self) < mini_batches:
            raise ValueError(f"{len(self)} samples cannot fill {mini_batches} mini-batches")
        shards: list[list[LearnerBatch]] = [[] for _ in range(n_shards)]
        for chunk in self.chunks(mini_batches):
            parts = chunk.chunks(n_shards)  # tensor_split leaves the empty parts at the end; chunks drops them
            parts += [chunk.padding_row()] * (n_shards - len(parts))
            for rank, part in enumerate(parts):
                shards[rank].append(part)
        return shards


def _token_columns(advantages: torch.Tensor, length: int) -> torch.Tensor:
    """Per-token (B, L') advantages cut or zero-padded to L = `length` completion columns; (B,) ones as they are."""
    if advantages.dim() == 1:
        return advantages
    if advantages.size(1) >= length:
        return advantages[:, :length]
    return torch.nn.functional.pad(advantages, (0, length - advantages.size(1)))


@dataclass
class PackedRows:
    """A LearnerBatch's sequences (prompt + completion, padding dropped) laid end to end in rows, first-fit
    decreasing into rows as long as its longest sequence, so a row's attention costs no more than the padded
    layout's. Padded rows spend a quarter to a half of the learner's work on padding (a GRPO batch's lengths
    vary widely); packed rows spend it only on the rows' tails.

    The model reads segment_ids: attention stays within a sequence and positions restart at each (the same
    logits as the padded layout, up to float rounding).
    """

    input_ids: torch.Tensor  # (R, S)
    segment_ids: torch.Tensor  # (R, S) the LearnerBatch row each token comes from; -1 on a row's padded tail
    logit_index: torch.Tensor  # (B, L) as LearnerBatch.logit_index, into the flattened (R * S) packed positions

    @classmethod
    def pack(cls, batch: LearnerBatch) -> "PackedRows":
        lengths = batch.sequence_lengths().tolist()
        capacity = max(lengths)
        free: list[int] = []  # room left in each packed row
        placed: list[tuple[int, int]] = [(0, 0)] * len(lengths)  # (row, offset) of each sequence
        for b in sorted(range(len(lengths)), key=lambda b: -lengths[b]):
            row = next((r for r, room in enumerate(free) if room >= lengths[b]), len(free))
            if row == len(free):
                free.append(capacity)
            placed[b] = (row, capacity - free[row])
            free[row] -= lengths[b]
        device = batch.input_ids.device
        input_ids = torch.full((len(free), capacity), 0, dtype=batch.input_ids.dtype, device=device)
        segment_ids = torch.full((len(free), capacity), -1, dtype=torch.long, device=device)
        for b, ((row, offset), length) in enumerate(zip(placed, lengths)):
            input_ids[row, offset:offset + length] = batch.input_ids[b, :length]
            segment_ids[row, offset:offset + length] = b
        # Completion token j of sequence b is predicted at its position start + j - 1, kept inside the sequence.
        rows, offsets = (torch.tensor(column, device=device)[:, None] for column in zip(*placed))
        last = torch.tensor(lengths, device=device)[:, None] - 1
        within = (batch.completion_start[:, None] - 1
                  + torch.arange(batch.completion_ids.size(1), device=device)[None, :]).clamp(max=last)
        return cls(input_ids=input_ids, segment_ids=segment_ids, logit_index=rows * capacity + offsets + within)
