"""The policy as training runs it: loading a checkpoint folder, its weights in checkpoint layout, the device it
runs on, and its forward over a LearnerBatch (on packed rows when that pays).

Policies are our DeepSeek-V3 Transformer for checkpoints of that architecture and transformers' own class for any
other Hugging Face causal LM. The Learner and the supervised warm start (rl/sft.py) both use these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from model import ModelArgs, Transformer, load_pretrained, to_hf_state_dict
from model.config import ConfigError
from rl.batch import LearnerBatch, PackedRows

# Packed rows are used when they cut the positions a forward runs by at least this share; a smaller saving is
# within a learner step's run-to-run noise here (about 10%), and the plain causal layout stays the simplest. The
# demo's batches (experiments/results/levers.json) have sequences of similar lengths: ~10% padding, and no two of
# them fit one row of the longest one's length, so they stay padded.
PACK_MIN_SAVING = 0.1


def load_policy(checkpoint: str | Path, dtype: torch.dtype = torch.float32,
                implementation: str = "auto") -> torch.nn.Module:
    """The policy of a checkpoint folder.

    Args:
        checkpoint: a folder in the Hugging Face causal-LM layout.
        dtype: the dtype of the weights.
        implementation: "auto" = our Transformer for a DeepseekV3ForCausalLM folder and transformers'
            AutoModelForCausalLM for any other; "transformers" = transformers' class for every folder (to compare).
    """
    if implementation not in ("auto", "transformers"):
        raise ValueError(f"implementation must be 'auto' or 'transformers', got {implementation!r}")
    ours = implementation == "auto"
    if ours:
        try:
            ModelArgs.load(Path(checkpoint) / "config.json")
        except ConfigError as error:
            if "not DeepseekV3ForCausalLM" not in str(error):
                raise
            ours = False
    if ours:
        return load_pretrained(checkpoint, dtype=dtype)
    # lazy: transformers is only needed for architectures other than ours
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=dtype)


def checkpoint_state_dict(policy: torch.nn.Module, state_dict: dict[str, torch.Tensor] | None = None
                          ) -> dict[str, torch.Tensor]:
    """The policy's weights (or the given full state_dict of it) in checkpoint layout (what vLLM's loader
    and save_pretrained expect)."""
    if isinstance(policy, Transformer):
        return to_hf_state_dict(policy, state_dict)
    # lazy: transformers is only needed for architectures other than ours (transformers 5 fuses MoE experts)
    from transformers.core_model_loading import revert_weight_conversion

    return revert_weight_conversion(policy, policy.state_dict() if state_dict is None else state_dict)


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu; a cuda request without a GPU is a clear error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"learner device {device!r} asked for, but this process sees no GPU "
                           "(on Ray, the learner actor must request num_gpus)")
    return torch.device(device)


def packed_rows(batch: LearnerBatch, pack: bool) -> PackedRows | None:
    """The batch as packed rows, when pack is set and packing saves at least PACK_MIN_SAVING of the positions."""
    if not pack:
        return None
    rows = batch.packed
    return rows if rows.input_ids.numel() <= (1 - PACK_MIN_SAVING) * batch.input_ids.numel() else None


def forward_completions(model: torch.nn.Module, batch: LearnerBatch, pack: bool) -> tuple[torch.Tensor, Any]:
    """The logits (B, L, V) that predict the batch's completion tokens, and the model's whole output.

    Our Transformer computes the LM head at those positions only, over packed rows when pack is set and packing
    pays (packed_rows: no padding between sequences); other models run the padded rows whole.
    """
    if not isinstance(model, Transformer):
        output = model(batch.input_ids)
        return output.logits.flatten(0, 1)[batch.logit_index()], output
    rows = packed_rows(batch, pack)
    if rows is not None:
        index = rows.logit_index
        output = model(rows.input_ids, segment_ids=rows.segment_ids, logits_at=index.flatten(), with_mtp=False)
    else:
        index = batch.logit_index()
        output = model(batch.input_ids, logits_at=index.flatten())
    return output.logits.view(*index.shape, -1), output


def forward_positions(batch: LearnerBatch, pack: bool) -> int:
    """The positions a learner forward of the batch runs, in the layout forward_completions chooses."""
    rows = packed_rows(batch, pack)
    return (rows.input_ids if rows is not None else batch.input_ids).numel()


def padding_fraction(batch: LearnerBatch, pack: bool) -> float:
    """The share of the positions a learner forward runs that hold padding, in the layout forward_completions
    chooses."""
    return 1.0 - batch.sequence_lengths().sum().item() / forward_positions(batch, pack)
