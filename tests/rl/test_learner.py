import dataclasses
import math

import pytest
import ray
import torch

from model import Transformer, load_pretrained, preset, save_pretrained
from model.fp8 import fp8_modules
from rl import algos
from rl.batch import LearnerBatch, RolloutBatch, Sample
from rl.config import AlgorithmConfig, ConfigError
from rl.learner import Learner
from rl.learner_group import LearnerGroup
from rl.learner_settings import LearnerSettings
from rl.optimizer import lr_lambda, parameter_groups
from rl.policy import packed_rows, padding_fraction
from rl.sharding import full_tensor


def settings(**overrides):
    values = dict(loss_type="dapo", epsilon_low=0.2, epsilon_high=0.28, beta=0.0, num_iterations=1, mini_batches=1,
                  max_grad_norm=1.0, lr=1e-3, lr_schedule="constant", warmup_steps=0, weight_decay=0.0,
                  balance_bias_speed=0.001, importance_sampling_level="token", kl_bias_correction=True, delta=None,
                  entropy_coeff=0.0, norm_lr_scale=1.0, rollout_correction_cap=None)
    return LearnerSettings(**(values | overrides))


def applied_gradients(learner):
    """The gradients the last optimizer step applied (after clipping), whole and on the CPU, by parameter name
    (sharded ones gathered: every learner of a group must call)."""
    return {name: full_tensor(p.grad).detach().cpu() for name, p in learner.policy.named_parameters()
            if p.grad is not None}


def assert_gradients_close(gradients, reference):
    """Each gradient equals the reference's up to float summation order: within 5e-5 of the reference's largest
    element, or 1e-4 relative (see test_two_learners_take_the_step_one_learner_takes for why these tolerances)."""
    scale = max(t.abs().max().item() for t in reference.values())
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, reference[name], atol=5e-5 * scale, rtol=1e-4, msg=lambda m: f"{name}: {m}")


def group_applied_gradients(group):
    """applied_gradients of a LearnerGroup's learners, run on every one of them (each gathers the same whole
    gradients)."""
    return ray.get([actor.__ray_call__.remote(applied_gradients) for actor in group.actors])[0]


def rollout_batch(policy, prompts, completions, advantages):
    """Samples whose rollout logprobs are the policy's own (as a perfect rollout engine would give)."""
    samples = []
    for prompt, completion in zip(prompts, completions):
        with torch.no_grad():
            logits = policy(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
        logprobs = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()
        samples.append(Sample(prompt, completion, logprobs, truncated=False))
    return RolloutBatch(samples, group_ids=torch.zeros(len(samples), dtype=torch.long),
                        advantages=torch.tensor(advantages))


def test_learner_logprobs_line_up_with_each_completion(tiny_checkpoint):
    learner = Learner(str(tiny_checkpoint), settings(), total_steps=1, max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    prompts = [[0, 3, 10, 11, 4], [0, 3, 12, 4]]
    completions = [[20, 21, 22], [30, 31, 32, 33, 34]]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0]), pad_id=2,
                                       mask_truncated=True)
    logprobs = learner.logprobs(batch)
    torch.testing.assert_close(logprobs * batch.completion_mask, batch.rollout_logprobs, atol=1e-5, rtol=0)
    assert batch.completion_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_packed_rows_give_the_padded_rows_logprobs_and_step(tiny_checkpoint):
    policy = load_pretrained(tiny_checkpoint).eval()
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (7, 3, 2, 9, 4)]
    completions = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (2, 8, 2, 1, 3)]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0, 0.5, -0.5, 1.0]),
                                       pad_id=2, mask_truncated=True)
    padded = Learner(str(tiny_checkpoint), settings(), total_steps=1, max_completion_length=8, pack=False)
    packed = Learner(str(tiny_checkpoint), settings(), total_steps=1, max_completion_length=8, pack=True)
    mask = batch.completion_mask
    torch.testing.assert_close(packed.logprobs(batch) * mask, padded.logprobs(batch) * mask, atol=1e-5, rtol=0)
    packed_metrics, padded_metrics = packed.train_step(batch), padded.train_step(batch)
    assert packed_metrics["learner/padding_frac"] < padded_metrics["learner/padding_frac"]
    torch.testing.assert_close(packed_metrics["loss"], padded_metrics["loss"], atol=1e-6, rtol=1e-4)
    # The gradients, not the weights: AdamW's first step is sign-like, so rounding flips near-zero entries.
    padded_grads = applied_gradients(padded)
    for name, grad in applied_gradients(packed).items():
        torch.testing.assert_close(grad, padded_grads[name], atol=1e-4 * padded_grads[name].abs().max().item(),
                                   rtol=0, msg=name)


def test_rows_are_packed_only_where_that_saves_positions():
    def batch_of(lengths):
        samples = [Sample(list(range(3, 3 + p)), list(range(3, 3 + c)), [0.0] * c, truncated=False) for p, c in lengths]
        return LearnerBatch.from_rollouts(RolloutBatch(samples, torch.arange(len(samples)),
                                                       advantages=torch.zeros(len(samples))), 2, True)

    even, mixed = batch_of([(6, 4), (5, 5), (7, 3)]), batch_of([(6, 4), (2, 2), (3, 2)])
    assert packed_rows(even, pack=True) is None  # nothing shares a row: padded rows, plain causal attention
    assert packed_rows(mixed, pack=True).input_ids.shape == (2, 10)
    assert packed_rows(mixed, pack=False) is None
    assert padding_fraction(mixed, pack=True) < padding_fraction(mixed, pack=False)


