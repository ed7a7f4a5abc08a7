"""Where real datasets come from: the Hugging Face hub when it answers quickly, otherwise (and always with
`HF_HUB_OFFLINE=1`) the bundled JSON Lines copies in data/ (see data/SOURCES.md)."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DATA_DIR = Path(os.environ.get("REASONRL_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))
HUB_TIMEOUT_S = 3.0  # a reachable hub answers a TCP connect in well under a second


def hub_offline() -> bool:
    """True when the hub must not be tried: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no answer within
    HUB_TIMEOUT_S (checked once per process, so an unreachable hub costs at most one short timeout)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return not _hub_reachable()


@lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=HUB_TIMEOUT_S):
            return True
    except OSError:
        return False


def load_rows(hub: tuple[str, str | None, str] | None, local: str | None) -> list[dict[str, Any]]:
    """Rows from the hub dataset (name, config, split) if reachable, else from data/<local> (JSON Lines); a
    dataset with no bundled copy (local None) needs the hub."""
    import datasets  # lazy: `datasets` takes seconds to import and only loading needs it

    if hub is not None and not hub_offline():
        name, config, split = hub
        try:
            return list(datasets.load_dataset(name, config, split=split))
        except Exception as error:  # noqa: BLE001 - any hub failure means "use the bundled copy"
            if local is None:
                raise FileNotFoundError(f"hub dataset {name} ({split}) could not be loaded and no copy is bundled "
                                        f"in data/: {error}") from error
            logger.warning("hub dataset %s unavailable (%s); using bundled %s", name, error, local)
    if local is None:
        raise FileNotFoundError(f"hub dataset {hub[0] if hub else '?'} is not bundled in data/ and the hub is "
                                "unreachable or switched off (HF_HUB_OFFLINE): it needs a machine with the hub")
    path = DATA_DIR / local
    if not path.exists():
        raise FileNotFoundError(f"bundled dataset {path} is missing (set REASONRL_DATA_DIR to the data/ folder)")
    return list(datasets.load_dataset("json", data_files=str(path), split="train"))
