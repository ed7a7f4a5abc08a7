"""Joining the Ray cluster a run uses, or starting a local one: written once for the trainer and for
`reasonrl eval --workers`.

Ray 2.60 turns token authentication on by default; our local clusters turn it off (docs/ARCHITECTURE.md, "vLLM on
CPU"). A process shuts down only a cluster it started itself, never one it joined.
"""

from __future__ import annotations

import os

import ray

# Environment every actor of ours starts with: no token auth (as the driver), and no tokenizer thread pools
# fighting the engine for the cores.
ACTOR_ENV = {"RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}


def join_or_start(address: str | None = None, *, num_cpus: int | None = None,
                  env: dict[str, str] | None = None) -> bool:
    """Connect to the cluster at `address` (None: start a local one with `num_cpus`), unless this process is
    connected already; returns whether this call started the connection (and so owns its shutdown).

    Args:
        address: a cluster's address ("auto", "ray://host:10001", ...), or None for a local cluster.
        num_cpus: the local cluster's CPUs (None: Ray counts them); ignored when joining.
        env: environment variables for every actor, on top of ACTOR_ENV.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {**ACTOR_ENV, **(env or {})}})
    return True
