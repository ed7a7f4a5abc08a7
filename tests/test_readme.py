"""The README is a user's guide that stays true: its first lines give the two commands, it stays short, every link
it gives (files and section anchors) resolves, and every `reasonrl` command it shows exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MAX_LINES = 260  # a guide; the lab notebook lives in docs/results.md


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_first_lines_give_the_two_commands_and_the_guide_stays_short():
    lines = README.read_text().splitlines()
    first_block = "\n".join(lines[:8])
    assert re.search(r"^make demo\b", first_block, re.M) and re.search(r"^make test\b", first_block, re.M)
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move narrative to docs/ (at most {MAX_LINES})"


def test_every_link_resolves():
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}
            if anchor not in anchors:
                broken.append(target)
    assert not broken, f"README.md links that resolve to no file or section: {broken}"


def test_every_command_shown_exists():
    from rl.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    shown = set(re.findall(r"(?:bin/|`)reasonrl ([a-z][\w-]*)", README.read_text()))  # a command line, not prose
    assert shown and shown <= set(subparsers.choices), (
        f"README.md shows commands that do not exist: {shown - set(subparsers.choices)}")
