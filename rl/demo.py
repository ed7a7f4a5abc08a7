"""The main job on the embedded default.

Today (foundation stage): build the tiny DeepSeek-V3 policy, serve it with vLLM on CPU, sample
completions with their logprobs, and check that our PyTorch model gives the same logprobs.
It grows into: tiny policy -> SFT warm start -> GRPO on synthetic arithmetic -> evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path

PROMPTS = ["What is 12 + 345?", "Tom has 3 apples and buys 4 more. How many apples does he have?"]


def demo(out: Path, samples_per_prompt: int = 4, max_tokens: int = 32) -> dict:
    import torch
    from rich.console import Console
    from rich.table import Table

    from model import load_pretrained, load_tokenizer
    from model.vllm_engine import make_engine
    from rl.cli import model_init

    console = Console()
    policy_dir = out / "policy"
    model_init("tiny", policy_dir)
    tokenizer = load_tokenizer(policy_dir)
    started = time.perf_counter()
    engine = make_engine(policy_dir, max_model_len=256)
    startup = time.perf_counter() - started
    from vllm import SamplingParams

    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             return_dict=False)
               for p in PROMPTS]
    params = SamplingParams(n=samples_per_prompt, max_tokens=max_tokens, temperature=1.0, logprobs=0, seed=0)
    started = time.perf_counter()
    results = engine.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
    generate_s = time.perf_counter() - started

    policy = load_pretrained(policy_dir).eval()
    table = Table(title="tiny policy (random init) served by vLLM")
    table.add_column("prompt")
    table.add_column("completion")
    table.add_column("max |logprob diff| ours vs vLLM")
    worst, n_tokens = 0.0, 0
    for prompt_text, prompt_ids, result in zip(PROMPTS, prompts, results):
        for sample in result.outputs:
            completion = list(sample.token_ids)
            vllm_logprobs = torch.tensor([step[t].logprob for step, t in zip(sample.logprobs, completion)])
            with torch.no_grad():
                logits = policy(torch.tensor([prompt_ids + completion])).logits[0, len(prompt_ids) - 1:-1]
            ours = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None])[:, 0]
            diff = (ours - vllm_logprobs).abs().max().item()
            worst, n_tokens = max(worst, diff), n_tokens + len(completion)
            table.add_row(prompt_text, repr(tokenizer.decode(completion))[:60], f"{diff:.2e}")
    console.print(table)
    summary = {"vllm_startup_s": round(startup, 1), "generated_tokens": n_tokens,
               "generate_s": round(generate_s, 2), "max_logprob_diff": worst}
    console.print(summary)
    console.print("The policy is untrained: the GRPO pipeline (SFT warm start, GRPO, evaluation) is not built yet.")
    return summary
