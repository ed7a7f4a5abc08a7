import dataclasses
import math

import torch

from rl.batch import LearnerBatch, RolloutBatch, Sample


def learner_batch(lengths, truncated=()):
    """A LearnerBatch of (prompt length, completion length) pairs with distinct token ids."""
    samples, next_id = [], 3
    for i, (prompt, completion) in enumerate(lengths):
        ids = list(range(next_id, next_id + prompt + completion))
        next_id += prompt + completion
        samples.append(Sample(ids[:prompt], ids[prompt:], [-0.5] * completion, truncated=i in truncated))
    rollouts = RolloutBatch(samples, torch.arange(len(samples)), advantages=torch.ones(len(samples)))
    return LearnerBatch.from_rollouts(rollouts, pad_id=2, mask_truncated=True)


def test_padded_logit_index_points_before_each_completion_token():
    batch = learner_batch([(3, 2), (2, 4)])
    flat = batch.input_ids.flatten()
    index = batch.logit_index()
    real = batch.completion_mask.bool()
    assert torch.equal(flat[index + 1][real], batch.completion_ids[real])


def test_completion_token_mask_marks_each_completion_token_where_it_sits_in_the_input():
    batch = learner_batch([(3, 2), (2, 4), (1, 3)], truncated=(2,))
    assert batch.completion_token_mask().tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]]
    every = batch.completion_token_mask(truncated_too=True)
    assert every.tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]]
    assert batch.padding_row().completion_token_mask(truncated_too=True).sum() == 0


def test_packing_keeps_every_token_once_and_needs_fewer_positions():
    lengths = [(5, 9), (3, 2), (4, 1), (6, 3), (2, 2), (7, 7)]
    batch = learner_batch(lengths, truncated={3})
    rows = batch.packed
    longest = max(p + c for p, c in lengths)
    assert rows.input_ids.size(1) == longest  # no row longer than the padded layout's
    assert rows.input_ids.numel() < batch.input_ids.numel()
    for b, (prompt, completion) in enumerate(lengths):
        tokens = rows.input_ids[rows.segment_ids == b]
        assert tokens.tolist() == batch.input_ids[b, :prompt + completion].tolist()  # contiguous, in order
    assert (rows.segment_ids >= 0).sum() == sum(p + c for p, c in lengths)
    # the logits predicting completion token j sit just before it, inside its own sequence
    flat_ids, flat_segments = rows.input_ids.flatten(), rows.segment_ids.flatten()
    real = batch.completion_lengths[:, None] > torch.arange(batch.completion_ids.size(1))[None, :]
    assert torch.equal(flat_ids[rows.logit_index + 1][real], batch.completion_ids[real])
    owner = torch.arange(len(lengths))[:, None].expand_as(rows.logit_index)
    assert torch.equal(flat_segments[rows.logit_index], owner)  # padding positions too stay in their sequence


def test_chunks_and_shards_carry_completion_lengths():
    batch = learner_batch([(3, 2), (2, 4), (4, 4)])
    assert [c.completion_lengths.tolist() for c in batch.chunks(2)] == [[2, 4], [4]]
    shards = batch.shard(2, 1)
    assert shards[0][0].completion_lengths.tolist() == [2, 4] and shards[1][0].completion_lengths.tolist() == [4]


