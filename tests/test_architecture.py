"""The architecture's rules, checked by the test suite (docs/ARCHITECTURE.md).

- Import rules: each package imports only the packages below it, rl > search > evals > problems > rewards > model.
  They are an import-linter contract in pyproject.toml ([tool.importlinter]); this test runs `lint-imports` on it,
  so a broken rule fails here, and checks that docs/ARCHITECTURE.md draws the same chain.
- The map is true: docs/ARCHITECTURE.md lists every module of every package and no module that is not there, every
  `reasonrl` command, every reward function name and every data source, and each path it names exists.
- Self-contained references: no file that ships with the repository points at documents kept outside it, because
  a user's clone does not have them. The project's own architecture document is docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
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
        "an import breaks the package layering rl > search > evals > problems > rewards > model (docs/ARCHITECTURE.md, 'Import "
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


# ------------------------------------------------------------------------------------------------ the map is true

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
PACKAGES = ["model", "rewards", "problems", "evals", "search", "rl"]
# Top-level folders whose paths the map may name; a path under any other (runs/, a run folder's checkpoints/) is
# one a run writes, not one the repository holds.
REPO_FOLDERS = ("model/", "rewards/", "problems/", "evals/", "search/", "rl/", "experiments/", "data/", "docs/",
                "scripts/", "tests/", ".ci/")


def _section(title: str) -> str:
    """The text of the map's section `## title` (up to the next `## `)."""
    text = ARCHITECTURE.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/ARCHITECTURE.md has no section '## {title}'"
    return match.group(1)


def _first_column(text: str) -> list[str]:
    """The backticked names in the first column of the markdown table rows of `text`."""
    return [name for row in re.findall(r"^\| *([^|]+?) *\|", text, re.M) for name in re.findall(r"`([^`]+)`", row)]


def test_the_map_lists_every_module_of_every_package():
    packages = _section("Packages")
    for package in PACKAGES:
        block = re.search(rf"^### `{package}/`\n(.*?)(?=^### |\Z)", packages, re.S | re.M)
        assert block, f"docs/ARCHITECTURE.md, 'Packages': no '### `{package}/`' table"
        listed = set(_first_column(block.group(1)))
        present = {p.name for p in (REPO / package).glob("*.py") if p.name != "__init__.py"}
        assert listed == present, (f"docs/ARCHITECTURE.md's table of {package}/ is not the package: "
                                   f"missing {sorted(present - listed)}, not there {sorted(listed - present)}")


def test_the_map_names_only_paths_that_exist():
    named = re.findall(r"`([^`\s]+)`", ARCHITECTURE.read_text())
    paths = {token.split(":")[0] for token in named if token.startswith(REPO_FOLDERS)}
    missing = [path for path in sorted(paths) if not list(REPO.glob(path.rstrip("/")))]
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_the_map_lists_every_command():
    from rl.cli import build_parser

    parser = build_parser()
    commands = set()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        commands |= {f"reasonrl {name} {inner}" for inner in nested[0].choices} if nested else {f"reasonrl {name}"}
    listed = set(_first_column(_section("Commands")))
    assert listed == commands, (f"docs/ARCHITECTURE.md's commands are not the CLI's: missing "
                                f"{sorted(commands - listed)}, not there {sorted(listed - commands)}")


def test_the_map_lists_every_reward_function_and_data_source():
    from problems import DATA_SOURCES
    from rl.rewarding import REWARD_NAMES

    rewards_listed = set(_first_column(_section("Reward functions")))
    assert rewards_listed == set(REWARD_NAMES), (
        f"docs/ARCHITECTURE.md's reward functions are not rl.rewarding's: missing "
        f"{sorted(set(REWARD_NAMES) - rewards_listed)}, not there {sorted(rewards_listed - set(REWARD_NAMES))}")
    sources_listed = set(_first_column(_section("Data sources")))
    assert sources_listed == set(DATA_SOURCES), (
        f"docs/ARCHITECTURE.md's data sources are not problems.DATA_SOURCES: missing "
        f"{sorted(set(DATA_SOURCES) - sources_listed)}, not there {sorted(sources_listed - set(DATA_SOURCES))}")


def test_the_map_draws_the_import_linter_layers():
    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    drawn = re.search(r"^(rl ──▶ .*)$", _section("Import rules"), re.M)
    assert drawn, "docs/ARCHITECTURE.md, 'Import rules': no drawn chain 'rl ──▶ ... ──▶ model'"
    assert [layer.strip() for layer in drawn.group(1).split("──▶")] == contract["layers"]