def test_rollout_correction_weights_each_token_by_the_capped_learner_to_engine_ratio(tiny_checkpoint):
    """TIS: a batch the engine sampled with lower logprobs than the learner's (a stale or other-precision engine)
    counts min(pi_learner / pi_engine, cap) times; the gradient of the dapo loss scales with it."""
    policy = load_pretrained(tiny_checkpoint).eval()
    rollouts = rollout_batch(policy, [[0, 3, 10, 11, 4]] * 2, [[20, 21, 22], [30, 31, 32]], [1.0, -1.0])
    exact = LearnerBatch.from_rollouts(rollouts, 2, True)
    gradients = {}
    for name, shift, cap in (("exact", 0.0, None), ("ratio 1.5", math.log(1.5), 2.0), ("ratio 3, capped", math.log(3), 2.0)):
        batch = dataclasses.replace(exact, rollout_logprobs=exact.rollout_logprobs - shift * exact.completion_mask)
        learner = Learner(str(tiny_checkpoint), settings(rollout_correction_cap=cap, max_grad_norm=1e9),
                          total_steps=1, max_completion_length=8)
        learner.train_step(batch)
        gradients[name] = applied_gradients(learner)["lm_head.weight"]
    reference = gradients["exact"].abs().max().item()
    torch.testing.assert_close(gradients["ratio 1.5"], 1.5 * gradients["exact"], atol=1e-4 * reference, rtol=0)
    torch.testing.assert_close(gradients["ratio 3, capped"], 2.0 * gradients["exact"], atol=1e-4 * reference, rtol=0)


def test_train_step_moves_probability_toward_positive_advantages(tiny_checkpoint):
    learner = Learner(str(tiny_checkpoint), settings(), total_steps=5, max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    prompts = [[0, 3, 10, 11, 4]] * 2
    completions = [[20, 21, 22], [30, 31, 32]]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0]), 2, True)
    before = learner.logprobs(batch).sum(-1)
    for _ in range(3):
        metrics = learner.train_step(batch)
    after = learner.logprobs(batch).sum(-1)
    assert after[0] > before[0] and after[1] < before[1]
    assert metrics["mismatch/logprob_abs_diff_max"] > 0  # the policy moved away from the rollout's weights
    assert {"loss", "grad_norm", "entropy", "actor/clip_frac", "moe/max_load_ratio", "lr"} <= metrics.keys()


@pytest.mark.parametrize("entropy_coeff", [-1.0, 1.0])
def test_entropy_coeff_lowers_or_raises_the_completions_entropy(tiny_checkpoint, entropy_coeff):
    """With zero advantages the policy loss has no gradient, so the step follows the entropy term alone: negative
    sharpens the distributions at the completion positions, positive flattens them."""
    learner = Learner(str(tiny_checkpoint), settings(entropy_coeff=entropy_coeff), total_steps=5,
                      max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    prompts = [[0, 3, 10, 11, 4]] * 2
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, [[20, 21, 22], [30, 31, 32]], [0.0, 0.0]), 2,
                                       True)
    before = learner.train_step(batch)["entropy"]  # the entropy the first step saw
    after = learner.train_step(batch)["entropy"]
    assert (after - before) * entropy_coeff > 0.01 * before, (before, after)


@pytest.fixture(scope="module")
def mtp_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint's policy with 2 MTP modules added (freshly initialised)."""
    trained = load_pretrained(tiny_checkpoint)
    torch.manual_seed(1)
    policy = Transformer(dataclasses.replace(trained.args, num_nextn_predict_layers=2))
    policy.load_state_dict(trained.state_dict(), strict=False)
    return save_pretrained(policy.eval(), tmp_path_factory.mktemp("mtp") / "policy")


@pytest.mark.parametrize("pack", [False, True])
def test_mtp_weight_trains_the_mtp_modules_and_leaves_the_policys_step_exactly(mtp_checkpoint, pack):
    policy = load_pretrained(mtp_checkpoint).eval()
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (5, 3, 7, 4)]
    completions = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (6, 9, 4, 8)]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0, 0.5, -0.5]),
                                       pad_id=2, mask_truncated=True)
    without = Learner(str(mtp_checkpoint), settings(), total_steps=1, max_completion_length=16, pack=pack)
    with_mtp = Learner(str(mtp_checkpoint), settings(mtp_weight=0.3), total_steps=1, max_completion_length=16,
                       pack=pack)
    plain_metrics, mtp_metrics = without.train_step(batch), with_mtp.train_step(batch)
    plain_grads, mtp_grads = applied_gradients(without), applied_gradients(with_mtp)
    assert set(plain_grads) < set(mtp_grads)
    assert all(name.startswith("mtp.") for name in set(mtp_grads) - set(plain_grads))
    assert all(torch.equal(grad, mtp_grads[name]) for name, grad in plain_grads.items())
    assert mtp_grads["mtp.1.eh_proj.weight"].abs().sum() > 0
    weights = dict(with_mtp.policy.named_parameters())
    assert all(torch.equal(p, weights[name]) for name, p in without.policy.named_parameters()
               if not name.startswith("mtp."))
    assert plain_metrics["loss"] == mtp_metrics["loss"] and plain_metrics["grad_norm"] == mtp_metrics["grad_norm"]
    assert not any(key.startswith("mtp/") for key in plain_metrics)
    assert {"mtp/loss_d1", "mtp/loss_d2", "mtp/accuracy_d1", "mtp/accuracy_d2", "mtp/grad_norm"} <= set(mtp_metrics)
    assert mtp_metrics["mtp/loss_d1"] > 1.0  # untrained modules: far from 0


