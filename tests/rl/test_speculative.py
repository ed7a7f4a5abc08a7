"""MTP speculative decoding in the rollout engine (rollout.speculative_tokens): vLLM drafts with our MTP layers
exactly as our MTPModule computes them, the samples follow the policy's distribution, their logprobs are the
policy's, seeded requests repeat, and an in-place weight update reaches the draft layers too."""

import dataclasses

import pytest
import torch

from model import Transformer, load_pretrained, save_pretrained, to_hf_state_dict
from model.config import ConfigError
from model.vllm_engine import acceptance, engine_kwargs
from rl.config import load_config
from rl.rollout import RolloutWorker
from rl.trainer import check_mtp
from rl.weight_sync import serialize_weights
from tests.rl.test_rollout import max_logprob_diff

PROMPTS = [[0, 3, *range(100, 120), 4], [0, 3, 300, 301, 4], [0, 7, 8, 9]]


def randomise_mtp(policy: Transformer, seed: int) -> None:
    """MTP weights far from init: norms away from 1, so a norm applied in the wrong place shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.mtp.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1 + 0.5 * torch.randn_like(parameter))
            elif name.endswith("e_score_correction_bias"):
                parameter.normal_(std=0.05)
            else:
                parameter.add_(torch.randn_like(parameter) * 0.05)


@pytest.fixture(scope="session")
def mtp_policy(tiny_checkpoint, tmp_path_factory):
    """The trained tiny policy with one MTP layer of random weights."""
    trained = load_pretrained(tiny_checkpoint)
    policy = Transformer(dataclasses.replace(trained.args, num_nextn_predict_layers=1))
    policy.load_state_dict(trained.state_dict(), strict=False)
    randomise_mtp(policy, seed=1)
    return save_pretrained(policy.eval(), tmp_path_factory.mktemp("mtp") / "policy")


# Session-scoped, as the shared engine is: an in-process vLLM engine that is freed tears down vLLM's model-parallel
# groups, which every engine of the process shares, so freeing this one after its module broke the session's engine
# for every later test.
@pytest.fixture(scope="session")
def drafting_worker(mtp_policy):
    worker = RolloutWorker(str(mtp_policy), max_model_len=256, seed=0, quiet=True, speculative_tokens=2)
    worker.engine.collective_rpc(record_draft_logits)
    return worker


def record_draft_logits(worker) -> None:
    """Runs in vLLM's worker: keep every logits tensor the MTP drafter computes, in worker.draft_logits."""
    drafter = worker.model_runner.drafter.model
    worker.draft_logits = []
    compute_logits = drafter.compute_logits

    def recording(hidden_states, *args, **kwargs):
        logits = compute_logits(hidden_states, *args, **kwargs)
        worker.draft_logits.append(logits.detach().clone())
        return logits

    drafter.compute_logits = recording


def attention_splits(worker) -> list[tuple[int, int]]:
    """Runs in vLLM's worker: the (decode, prefill) request counts of every attention metadata built since the
    last call (the target's and the drafter's)."""
    splits, worker.attention_splits = getattr(worker, "attention_splits", []), []
    if not getattr(worker, "recording_splits", False):
        worker.recording_splits = True
        for groups in worker.model_runner.attn_groups:
            for group in groups:
                for builder in group.metadata_builders:
                    build = builder.build

                    def recording(*args, _build=build, **kwargs):
                        metadata = _build(*args, **kwargs)
                        worker.attention_splits.append((metadata.num_decodes, metadata.num_prefills))
                        return metadata

                    builder.build = recording
    return splits


def take_draft_logits(worker) -> list[torch.Tensor]:
    logits, worker.draft_logits = worker.draft_logits, []
    return logits


def first_draft_logits_error(worker: RolloutWorker, policy: Transformer) -> float:
    """One prompt, one sample: the drafter's first logits (at the prompt's last position, reading the first
    sampled token) against our MTP module's for the same tokens."""
    worker.engine.collective_rpc(take_draft_logits)
    prompt = PROMPTS[0]
    sample = worker.generate([prompt], n=1, max_tokens=8, temperature=1.0, seed=5)[0]
    vllm_logits = worker.engine.collective_rpc(take_draft_logits)[0][0][0]
    with torch.no_grad():
        ours = policy(torch.tensor([prompt + sample.completion_ids]), with_mtp=True).mtp_logits[0][0, len(prompt) - 1]
    return (vllm_logits - ours).abs().max().item()


