"""`reasonrl train-rm` for real: vLLM samples and rolls out, the rewards grader labels, the reward model trains,
saves and is measured. A few problems only: the pipeline is what is tested, not the model's quality."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def train_rm(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rl.cli", "train-rm", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_train_rm_labels_trains_saves_and_reports(tiny_checkpoint, tmp_path):
    from search.reward_models import LearnedRewardModel

    prm = tmp_path / "prm"
    done = train_rm("--policy", tiny_checkpoint, "--out", prm, "--problems", 6, "--eval-problems", 4,
                    "--solutions", 2, "--rollouts", 2, "--epochs", 1, "--levels", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "labelled" in done.stdout and "step_checker: step AUC" in done.stdout
    report = json.loads((prm / "report.json").read_text())
    assert report["kind"] == "prm" and report["labels"]["train"]["solutions"] > 0
    assert set(report["quality"]) == {"learned", "step_checker", "combined"}
    for figures in report["quality"].values():
        assert {"step_auc_gold", "step_auc_monte_carlo", "outcome_auc", "first_error_f1", "threshold"} <= set(figures)
    header, *rows = (prm / "labels_train.jsonl").read_text().splitlines()
    assert json.loads(header)["settings"]["rollouts"] == 2
    for row in map(json.loads, rows):
        assert len(row["steps"]) == len(row["soft"]) == len(row["hard"]) >= 1
        assert all(0.0 <= s <= 1.0 for s in row["soft"]) and row["soft"][-1] == float(row["correct"])
    scorer = LearnedRewardModel(prm / "model")
    assert scorer.kind == "prm" and 0.0 < scorer("What is 2 + 3?", ["<think>\n", "2 + 3 = 5\n"]) < 1.0

    # an ORM on the same labels: read from the PRM's folder, no engine started
    done = train_rm("--policy", tiny_checkpoint, "--out", tmp_path / "orm", "--kind", "orm", "--labels", prm,
                    "--problems", 6, "--eval-problems", 4, "--solutions", 2, "--rollouts", 2, "--epochs", 1,
                    "--levels", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "labelled" not in done.stdout
    assert json.loads((tmp_path / "orm" / "report.json").read_text())["kind"] == "orm"


@pytest.mark.parametrize("args, message", [
    (["--kind", "value"], "argument --kind: invalid choice"),
    (["--rollouts", "0"], "argument --rollouts: must be >= 1, got 0"),
    (["--levels", "2,x"], "--levels must be comma-separated integers"),
])
def test_train_rm_mistakes_are_named_before_anything_starts(args, message, tmp_path, capsys):
    from rl.cli import main

    try:
        code = main(["train-rm", "--policy", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2 and message in capsys.readouterr().err