def test_mtp_weight_without_mtp_modules_is_an_error_naming_the_field(tiny_checkpoint):
    with pytest.raises(ConfigError, match=r"algorithm\.mtp_weight.*no MTP modules"):
        Learner(str(tiny_checkpoint), settings(mtp_weight=0.1), total_steps=1, max_completion_length=8)


def test_parameter_groups_put_the_rmsnorm_gains_apart_only_when_scaled(tiny_checkpoint):
    policy = load_pretrained(tiny_checkpoint)
    names = {id(p): name for name, p in policy.named_parameters()}
    assert len(parameter_groups(policy, 1e-3)) == 1
    rest, gains = parameter_groups(policy, 1e-3, norm_lr_scale=10.0)
    assert rest["lr"] == 1e-3 and gains["lr"] == pytest.approx(1e-2)
    assert {names[id(p)] for p in gains["params"]} == {n for n in names.values() if n.endswith("norm.weight")}
    assert "norm.weight" in {names[id(p)] for p in gains["params"]}  # the final norm, before the output head
    assert len(rest["params"]) + len(gains["params"]) == len(names)


def test_norm_lr_scale_moves_the_gains_that_much_faster(tiny_checkpoint):
    """AdamW's first step moves every parameter with a gradient by lr (m / sqrt(v) = sign(g)), so the gains move
    by lr * norm_lr_scale and nothing moves further than that."""
    learner = Learner(str(tiny_checkpoint), settings(lr=1e-4, norm_lr_scale=30.0), total_steps=5,
                      max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    before = {name: p.detach().clone() for name, p in learner.policy.named_parameters()}
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, [[0, 3, 10, 11, 4]] * 2, [[20, 21, 22], [30, 31, 32]],
                                                     [1.0, -1.0]), 2, True)
    learner.train_step(batch)
    moved = {name: (p.detach() - before[name]).abs().max().item() for name, p in learner.policy.named_parameters()}
    gains = [v for name, v in moved.items() if name.endswith("norm.weight")]
    others = [v for name, v in moved.items() if not name.endswith("norm.weight")]
    assert max(gains) == pytest.approx(3e-3, rel=0.01) and min(gains) > 1e-3, gains
    assert max(others) == pytest.approx(1e-4, rel=0.01), max(others)


def test_first_step_sees_no_mismatch_and_truncated_completions_are_masked(tiny_checkpoint):
    learner = Learner(str(tiny_checkpoint), settings(), total_steps=1, max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    rollouts = rollout_batch(policy, [[0, 3, 10, 4]] * 2, [[5, 6], [7, 8]], [1.0, -1.0])
    rollouts.samples[1].truncated = True
    batch = LearnerBatch.from_rollouts(rollouts, 2, mask_truncated=True)
    assert batch.completion_mask[1].sum() == 0
    metrics = learner.train_step(batch)
    assert metrics["mismatch/logprob_abs_diff_max"] < 1e-5


def test_save_load_restores_policy_optimizer_and_version(tiny_checkpoint, tmp_path):
    learner = Learner(str(tiny_checkpoint), settings(beta=0.01), total_steps=4, max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, [[0, 3, 10, 4]] * 2, [[5, 6], [7, 8]], [1.0, -1.0]),
                                       2, True)
    learner.train_step(batch)
    learner.save(str(tmp_path))
    expected = learner.train_step(batch)
    restored = Learner(str(tiny_checkpoint), settings(beta=0.01), total_steps=4, max_completion_length=8)
    restored.load(str(tmp_path))
    assert restored.version == 1
    again = restored.train_step(batch)
    assert abs(again["loss"] - expected["loss"]) < 1e-6 and abs(again["grad_norm"] - expected["grad_norm"]) < 1e-5


