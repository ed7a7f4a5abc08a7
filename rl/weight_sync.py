"""In-place weight updates of a vLLM engine from the learner's state dict.

The learner sends its weights in checkpoint layout, serialised with safetensors (tensors cannot travel
through vLLM's collective_rpc arguments, bytes can). Inside the engine's worker, `WeightSyncExtension`
(installed with `LLM(worker_extension_cls="rl.weight_sync.WeightSyncExtension")`) reloads them with
vLLM's own in-place reload. On a weight update vLLM skips the experts kernel's own post-load step; on CPU
that step pre-packs the fused MoE weights into the kernel's blocked layout, and without it the routed
experts compute with unpacked weights (measured: logprobs off by up to 0.86 nats), so it is run here.
"""

from __future__ import annotations

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from model.checkpoint import standalone_tensors

EXTENSION = "rl.weight_sync.WeightSyncExtension"


def serialize_weights(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Checkpoint-layout tensors -> safetensors bytes."""
    return save_safetensors(standalone_tensors(state_dict))


class WeightSyncExtension:
    """Methods added to vLLM's worker; called through `llm.collective_rpc(name, args=...)`."""

    def reasonrl_load_weights(self, blob: bytes) -> int:
        """Load serialised checkpoint-layout weights in place; returns the number of tensors received."""
        weights = load_safetensors(blob)
        reload_in_place(self.model_runner, weights)
        return len(weights)


def reload_in_place(model_runner, weights: dict[str, torch.Tensor]) -> None:
    """Load checkpoint-layout weights into a vLLM worker's model in place: vLLM's own reload (which redoes the
    post-load steps such as MLA's weight absorption), then the re-pack of the CPU fused-MoE weights it skips."""
    model_runner.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)
    for layer in model_runner.get_model().modules():
        kernel = getattr(getattr(layer, "quant_method", None), "moe_kernel", None)
        experts = getattr(kernel, "fused_experts", None)
        if experts is not None and hasattr(experts, "isa"):  # the CPU fused-MoE kernels
            experts.process_weights_after_loading(layer)
