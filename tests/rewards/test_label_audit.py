"""The label audit of the grader benchmark (data/grading/label_audit.jsonl): every entry names a row that exists in
its file, says what that row's published label is, and flips it (an entry that agreed with the label would be no
correction); each has a reason, and no row is audited twice."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GRADING = REPO / "data" / "grading"


def _row_id(row: dict) -> str:  # as experiments/bench_grader.py names rows
    return row.get("id") or f"{row.get('problem_id')}/{row.get('model', '')}/{row.get('sample', '')}"


def test_every_audit_entry_names_an_existing_row_and_flips_its_label():
    entries = [json.loads(line) for line in (GRADING / "label_audit.jsonl").read_text().splitlines()]
    assert entries
    rows = {}
    for name in {e["file"] for e in entries}:
        for line in (GRADING / name).read_text().splitlines():
            row = json.loads(line)
            rows[(name, _row_id(row))] = row
    keys = [(e["file"], e["id"]) for e in entries]
    assert len(set(keys)) == len(keys), "a row is audited twice"
    for entry in entries:
        row = rows.get((entry["file"], entry["id"]))
        assert row is not None, f"no row {entry['id']!r} in {entry['file']}"
        published = bool(row.get("expected", row.get("label")))
        assert entry["published"] is published, entry
        assert entry["corrected"] is (not published), f"{entry['id']}: the entry does not flip the label"
        assert entry["gold"] == row["gold"], entry
        assert len(entry["reason"]) > 20, entry


def test_the_benchmark_reads_the_audit_for_every_file_it_names():
    import sys

    sys.path.insert(0, str(REPO / "experiments"))
    from bench_grader import FILES, load_audit

    audit = load_audit()
    assert {name for name, _ in audit} <= set(FILES)