def test_settings_from_config_are_the_algorithm_sections_fields():
    algorithm = AlgorithmConfig(loss_type="grpo", beta=0.01, delta=1.5, rollout_correction_cap=2.0, norm_lr_scale=3.0)
    learner_settings = LearnerSettings.from_config(algorithm)
    assert {f.name: getattr(learner_settings, f.name) for f in dataclasses.fields(LearnerSettings)} == {
        f.name: getattr(algorithm, f.name) for f in dataclasses.fields(LearnerSettings)}
    assert (learner_settings.loss_type, learner_settings.rollout_correction_cap) == ("grpo", 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        learner_settings.lr = 1.0


def test_learning_rate_schedules():
    assert [round(lr_lambda("linear", 2, 10)(s), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    assert lr_lambda("cosine", 0, 10)(5) == 0.5 + 0.5 * math.cos(math.pi * 0.5)
    assert lr_lambda("constant", 0, 10)(9) == 1.0


def test_several_iterations_and_mini_batches_use_the_logprobs_from_before_the_update(tiny_checkpoint):
    learner = Learner(str(tiny_checkpoint), settings(num_iterations=2, mini_batches=2), total_steps=1,
                      max_completion_length=8)
    policy = load_pretrained(tiny_checkpoint).eval()
    prompts = [[0, 3, 10, 4]] * 4
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, [[5, 6], [7, 8], [9, 10], [11, 12]],
                                                     [1.0, -1.0, 0.5, -0.5]), 2, True)
    metrics = learner.train_step(batch)
    assert metrics["mismatch/logprob_abs_diff_max"] < 1e-5  # measured before any of the 4 optimizer steps
    assert metrics["actor/ratio_mean"] != 1.0  # later mini-batches see a policy that has moved
    assert learner.scheduler.last_epoch == 4


@pytest.mark.parametrize("overrides", [
    dict(loss_type="dapo"),  # token-sum-global
    dict(loss_type="grpo", beta=0.01),  # sequence means, a reference policy
    dict(loss_type="bnpo", mini_batches=2),  # token mean, two optimizer steps
    dict(loss_type="dr_grpo"),  # token sum over a constant
    dict(loss_type="grpo", entropy_coeff=-0.1),  # the entropy term, a token mean over the mini-batch
])
def test_micro_batches_accumulate_the_whole_mini_batchs_gradient(tiny_checkpoint, overrides):
    """Length-sorted micro-batches (each trimmed to its own longest sequence) with accumulated gradients take the
    step the whole mini-batch takes. Gradients are compared (see test_two_learners_take_the_step_one_learner_takes
    for why, and for the tolerances: the micro-batches add partial sums in another order, nothing more); a wrong
    weighting of a part moves whole tensors by tens of percent."""
    config = settings(**overrides, lr=0.0)
    policy = load_pretrained(tiny_checkpoint).eval()
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (7, 3, 2, 9, 4, 5)]
    completions = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (2, 8, 2, 1, 3, 6)]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0, 0.5, -0.5, 1.0, -0.25]),
                                       pad_id=2, mask_truncated=True)
    whole = Learner(str(tiny_checkpoint), config, total_steps=1, max_completion_length=8)
    parts = Learner(str(tiny_checkpoint), config, total_steps=1, max_completion_length=8, micro_batch_positions=24)
    expected, metrics = whole.train_step(batch), parts.train_step(batch)
    assert metrics["learner/micro_batches"] >= 2  # (2 at 3 rows a mini-batch, 4 at 6)
    assert metrics["learner/padding_frac"] < expected["learner/padding_frac"]
    reference = applied_gradients(whole)
    scale = max(t.abs().max().item() for t in reference.values())
    assert scale > 0
    for name, gradient in applied_gradients(parts).items():
        torch.testing.assert_close(gradient, reference[name], atol=5e-5 * scale, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert (gradient - reference[name]).norm() <= 1e-2 * reference[name].norm(), name
    for key in ("loss", "grad_norm", "entropy", "actor/ratio_mean", "mismatch/logprob_abs_diff_mean"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("overrides, positions", [
    (dict(loss_type="dapo"), 0),
    (dict(loss_type="grpo", beta=0.01), 24),  # sequence means, a reference policy, micro-batches
    (dict(loss_type="bnpo", mini_batches=2, num_iterations=2), 0),  # ratios away from 1: clipping
    (dict(loss_type="cispo", epsilon_high=5.0), 24),
])
def test_a_per_completion_advantage_spread_over_its_tokens_takes_the_same_step(tiny_checkpoint, overrides,
                                                                               positions):
    """GRPO's numbers are unchanged by per-token advantages: each completion's advantage given as (B,) or repeated
    over its tokens as (B, L) (padding any value) gives the same metrics and the same weights, to the bit."""
    config = settings(**overrides)
    policy = load_pretrained(tiny_checkpoint).eval()
    generator = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (7, 3, 2, 9)]
    completions = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (2, 8, 2, 5)]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, [1.0, -1.0, 0.5, -0.25]),
                                       pad_id=2, mask_truncated=True)
    spread = batch.advantages[:, None].expand_as(batch.completion_mask).clone()
    spread[batch.completion_mask == 0] = 123.0  # padding: masked out of the loss
    per_token = dataclasses.replace(batch, advantages=spread)
    learners = [Learner(str(tiny_checkpoint), config, total_steps=2, max_completion_length=8,
                        micro_batch_positions=positions) for _ in range(2)]
    expected, metrics = learners[0].train_step(batch), learners[1].train_step(per_token)
    for key, value in expected.items():
        if not key.startswith(("time/", "throughput/")):
            assert metrics[key] == value, key
    for (name, weight), other in zip(learners[0].policy.state_dict().items(), learners[1].policy.state_dict().values()):
        assert torch.equal(weight, other), name


