"""rl.algos against straightforward loop implementations written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rl import algos
from rl.algos import (AdvantageInputs, adv_estimator_names, agg_loss, compute_grpo_advantages, entropy_from_logits,
                      get_adv_estimator, get_loss_spec, k3_kl, loss_names, masked_mean, policy_loss, register_adv_est,
                      register_loss, reverse_kl_to_teacher, selective_log_softmax, teacher_distribution,
                      zero_variance_groups)

# ------------------------------------------------------------------------------------------------ advantages


def groups(n_groups: int, size: int) -> torch.Tensor:
    """Group ids laid out group after group: [0]*size + [1]*size + ..."""
    return torch.arange(n_groups).repeat_interleave(size)


def test_advantages_match_hand_computation():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    advantages = compute_grpo_advantages(rewards, groups(2, 4))
    # Group 1: mean 0.5, unbiased std sqrt(((0.5^2) * 4) / 3) = sqrt(1/3).
    std1 = math.sqrt(1 / 3)
    expected1 = [(r - 0.5) / (std1 + 1e-4) for r in (1, 0, 0, 1)]
    # Group 2: mean 2.75, deviations (-0.75 x3, 2.25), var = (3 * 0.5625 + 5.0625) / 3 = 2.25, std 1.5.
    expected2 = [(r - 2.75) / (1.5 + 1e-4) for r in (2, 2, 2, 5)]
    assert advantages.tolist() == pytest.approx(expected1 + expected2, abs=1e-6)


def test_advantages_follow_group_ids_not_positions():
    """Groups are named by id: interleaved samples and groups of different sizes get their own group's statistics."""
    rewards = torch.tensor([1.0, 2.0, 0.0, 2.0, 5.0, 2.0, 0.0, 1.0, 2.0])
    ids = torch.tensor([7, 3, 7, 3, 3, 3, 7, 7, 9])
    advantages = compute_grpo_advantages(rewards, ids)
    by_position = compute_grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0]), groups(2, 4))
    assert advantages[[0, 2, 6, 7]].tolist() == pytest.approx(by_position[:4].tolist(), abs=1e-6)
    assert advantages[[1, 3, 5, 4]].tolist() == pytest.approx(by_position[4:].tolist(), abs=1e-6)
    assert advantages[8].item() == 0.0  # a group of one


def test_advantages_without_std_scaling_are_centred_rewards():
    rewards = torch.tensor([3.0, 1.0, 0.0, 0.0, 0.0, 4.0])
    advantages = compute_grpo_advantages(rewards, groups(2, 3), scale_by_std=False)
    assert advantages.tolist() == pytest.approx([5 / 3, -1 / 3, -4 / 3, -4 / 3, -4 / 3, 8 / 3], abs=1e-6)


def test_advantages_zero_variance_and_nan_and_singleton_groups():
    assert compute_grpo_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0]), groups(2, 2)).abs().max() == 0
    # A NaN reward (unscorable completion) is left out of its group's statistics and gets advantage 0.
    advantages = compute_grpo_advantages(torch.tensor([1.0, float("nan"), 0.0]), groups(1, 3))
    std = math.sqrt(0.5)
    assert advantages.tolist() == pytest.approx([0.5 / (std + 1e-4), 0.0, -0.5 / (std + 1e-4)], abs=1e-6)
    assert compute_grpo_advantages(torch.tensor([3.0, 7.0]), groups(2, 1)).tolist() == [0.0, 0.0]


def test_advantages_reject_mismatched_group_ids():
    with pytest.raises(ValueError, match="group_ids"):
        compute_grpo_advantages(torch.zeros(6), groups(1, 4))


def test_zero_variance_groups():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5])
    assert zero_variance_groups(rewards, groups(3, 3)).tolist() == [True] * 3 + [False] * 3 + [True] * 3
    # NaN (not scored) is ignored; a group with nothing scored is dropped too
    nan = float("nan")
    mixed = torch.tensor([1.0, nan, 1.0, 0.0, nan, 1.0, nan, nan])
    assert zero_variance_groups(mixed, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])).tolist() == \
        [True] * 3 + [False] * 3 + [True] * 2


# ------------------------------------------------------------------------------------------------ estimators


def test_estimator_registry_names_and_errors():
    assert {"grpo", "reverse_kl"} <= set(adv_estimator_names())
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'gae'; valid: .*grpo.*reverse_kl"):
        get_adv_estimator("gae")
    with pytest.raises(ValueError, match="already registered"):
        register_adv_est("grpo")(lambda inputs, **_: inputs.rewards)