def test_micro_batches_group_long_sequences_under_the_position_budget_and_trim_padding():
    lengths = [(5, 9), (3, 2), (4, 1), (6, 3), (2, 2), (7, 7)]  # sequences of 14, 5, 5, 9, 4, 14 tokens
    batch = learner_batch(lengths, truncated={3})
    parts = batch.micro_batches(30)
    # Longest first, greedily under 30 positions: [14, 14] (28), [9, 5, 5] (27), [4].
    assert [p.sequence_lengths().tolist() for p in parts] == [[14, 14], [9, 5, 5], [4]]
    assert all(len(p) * p.input_ids.size(1) <= 30 for p in parts)
    assert [p.input_ids.size(1) for p in parts] == [14, 9, 4]  # each trimmed to its own longest sequence
    assert [p.completion_ids.size(1) for p in parts] == [9, 3, 2]
    # Every row once, with what it carries (tokens, mask, logprobs) intact.
    original = {b: (batch.input_ids[b, :p + c].tolist(), batch.completion_mask[b, :c].tolist()) for b, (p, c)
                in enumerate(lengths)}
    seen = sorted((part.input_ids[r, :n].tolist(), part.completion_mask[r, :part.completion_lengths[r]].tolist())
                  for part in parts for r, n in enumerate(part.sequence_lengths().tolist()))
    assert seen == sorted(original.values())
    assert sum(p.completion_mask.sum() for p in parts) == batch.completion_mask.sum()
    assert batch.micro_batches(0) == [batch]  # 0: the mini-batch whole
    assert [len(p) for p in batch.micro_batches(10)] == [1, 1, 1, 2, 1]  # a 14-token sequence alone over budget


def per_token(batch):
    """The batch with advantage 100 * row + token position on each real completion token (0 on padding)."""
    positions = torch.arange(batch.completion_ids.size(1))[None, :]
    real = batch.completion_lengths[:, None] > positions
    advantages = torch.where(real, 100.0 * torch.arange(len(batch))[:, None] + positions, 0.0)
    return dataclasses.replace(batch, advantages=advantages)


def test_per_token_advantages_stay_with_their_row_and_token_through_micro_batches_and_shards():
    lengths = [(5, 9), (3, 2), (4, 1), (6, 3), (2, 2), (7, 7)]
    batch = per_token(learner_batch(lengths))
    first_token = {batch.input_ids[b, 0].item(): b for b in range(len(batch))}  # rows have distinct token ids
    parts = batch.micro_batches(30) + [part for shard in batch.shard(4, 2) for part in shard]
    for part in parts:
        assert part.advantages.shape == part.completion_ids.shape
        for r in range(len(part)):
            if not part.is_sample[r]:
                assert part.advantages[r].abs().sum() == 0  # a padding row counts for nothing
                continue
            row = first_token[part.input_ids[r, 0].item()]
            width = part.completion_ids.size(1)
            assert torch.equal(part.advantages[r], batch.advantages[row, :width])


def test_a_teacher_distribution_stays_with_its_row_and_token_through_micro_batches_and_shards():
    lengths = [(5, 9), (3, 2), (4, 1), (6, 3), (2, 2), (7, 7)]
    batch = learner_batch(lengths)
    assert not batch.has_teacher_distribution and batch.teacher_logprobs.shape == (*batch.completion_ids.shape, 0)
    shape = (*batch.completion_ids.shape, 3)  # a top 3: value 100 * row + position + k / 10, ids 10 * k + position
    rows = torch.arange(shape[0])[:, None, None]
    positions, k = torch.arange(shape[1])[None, :, None], torch.arange(3)[None, None, :]
    batch = dataclasses.replace(batch, teacher_logprobs=(100.0 * rows + positions + k / 10).expand(shape).clone(),
                                teacher_ids=(10 * k + positions).expand(shape).clone())
    first_token = {batch.input_ids[b, 0].item(): b for b in range(len(batch))}
    for part in batch.micro_batches(30) + [part for shard in batch.shard(4, 2) for part in shard]:
        assert part.has_teacher_distribution
        width = part.completion_ids.size(1)
        assert part.teacher_logprobs.shape == part.teacher_ids.shape == (len(part), width, 3)
        for r in range(len(part)):
            row = first_token[part.input_ids[r, 0].item()]
            assert torch.equal(part.teacher_logprobs[r], batch.teacher_logprobs[row, :width])
            assert torch.equal(part.teacher_ids[r], batch.teacher_ids[row, :width])


