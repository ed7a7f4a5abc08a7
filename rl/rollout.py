"""RolloutWorker: a Ray actor that owns one vLLM engine, samples completions with their logprobs and takes
new weights in place after every learner step. One per GPU on a cluster, one on a laptop."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator

import ray

from model import load_tokenizer
from model.config import ConfigError
from model.vllm_engine import CPU_ENV_DEFAULTS, draft_counters, make_engine, on_cpu, prompt_seed, sample
from rewards.tools import ToolRunner
from rl.batch import Sample
from rl.ray_cluster import join_or_start
from rl.tool_rollout import ToolRolloutStats, ToolSettings, generate_with_tools
from rl.weight_sync import EXTENSION
from search import solve_many
from search.reward_models import value_function
from search.vllm_generator import VllmStepGenerator


class RolloutWorker:
    """Serves the policy with vLLM (wrap with `ray.remote`, see `rollout_worker_actor`)."""

    def __init__(self, checkpoint: str, max_model_len: int, seed: int = 0, kv_cache_gib: float = 1.0,
                 enforce_eager: bool = True, precision: str = "fp32", attention_backend: str | None = None,
                 quiet: bool = False, speculative_tokens: int = 0):
        """
        Args:
            precision, attention_backend: the engine's arithmetic and attention kernels (model.vllm_engine).
            quiet: keep vLLM's INFO lines out of the output (warnings and errors still show).
            speculative_tokens: tokens the checkpoint's MTP layers draft a step (vLLM's MTP speculative decoding);
                0 = none. The samples and their logprobs are the policy's either way.
        """
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(kv_cache_gib)))  # vLLM takes whole GiB
        if quiet:
            os.environ["VLLM_LOGGING_LEVEL"] = "WARNING"
        # Logprobs of the distribution that sampled (after temperature and top-p), which the learner compares
        # its own (logits / temperature) against; vLLM's default reports the raw, temperature-1 ones. The draft
        # counters (draft_counters) need vLLM's statistics on.
        self.engine = make_engine(checkpoint, precision, attention_backend, speculative_tokens,
                                  max_model_len=max_model_len, seed=seed, enforce_eager=enforce_eager,
                                  worker_extension_cls=EXTENSION, disable_log_stats=not speculative_tokens,
                                  logprobs_mode="processed_logprobs")
        # AMX_MLA dies on a per-request seed ("CPU Generator does not use offset", measured on vllm-cpu 0.32): its
        # sampling is then seeded once, by the engine's seed, and not per request.
        self.per_request_seed = attention_backend != "AMX_MLA"
        self.checkpoint, self.speculative_tokens = checkpoint, speculative_tokens
        self.searcher, self.value_functions = None, {}  # made on the first search
        self.tokenizer, self.tool_runner = None, None  # made on the first request with tools
        self.tool_stats = ToolRolloutStats()  # what tools have cost this worker so far

    def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def generate(self, prompts: list[list[int]], n: int, max_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int | list[int] | None = None, stop: list[str] | None = None,
                 tools: ToolSettings | None = None) -> list[Sample]:
        """n completions for each prompt, prompt after prompt (sample i belongs to prompt i // n).

        tools: multi-turn rollouts that call them (rl.tool_rollout; `stop` is then the call format's); max_tokens
            bounds each completion's policy and observation tokens together.
        """
        # One seed per prompt, derived from `seed` and the prompt's position: one shared seed would draw the same
        # random numbers for every prompt, so the samples of a batch would be correlated and an evaluation's
        # pass@1 would move far more between seeds than its standard error says.
        # A list gives each prompt's seed itself (the trainer's, when it spreads one request over several workers).
        seeds = seed if isinstance(seed, list) else [prompt_seed(seed, i) for i in range(len(prompts))]
        if not self.per_request_seed:
            seeds = [None] * len(seeds)
        if tools is not None:
            if self.tool_runner is None or self.tool_runner.limits.wall_s != tools.timeout_s:
                if self.tool_runner is not None:
                    self.tool_runner.shutdown()
                self.tokenizer = self.tokenizer or load_tokenizer(self.checkpoint)
                self.tool_runner = ToolRunner(tools.timeout_s)
            return generate_with_tools(self.engine, self.tokenizer, self.tool_runner, prompts, n, max_tokens, seeds,
                                       tools, temperature, top_p, self.tool_stats)
        params = [dict(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=one_seed)
                  for one_seed in seeds]
        return [Sample(prompt_ids=list(prompt), completion_ids=completion.token_ids,
                       rollout_logprobs=completion.logprobs, truncated=completion.finish_reason == "length")
                for prompt, completions in zip(prompts, sample(self.engine, prompts, params))
                for completion in completions]

    def search(self, prompts: list[list[int]], seeds: list[int | None], method: str, budget_tokens: int,
               reward_model: str | None = None, with_checker: bool = False, **options) -> list[dict]:
        """Run `search.solve` on each prompt with this worker's engine (the whole search runs next to the engine, so
        no step crosses Ray), valued by the reward model folder (zeroed by the sympy step checker where it finds a
        false equation, `with_checker`; no folder: the checker alone); returns each result's summary (answer,
        steps, value, tokens)."""
        if self.searcher is None:
            self.searcher = VllmStepGenerator(self.engine, load_tokenizer(self.checkpoint))
        key = (reward_model, with_checker)
        if key not in self.value_functions:
            self.value_functions[key] = value_function(reward_model, with_checker)
        return solve_many(prompts, self.searcher, method, budget_tokens=budget_tokens, seeds=seeds,
                          value_fn=self.value_functions[key], **options)

    def take_tool_stats(self) -> ToolRolloutStats:
        """What tools have cost this worker since the last call (calls run, seconds waited for them, seconds in the
        engine); starts counting afresh."""
        stats, self.tool_stats = self.tool_stats, ToolRolloutStats()
        return stats

    def draft_counters(self) -> dict:
        """The engine's speculative-decoding counters so far (model.vllm_engine.draft_counters); zeros without
        drafts (vLLM's statistics are off then)."""
        if not self.speculative_tokens:
            return {"drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "accepted_per_position": []}
        return draft_counters(self.engine)

    def load_weights(self, blob: bytes) -> float:
        """Take checkpoint-layout weights (safetensors bytes) in place; returns the seconds it took."""
        started = time.perf_counter()
        self.engine.collective_rpc("reasonrl_load_weights", args=(blob,))
        # Cached prompt KV was computed by the old weights; reusing it would sample from a mix of two policies.
        # (vLLM-CPU turns prefix caching off for MLA without AMX; it is on for AMX_MLA, GPUs and other models.)
        self.engine.reset_prefix_cache()
        return time.perf_counter() - started


def round_robin(workers: list, items: list, seeds: list, call, per_item: int = 1) -> list:
    """Deal items (with their seeds) to Ray actors round robin, item i to worker i % W, run `call(worker, items,
    seeds)` (an ObjectRef of a list holding `per_item` results per item) on each shard at once, and return the
    results in item order."""
    return start_round_robin(workers, items, seeds, call, per_item)()


def start_round_robin(workers: list, items: list, seeds: list, call, per_item: int = 1) -> Callable[[], list]:
    """round_robin without waiting: the calls are sent now; the returned function waits for them and returns the
    results in item order."""
    shards = [(items[w::len(workers)], seeds[w::len(workers)]) for w in range(len(workers))]
    calls = [call(worker, part, part_seeds) for worker, (part, part_seeds) in zip(workers, shards)]

    def results() -> list:
        answers = ray.get(calls)
        ordered = []
        for i in range(len(items)):  # item i is at position i // W of worker i % W's shard
            position = i // len(workers)
            ordered += answers[i % len(workers)][position * per_item:(position + 1) * per_item]
        return ordered

    return results


def generate_on_workers(workers: list, prompts: list[list[int]], *, seed: int | list[int] | None = None,
                        **sampling) -> list[Sample]:
    """Spread one request over Ray RolloutWorker actors, round robin, and return its samples in prompt order
    (sample i belongs to prompt i // n), as one worker's `generate` would.

    Each prompt keeps the seed it would have in one worker (`prompt_seed(seed, i)`), so how a request is sharded
    does not decide which random numbers a prompt draws (a list gives each prompt's seed itself). A dead worker
    raises ray.exceptions.RayActorError (the trainer replaces it and asks again).
    """
    return start_generation_on_workers(workers, prompts, seed=seed, **sampling)()


def start_generation_on_workers(workers: list, prompts: list[list[int]], *, seed: int | list[int] | None = None,
                                **sampling) -> Callable[[], list[Sample]]:
    """generate_on_workers without waiting: the request is sent now (each worker runs its calls in order, so a
    weight update sent later waits for it); the returned function waits for the samples."""
    seeds = seed if isinstance(seed, list) else [prompt_seed(seed, i) for i in range(len(prompts))]
    return start_round_robin(workers, prompts, seeds,
                             lambda worker, p, s: worker.generate.remote(p, seed=s, **sampling),
                             per_item=sampling.get("n", 1))


def rollout_worker_actor(num_cpus: float = 1, resources: dict[str, float] | None = None, threads: int = 1,
                         num_gpus: float = 0) -> Any:
    """The RolloutWorker class as a Ray actor class, with vLLM's CPU environment.

    threads: the engine's CPU threads (OMP_NUM_THREADS, which Ray would otherwise set to num_cpus); 0 = as
    many as this (the driver's) machine has cores.
    num_gpus: GPUs the worker asks Ray for (1 on a GPU cluster: vLLM then serves on it).

    No automatic restart: a restarted engine would come back with the initial weights, so the trainer
    replaces a dead worker itself and sends it the current weights (rl/trainer.py).
    """
    env = dict(CPU_ENV_DEFAULTS) if on_cpu() else {}
    env["OMP_NUM_THREADS"] = str(threads or os.cpu_count() or 1)
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {}, max_restarts=0,
                      runtime_env={"env_vars": env})(RolloutWorker)


def search_on_workers(workers: list, prompts: list[list[int]], seeds: list[int | None], method: str,
                      budget_tokens: int, reward_model: str | None = None, with_checker: bool = False,
                      **options) -> list[dict]:
    """Spread searches over Ray RolloutWorker actors, round robin, each prompt with its own seed; the summaries come
    back in prompt order."""
    return round_robin(workers, prompts, seeds, lambda worker, p, s: worker.search.remote(
        p, s, method, budget_tokens, reward_model, with_checker, **options))


@contextmanager
def open_generator(checkpoint: str, max_model_len: int, *, seed: int = 0, workers: int = 1, search: bool = False,
                   speculative_tokens: int = 0) -> Iterator[Any]:
    """A `generate(prompts, n, max_tokens, ...)` serving `checkpoint` for as long as the block runs: one vLLM engine
    in this process, or `workers` RolloutWorker actors on Ray (the cluster at RAY_ADDRESS, else a local one started
    here and shut down after) with each request spread over them. With `search`, a `search(prompts, seeds,
    method, budget_tokens, reward_model, with_checker, **options)` instead, over the same engines
    (`RolloutWorker.search`, `search_on_workers`). `speculative_tokens` > 0 drafts with the checkpoint's MTP layers.

    Raises:
        ConfigError: the cluster has fewer CPUs (GPUs, on a GPU cluster) than workers, which Ray would wait for
            forever.
    """
    if workers == 1:
        worker = RolloutWorker(checkpoint, max_model_len=max_model_len, seed=seed, quiet=True,
                               speculative_tokens=speculative_tokens)
        yield worker.search if search else worker.generate
        return


    owns_ray = join_or_start(os.environ.get("RAY_ADDRESS"), env={"VLLM_LOGGING_LEVEL": "WARNING"})
    actors = []
    try:
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
        if (gpus or cpus) < workers:
            raise ConfigError(f"--workers {workers}: the Ray cluster has {int(gpus)} GPUs and {int(cpus)} CPUs, "
                              f"and each worker takes one {'GPU' if gpus else 'CPU'}")
        threads = 0 if gpus else max(1, int(cpus) // workers)  # CPU engines share the cores
        actor_class = rollout_worker_actor(threads=threads, num_gpus=1 if gpus else 0)
        actors = [actor_class.remote(checkpoint, max_model_len, seed + i, quiet=True,
                                     speculative_tokens=speculative_tokens) for i in range(workers)]
        ray.get([actor.ready.remote() for actor in actors])
        yield partial(search_on_workers if search else generate_on_workers, actors)
    finally:
        for actor in actors:
            ray.kill(actor)
        if owns_ray:
            ray.shutdown()