def with_teacher_distribution(batch, seed, top_k=0):
    """The batch carrying a made-up teacher's next-token distribution at each completion position."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(*batch.completion_ids.shape, 2048, generator=generator)
    logprobs, ids = algos.teacher_distribution(logits, 1.0, top_k)
    return dataclasses.replace(batch, teacher_logprobs=logprobs, teacher_ids=ids)


@pytest.mark.parametrize("top_k", [0, 16])
def test_a_teacher_distribution_pulls_the_students_toward_it_also_in_micro_batches(tiny_checkpoint, top_k):
    """distill.kl=full: with zero advantages the step follows the KL term alone, which falls step by step, and
    length-sorted micro-batches accumulate the gradient the whole batch gives (tolerances as in
    test_micro_batches_accumulate_the_whole_mini_batchs_gradient)."""
    policy = load_pretrained(tiny_checkpoint).eval()
    generator = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (7, 3, 2, 9)]
    completions = [torch.randint(3, 2048, (n,), generator=generator).tolist() for n in (2, 8, 2, 5)]
    batch = with_teacher_distribution(LearnerBatch.from_rollouts(
        rollout_batch(policy, prompts, completions, [0.0] * 4), pad_id=2, mask_truncated=True), seed=4, top_k=top_k)
    whole = Learner(str(tiny_checkpoint), settings(lr=0.0), total_steps=1, max_completion_length=8)
    parts = Learner(str(tiny_checkpoint), settings(lr=0.0), total_steps=1, max_completion_length=8,
                    micro_batch_positions=24)
    expected, metrics = whole.train_step(batch), parts.train_step(batch)
    assert metrics["learner/micro_batches"] >= 2 and expected["distill/reverse_kl_full"] > 0.5
    assert metrics["distill/reverse_kl_full"] == pytest.approx(expected["distill/reverse_kl_full"], rel=1e-4)
    reference = applied_gradients(whole)
    assert_gradients_close(applied_gradients(parts), reference)
    learner = Learner(str(tiny_checkpoint), settings(lr=3e-3), total_steps=3, max_completion_length=8)
    kl = [learner.train_step(batch)["distill/reverse_kl_full"] for _ in range(3)]
    assert kl[2] < 0.9 * kl[0], kl


@pytest.mark.parametrize("n_samples, overrides", [
    (4, dict(loss_type="dapo")),
    (4, dict(loss_type="grpo", beta=0.01)),  # a sharded reference policy too
    (5, dict(loss_type="bnpo", mini_batches=2)),  # uneven shards
    (3, dict(loss_type="dr_grpo", mini_batches=2)),  # one shard's second mini-batch is a padding row
    (5, dict(loss_type="bnpo")),
    (5, dict(loss_type="grpo", micro_batch_positions=10)),  # micro-batches: 3 parts on one learner, 2 (+ a padding row) on the other
    (5, dict(loss_type="dapo", entropy_coeff=-0.1)),  # the entropy term's token mean over both learners' shards
])
def test_two_learners_take_the_step_one_learner_takes(tiny_checkpoint, ray_session, n_samples, overrides):
    """FSDP over two gloo learner actors: the gradient the optimizer applies is the one a single learner computes
    on the whole batch.

    The claim is about gradients, so gradients are compared, not the weights after an AdamW step: Adam's first
    step is lr * g / (|g| + eps), close to lr * sign(g), so a weight whose gradient is float noise around zero moves
    by anything in [-lr, lr] (measured on an AMX CPU: 2 of 32,768 weights 7.6e-6 apart after one step at lr 1e-3).
    lr = 0 keeps the weights where they are, so with two mini-batches the second gradient is taken at the same
    weights by both set-ups too. Tolerances: two learners add two partial gradient sums where one learner adds
    them in one order, and fp32 re-association moves every element by float noise of the size of the largest
    terms that flow into it, not of its own size (measured on this machine: elements differ by up to 4.5e-6 of
    the model's largest gradient, large elements by up to 5e-6 of themselves, and a tensor whose gradients are
    tiny by up to 1e-4 of its norm). So each element must agree to 5e-5 of the model's largest gradient plus
    1e-4 of itself, and each tensor to 1e-2 of its norm: margins of 10-100 over that noise whatever a CPU's
    kernels, while a wrong loss weighting (a shard counted twice, a wrong token normaliser) moves every tensor by
    tens of percent of its norm.
    """
    micro_batch_positions = overrides.pop("micro_batch_positions", 0)
    config = settings(**overrides, lr=0.0)
    policy = load_pretrained(tiny_checkpoint).eval()
    completions = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14], [15, 16]][:n_samples]
    advantages = [1.0, -1.0, 0.5, -0.5, 0.25][:n_samples]
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, [[0, 3, 10, 4]] * n_samples, completions, advantages),
                                       2, True)
    single = Learner(str(tiny_checkpoint), config, total_steps=2, max_completion_length=8)
    expected = single.train_step(batch)
    reference = applied_gradients(single)
    group = LearnerGroup(str(tiny_checkpoint), config, total_steps=2, max_completion_length=8, num_learners=2,
                         micro_batch_positions=micro_batch_positions)
    try:
        metrics = group.train_step(batch)
        gradients = group_applied_gradients(group)
    finally:
        group.kill()
    assert gradients.keys() == reference.keys()
    scale = max(t.abs().max().item() for t in reference.values())
    assert scale > 0  # a real gradient
    worst_element, worst_norm = 0.0, 0.0
    for name, tensor in reference.items():
        difference = gradients[name] - tensor
        worst_element = max(worst_element, difference.abs().max().item() / scale)
        worst_norm = max(worst_norm, (difference.norm() / tensor.norm().clamp(min=1e-30)).item())
        torch.testing.assert_close(gradients[name], tensor, atol=5e-5 * scale, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert difference.norm() <= 1e-2 * tensor.norm(), f"{name}: relative difference {worst_norm:.2e}"
    print(f"largest element difference / largest gradient {worst_element:.1e}; "
          f"largest per-tensor relative difference {worst_norm:.1e}")
    assert metrics["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-5)
    assert metrics["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7)


def test_two_learners_save_what_one_learner_resumes_from(tiny_checkpoint, ray_session, tmp_path):
    """A sharded group's checkpoint (weights and the gathered optimizer state) continues exactly on one learner."""
    config = settings(beta=0.01)
    policy = load_pretrained(tiny_checkpoint).eval()
    batch = LearnerBatch.from_rollouts(rollout_batch(policy, [[0, 3, 10, 4]] * 4, [[5, 6], [7, 8], [9], [11, 12]],
                                                     [1.0, -1.0, 0.5, -0.5]), 2, True)
    group = LearnerGroup(str(tiny_checkpoint), config, total_steps=4, max_completion_length=8, num_learners=2)
    try:
        group.train_step(batch)
        group.save(str(tmp_path))
        expected = group.train_step(batch)
    finally:
        group.kill()
    restored = Learner(str(tiny_checkpoint), config, total_steps=4, max_completion_length=8)
    restored.load(str(tmp_path))
    again = restored.train_step(batch)
    assert restored.version == 2
    assert again["loss"] == pytest.approx(expected["loss"], abs=1e-6)
    assert again["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-5)


# ------------------------------------------------------------------ on a GPU (skipped where none is visible)
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")


def batch_of(policy, advantages=(1.0, -1.0, 0.5, -0.5)):
    prompts = [[0, 3, *range(100, 100 + 5 * (i + 1)), 4] for i in range(len(advantages))]
    completions = [list(range(200 + i, 212 + 3 * i)) for i in range(len(advantages))]
    return LearnerBatch.from_rollouts(rollout_batch(policy, prompts, completions, list(advantages)), 2, True)


@needs_gpu
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("bf16", 0.15)])
def test_gpu_logprobs_match_the_cpu_fp32_policy(tiny_checkpoint, precision, tolerance):
    policy = load_pretrained(tiny_checkpoint).eval()
    batch = batch_of(policy)
    learner = Learner(str(tiny_checkpoint), settings(), total_steps=1, max_completion_length=32, device="cuda",
                      precision=precision)
    assert next(learner.policy.parameters()).device.type == "cuda"
    assert next(learner.policy.parameters()).dtype == torch.float32  # master weights stay fp32
    logprobs = learner.logprobs(batch).cpu()
    diff = ((logprobs - batch.rollout_logprobs).abs() * batch.completion_mask).max().item()
    assert diff <= tolerance, f"{precision}: max |logprob diff| vs CPU fp32 = {diff}"