def test_grpo_estimator_is_the_group_relative_advantage():
    rewards, ids = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, float("nan")]), groups(2, 3)
    grpo = get_adv_estimator("grpo")
    assert torch.equal(grpo(AdvantageInputs(rewards, ids)), compute_grpo_advantages(rewards, ids))
    assert torch.equal(grpo(AdvantageInputs(rewards, ids), scale_by_std=False),
                       compute_grpo_advantages(rewards, ids, scale_by_std=False))


def _student_and_teacher(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    student = -torch.rand(3, 5, generator=generator) * 4
    teacher = -torch.rand(3, 5, generator=generator) * 4
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    return student, teacher, mask


def test_reverse_kl_advantage_is_zero_when_the_teacher_is_the_student():
    student, _, mask = _student_and_teacher()
    inputs = AdvantageInputs(torch.tensor([1.0, 0.0, 1.0]), groups(1, 3), mask, student, student.clone())
    assert torch.equal(get_adv_estimator("reverse_kl")(inputs), torch.zeros(3, 5))


def test_reverse_kl_advantage_is_positive_where_the_teacher_finds_the_token_likelier_and_masked_elsewhere():
    student, teacher, mask = _student_and_teacher()
    teacher[0, 3] = -math.inf  # a padding position the teacher scores -inf stays out
    advantages = get_adv_estimator("reverse_kl")(AdvantageInputs(torch.zeros(3), groups(1, 3), mask, student,
                                                                 teacher))
    real = mask.bool()
    assert torch.equal(advantages[real], (teacher - student)[real])
    assert torch.equal(advantages[~real], torch.zeros(int((~real).sum())))
    assert ((advantages > 0) == ((teacher > student) & real)).all()


def test_reverse_kl_advantage_adds_the_weighted_rule_advantage_to_every_token():
    student, teacher, mask = _student_and_teacher()
    rewards, ids = torch.tensor([1.0, 0.0, 0.0]), groups(1, 3)
    inputs = AdvantageInputs(rewards, ids, mask, student, teacher)
    rule = compute_grpo_advantages(rewards, ids, scale_by_std=False)
    advantages = get_adv_estimator("reverse_kl")(inputs, rule_reward_weight=0.5, scale_by_std=False)
    torch.testing.assert_close(advantages, (teacher - student + 0.5 * rule[:, None]) * mask)
    with pytest.raises(ValueError, match="needs mask, logprobs and teacher_logprobs"):
        get_adv_estimator("reverse_kl")(AdvantageInputs(rewards, ids))
    with pytest.raises(ValueError, match="must have one shape"):
        get_adv_estimator("reverse_kl")(AdvantageInputs(rewards, ids, mask, student, teacher[:, :4]))


def test_a_policy_gradient_step_on_the_reverse_kl_advantage_is_a_step_down_the_reverse_kl():
    """Over every token of a vocabulary weighted by its probability (the expectation the samples estimate), the
    policy-gradient loss -sum_x pi(x) A(x) log pi(x) with A = log q - log pi has the gradient of KL(pi || q)."""
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5], requires_grad=True)
    teacher = torch.tensor([1.0, 0.0, -1.0, 2.0]).log_softmax(-1)
    logprobs = logits.log_softmax(-1)
    probs = logprobs.exp().detach()
    advantages = get_adv_estimator("reverse_kl")(AdvantageInputs(torch.zeros(1), torch.zeros(1), torch.ones(1, 4),
                                                                 logprobs.detach()[None], teacher[None]))[0]
    (pg_gradient,) = torch.autograd.grad(-(probs * advantages * logprobs).sum(), logits)
    student = logits.log_softmax(-1)
    (kl_gradient,) = torch.autograd.grad((student.exp() * (student - teacher)).sum(), logits)
    torch.testing.assert_close(pg_gradient, kl_gradient)


def test_full_reverse_kl_is_the_kl_of_the_next_token_distributions_and_zero_for_the_student_itself():
    generator = torch.Generator().manual_seed(0)
    student, teacher_logits = torch.randn(2, 3, 7, generator=generator), torch.randn(2, 3, 7, generator=generator)
    for temperature in (1.0, 0.6):
        logprobs, ids = teacher_distribution(teacher_logits, temperature)
        assert logprobs.shape == (2, 3, 7) and ids.shape == (2, 3, 0)
        p, q = (student / temperature).softmax(-1), (teacher_logits / temperature).softmax(-1)
        expected = (p * (p.log() - q.log())).sum(-1)
        torch.testing.assert_close(reverse_kl_to_teacher(student, logprobs, ids, temperature), expected)
        own = reverse_kl_to_teacher(student, *teacher_distribution(student, temperature), temperature)
        assert own.abs().max() < 1e-6 and (expected > 0).all()


