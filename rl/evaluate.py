"""Evaluation with our generators: n samples per problem from a rollout worker (or any `generate` with its
signature), decoded as training decodes them, graded and scored by `evals` (pass@1, pass@k for k = 1, 2, 4, ..., n,
maj@n, each with its standard error). The trainer's periodic evaluation, `reasonrl eval` and the demo all call it."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable, Sequence

from evals.grading import BenchmarkResult, grade_outputs
from model import decode_completion
from model.vllm_engine import prompt_seed
from problems import build_prompt
from rl.batch import RolloutBatch, Sample
from rl.tool_rollout import ToolSettings

PROGRESS_CHUNK = 16  # fewest problems generated between two progress reports
SEARCH_CONCURRENCY = 16  # searches at once per engine by default (experiments/bench_search_batching.py)


def evaluate(generate: Callable[..., list[Sample]], problems: list, tokenizer, *, k: int, max_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, system_prompt: str | None = None,
             examples: Sequence = (), prompts: list[list[int]] | None = None, name: str = "held-out",
             progress: Callable[[int], None] | None = None, tools: ToolSettings | None = None) -> dict:
    """Generate k completions per problem with `generate` (a RolloutWorker's method or the trainer's, which spreads
    a request over every worker), grade them and score them.

    Args:
        examples: few-shot worked examples shown before each problem (problems.build_prompt).
        prompts: the problems' prompt token ids, when the caller has built them already.
        progress: called with the number of problems generated so far. Generation then goes in about 20 chunks
            (of at least PROGRESS_CHUNK problems, so an engine stays busy), each prompt keeping its own seed, so the
            samples do not depend on whether progress is reported.
        tools: the policy calls tools as it answers (multi-turn rollouts, rl.tool_rollout); the scores then add the
            mean tool calls per answer.

    Returns:
        {"scores": evals' scores plus k, seconds and mean_completion_tokens, "records": one dict per problem,
        "result": the evals.BenchmarkResult}.
    """
    started = time.perf_counter()
    if prompts is None:
        prompts = [build_prompt(problem, tokenizer, system_prompt, examples) for problem in problems]
    seeds = [prompt_seed(seed, i) for i in range(len(prompts))]
    chunk = max(-(-len(prompts) // 20), PROGRESS_CHUNK) if progress else max(len(prompts), 1)
    samples = []
    for start in range(0, len(prompts), chunk):
        samples += generate(prompts[start:start + chunk], n=k, max_tokens=max_tokens, temperature=temperature,
                            top_p=top_p, seed=seeds[start:start + chunk], **({"tools": tools} if tools else {}))
        if progress:
            progress(min(start + chunk, len(prompts)))
    batch = RolloutBatch.from_groups(samples, [asdict(p) for p in problems], k,
                                     [decode_completion(tokenizer, s.policy_ids()) for s in samples])
    outputs = [[batch.completions[i] for i in batch.group(g)] for g in range(len(problems))]
    settings = {"n": k, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
                "system_prompt": system_prompt, "few_shot": len(examples)}
    result: BenchmarkResult = grade_outputs(name, problems, outputs, settings=settings)
    result.scores |= {"k": k, "seconds": time.perf_counter() - started,
                      "mean_completion_tokens": sum(len(s.completion_ids) for s in samples) / max(len(samples), 1)}
    if tools is not None:
        result.scores["tool_calls_per_answer"] = sum(len(s.observation_spans) for s in samples) / max(len(samples), 1)
    for g, record in enumerate(result.records):
        record["output_tokens"] = [len(batch.samples[i].completion_ids) for i in batch.group(g)]
        record["truncated"] = [batch.samples[i].truncated for i in batch.group(g)]
        if tools is not None:  # the outputs (graded) are the policy's own text; these show what the tools answered
            record["transcripts"] = [decode_completion(tokenizer, batch.samples[i].completion_ids)
                                     for i in batch.group(g)]
    return {"scores": result.scores, "records": result.records, "result": result}


def evaluate_with_search(search: Callable[..., list[dict]], problems: list, prompts: list[list[int]], *,
                         method: str, budget_tokens: int, k: int = 1, reward_model: str | None = None,
                         with_checker: bool = False, temperature: float = 1.0, max_tokens: int = 1024, seed: int = 0,
                         concurrency: int = 1, name: str = "held-out", progress: Callable[[int], None] | None = None,
                         **options) -> dict:
    """Evaluation through search: each problem's answer is the solution `method` chooses with `budget_tokens` policy
    tokens (k searches per problem, each with its own seed), graded and scored like `evaluate`'s samples; the
    scores add the mean policy, prefill and reward-model tokens a search spent, and with tools in `options` the tool
    calls of a chosen solution.

    Args:
        search: `search(prompts, seeds, method, budget_tokens, reward_model, **options) -> summaries`: a
            RolloutWorker's `search`, or rl.rollout.search_on_workers over several.
        reward_model: the folder of the reward model valuing the search (None: the sympy step checker).
        with_checker: the reward model's value is zeroed where the step checker finds a false equation.
        concurrency: searches run at once on each engine, their engine and reward-model calls batched
            (search/batching.py); the answers do not depend on it, the wall time does.

    Returns:
        {"scores", "records", "result"} as `evaluate` returns them.
    """
    started = time.perf_counter()
    options = {"temperature": temperature, "max_tokens": max_tokens,
               "max_step_tokens": min(max_tokens, 256), **options}  # a step is never longer than a whole solution
    # between two progress reports, enough searches to keep `concurrency` of them running
    chunk = max(-(-len(prompts) // 20), PROGRESS_CHUNK * concurrency) if progress else max(len(prompts), 1)
    summaries = []
    for start in range(0, len(prompts), chunk):
        indices = range(start, min(start + chunk, len(prompts)))
        summaries += search([prompts[i] for i in indices for _ in range(k)],
                            [prompt_seed(seed, i * k + j) for i in indices for j in range(k)],
                            method, budget_tokens, reward_model, with_checker, concurrency=concurrency, **options)
        if progress:
            progress(indices[-1] + 1)
    outputs = [[s["policy_text"] for s in summaries[i * k:(i + 1) * k]] for i in range(len(problems))]
    settings = {"n": k, "search": method, "budget_tokens": budget_tokens, "reward_model": reward_model,
                "with_checker": with_checker, "seed": seed, **options}
    result: BenchmarkResult = grade_outputs(name, problems, outputs, settings=settings)
    result.scores |= {"k": k, "seconds": time.perf_counter() - started,
                      **{f"mean_{kind}_tokens": sum(s["tokens"][kind] for s in summaries) / max(len(summaries), 1)
                         for kind in ("policy", "prefill", "reward")}}
    if options.get("tools"):  # the chosen solutions' calls, counted where they ran
        result.scores["tool_calls_per_answer"] = sum(s["tool_calls"] for s in summaries) / max(len(summaries), 1)
    for g, record in enumerate(result.records):
        record["search"] = [{key: s[key] for key in ("value", "tokens")} for s in summaries[g * k:(g + 1) * k]]
        if options.get("tools"):  # the outputs (graded) are the policy's own text; these show what the tools answered
            record["transcripts"] = ["".join(s["steps"]) for s in summaries[g * k:(g + 1) * k]]
    return {"scores": result.scores, "records": result.records, "result": result}
