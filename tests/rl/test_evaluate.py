"""`reasonrl eval` for real: the tiny policy served by vLLM on a few problems of every benchmark, the files it
writes, and its samples.jsonl re-graded through --predictions. A tiny policy scores near zero on GSM8K, MATH-500 and
AIME: the pipeline is what is tested, not the accuracy."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHES = ["synthetic", "gsm8k", "math500", "aime24", "aime25"]


def test_eval_scores_every_benchmark_and_its_samples_regrade_to_the_same_verdicts(tiny_checkpoint, tmp_path,
                                                                                monkeypatch):
    """`reasonrl eval` runs as a user runs it, in a process of its own (a second vLLM engine in this process would
    tear down the distributed state of the session's shared engine when it is freed)."""
    from evals.report import markdown_table
    from rl.api import grade_predictions
    from rl.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "eval"
    done = subprocess.run([sys.executable, "-m", "rl.cli", "eval", "--model", str(tiny_checkpoint), "--bench",
                           ",".join(BENCHES), "-n", "4", "--limit", "3", "--max-tokens", "24", "--temperature", "1",
                           "--seed", "3", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| benchmark | problems | n | pass@1 | pass@2 | pass@4 | maj@n |" in done.stdout
    assert f"{out}/results.json" in done.stdout
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["benchmarks"]) == BENCHES and summary["settings"]["n"] == 4 and summary["commit"]
    for name, s in summary["benchmarks"].items():
        assert s["problems"] == 3 and s["n"] == 4
        for metric in ("pass@1", "pass@2", "pass@4", "maj@n"):
            assert 0.0 <= s[metric] <= 1.0 and s[f"{metric}_stderr"] >= 0.0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * len(BENCHES)
    assert {"benchmark", "id", "problem", "answer", "outputs", "extracted", "correct", "reasons", "output_tokens",
            "truncated"} <= set(rows[0])
    for row in rows:
        assert len(row["outputs"]) == len(row["correct"]) == len(row["reasons"]) == 4
        assert all(1 <= t <= 24 for t in row["output_tokens"])
    # re-grading the saved outputs gives the same verdicts, output for output
    regraded = grade_predictions(out / "samples.jsonl", ",".join(BENCHES), limit=3, seed=3, out=tmp_path / "again",
                                 log=lambda *_: None)
    for name in BENCHES:
        assert [r["correct"] for r in regraded[name].records] == [r["correct"] for r in rows if r["benchmark"] == name]
        assert regraded[name].scores["pass@1"] == summary["benchmarks"][name]["pass@1"]
    assert markdown_table(list(regraded.values())).count("\n") == len(BENCHES) + 1
    assert main(["eval", "--predictions", str(out / "samples.jsonl"), "--bench", "aime24", "--limit", "3",
                 "--out", str(tmp_path / "cli")]) == 0


def test_eval_spread_over_two_ray_workers_with_few_shot_prompts(tiny_checkpoint, tmp_path):
    """`reasonrl eval --workers 2` starts a local Ray cluster with two rollout workers, spreads each benchmark over
    them, and reports progress line by line into a log file; --few-shot puts worked examples in every prompt."""
    from rl.api import load_benchmarks

    out = tmp_path / "eval"
    log = tmp_path / "eval.log"
    with log.open("w") as log_file:
        done = subprocess.run([sys.executable, "-m", "rl.cli", "eval", "--model", str(tiny_checkpoint), "--bench",
                               "synthetic,math500", "-n", "2", "--limit", "20", "--max-tokens", "16", "--few-shot",
                               "2", "--workers", "2", "--seed", "1", "--out", str(out)], cwd=REPO, stdout=log_file,
                              stderr=subprocess.STDOUT, text=True, timeout=600,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    assert "synthetic: 16/20 problems generated" in text and "math500: 20/20 problems generated" in text
    summary = json.loads((out / "results.json").read_text())
    assert summary["settings"]["workers"] == 2 and summary["settings"]["few_shot"] == 2
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    benchmarks = load_benchmarks("synthetic,math500", limit=20, seed=1)
    assert [(r["benchmark"], r["id"]) for r in rows] == [(name, p.id) for name, ps in benchmarks.items() for p in ps]
    for row in rows:
        assert len(row["outputs"]) == len(row["correct"]) == 2 and all(1 <= t <= 16 for t in row["output_tokens"])


def test_eval_through_search_on_two_ray_workers_grades_the_answer_each_search_chooses(tiny_checkpoint, tmp_path):
    """`reasonrl eval --search beam --budget N --workers 2`: the searches run inside two Ray rollout workers, next to
    their engines; one chosen solution per search, graded and scored like samples, with the tokens it spent."""
    out = tmp_path / "eval"
    done = subprocess.run([sys.executable, "-m", "rl.cli", "eval", "--model", str(tiny_checkpoint), "--bench",
                           "synthetic", "--levels", "2", "-n", "2", "--limit", "3", "--max-tokens", "24", "--search",
                           "beam", "--budget", "48", "--workers", "2", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 problems x 2 searches (beam" in done.stdout
    summary = json.loads((out / "results.json").read_text())
    scores = summary["benchmarks"]["synthetic"]
    assert summary["settings"]["search"] == "beam" and summary["settings"]["budget"] == 48
    assert 0 < scores["mean_policy_tokens"] <= 48 + 4 * 24 and scores["mean_reward_tokens"] > 0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["outputs"]) == len(row["correct"]) == len(row["search"]) == 2 for row in rows)
    assert all(s["tokens"]["policy"] > 0 for row in rows for s in row["search"])
