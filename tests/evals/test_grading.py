"""The proofs of the evaluation, with the real grader (rewards' pool) and the bundled benchmarks:
- each benchmark's own gold, graded as a prediction, scores 100%;
- re-grading the published, labeled outputs of data/grading through `reasonrl eval --predictions` reproduces the
  grader benchmark's agreement (experiments/results/grader.json), row for row.
"""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from evals.grading import grade_outputs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the bundled copies, whatever the network


@pytest.mark.parametrize("bench, gold_text", [
    ("gsm8k", lambda p: p.solution),              # GSM8K's worked answer, ending "#### 18"
    ("math500", lambda p: p.solution),            # MATH-500's solution with its \boxed{} answer
    ("aime24", lambda p: p.answer),               # AIME's integer
    ("aime25", lambda p: p.answer),
])
def test_each_benchmarks_gold_scores_full_marks(bench, gold_text):
    from rl.api import load_benchmarks

    problems = load_benchmarks(bench)[bench]
    result = grade_outputs(bench, problems, [[gold_text(p)] for p in problems])
    wrong = [(r["id"], r["reasons"][0], r["extracted"][0], r["answer"]) for r in result.records if not r["correct"][0]]
    assert not wrong, f"{len(wrong)} of {len(problems)} gold texts graded wrong, e.g. {wrong[:5]}"
    assert result.scores["pass@1"] == 1.0 and result.scores["maj@n"] == 1.0


@pytest.mark.parametrize("file, bench", [
    ("labeled_outputs_gsm8k_openai_gpt3.jsonl", "gsm8k"),
    ("labeled_outputs_skythought_math500.jsonl", "math500"),
])
def test_regrading_labeled_outputs_reproduces_the_grader_benchmark(tmp_path, file, bench):
    from evals.predictions import normalise_text
    from rl.api import grade_predictions

    path = REPO / "data" / "grading" / file
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # a problem's labels in file order, as its outputs are gathered; by id, or by text where the ids differ
    by_id, by_text = defaultdict(list), defaultdict(list)
    for row in rows:
        by_id[row["problem_id"]].append(bool(row["label"]))
        by_text[normalise_text(row["problem"])].append(bool(row["label"]))
    result = grade_predictions(path, bench, id_field="problem_id", out=tmp_path, log=lambda *_: None)[bench]
    report = result.settings["predictions"]
    assert report["rows"] == len(rows) and report["rows_unmatched"] == 0
    verdicts = [(ours, label) for record in result.records
                for ours, label in zip(record["correct"], by_id.get(record["id"]) or by_text[normalise_text(
                    record["problem"])], strict=True)]
    assert len(verdicts) == len(rows)
    agreement = sum(ours == label for ours, label in verdicts) / len(verdicts)
    published = json.loads((REPO / "experiments" / "results" / "grader.json").read_text())
    against_published_labels = published["agreement_per_file"][file]["raw"]["agreement_ours"]
    assert agreement == pytest.approx(against_published_labels, abs=0.5 / len(rows))
    assert (tmp_path / "samples.jsonl").exists() and (tmp_path / "results.json").exists()