def logprob_change_after_one_step(learner, batch):
    before = learner.logprobs(batch).sum(-1).cpu()
    learner.train_step(batch)
    return learner.logprobs(batch).sum(-1).cpu() - before


@needs_gpu
@pytest.mark.parametrize("precision, tolerance", [("fp32", 0.02), ("bf16", 0.3)])
def test_gpu_step_moves_the_policy_as_the_cpu_fp32_step_does(tiny_checkpoint, precision, tolerance):
    """The change of each completion's logprob over one update (lr 1e-4; about -0.7 to -3 nats here)."""
    policy = load_pretrained(tiny_checkpoint).eval()
    batch = batch_of(policy)
    make = lambda device, precision: Learner(str(tiny_checkpoint), settings(beta=0.01, lr=1e-4),  # noqa: E731
                                             total_steps=4, max_completion_length=32, device=device,
                                             precision=precision)
    expected = logprob_change_after_one_step(make("cpu", "fp32"), batch)
    torch.testing.assert_close(logprob_change_after_one_step(make("cuda", precision), batch), expected,
                               atol=tolerance, rtol=0.0)


@needs_gpu
def test_gpu_bf16_checkpoint_resumes_exactly(tiny_checkpoint, tmp_path):
    policy = load_pretrained(tiny_checkpoint).eval()
    batch = batch_of(policy)
    make = lambda: Learner(str(tiny_checkpoint), settings(beta=0.01), total_steps=4,  # noqa: E731
                           max_completion_length=32, device="cuda", precision="bf16")
    learner = make()
    learner.train_step(batch)
    learner.save(str(tmp_path))
    expected = learner.train_step(batch)
    restored = make()
    restored.load(str(tmp_path))
    again = restored.train_step(batch)
    assert again["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert again["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-4)


# Runs in a fresh process: the sharded learner needs the default torch.distributed process group, and the test
# process may hold one already (vLLM initialises it when it runs in-process, as the vLLM tests do).
FSDP_OF_ONE = """
import json, sys
import torch
from safetensors.torch import save_file
from torch.distributed import TCPStore, destroy_process_group
from rl.learner import Learner
from rl.learner_settings import LearnerSettings

checkpoint, batch_file, out, device, precision, settings = sys.argv[1:]
torch.set_num_threads(1)
batch = torch.load(batch_file, weights_only=False)
store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
learner = Learner(checkpoint, LearnerSettings(**json.loads(settings)), total_steps=4, max_completion_length=32,
                  device=device, precision=precision, store_address=("127.0.0.1", store.port))
first = learner.train_step(batch)
save_file(learner.checkpoint_weights(), out + "/weights.safetensors")
learner.save(out + "/checkpoint")
second = learner.train_step(batch)
destroy_process_group()
print(json.dumps({"first": first, "second": second}))
"""


@pytest.mark.parametrize("device, precision", [("cpu", "fp32"), ("cpu", "fp8"),  # fp8: FSDP2 over the FP8 layers
                                               pytest.param("cuda", "fp32", marks=needs_gpu),
                                               pytest.param("cuda", "bf16", marks=needs_gpu)])