def test_full_reverse_kl_gradient_is_the_expected_sampled_token_policy_gradient():
    """The exact KL's gradient is what the `reverse_kl` advantage's policy gradient has in expectation over every
    next token (the test above it): one signal, without the sampling noise."""
    logits = torch.tensor([[[0.3, -1.0, 2.0, 0.5]]], requires_grad=True)
    teacher = torch.tensor([[[1.0, 0.0, -1.0, 2.0]]])
    (full,) = torch.autograd.grad(reverse_kl_to_teacher(logits, *teacher_distribution(teacher)).sum(), logits)
    logprobs = logits.log_softmax(-1)
    advantages = teacher.log_softmax(-1) - logprobs.detach()
    (expected,) = torch.autograd.grad(-(logprobs.exp().detach() * advantages * logprobs).sum(), logits)
    torch.testing.assert_close(full, expected)


def test_top_k_reverse_kl_renormalizes_both_distributions_over_the_teachers_likeliest_tokens():
    generator = torch.Generator().manual_seed(1)
    student, teacher_logits = torch.randn(2, 5, 11, generator=generator), torch.randn(2, 5, 11, generator=generator)
    logprobs, ids = teacher_distribution(teacher_logits, 1.0, top_k=4)
    assert logprobs.shape == ids.shape == (2, 5, 4)
    assert torch.equal(ids, teacher_logits.topk(4, -1).indices)  # the likeliest, normalized over the vocabulary
    torch.testing.assert_close(logprobs, teacher_logits.log_softmax(-1).gather(-1, ids))
    p = student.gather(-1, ids).softmax(-1)
    q = teacher_logits.gather(-1, ids).softmax(-1)
    torch.testing.assert_close(reverse_kl_to_teacher(student, logprobs, ids), (p * (p.log() - q.log())).sum(-1))
    assert teacher_distribution(teacher_logits, 1.0, top_k=11)[1].shape == (2, 5, 0)  # k >= V: the whole vocabulary
    with pytest.raises(ValueError, match="whole vocabulary"):
        reverse_kl_to_teacher(student, logprobs, ids[..., :0])


def test_sft_loss_is_the_token_mean_negative_log_likelihood_whatever_the_advantages():
    logprobs, old, _, advantages, mask = _batch()
    loss, metrics = policy_loss(logprobs, old, advantages * 7, mask, loss_type="sft")
    (grad,) = torch.autograd.grad(loss, logprobs)
    assert loss.item() == pytest.approx((-(logprobs * mask).sum() / mask.sum()).item(), abs=1e-6)
    assert torch.allclose(grad, -mask / mask.sum())
    assert get_loss_spec("sft").agg == "token-mean" and "actor/clip_frac" not in metrics


# ------------------------------------------------------------------------------------------------ helpers


def test_k3_kl_is_nonnegative_and_zero_at_equality():
    logp = torch.log(torch.tensor([[0.2, 0.5, 0.9]]))
    ref = torch.log(torch.tensor([[0.4, 0.5, 0.3]]))
    kl = k3_kl(logp, ref)
    expected = [math.exp(r - p) - (r - p) - 1 for p, r in zip(logp[0].tolist(), ref[0].tolist())]
    assert kl[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert kl[0, 1] == 0 and (kl >= 0).all()


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, 100.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])
    assert masked_mean(x, torch.zeros_like(mask), dim=1).tolist() == [0.0, 0.0]


def test_selective_log_softmax_and_entropy_match_naive_forms():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11) * 4
    ids = torch.randint(0, 11, (3, 5))
    naive = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(selective_log_softmax(logits, ids, chunk_size=4), naive, atol=1e-6)
    hot = torch.log_softmax(logits / 0.7, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(selective_log_softmax(logits, ids, temperature=0.7), hot, atol=1e-6)
    bf16 = selective_log_softmax(logits.bfloat16(), ids)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16, naive, atol=0.05)

    probs = torch.softmax(logits, -1)
    assert torch.allclose(entropy_from_logits(logits, chunk_size=4), -(probs * probs.log()).sum(-1), atol=1e-5)
    # -inf logits (masked vocabulary) and near-one-hot rows stay finite.
    peaked = torch.tensor([[0.0, float("-inf"), 1e4]])
    assert entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)
    assert entropy_from_logits(torch.zeros(2, 8)).tolist() == pytest.approx([math.log(8)] * 2, abs=1e-6)


