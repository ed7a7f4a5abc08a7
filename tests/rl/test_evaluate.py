"""`reasonrl eval` for real: the tiny policy served by vLLM on a few problems of every benchmark, the files it
writes, and its samples.jsonl re-graded through --predictions. A tiny policy scores near zero on GSM8K, MATH-500 and
AIME: the pipeline is what is tested, not the accuracy."""

import json

import pytest

BENCHES = ["synthetic", "gsm8k", "math500", "aime24", "aime25"]


def test_eval_scores_every_benchmark_and_its_samples_regrade_to_the_same_verdicts(tiny_checkpoint, tmp_path,
                                                                                monkeypatch, capsys):
    from evals.report import markdown_table
    from rl.cli import evaluate_checkpoint, grade_predictions, main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "eval"
    results = evaluate_checkpoint(tiny_checkpoint, ",".join(BENCHES), n=4, limit=3, max_tokens=24, temperature=1.0,
                                  top_p=0.95, seed=3, out=out, log=lambda *_: None)
    assert list(results) == BENCHES
    for name, result in results.items():
        s = result.scores
        assert s["problems"] == 3 and s["n"] == 4
        for metric in ("pass@1", "pass@2", "pass@4", "maj@n"):
            assert 0.0 <= s[metric] <= 1.0 and s[f"{metric}_stderr"] >= 0.0
        for record in result.records:
            assert len(record["outputs"]) == len(record["correct"]) == len(record["reasons"]) == 4
            assert all(1 <= t <= 24 for t in record["output_tokens"])
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["benchmarks"]) == set(BENCHES) and summary["settings"]["n"] == 4 and summary["commit"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * len(BENCHES)
    assert {"benchmark", "id", "problem", "answer", "outputs", "extracted", "correct", "reasons"} <= set(rows[0])
    # the synthetic set is one the tiny policy was not trained on either: what matters is that the verdicts of a
    # re-grade equal the first grading, output for output
    regraded = grade_predictions(out / "samples.jsonl", ",".join(BENCHES), limit=3, seed=3, out=tmp_path / "again",
                                 log=lambda *_: None)
    for name in BENCHES:
        assert [r["correct"] for r in regraded[name].records] == [r["correct"] for r in results[name].records]
        assert regraded[name].scores["pass@1"] == results[name].scores["pass@1"]
    assert markdown_table(list(results.values())).count("\n") == len(BENCHES) + 1
    # the command line prints the table and says where the files are
    assert main(["eval", "--predictions", str(out / "samples.jsonl"), "--bench", "aime24", "--limit", "3",
                 "--out", str(tmp_path / "cli")]) == 0
    shown = capsys.readouterr().out
    assert "| aime24 | 3 | 4 |" in shown and f"{tmp_path / 'cli'}/results.json" in shown