def test_an_fsdp_group_of_one_takes_the_plain_learners_step_and_checkpoints(tiny_checkpoint, tmp_path, device,
                                                                           precision):
    """The sharded code path (process group, FSDP2, DTensor clipping, gathered state dicts; NCCL on a GPU) in one
    process, against the plain learner: the multi-GPU group's path, checkable on one device."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    policy = load_pretrained(tiny_checkpoint).eval()
    batch = batch_of(policy)
    torch.save(batch, tmp_path / "batch.pt")
    config = settings(beta=0.01)
    run = subprocess.run([sys.executable, "-c", FSDP_OF_ONE, str(tiny_checkpoint), str(tmp_path / "batch.pt"),
                          str(tmp_path), device, precision, json.dumps(dataclasses.asdict(config))],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    sharded = json.loads(run.stdout.strip().splitlines()[-1])

    make = lambda: Learner(str(tiny_checkpoint), config, total_steps=4, max_completion_length=32,  # noqa: E731
                           device=device, precision=precision)
    plain = make()
    expected = plain.train_step(batch)
    reference = plain.checkpoint_weights()
    for name, tensor in load_file(str(tmp_path / "weights.safetensors")).items():
        torch.testing.assert_close(tensor, reference[name], atol=2e-6, rtol=1e-4, msg=name)
    assert sharded["first"]["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-4)
    restored = make()
    restored.load(str(tmp_path / "checkpoint"))
    again = restored.train_step(batch)
    assert again["loss"] == pytest.approx(sharded["second"]["loss"], abs=1e-5)
    assert again["grad_norm"] == pytest.approx(sharded["second"]["grad_norm"], rel=1e-4)


# ------------------------------------------------------------------ trainer.precision=fp8 (emulated on the CPU)
def test_a_fp8_learner_step_trains_the_master_weights_and_reports_what_fp8_adds_to_the_mismatch(tiny_checkpoint):
    """The batch's rollout logprobs are the fp32 policy's own, as an fp32 engine would give: the fp32 learner
    matches them to ~1e-6, and the fp8 learner's distance from them is what FP8 learning adds."""
    batch = batch_of(load_pretrained(tiny_checkpoint).eval())
    fp32 = Learner(str(tiny_checkpoint), settings(), total_steps=2, max_completion_length=32)
    fp8 = Learner(str(tiny_checkpoint), settings(), total_steps=2, max_completion_length=32, precision="fp8")
    assert fp8_modules(fp8.policy) and not fp8_modules(fp32.policy)
    assert all(p.dtype == torch.float32 for p in fp8.policy.parameters())  # master weights stay fp32
    before = {name: p.detach().clone() for name, p in fp8.policy.named_parameters()}
    fp32_metrics, fp8_metrics = fp32.train_step(batch), fp8.train_step(batch)
    assert fp32_metrics["mismatch/logprob_abs_diff_mean"] < 1e-4
    # bf16 plus FP8 GEMMs move the sampled tokens' logprobs by a few hundredths of a nat on this policy
    assert 1e-3 < fp8_metrics["mismatch/logprob_abs_diff_mean"] < 0.2, fp8_metrics
    assert fp8_metrics["grad_norm"] > 0 and abs(fp8_metrics["loss"] - fp32_metrics["loss"]) < 0.05
    moved = [name for name, p in fp8.policy.named_parameters() if not torch.equal(p, before[name])]
    assert any(".experts." in name for name in moved) and any("kv_b_proj" in name for name in moved)


def test_truncated_importance_sampling_runs_over_the_fp8_mismatch(tiny_checkpoint):
    batch = batch_of(load_pretrained(tiny_checkpoint).eval())
    learner = Learner(str(tiny_checkpoint), settings(rollout_correction_cap=2.0), total_steps=2,
                      max_completion_length=32, precision="fp8")
    metrics = learner.train_step(batch)
    assert torch.isfinite(torch.tensor(metrics["loss"])) and metrics["grad_norm"] > 0


def test_a_checkpoint_saved_from_a_fp8_learner_loads_in_fp32_with_the_same_keys(tiny_checkpoint, tmp_path):
    batch = batch_of(load_pretrained(tiny_checkpoint).eval())
    learner = Learner(str(tiny_checkpoint), settings(beta=0.01), total_steps=2, max_completion_length=32,
                      precision="fp8")
    learner.train_step(batch)
    learner.save(str(tmp_path / "fp8"))
    save_pretrained(load_pretrained(tiny_checkpoint), tmp_path / "fp32")
    saved, plain = load_pretrained(tmp_path / "fp8"), load_pretrained(tmp_path / "fp32")
    assert list(saved.state_dict()) == list(plain.state_dict())
    assert all(t.dtype == plain.state_dict()[name].dtype for name, t in saved.state_dict().items())
    assert not fp8_modules(saved)
    trained = learner.policy.state_dict()
    assert all(torch.equal(value, trained[name]) for name, value in saved.state_dict().items())
    resumed = Learner(str(tmp_path / "fp8"), settings(beta=0.01), total_steps=2, max_completion_length=32,
                      precision="fp8")
    resumed.load(str(tmp_path / "fp8"))  # optimizer state of the fp8 learner restores into another
    assert resumed.version == 1