# ------------------------------------------------------------------------------------------------ losses vs loops


def _batch(seed=0, b=4, t=6):
    gen = torch.Generator().manual_seed(seed)
    logprobs = (-torch.rand(b, t, generator=gen) * 3).requires_grad_()
    old = logprobs.detach() + 0.4 * torch.randn(b, t, generator=gen)
    ref = logprobs.detach() + 0.4 * torch.randn(b, t, generator=gen)
    advantages = torch.randn(b, generator=gen)
    mask = torch.ones(b, t)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return logprobs, old, ref, advantages, mask


def _loop_loss(logprobs, old, ref, advantages, mask, loss_type, eps_low, eps_high, beta, max_len, num_items):
    """The textbook definitions, one token at a time."""
    b, t = logprobs.shape
    per_seq, total, tokens = [], 0.0, 0
    for i in range(b):
        seq_sum, seq_tokens = 0.0, 0
        for j in range(t):
            if mask[i, j] == 0:
                continue
            ratio = torch.exp(logprobs[i, j] - old[i, j])
            a = advantages[i]
            term = -torch.min(ratio * a, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * a)
            if beta:
                d = ref[i, j] - logprobs[i, j]
                term = term + beta * ratio * (torch.exp(d) - d - 1)
            seq_sum, seq_tokens = seq_sum + term, seq_tokens + 1
        per_seq.append(seq_sum / max(seq_tokens, 1))
        total, tokens = total + seq_sum, tokens + seq_tokens
    if loss_type == "grpo":
        return sum(per_seq) / b
    if loss_type == "bnpo":
        return total / tokens
    if loss_type == "dr_grpo":
        return total / (b * max_len)
    if loss_type == "dapo":
        return total / (num_items if num_items is not None else tokens)
    raise AssertionError(loss_type)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
@pytest.mark.parametrize("num_items", [None, 40])
def test_clipped_losses_match_loops(loss_type, beta, num_items):
    logprobs, old, ref, advantages, mask = _batch()
    loss, metrics = policy_loss(logprobs, old, advantages, mask, loss_type=loss_type, epsilon_low=0.2,
                                epsilon_high=0.28, beta=beta, ref_logprobs=ref, max_completion_length=10,
                                num_items_in_batch=num_items)
    (grad,) = torch.autograd.grad(loss, logprobs)
    expected = _loop_loss(logprobs, old, ref, advantages, mask, loss_type, 0.2, 0.28, beta, 10, num_items)
    (expected_grad,) = torch.autograd.grad(expected, logprobs)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    assert 0 < metrics["actor/clip_frac"].item() < 1
    assert ("actor/kl" in metrics) == bool(beta)


def test_losses_only_differ_by_their_normaliser():
    logprobs, old, _, advantages, mask = _batch(seed=3)
    kw = dict(epsilon_low=0.2, epsilon_high=0.28, max_completion_length=10)
    bnpo = policy_loss(logprobs, old, advantages, mask, loss_type="bnpo", **kw)[0]
    dr = policy_loss(logprobs, old, advantages, mask, loss_type="dr_grpo", **kw)[0]
    assert (dr * 4 * 10).item() == pytest.approx((bnpo * mask.sum()).item(), abs=1e-5)


def test_clipping_silences_tokens_pushed_further_out():
    # Token ratios 2.0 / 0.5 / 1.1 with positive and negative advantages.
    old = torch.log(torch.tensor([[0.25, 0.5, 0.5]]))
    logprobs = torch.log(torch.tensor([[0.5, 0.25, 0.55]])).requires_grad_()
    mask = torch.ones(1, 3)
    for advantage, silenced in ((1.0, [True, False, False]), (-1.0, [False, True, False])):
        loss, metrics = policy_loss(logprobs, old, torch.tensor([advantage]), mask, loss_type="dapo",
                                    epsilon_low=0.2, epsilon_high=0.28)
        (grad,) = torch.autograd.grad(loss, logprobs)
        assert (grad[0] == 0).tolist() == silenced
        assert metrics["actor/clip_frac"].item() == pytest.approx(1 / 3)
    # Ratio 2.0 with a negative advantage is *not* clipped: the ratio still pays for the bad token.
    loss, _ = policy_loss(logprobs, old, torch.tensor([-1.0]), mask, loss_type="dapo", epsilon_low=0.2,
                          epsilon_high=0.28)
    (grad,) = torch.autograd.grad(loss, logprobs)
    assert grad[0, 0].item() == pytest.approx(2.0 / 3)  # d(r A)/dlogp = r A, / 3 tokens, negated


