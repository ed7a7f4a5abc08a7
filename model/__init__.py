"""The policy: a DeepSeek-V3-style transformer (MLA attention, MoE FFN, optional MTP) in PyTorch.

The names below are imported on first use: a process that needs only the architecture (model.deepseek, model.fp8:
torch alone, as the GPU benchmarks on a bare machine) does not import safetensors and the tokenizer with it.
"""

import importlib

_HOMES = {"init_pretrained": "model.checkpoint", "load_pretrained": "model.checkpoint",
          "save_pretrained": "model.checkpoint", "to_hf_state_dict": "model.checkpoint",
          "PRESETS": "model.config", "ConfigError": "model.config", "ModelArgs": "model.config", "preset": "model.config",
          "KVCache": "model.deepseek", "PolicyOutput": "model.deepseek", "Transformer": "model.deepseek",
          "decode_completion": "model.tokenizer", "load_tokenizer": "model.tokenizer"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)  # lazy, see the docstring
    raise AttributeError(f"module 'model' has no attribute {name!r}")