def tool_sample(policy, prompt, segments):
    """A multi-turn sample: `segments` are (token ids, is an observation) in order; the policy's tokens get the
    policy's own logprobs (a perfect rollout engine), observations none."""
    from rl.batch import Segment

    completion = [t for ids, _ in segments for t in ids]
    with torch.no_grad():
        logits = policy(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
    logprobs = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()
    parts, start = [], 0
    for ids, observed in segments:
        parts.append(Segment(ids, None if observed else logprobs[start:start + len(ids)]))
        start += len(ids)
    return Sample.from_segments(prompt, parts, truncated=False)


@pytest.mark.parametrize("overrides, positions", [
    (dict(loss_type="dapo", beta=0.01, entropy_coeff=-0.1, rollout_correction_cap=2.0), 0),  # KL, entropy, TIS
    (dict(loss_type="grpo", beta=0.01), 16),  # sequence means, micro-batches
    (dict(loss_type="bnpo", importance_sampling_level="sequence", num_iterations=2), 0),  # GSPO's sequence ratio
])
def test_observation_tokens_count_in_no_loss_kl_entropy_ratio_or_mismatch(tiny_checkpoint, overrides, positions):
    """Whatever an observation's positions hold in the learner's tensors (its rollout logprobs, its per-token
    advantages), the step, its metrics and the weights after it are the same to the bit: only its token ids count,
    as context for the policy's later tokens."""
    config = settings(**overrides)
    policy = load_pretrained(tiny_checkpoint).eval()
    samples = [tool_sample(policy, [0, 3, 10, 11, 4], [([20, 21, 22], False), ([70, 71, 72, 73], True),
                                                         ([23, 24], False)]),
               tool_sample(policy, [0, 3, 12, 4], [([30, 31], False), ([74, 75], True), ([32], False),
                                                   ([76], True), ([33, 34, 35], False)]),
               tool_sample(policy, [0, 3, 14, 4], [([40, 41, 42, 43], False)])]
    rollouts = RolloutBatch(samples, torch.arange(3), advantages=torch.tensor([1.0, -0.5, -0.5]))
    batch = LearnerBatch.from_rollouts(rollouts, pad_id=2, mask_truncated=True)
    sampled_or_observed = torch.arange(batch.completion_ids.size(1)) < batch.completion_lengths[:, None]
    observed = (batch.policy_mask == 0) & sampled_or_observed
    assert observed.sum() == 7
    per_token = batch.advantages[:, None].expand_as(batch.completion_mask).clone()
    garbage = dataclasses.replace(batch, advantages=per_token.masked_fill(observed, 99.0),
                                  rollout_logprobs=batch.rollout_logprobs.masked_fill(observed, -7.0))
    learners = [Learner(str(tiny_checkpoint), config, total_steps=2, max_completion_length=16, pack=True,
                        micro_batch_positions=positions) for _ in range(2)]
    expected, metrics = learners[0].train_step(dataclasses.replace(batch, advantages=per_token)), \
        learners[1].train_step(garbage)
    assert expected["mismatch/logprob_abs_diff_max"] < 1e-4  # the observation's 0 placeholders are not compared
    for key, value in expected.items():
        if not key.startswith(("time/", "throughput/")):
            assert metrics[key] == value, key
    for (name, weight), other in zip(learners[0].policy.state_dict().items(), learners[1].policy.state_dict().values()):
        assert torch.equal(weight, other), name


def test_an_observation_is_only_context_the_turn_after_it_learns_as_if_it_were_prompt(tiny_checkpoint):
    """One row prompt + turn + observation + turn takes the step of two rows: prompt + turn, and (prompt + turn +
    observation) as the prompt of the second turn (token-mean loss, KL and entropy: the same tokens, the same
    contexts, the same count)."""
    config = settings(loss_type="dapo", beta=0.01, entropy_coeff=-0.1, lr=0.0)
    policy = load_pretrained(tiny_checkpoint).eval()
    prompt, first, observation, second = [0, 3, 10, 11, 4], [20, 21, 22], [70, 71, 72], [23, 24, 25, 26]
    joined = tool_sample(policy, prompt, [(first, False), (observation, True), (second, False)])
    split = [tool_sample(policy, prompt, [(first, False)]),
             tool_sample(policy, prompt + first + observation, [(second, False)])]
    one = LearnerBatch.from_rollouts(RolloutBatch([joined], torch.zeros(1, dtype=torch.long),
                                                  advantages=torch.tensor([0.7])), 2, True)
    two = LearnerBatch.from_rollouts(RolloutBatch(split, torch.zeros(2, dtype=torch.long),
                                                  advantages=torch.tensor([0.7, 0.7])), 2, True)
    learners = [Learner(str(tiny_checkpoint), config, total_steps=1, max_completion_length=16) for _ in range(2)]
    expected, metrics = learners[1].train_step(two), learners[0].train_step(one)
    for key in ("loss", "entropy", "actor/kl", "grad_norm", "mismatch/logprob_abs_diff_mean"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert_gradients_close(applied_gradients(learners[0]), applied_gradients(learners[1]))


@pytest.mark.parametrize("overrides", [dict(loss_type="dapo", beta=0.01), dict(loss_type="grpo", mini_batches=2)])
def test_two_learners_take_one_learners_step_on_samples_with_observation_tokens(tiny_checkpoint, ray_session,
                                                                               overrides):
    """FSDP over two learner actors on multi-turn samples (tool outputs between the policy's tokens, masked): the
    applied gradient is the single learner's, to test_two_learners_take_the_step_one_learner_takes' tolerances."""
    config = settings(**overrides, lr=0.0)
    policy = load_pretrained(tiny_checkpoint).eval()
    samples = [tool_sample(policy, [0, 3, 10, 4], [([5, 6], False), ([70, 71, 72], True), ([7], False)]),
               tool_sample(policy, [0, 3, 11, 4], [([8, 9, 10], False)]),
               tool_sample(policy, [0, 3, 12, 4], [([11], False), ([73], True), ([12, 13], False), ([74, 75], True),
                                                   ([14], False)])]
    batch = LearnerBatch.from_rollouts(RolloutBatch(samples, torch.arange(3), advantages=torch.tensor([1.0, -0.5,
                                                                                                       0.25])), 2, True)
    single = Learner(str(tiny_checkpoint), config, total_steps=2, max_completion_length=16)
    expected = single.train_step(batch)
    reference = applied_gradients(single)
    group = LearnerGroup(str(tiny_checkpoint), config, total_steps=2, max_completion_length=16, num_learners=2)
    try:
        metrics = group.train_step(batch)
        gradients = group_applied_gradients(group)
    finally:
        group.kill()
    scale = max(t.abs().max().item() for t in reference.values())
    for name, tensor in reference.items():
        torch.testing.assert_close(gradients[name], tensor, atol=5e-5 * scale, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert (gradients[name] - tensor).norm() <= 1e-2 * tensor.norm(), name
    for key in ("loss", "mismatch/logprob_abs_diff_max"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert metrics["mismatch/logprob_abs_diff_max"] < 1e-4  # the observations' placeholders are not compared
