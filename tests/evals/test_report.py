"""evals.report: the markdown table and the files an evaluation writes."""

import json

from evals.grading import BenchmarkResult
from evals.metrics import score_problems
from evals.report import markdown_table, write_results


def result(name, correct):
    records = [{"id": f"{name}-{i}", "outputs": ["x"] * len(c), "correct": c} for i, c in enumerate(correct)]
    return BenchmarkResult(name, score_problems(correct), records, {"n": len(correct[0])})


def test_table_has_every_metric_with_its_error():
    table = markdown_table([result("gsm8k", [[True, False], [True, True]]), result("aime24", [[False, False]] * 3)])
    lines = table.splitlines()
    assert lines[0] == "| benchmark | problems | n | pass@1 | pass@2 |"
    assert lines[2] == "| gsm8k | 2 | 2 | 0.750 ± 0.250 | 1.000 ± 0.000 |"
    assert lines[3].startswith("| aime24 | 3 | 2 | 0.000 ± 0.000 |")


def test_results_and_samples_files(tmp_path):
    results = [result("gsm8k", [[True, False], [True, True]]), result("aime24", [[False, False]])]
    summary = write_results(tmp_path / "out", results, {"model": "m", "n": 2})
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved == summary and saved["benchmarks"]["gsm8k"]["pass@1"] == 0.75 and saved["settings"]["model"] == "m"
    assert saved["date"] and "commit" in saved
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert [(r["benchmark"], r["id"]) for r in rows] == [("gsm8k", "gsm8k-0"), ("gsm8k", "gsm8k-1"), ("aime24", "aime24-0")]