def test_vllm_drafts_with_our_mtp_module_and_samples_the_target_model(drafting_worker, mtp_policy):
    policy = load_pretrained(mtp_policy).eval()
    assert first_draft_logits_error(drafting_worker, policy) < 1e-3

    drafting_worker.engine.collective_rpc(attention_splits)
    samples = drafting_worker.generate(PROMPTS, n=3, max_tokens=24, temperature=1.0, seed=1)
    assert all(len(s.completion_ids) == len(s.rollout_logprobs) > 0 for s in samples)
    # after the prompts' prefill, every step verifies its drafts as a decode (model/vllm_cpu_mla.py), not as a
    # prefill over the whole context: the logprobs below check that decode
    splits = drafting_worker.engine.collective_rpc(attention_splits)[0]
    assert len(splits) > 10 and all(prefills == 0 for _, prefills in splits[2:]), splits
    # every returned token's logprob, drafted and accepted or sampled by the target, is the target model's
    assert max_logprob_diff(policy, samples) <= 1e-4
    assert [s.completion_ids for s in drafting_worker.generate(PROMPTS, n=3, max_tokens=24, temperature=1.0,
                                                               seed=1)] == [s.completion_ids for s in samples]
    # below temperature 1, the logprobs of the distribution sampled from, as without drafts
    hot = drafting_worker.generate(PROMPTS, n=2, max_tokens=16, temperature=0.7, seed=2)
    assert max_logprob_diff(policy, hot, temperature=0.7) <= 1e-4 < max_logprob_diff(policy, hot)
    counters = drafting_worker.draft_counters()
    assert counters["drafts"] > 0 and counters["draft_tokens"] == 2 * counters["drafts"]
    assert len(counters["accepted_per_position"]) == 2
    assert sum(counters["accepted_per_position"]) == counters["accepted_tokens"]


def test_sampling_with_drafts_keeps_the_policys_distribution(drafting_worker, mtp_policy):
    """The token after a drafted position follows the policy: it equals the drafted token, and the policy's most
    likely token, as often as the policy's probabilities say (2000 samples; 5 standard errors). Without the CPU
    kernel make_engine replaces (model.vllm_engine.use_exact_cpu_expand_kernel) the drafted token came out 79% of
    the time where the policy gives it 6%."""
    policy = load_pretrained(mtp_policy).eval()
    prompt = PROMPTS[0]
    samples = drafting_worker.generate([prompt] * 40, n=50, max_tokens=2, temperature=1.0, seed=11)
    pairs = [s.completion_ids for s in samples if len(s.completion_ids) == 2]
    firsts = sorted({first for first, _ in pairs})
    with torch.no_grad():
        output = policy(torch.tensor([prompt + [first] for first in firsts]), with_mtp=True)
    probs = output.logits[:, -1].softmax(-1)  # the policy's distribution of the second token, per first token
    drafts = output.mtp_logits[0][:, -1].argmax(-1)  # what the MTP layer drafts there (greedy)
    row = {first: i for i, first in enumerate(firsts)}
    for chosen in (drafts, probs.argmax(-1)):  # the drafted token; the policy's favourite
        hits = sum(second == chosen[row[first]].item() for first, second in pairs)
        p = torch.tensor([probs[row[first], chosen[row[first]]].item() for first, _ in pairs])
        expected, std = p.sum().item(), (p * (1 - p)).sum().sqrt().item()
        assert abs(hits - expected) <= 5 * std + 3, (hits, expected, std)


def test_a_weight_update_reaches_the_draft_layers(drafting_worker, mtp_policy):
    policy = load_pretrained(mtp_policy).eval()
    torch.manual_seed(0)  # a learner step, simulated: every weight moves, the MTP layer's too
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    randomise_mtp(policy, seed=2)
    drafting_worker.load_weights(serialize_weights(to_hf_state_dict(policy)))
    assert first_draft_logits_error(drafting_worker, policy) < 1e-3
    samples = drafting_worker.generate(PROMPTS, n=2, max_tokens=24, temperature=1.0, seed=3)
    assert max_logprob_diff(policy, samples) <= 1e-4


def test_drafts_need_mtp_layers(tiny_checkpoint):
    with pytest.raises(ValueError, match="no MTP layers"):
        engine_kwargs(tiny_checkpoint, speculative_tokens=1)
    assert "speculative_config" not in engine_kwargs(tiny_checkpoint)
    with pytest.raises(ConfigError, match=r"rollout\.speculative_tokens.*no MTP modules"):
        check_mtp(load_config(None, [f"model.path={tiny_checkpoint}", "rollout.speculative_tokens=2"]))
    with pytest.raises(ConfigError, match=r"rollout\.speculative_tokens.*no MTP modules"):
        check_mtp(load_config(None, ["rollout.speculative_tokens=1"]))  # a preset without MTP layers
    check_mtp(load_config(None, ["model.num_nextn_predict_layers=1", "rollout.speculative_tokens=3"]))
    with pytest.raises(ConfigError, match=r"rollout\.speculative_tokens"):
        load_config(None, ["rollout.speculative_tokens=-1"])


def test_eval_and_solve_refuse_drafts_without_mtp_layers_before_vllm_starts(tiny_checkpoint):
    from rl import api

    with pytest.raises(ConfigError, match="--speculative-tokens.*no MTP layers"):
        api.evaluate_checkpoint(tiny_checkpoint, "synthetic", n=1, limit=2, speculative_tokens=2)
    with pytest.raises(ConfigError, match="--speculative-tokens.*no MTP layers"):
        api.solve("1 + 1 = ?", tiny_checkpoint, method="greedy", speculative_tokens=1)


def test_acceptance_per_position_between_two_counter_readings():
    before = {"drafts": 10, "draft_tokens": 20, "accepted_tokens": 12, "accepted_per_position": [8, 4]}
    after = {"drafts": 30, "draft_tokens": 60, "accepted_tokens": 42, "accepted_per_position": [26, 16]}
    assert acceptance(before, after) == {"drafts": 20.0, "acceptance": 0.75, "mean_accepted_length": 2.5,
                                         "acceptance_pos1": 0.9, "acceptance_pos2": 0.6}
    assert acceptance(after, after) == {}
