"""How the learners that train one policy share it: the process group they meet in, FSDP2 sharding of the policy,
and the collectives a learner step needs (each the identity for a learner alone).

NCCL on GPUs, gloo on CPUs (which the tests use).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard


def join_process_group(store_address: tuple[str, int], rank: int, world_size: int, device: torch.device) -> None:
    """Join the learners' default process group at the torch.distributed TCPStore at store_address (host, port)."""
    if dist.is_initialized():
        raise RuntimeError("this process already has a torch.distributed process group (an in-process vLLM "
                           "engine makes one): a sharded learner needs a process of its own, e.g. its Ray actor")
    if device.type == "cuda":
        torch.cuda.set_device(device.index or 0)
    store = dist.TCPStore(store_address[0], store_address[1], is_master=False)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank,
                            world_size=world_size)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor (a sharded parameter, its gradient, the sharded learners' grad norm) as a plain tensor; a plain
    tensor as itself. Gathering a DTensor is a collective: every learner must call."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


@dataclass(frozen=True)
class Collectives:
    """The collectives among the learners that train one policy, from one learner's side.

    Attributes:
        device: this learner's device (where the collectives' tensors go).
        world_size: how many learners.
        distributed: whether this learner is in a process group (world_size > 1, or an FSDP group of one); when it
            is not, every method is the identity.
    """

    device: torch.device
    world_size: int
    distributed: bool

    def shard(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model onto the device; sharded when distributed: one FSDP unit per transformer block, then the
        rest."""
        model = model.to(self.device)
        if not self.distributed:
            return model
        # An explicit mesh: fully_shard's default one is on the GPU whenever one is visible, CPU learners too.
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        blocks = getattr(model, "layers", None) or getattr(getattr(model, "model", None), "layers", [])
        for block in blocks:
            fully_shard(block, mesh=mesh)
        return fully_shard(model, mesh=mesh)

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """tensor reduced over the learners ("sum" or "max"), as a new CPU tensor (itself for a single learner)."""
        if not self.distributed:
            return tensor
        reduced = tensor.to(self.device, copy=True)  # all_reduce works in place
        dist.all_reduce(reduced, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return reduced.cpu()

    def mean_over_learners(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over the learners (maxima, the keys ending in "_max": the maximum)."""
        if not self.distributed:
            return metrics
        keys = sorted(metrics)
        maxima = [k for k in keys if k.endswith("_max")]
        means = [k for k in keys if k not in maxima]
        summed = self.all_reduce(torch.tensor([metrics[k] for k in means], dtype=torch.float64))
        result = {k: v / self.world_size for k, v in zip(means, summed.tolist())}
        if maxima:
            largest = self.all_reduce(torch.tensor([metrics[k] for k in maxima], dtype=torch.float64), op="max")
            result |= dict(zip(maxima, largest.tolist()))
        return result

    def sum_expert_load(self, policy: torch.nn.Module) -> None:
        """Every learner counts the expert load of its own tokens; the bias update needs the load of all of them
        (and then stays identical on every learner). Sums the policy's expert_load buffers in place."""
        if not self.distributed:
            return
        for name, buffer in policy.named_buffers():
            if name.endswith("expert_load"):
                dist.all_reduce(buffer)

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's whole weights on the CPU (gathered from every learner: all must call; only rank 0 gets them,
        the others an empty dict)."""
        if not self.distributed:
            return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
