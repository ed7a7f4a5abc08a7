"""What an evaluation leaves behind: a markdown table for the screen, results.json (scores, settings, model,
commit, date) and samples.jsonl (one row per problem with every output, its extracted answer, verdict and reason)."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any, Sequence

from evals.grading import BenchmarkResult

RESULTS_FILE, SAMPLES_FILE = "results.json", "samples.jsonl"


def metric_names(results: Sequence[BenchmarkResult]) -> list[str]:
    """The metrics every result has, in the order pass@1, pass@2, ..., maj@n."""
    common = [name for name in results[0].scores if not name.endswith("_stderr") and f"{name}_stderr" in
              results[0].scores]
    return [name for name in common if all(f"{name}_stderr" in r.scores for r in results)
            and name != "pass@n"]  # pass@n repeats pass@{n}


def markdown_table(results: Sequence[BenchmarkResult]) -> str:
    """Benchmark x metric, each cell `value ± standard error`, with the problem and sample counts."""
    if not results:
        return ""
    metrics = metric_names(results)
    lines = ["| benchmark | problems | n | " + " | ".join(metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for result in results:
        s = result.scores
        n = f"{s['n']}" if s["n"] == s["n_max"] else f"{s['n']}-{s['n_max']}"
        cells = [f"{s[m]:.3f} ± {s[m + '_stderr']:.3f}" for m in metrics]
        lines.append(f"| {result.name} | {s['problems']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def code_commit() -> str | None:
    """The git commit of this code (with "+dirty" when files differ from it), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def write_results(out_dir: str | Path, results: Sequence[BenchmarkResult], settings: dict[str, Any]) -> dict:
    """Write results.json and samples.jsonl into `out_dir` (replacing earlier ones); returns results.json's content."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder to write results into")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"benchmarks": {r.name: r.scores for r in results}, "settings": settings,
               "benchmark_settings": {r.name: r.settings for r in results if r.settings},
               "commit": code_commit(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    samples = "".join(json.dumps({"benchmark": result.name, **record}) + "\n"
                      for result in results for record in result.records)
    write_atomically(out / SAMPLES_FILE, samples)
    write_atomically(out / RESULTS_FILE, json.dumps(summary, indent=1) + "\n")
    return summary


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a run killed meanwhile) sees the old file or the whole new one,
    never half of it: the text goes to a file beside it, which then replaces it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    staged.replace(path)
