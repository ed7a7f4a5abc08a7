"""Serving a checkpoint folder with vLLM, with what our policy needs on these machines.

Facts from notes/vllm-on-cpu.md: on CPU, MLA needs kv_lora_rank + qk_rope_head_dim == 576, vLLM's CPU
rotary kernel silently drifts on MLA's 3-D query (so the PyTorch rotary path is forced), the KV cache
size must be set, and the engine runs in-process (simpler inside a Ray actor).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from model.config import ModelArgs

CPU_ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; without it start-up asks for 92% of NUMA node 0 and fails
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in this process
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


def on_cpu() -> bool:
    return not torch.cuda.is_available()


def configure_environment() -> None:
    """Set vLLM's CPU environment variables (without overriding what the user set). Call before importing vllm."""
    if on_cpu():
        for key, value in CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)


def engine_kwargs(folder: str | Path, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of vllm.LLM for one of our checkpoint folders."""
    folder = Path(folder)
    args = ModelArgs.load(folder / "config.json")
    kwargs: dict[str, Any] = {"model": str(folder), "dtype": "float32" if on_cpu() else "bfloat16",
                              "max_model_len": min(args.max_position_embeddings, 2048), "seed": 0}
    if on_cpu():
        problems = args.vllm_cpu_problems()
        if problems:
            raise ValueError(f"{folder}: vLLM on CPU cannot serve this model: {'; '.join(problems)}")
        kwargs.update(enforce_eager=True, compilation_config={"custom_ops": ["-rotary_embedding"]})
    kwargs.update(overrides)
    return kwargs


def make_engine(folder: str | Path, **overrides: Any):
    """A vllm.LLM serving the checkpoint folder (start-up takes 15-45 s on a laptop CPU)."""
    configure_environment()
    from vllm import LLM

    return LLM(**engine_kwargs(folder, **overrides))
