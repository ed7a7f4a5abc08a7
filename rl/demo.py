"""The main job on the embedded default: tiny DeepSeek-V3 policy -> SFT warm start -> GRPO on synthetic
arithmetic with vLLM-CPU rollouts under Ray -> held-out evaluation before and after GRPO.

`make demo` runs it; the figures of the run are written to experiments/results/demo.json.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "experiments" / "tiny_arith.yaml"
RESULT = REPO / "experiments" / "results" / "demo.json"


def _git_commit() -> str | None:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def demo(out: Path, overrides: list[str] | None = None, result_path: Path | None = RESULT) -> dict:
    from rich.console import Console
    from rich.table import Table

    from rl.cli import train

    console = Console()
    started = time.perf_counter()
    summary = train(CONFIG, [f"trainer.output_dir={out}", *(overrides or [])], log=console.print)
    total_min = (time.perf_counter() - started) / 60
    before, after = summary["eval_before"], summary["eval_after"]
    table = Table(title="held-out synthetic arithmetic (pass@1 averaged over k samples at temperature 1)")
    table.add_column("policy")
    for name in ("pass@1", "maj@k", "pass@k"):
        table.add_column(name, justify="right")
    table.add_row("SFT warm start (before GRPO)", *(f"{before[f'eval/{n}']:.3f}" for n in ("pass@1", "maj@k", "pass@k")))
    table.add_row(f"after {summary['steps']} GRPO steps", *(f"{after[f'eval/{n}']:.3f}" for n in ("pass@1", "maj@k", "pass@k")))
    console.print(table)
    minutes = {name.removeprefix("time/").removesuffix("_s"): round(seconds / 60, 2)
               for name, seconds in summary["timings"].items()}
    gain = after["eval/pass@1"] - before["eval/pass@1"]
    console.print(f"GRPO gain: {gain * 100:+.1f} points of pass@1 (target: +15). Minutes per stage: {minutes}; "
                  f"total {total_min:.1f} (target: 15).")
    console.print(f"plot: {summary['plot']}")
    result = {
        "job": "tiny policy -> SFT -> GRPO (synthetic arithmetic, vLLM-CPU rollouts under Ray) -> evaluation",
        "command": "make demo", "config": str(CONFIG.relative_to(REPO)), "overrides": overrides or [],
        "date": datetime.date.today().isoformat(), "code_commit": _git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "eval_before_grpo": {k.removeprefix("eval/"): v for k, v in before.items() if k.startswith("eval/")},
        "eval_after_grpo": {k.removeprefix("eval/"): v for k, v in after.items() if k.startswith("eval/")},
        "pass@1_gain_points": round(gain * 100, 1), "target_gain_points": 15,
        "minutes": minutes | {"total": round(total_min, 2)}, "target_total_minutes": 15,
        "grpo_steps": summary["steps"], "plot": summary["plot"],
    }
    if result_path is not None:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result
