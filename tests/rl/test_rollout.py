"""A real RolloutWorker: a Ray actor serving the tiny policy with vLLM, updated in place."""

import torch

from model import load_pretrained, to_hf_state_dict
from rl.rollout import rollout_worker_actor
from rl.weight_sync import serialize_weights


def max_logprob_diff(policy, samples, temperature=1.0):
    worst = 0.0
    for sample in samples:
        tokens = torch.tensor([sample.prompt_ids + sample.completion_ids])
        with torch.no_grad():
            logits = policy(tokens).logits[0, len(sample.prompt_ids) - 1:-1]
        ours = (logits / temperature).log_softmax(-1).gather(1, torch.tensor(sample.completion_ids)[:, None])[:, 0]
        worst = max(worst, (ours - torch.tensor(sample.rollout_logprobs)).abs().max().item())
    return worst


def test_rollout_worker_samples_and_takes_new_weights_in_place(ray_session, tiny_checkpoint):
    ray = ray_session
    worker = rollout_worker_actor(num_cpus=1).remote(str(tiny_checkpoint), 256, 0, 1)
    prompts = [[0, 3, *range(100, 120), 4], [0, 3, 300, 301, 4]]
    samples = ray.get(worker.generate.remote(prompts, n=3, max_tokens=24, temperature=1.0, seed=1))
    assert len(samples) == 6 and [s.prompt_ids for s in samples[:3]] == [prompts[0]] * 3
    assert all(len(s.completion_ids) == len(s.rollout_logprobs) > 0 for s in samples)
    policy = load_pretrained(tiny_checkpoint).eval()
    assert max_logprob_diff(policy, samples) <= 1e-4

    torch.manual_seed(0)  # a learner step, simulated: every weight moves, routing biases too
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
        for layer in policy.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.normal_(std=0.1)
    seconds = ray.get(worker.load_weights.remote(serialize_weights(to_hf_state_dict(policy))))
    assert seconds < 30
    updated = ray.get(worker.generate.remote(prompts, n=3, max_tokens=24, temperature=1.0, seed=1))
    assert max_logprob_diff(policy, updated) <= 1e-4
    # below temperature 1 the engine reports the logprobs of the distribution it sampled from, as the learner's
    hot = ray.get(worker.generate.remote(prompts, n=2, max_tokens=16, temperature=0.7, seed=2))
    assert max_logprob_diff(policy, hot, temperature=0.7) <= 1e-4 < max_logprob_diff(policy, hot)
    # A checkpoint folder's weights file is such a blob too (the demo swaps the policies it scores this way).
    ray.get(worker.load_weights.remote((tiny_checkpoint / "model.safetensors").read_bytes()))
    back = ray.get(worker.generate.remote(prompts, n=3, max_tokens=24, temperature=1.0, seed=1))
    assert max_logprob_diff(load_pretrained(tiny_checkpoint).eval(), back) <= 1e-4 < max_logprob_diff(policy, back)
    ray.kill(worker)


def test_each_prompt_of_a_request_gets_its_own_seeds():
    """One seed shared by every prompt would draw the same random numbers for all of them (correlated samples,
    an evaluation noisier than its standard error); so would neighbouring seeds, since vLLM seeds a prompt's n
    completions with seed, seed+1, ..., seed+n-1."""
    from rl.rollout import prompt_seed

    n = 64
    starts = sorted(prompt_seed(s, i) for s in range(50) for i in range(300))
    assert len(set(starts)) == 50 * 300 and prompt_seed(None, 3) is None
    assert min(b - a for a, b in zip(starts, starts[1:])) >= n  # no two prompts share any of their n seeds
    assert 0 <= starts[0] and starts[-1] + n < 2**63  # a valid torch.Generator seed, children included


def test_a_weight_update_empties_the_prefix_cache():
    """Prompt KV cached under the old weights must not serve the new policy (prefix caching is on for AMX_MLA, on
    GPUs and for non-MLA models; vLLM-CPU turns it off for MLA, so the real-engine test above cannot see it)."""
    from rl.rollout import RolloutWorker

    calls = []

    class Engine:
        def collective_rpc(self, name, args):
            calls.append(name)

        def reset_prefix_cache(self):
            calls.append("reset_prefix_cache")

    worker = RolloutWorker.__new__(RolloutWorker)
    worker.engine = Engine()
    worker.load_weights(b"weights")
    assert calls == ["reasonrl_load_weights", "reset_prefix_cache"]


class EchoWorker:
    """Stands in for a RolloutWorker: each sample says which prompt and which seed made it."""

    def generate(self, prompts, n, max_tokens, seed=None, **_):
        from rl.batch import Sample

        return [Sample(prompt_ids=list(p), completion_ids=[s % 1000, j], rollout_logprobs=[0.0, 0.0], truncated=False)
                for p, s in zip(prompts, seed) for j in range(n)]

    def search(self, prompts, seeds, method, budget_tokens, reward_model=None, with_checker=False, **options):
        return [{"prompt": list(p), "seed": s, "method": method, "budget": budget_tokens} for p, s in zip(prompts, seeds)]


def test_a_request_spread_over_workers_comes_back_in_prompt_order_with_each_prompts_own_seed(ray_session):
    """Whatever the number of workers, sample i belongs to prompt i // n and carries the seed one worker would
    have given that prompt."""
    from rl.rollout import generate_on_workers, prompt_seed

    prompts = [[i, i + 1] for i in range(7)]
    expected = [([i, i + 1], [prompt_seed(5, i) % 1000, j]) for i in range(7) for j in range(3)]
    for num_workers in (1, 2, 3):
        workers = [ray_session.remote(num_cpus=0)(EchoWorker).remote() for _ in range(num_workers)]
        samples = generate_on_workers(workers, prompts, n=3, max_tokens=2, seed=5)
        assert [(s.prompt_ids, s.completion_ids) for s in samples] == expected
        for worker in workers:
            ray_session.kill(worker)


def test_searches_spread_over_workers_come_back_in_prompt_order(ray_session):
    from rl.rollout import search_on_workers

    prompts = [[i] for i in range(5)]
    workers = [ray_session.remote(num_cpus=0)(EchoWorker).remote() for _ in range(2)]
    results = search_on_workers(workers, prompts, [10 + i for i in range(5)], "beam", 64)
    assert results == [{"prompt": [i], "seed": 10 + i, "method": "beam", "budget": 64} for i in range(5)]
    for worker in workers:
        ray_session.kill(worker)


def test_only_the_reloads_expected_warnings_are_dropped():
    """vLLM warns on every in-place reload that the rotary cache and MLA's absorbed matrices were not loaded (both
    are recomputed); those two are dropped, any other weight left unloaded is still reported."""
    import logging

    from rl.weight_sync import ExpectedReloadWarnings

    def record(msg, *args):
        return logging.LogRecord("vllm", logging.WARNING, "inplace.py", 1, msg, args, None)

    keep = ExpectedReloadWarnings().filter
    assert not keep(record("%s: Failed to load weights", "RotaryEmbedding"))
    assert not keep(record("Following weights were not loaded from checkpoint: %s",
                           {"model.layers.0.self_attn.mla_attn.mla_attn.W_UK_T", "model.layers.3.mla_attn.W_UV"}))
    assert keep(record("%s: Failed to load weights", "FusedMoE"))
    assert keep(record("Following weights were not loaded from checkpoint: %s",
                       {"model.layers.0.mla_attn.W_UV", "model.layers.0.mlp.experts.w13_weight"}))
    assert keep(record("Reloading and processing weights took %.2f seconds", 0.1))
