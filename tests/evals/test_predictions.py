"""evals.predictions: reading generations made elsewhere, matching them to a benchmark's problems, and the errors
a malformed file gets."""

import json
from types import SimpleNamespace

import pytest

from evals.predictions import PredictionsError, read_predictions

PROBLEMS = [SimpleNamespace(id="p1", question="What is 1 + 1?", answer="2"),
            SimpleNamespace(id="p2", question="What is  2 +\n2?", answer="4"),
            SimpleNamespace(id="p3", question="What is 3 + 3?", answer="6")]


def write(tmp_path, rows, name="preds.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_rows_match_by_id_then_by_problem_text_and_outputs_gather(tmp_path):
    path = write(tmp_path, [
        {"id": "p2", "output": "4"},
        {"question": "what is 2 + 2?", "completions": ["5", "4"]},   # no id: matched by text (case, spaces ignored)
        {"problem_id": "p1", "responses": ["2"]},
        {"id": "elsewhere", "output": "9"},
    ])
    problems, outputs, report = read_predictions(path, PROBLEMS)
    assert [p.id for p in problems] == ["p1", "p2"]          # benchmark order, not file order
    assert outputs == [["2"], ["4", "5", "4"]]              # a problem's rows in file order
    assert report["rows"] == 4 and report["problems_matched"] == 2 and report["rows_unmatched"] == 1
    assert report["problems_without_outputs"] == ["p3"]


def test_named_fields_and_chat_messages(tmp_path):
    path = write(tmp_path, [{"qid": "p3", "gen": [{"role": "assistant", "content": "\\boxed{6}"}]}])
    problems, outputs, _ = read_predictions(path, PROBLEMS, id_field="qid", output_field="gen")
    assert [p.id for p in problems] == ["p3"] and outputs == [["\\boxed{6}"]]


def test_rows_of_other_benchmarks_are_skipped(tmp_path):
    """A samples.jsonl of several benchmarks re-grades one benchmark at a time."""
    path = write(tmp_path, [{"benchmark": "a", "id": "p1", "outputs": ["2"]},
                            {"benchmark": "b", "id": "p1", "outputs": ["3"]}])
    _, outputs, report = read_predictions(path, PROBLEMS, benchmark="a")
    assert outputs == [["2"]] and report["rows"] == 1


@pytest.mark.parametrize("rows, message", [
    (['{"id": "p1", "output": "2"', ], r"preds.jsonl:1: not JSON"),
    ([{"id": "p1", "output": "2"}, "[1, 2]"], r"preds.jsonl:2: each line must be a JSON object"),
    ([{"id": "p1", "answer_text": "2"}], r"preds.jsonl:1: no outputs field; looked for outputs, output"),
    ([{"output": "2"}], r"preds.jsonl:1: neither an id field .* nor a problem field"),
    ([{"id": "p1", "output": 2}], r"preds.jsonl:1: outputs must be a string or a list of strings, got int"),
    ([{"id": "nope", "output": "2"}], r"none of its 1 rows matches a problem of the benchmark"),
])
def test_a_malformed_file_names_its_line_and_problem(tmp_path, rows, message):
    with pytest.raises(PredictionsError, match=message):
        read_predictions(write(tmp_path, rows), PROBLEMS)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PredictionsError, match="does not exist"):
        read_predictions(tmp_path / "none.jsonl", PROBLEMS)
    with pytest.raises(PredictionsError, match="is not a file"):
        read_predictions(tmp_path, PROBLEMS)


def test_a_row_with_an_empty_list_of_outputs_leaves_its_problem_without_outputs(tmp_path):
    path = write(tmp_path, [{"id": "p1", "outputs": ["2"]}, {"id": "p2", "outputs": []}])
    problems, outputs, report = read_predictions(path, PROBLEMS)
    assert [p.id for p in problems] == ["p1"] and outputs == [["2"]]
    assert report["problems_without_outputs"] == ["p2", "p3"]
    with pytest.raises(PredictionsError, match="hold no outputs"):
        read_predictions(write(tmp_path, [{"id": "p2", "outputs": []}], "empty.jsonl"), PROBLEMS)
