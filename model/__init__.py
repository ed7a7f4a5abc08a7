"""The policy: a DeepSeek-V3-style transformer (MLA attention, MoE FFN, optional MTP) in PyTorch."""

from model.checkpoint import init_pretrained, load_pretrained, save_pretrained, to_hf_state_dict
from model.config import PRESETS, ConfigError, ModelArgs, preset
from model.deepseek import KVCache, PolicyOutput, Transformer
from model.tokenizer import decode_completion, load_tokenizer

__all__ = ["ConfigError", "KVCache", "ModelArgs", "PRESETS", "PolicyOutput", "Transformer", "decode_completion",
           "init_pretrained", "load_pretrained", "load_tokenizer", "preset", "save_pretrained", "to_hf_state_dict"]
