"""LearnerGroup: the N Learner actors that train one policy together (FSDP2, rl/sharding.py), driven from the
trainer as one learner."""

from __future__ import annotations

from typing import Any

import ray
from torch.distributed import TCPStore

from rl.batch import LearnerBatch
from rl.learner import Learner
from rl.learner_settings import LearnerSettings


def learner_actor(num_cpus: float = 1, num_gpus: float = 0, resources: dict[str, float] | None = None) -> Any:
    """The Learner class as a Ray actor class."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or {})(Learner)


class LearnerGroup:
    """The learner actors that train one policy, driven as one: every call goes to all of them (the
    collectives inside need every learner), each learner gets its shard of the batch, and what one learner
    answers for all (metrics, weights) comes from rank 0.

    The learners meet at a torch.distributed TCPStore that this driver-side object hosts (so no learner
    has to be asked for an address first); a checkpoint folder must be reachable by every learner.
    """

    def __init__(self, checkpoint: str, settings: LearnerSettings, total_steps: int, max_completion_length: int, *,
                 num_learners: int = 1, device: str = "cpu", precision: str = "fp32", temperature: float = 1.0,
                 seed: int = 0, threads: int = 1, resources: dict[str, float] | None = None, pack: bool = False,
                 micro_batch_positions: int = 0):
        """
        Args:
            device: "cpu" or "cuda" (each learner actor then asks Ray for one GPU).
            threads: torch threads of each learner.
            resources: the custom Ray resources each learner actor asks for (to place it on a given node).
            Others: as Learner.
        """
        self.store, store_address = None, None
        if num_learners > 1:
            host = ray.util.get_node_ip_address()
            self.store = TCPStore(host, 0, is_master=True, wait_for_workers=False)
            store_address = (host, self.store.port)
        # CPU learners share the cores one learner would have (Ray's CPU count is what placement reads).
        on_gpu = device == "cuda"
        actor_class = learner_actor(num_cpus=1 if on_gpu else 1 / num_learners, num_gpus=1 if on_gpu else 0,
                                    resources=resources)
        self.actors = [actor_class.remote(checkpoint, settings, total_steps, max_completion_length, seed=seed,
                                          threads=threads, temperature=temperature, device=device,
                                          precision=precision, rank=rank, world_size=num_learners, pack=pack,
                                          micro_batch_positions=micro_batch_positions, store_address=store_address)
                       for rank in range(num_learners)]
        self.mini_batches = settings.mini_batches
        self._pending: list = []  # calls of ranks > 0 whose answers nobody reads (see weights_blob)

    def _call_all(self, method: str, *args) -> list:
        calls = [getattr(actor, method).remote(*args) for actor in self.actors]
        results = ray.get(self._pending + calls)[len(self._pending):]
        self._pending = []
        return results

    def ready(self) -> bool:
        return all(self._call_all("ready"))

    def train_step(self, batch: LearnerBatch) -> dict[str, float]:
        """One GRPO update on the batch; the metrics are averaged over the learners."""
        shards = batch.shard(len(self.actors), self.mini_batches)
        calls = [actor.train_step.remote(shard) for actor, shard in zip(self.actors, shards)]
        results = ray.get(self._pending + calls)[len(self._pending):]
        self._pending = []
        return results[0]

    def weights_blob(self) -> Any:
        """An ObjectRef to rank 0's serialised weights (to hand to the rollout workers without a copy through
        this driver). The other ranks' calls are collected at the next group call."""
        calls = [actor.weights_blob.remote() for actor in self.actors]
        self._pending += calls[1:]
        return calls[0]

    def save(self, folder: str) -> None:
        self._call_all("save", folder)

    def load(self, folder: str) -> None:
        self._call_all("load", folder)

    def node_ids(self) -> list[str]:
        return self._call_all("node_id")

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
