"""`reasonrl solve`: one problem searched with a checkpoint served by vLLM, run as a user runs it (its own process),
and its mistakes named before any engine starts."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rl.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_solve_prints_the_answer_and_writes_the_tree(tiny_checkpoint, tmp_path):
    done = subprocess.run([sys.executable, "-m", "rl.cli", "solve", "Tom has 5 apples. He buys 3 more. How many apples "
                           "does Tom have now?", "--model", str(tiny_checkpoint), "--method", "mcts", "--budget", "200",
                           "--gold", "8", "--option", "step_temperature=1.2", "--option", "answer_by=vote",
                           "--html", str(tmp_path / "tree.html"), "--json", str(tmp_path / "tree.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("answer: ") for line in lines) and lines[-1].startswith("tokens: policy ")
    # quiet by default: the search's progress and the answer, none of vLLM's start-up notices (--verbose shows them)
    assert lines[0].startswith("mcts search: ") and lines[0].endswith("/200 policy tokens")
    assert not any("WARNING" in line for line in lines) and done.stderr == ""  # torch's C++ NUMA notice too
    result = json.loads((tmp_path / "tree.json").read_text())
    assert result["method"] == "mcts" and result["tokens"]["policy"] > 0 and result["tree"]["children"]
    page = (tmp_path / "tree.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<details") == count_nodes(result["tree"])


def count_nodes(node):
    return 1 + sum(count_nodes(child) for child in node["children"])


@pytest.mark.parametrize("argv, message", [
    (["--method", "magic"], "--method must be one of beam, best_of_n, dvts, greedy, mcts"),
    (["--budget", "0"], "argument --budget: must be >= 1, got 0"),
    (["--option", "simulations=3"], "mcts has no option simulations: its options are"),
    (["--method", "beam", "--option", "scored_rollouts=true"], "beam has no option scored_rollouts"),
    (["--option", "selection"], "argument --option: expected NAME=VALUE, got 'selection'"),
    (["--reward-model", "nowhere"], "nowhere"),
    (["--tools", "bash"], "--tools: unknown tool 'bash'; tools: python"),
    (["--tools", "python", "--max-observation-tokens", "10"], "--max-observation-tokens: is 10, but the output's"),
    (["--tools", "python", "--tool-timeout", "0"], "argument --tool-timeout: must be a finite number > 0, got 0"),
])
def test_solve_mistakes_are_named_before_any_engine_starts(tmp_path, capsys, argv, message):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    started = time.perf_counter()
    try:
        code = main(["solve", "What is 2 + 2?", "--model", str(tmp_path / "p"), *argv])
    except SystemExit as exit_info:  # an argparse usage error
        code = exit_info.code
    assert code == 2 and message in capsys.readouterr().err
    assert time.perf_counter() - started < 10
    assert main(["solve", "What is 2 + 2?", "--model", str(tmp_path / "nowhere")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err


@pytest.mark.parametrize("problem, output, message", [
    ("  ", [], "the problem is empty"),
    ("What is 2 + 2?", ["--html", "."], "--html . is a folder, not a file to write"),
    ("What is 2 + 2?", ["--json", "{file}/tree.json"], "is a file, not a folder"),
])
def test_solve_refuses_an_empty_problem_and_unwritable_outputs_before_the_search(tmp_path, capsys, problem, output,
                                                                                 message):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    started = time.perf_counter()
    argv = [part.format(file=tmp_path / "file") for part in output]
    assert main(["solve", problem, "--model", str(tmp_path / "p"), *argv]) == 2
    assert message in capsys.readouterr().err and time.perf_counter() - started < 10


HELD = """
import os, sys
from rl.api import native_stderr_held
os.write(2, b"before\\n")
with native_stderr_held():
    os.write(2, b"native notice\\n")
    print("python notice", file=sys.stderr)
try:
    with native_stderr_held():
        os.write(2, b"context of the failure\\n")
        raise RuntimeError("engine failed")
except RuntimeError:
    pass
os.write(2, b"after\\n")
"""


def test_native_stderr_is_held_back_unless_the_body_fails():
    done = subprocess.run([sys.executable, "-c", HELD], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["before", "context of the failure", "after"]