def test_per_token_rollout_advantages_are_cut_or_padded_to_the_completions():
    samples = [Sample([3, 4], [5, 6, 7], [-0.5] * 3, truncated=False), Sample([8], [9], [-0.5], truncated=False)]
    for width in (2, 3, 6):
        advantages = torch.arange(2 * width, dtype=torch.float).view(2, width)
        rollouts = RolloutBatch(samples, torch.arange(2), advantages=advantages)
        batch = LearnerBatch.from_rollouts(rollouts, pad_id=2, mask_truncated=True)
        assert batch.advantages.shape == (2, 3)
        assert batch.advantages[:, :min(width, 3)].tolist() == advantages[:, :3].tolist()
        assert batch.advantages[:, width:].abs().sum() == 0


def test_segments_make_one_completion_whose_observation_tokens_no_mask_counts():
    from rl.batch import Segment

    segments = [Segment([20, 21, 22], [-0.1, -0.2, -0.3]), Segment([70, 71], None), Segment([23, 24], [-0.4, -0.5])]
    sample = Sample.from_segments([0, 3, 4], segments, truncated=False)
    assert sample.completion_ids == [20, 21, 22, 70, 71, 23, 24] and sample.observation_spans == [(3, 5)]
    assert sample.policy_mask() == [True, True, True, False, False, True, True]
    assert sample.segments() == segments
    assert math.isnan(sample.rollout_logprobs[3]) and sample.rollout_logprobs[5] == -0.4  # no logprob: NaN
    plain = Sample([0, 3, 4], [30, 31], [-0.5, -0.6], truncated=True)
    batch = LearnerBatch.from_rollouts(RolloutBatch([sample, plain], torch.arange(2), advantages=torch.ones(2)),
                                       pad_id=2, mask_truncated=False)
    assert batch.input_ids[0].tolist() == [0, 3, 4, 20, 21, 22, 70, 71, 23, 24]  # the tokens as they were, in order
    assert batch.completion_mask.tolist() == [[1, 1, 1, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0, 0]]
    assert batch.policy_mask.tolist() == batch.completion_mask.tolist()
    assert batch.rollout_logprobs[0, 3:5].tolist() == [0.0, 0.0]  # placeholders, never NaN in a tensor
    assert batch.completion_token_mask(truncated_too=True)[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    masked = LearnerBatch.from_rollouts(RolloutBatch([sample, plain], torch.arange(2), advantages=torch.ones(2)),
                                        pad_id=2, mask_truncated=True)
    assert masked.completion_mask[1].sum() == 0 and masked.policy_mask[1].tolist() == [1, 1, 0, 0, 0, 0, 0]
    # the masks follow their rows through micro-batches, trimming, shards and padding rows
    part = batch.micro_batches(10)[0]
    assert part.policy_mask.tolist() == [[1, 1, 1, 0, 0, 1, 1]]
    assert batch.rows(torch.tensor([1])).trimmed().policy_mask.tolist() == [[1, 1]]
    assert batch.padding_row().policy_mask.sum() == 0
    assert [s[0].policy_mask.tolist() for s in batch.shard(2, 1)] == [[[1, 1, 1, 0, 0, 1, 1]], [[1, 1, 0, 0, 0, 0, 0]]]


def test_a_sample_of_policy_tokens_only_makes_exactly_the_batch_it_made_before():
    from rl.batch import Segment

    plain = [Sample([0, 3, 4], [20, 21, 22], [-0.1, -0.2, -0.3], truncated=False),
             Sample([0, 5], [30], [-0.5], truncated=True)]
    segmented = [Sample.from_segments(s.prompt_ids, [Segment(s.completion_ids, s.rollout_logprobs)], s.truncated)
                 for s in plain]
    assert segmented == plain
    batch = LearnerBatch.from_rollouts(RolloutBatch(plain, torch.arange(2), advantages=torch.ones(2)), 2, True)
    assert batch.completion_mask.tolist() == [[1, 1, 1], [0, 0, 0]]
    assert batch.policy_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    # a batch made without a policy mask (older callers) gets the same one
    fields = {name: getattr(batch, name) for name in LearnerBatch.FIELDS if name != "policy_mask"}
    assert torch.equal(LearnerBatch(**fields).policy_mask, batch.policy_mask)
