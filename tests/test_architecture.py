"""The architecture's rules, checked by the test suite (docs/ARCHITECTURE.md).

- Import rules: model imports none of the other packages; rewards imports at most model; evals at most rewards and
  model; search at most evals, rewards and model; rl may import all four. They are an import-linter contract in pyproject.toml
  ([tool.importlinter]); this test runs `lint-imports` on it, so a broken rule fails here.
- Self-contained references: no file that ships with the repository points at documents kept outside it, because
  a user's clone does not have them. The project's own architecture document is docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The console script import-linter installs next to this interpreter (in .venv/bin with the dev extra).
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# What is scanned for references to files outside the repository.
SCANNED = ["README.md", "docs", "model", "rewards", "evals", "rl", "search", "experiments"]
# Paths that exist only beside the repository on the machines it was developed on.
OUTSIDE_REFERENCE = re.compile(r"\.\./shared\b|shared/DESIGN\.md|notes/vllm-on-cpu\.md")


def test_import_rules_hold():
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} not found: import-linter is in the dev extra; install it with "
                    f"`{sys.executable} -m pip install -e '.[dev]'` (or `make test`, which does)")
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, (
        "an import breaks the package layering rl > search > evals > rewards > model (docs/ARCHITECTURE.md, 'Import "
        "rules'; imports inside functions count too). Move what the lower package needs down instead of "
        f"importing upward. lint-imports said:\n\n{output}")
    summary = re.search(r"Contracts: (\d+) kept, 0 broken", output)
    assert summary and int(summary.group(1)) >= 1, f"lint-imports checked no contract:\n\n{output}"


def _shipped_text_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in candidates if "__pycache__" not in p.parts]
    return files


def test_no_references_outside_the_repository():
    offending = []
    for path in _shipped_text_files():
        data = path.read_bytes()
        if b"\0" in data:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            if OUTSIDE_REFERENCE.search(line):
                offending.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offending, (
        "these lines refer to files kept outside the repository, which a user's clone does not have; cite "
        "docs/ARCHITECTURE.md (its 'vLLM on CPU' section holds the measured facts) instead:\n"
        + "\n".join(offending))