def test_two_sided_clip_caps_the_ratio_for_negative_advantages():
    old = torch.log(torch.tensor([[0.1]]))
    logprobs = torch.log(torch.tensor([[0.5]])).requires_grad_()  # ratio 5
    loss, _ = policy_loss(logprobs, old, torch.tensor([-1.0]), torch.ones(1, 1), loss_type="grpo",
                          epsilon_low=0.2, epsilon_high=0.28, delta=3.0)
    assert loss.item() == pytest.approx(3.0)
    assert torch.autograd.grad(loss, logprobs)[0].item() == 0.0


def test_sequence_level_ratio_is_geometric_mean():
    logprobs, old, _, advantages, mask = _batch(seed=5)
    _, metrics = policy_loss(logprobs, old, advantages, mask, loss_type="grpo", importance_sampling_level="sequence")
    seq_ratio = torch.exp(((logprobs - old) * mask).sum(-1) / mask.sum(-1))
    assert metrics["actor/ratio_mean"].item() == pytest.approx(seq_ratio.mean().item(), abs=1e-6)


def test_cispo_always_passes_gradient():
    logprobs, old, _, advantages, mask = _batch(seed=1)
    loss, _ = policy_loss(logprobs, old, advantages, mask, loss_type="cispo", epsilon_high=1.1)
    (grad,) = torch.autograd.grad(loss, logprobs)
    assert ((grad != 0) == mask.bool()).all()
    expected = -(torch.clamp(torch.exp(logprobs - old), max=1.1).detach() * advantages[:, None] * logprobs * mask)
    assert loss.item() == pytest.approx((expected.sum() / mask.sum()).item(), abs=1e-6)


def test_sapo_gate_has_unit_slope_on_policy():
    logprobs, _, _, advantages, mask = _batch(seed=2)
    loss, _ = policy_loss(logprobs, logprobs.detach(), advantages, mask, loss_type="sapo")
    plain, _ = policy_loss(logprobs, logprobs.detach(), advantages, mask, loss_type="grpo")
    # sigmoid(0) * 4 / tau = 2 / tau (the value differs), but the gradient at r = 1 is A * tau/4 * 4/tau = A.
    g_sapo = torch.autograd.grad(loss, logprobs)[0]
    g_plain = torch.autograd.grad(plain, logprobs)[0]
    assert torch.allclose(g_sapo, g_plain, atol=1e-6)


def test_agg_loss_modes_and_errors():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert agg_loss(x, mask, "seq-mean-token-mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert agg_loss(x, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert agg_loss(x, mask, "token-sum-norm", max_completion_length=5).item() == pytest.approx(10 / 10)
    assert agg_loss(x, mask, "token-sum-global", num_items_in_batch=20).item() == pytest.approx(0.5)
    assert agg_loss(x, mask, "seq-mean-token-sum").item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="token-sum-norm"):
        agg_loss(x, mask, "token-sum-norm")
    with pytest.raises(ValueError, match="valid: seq-mean-token-mean"):
        agg_loss(x, mask, "nope")


def test_registry_names_and_errors():
    assert {"grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"} <= set(loss_names())
    assert get_loss_spec("dr_grpo").agg == "token-sum-norm"
    with pytest.raises(ValueError, match=r"unknown loss_type 'ppo'; valid: .*dapo.*grpo"):
        get_loss_spec("ppo")
    with pytest.raises(ValueError, match=r"unknown loss_type 'ppo'; valid: .*dapo.*grpo"):
        policy_loss(*_batch()[:2], *_batch()[3:], loss_type="ppo")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("grpo", agg="token-mean")(lambda terms, **_: (terms.ratio, {}))
    with pytest.raises(ValueError, match="unknown aggregation"):
        register_loss("new", agg="bogus")
    with pytest.raises(ValueError, match="ref_logprobs"):
        logprobs, old, _, advantages, mask = _batch()
        policy_loss(logprobs, old, advantages, mask, loss_type="grpo", beta=0.1)


def test_misspelt_options_are_rejected():
    logprobs, old, _, advantages, mask = _batch()
    with pytest.raises(TypeError, match="epsilon"):
        policy_loss(logprobs, old, advantages, mask, loss_type="grpo", epsilon=0.3)


