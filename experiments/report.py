"""What every benchmark result starts with: what was measured, the command that reproduces it, when, on what."""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys


def header(benchmark: str, packages: tuple[str, ...] = ("torch", "vllm")) -> dict:
    """benchmark, command, date, machine (cores, AMX or not) and the versions of `packages`."""
    from rl.demo import machine_description

    versions = {name: importlib.import_module(name).__version__ for name in packages}
    return {"benchmark": benchmark,
            "command": "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(),
            "machine": machine_description(),
            "versions": versions | {"python": platform.python_version()}}
