"""The same weights give the same numbers in our model, in transformers and in vLLM."""

import pytest
import torch

from model import load_pretrained


@pytest.fixture(scope="module")
def models(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    ours = load_pretrained(tiny_checkpoint)
    theirs = AutoModelForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch.float32)
    assert type(theirs).__name__ == "DeepseekV3ForCausalLM"
    return ours, theirs


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_logits_match_transformers(models, mode):
    ours, theirs = models
    ours.train(mode == "train")
    theirs.train(mode == "train")
    torch.manual_seed(0)
    ids = torch.randint(3, 2048, (4, 40))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(ids).logits).abs().max().item()
    assert diff <= 1e-4, diff
    ours.eval()


def test_logits_match_transformers_with_left_padding(models):
    ours, theirs = models
    ours.eval(), theirs.eval()
    torch.manual_seed(1)
    ids = torch.randint(3, 2048, (3, 24))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[2, :11] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask).logits
        b = theirs(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert (a[real] - b[real]).abs().max().item() <= 1e-4


def test_gradients_match_transformers(models):
    ours, theirs = models
    ours.train(), theirs.train()
    ids = torch.randint(3, 2048, (2, 32), generator=torch.Generator().manual_seed(2))
    for model in models:
        model.zero_grad()
        logits = model(ids).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    ours_grad = ours.layers[2].self_attn.kv_b_proj.weight.grad
    theirs_grad = theirs.model.layers[2].self_attn.kv_b_proj.weight.grad
    torch.testing.assert_close(ours_grad, theirs_grad, atol=1e-6, rtol=1e-4)
    # stacked expert 3's down projection vs transformers' fused experts tensor
    torch.testing.assert_close(ours.layers[1].mlp.experts.down_proj.grad[3],
                               theirs.model.layers[1].mlp.experts.down_proj.grad[3], atol=1e-6, rtol=1e-4)
    ours.eval()


def test_vllm_logprobs_match_ours(vllm_engine, tiny_checkpoint, models):
    from vllm import SamplingParams

    ours = models[0].eval()
    prompts = [[0, 3, *range(100, 140)], [0, 3, 500, 600, 700, 4], [0, 3, *range(1500, 1510)]]
    params = SamplingParams(n=3, max_tokens=48, temperature=1.0, logprobs=0, prompt_logprobs=0, seed=0)
    results = vllm_engine.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    worst = 0.0
    for prompt, result in zip(prompts, results):
        # prompt logprobs: entry 0 is None (no context), entry t is {token_t: logprob}
        vllm_prompt = torch.tensor([d[t].logprob for d, t in zip(result.prompt_logprobs[1:], prompt[1:])])
        with torch.no_grad():
            logits = ours(torch.tensor([prompt])).logits[0]
        ours_prompt = logits[:-1].log_softmax(-1).gather(1, torch.tensor(prompt[1:])[:, None])[:, 0]
        worst = max(worst, (ours_prompt - vllm_prompt).abs().max().item())
        for sample in result.outputs:
            completion = list(sample.token_ids)
            vllm_lp = torch.tensor([step[t].logprob for step, t in zip(sample.logprobs, completion)])
            with torch.no_grad():
                logits = ours(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
            ours_lp = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None])[:, 0]
            worst = max(worst, (ours_lp - vllm_lp).abs().max().item())
            assert vllm_lp.min() < -1.0  # weights far from init: some tokens are unlikely, so errors would show
    assert worst <= 1e-4, worst