def test_register_custom_loss():
    @register_loss("test_reinforce", agg="token-mean", options=["scale"])
    def reinforce(terms, *, scale=1.0, **_):
        return -scale * terms.advantages * terms.logprobs, {}

    try:
        logprobs, old, _, advantages, mask = _batch()
        loss, _ = policy_loss(logprobs, old, advantages, mask, loss_type="test_reinforce", scale=2.0)
        expected = agg_loss(-2.0 * advantages[:, None] * logprobs, mask, "token-mean")
        assert loss.item() == pytest.approx(expected.item())
    finally:
        algos._LOSSES.pop("test_reinforce")


def test_truncated_importance_weights():
    old = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    rollout = torch.log(torch.tensor([[0.5, 0.05, 0.3]]))
    weights = algos.truncated_importance_weights(old, rollout, torch.tensor([[1.0, 1.0, 0.0]]), cap=2.0)
    assert weights[0].tolist() == pytest.approx([1.0, 2.0, 0.0])  # 0.2 / 0.05 = 4 capped at 2; masked token 0


# ---------------------------------------------------------------------------------------------- multi-token prediction


def test_mtp_loss_matches_a_hand_computation():
    # depth 1 at position i predicts token i + 2: position 0 -> ids[2] = 0, position 1 -> ids[3] = 1; position 2
    # has no target (its logits are ignored however large)
    ids = torch.tensor([[2, 1, 0, 1]])
    depth1 = torch.tensor([[[2.0, 0.0, 0.0], [3.0, 1.0, 0.0], [50.0, -50.0, 0.0]]])
    loss, metrics = algos.mtp_loss([depth1], ids, torch.ones(1, 4))
    first = math.log(1 + 2 * math.exp(-2))  # -log softmax([2, 0, 0])[0]
    second = math.log(math.exp(3) + math.exp(1) + 1) - 1  # -log softmax([3, 1, 0])[1]
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert metrics["mtp/loss_d1"].item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert metrics["mtp/accuracy_d1"].item() == 0.5  # argmax 0 right at position 0, wrong (0, not 1) at 1
    assert metrics["mtp/loss"].item() == pytest.approx(loss.item())


def test_mtp_loss_aligns_depth_d_with_token_i_plus_1_plus_d_and_averages_depths():
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    vocab, seqlen = 10, ids.size(1)

    def predicting(shift, depth):
        """Logits at each position i putting all mass on token i + shift (the sequence's last token past its end)."""
        targets = ids[0, (torch.arange(seqlen - depth) + shift).clamp(max=seqlen - 1)]
        return (F.one_hot(targets, vocab) * 100.0)[None]

    right = [predicting(1 + depth, depth) for depth in (1, 2, 3)]
    loss, metrics = algos.mtp_loss(right, ids, torch.ones_like(ids, dtype=torch.float))
    assert loss.item() < 1e-6
    assert all(metrics[f"mtp/accuracy_d{d}"].item() == 1.0 for d in (1, 2, 3))
    off_by_one = [predicting(depth, depth) for depth in (1, 2, 3)]  # token i + d: what the module is shown
    loss, metrics = algos.mtp_loss(off_by_one, ids, torch.ones_like(ids, dtype=torch.float))
    assert all(metrics[f"mtp/accuracy_d{d}"].item() == 0.0 for d in (1, 2, 3))
    expected = sum(metrics[f"mtp/loss_d{d}"] for d in (1, 2, 3)) / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and loss.item() > 50


def test_mtp_loss_counts_only_masked_in_targets():
    ids = torch.tensor([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    logits = [torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))]
    mask = torch.tensor([[0.0, 0, 0, 1, 0], [0, 0, 1, 1, 1]])  # targets: row 0 token 3, row 1 tokens 2, 3, 4
    loss, _ = algos.mtp_loss(logits, ids, mask)
    per_target = [F.cross_entropy(logits[0][0, 1], ids[0, 3])] + \
        [F.cross_entropy(logits[0][1, i], ids[1, i + 2]) for i in (0, 1, 2)]
    assert loss.item() == pytest.approx(torch.stack(per_target).mean().item(), rel=1e-6)
    # a masked-out target changes nothing, however wrong its logits
    changed = logits[0].clone()
    changed[0, 0] = -changed[0, 0] * 100  # row 0, position 0 -> token 2, masked out
    assert algos.mtp_loss([changed], ids, mask)[0].item() == loss.item()
    # nothing masked in: 0, not NaN
    assert algos.mtp_loss(logits, ids, torch.zeros(2, 5))[0].item() == 0.0
