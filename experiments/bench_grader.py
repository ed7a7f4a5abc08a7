"""Benchmark the math grader against published verdicts, beside math-verify alone.

Writes experiments/results/grader.json (per file: agreement, false positives (paid where the
reference says wrong) and false negatives, ours and math-verify's, each twice: against the published
labels (`raw`) and with the label audit applied (`audited`: data/grading/label_audit.jsonl, the rows
whose published label is demonstrably wrong, each with its reason); throughput, command, date, machine)
and experiments/results/grader_disagreements.jsonl (every row where our verdict or math-verify's
differs from either reference, with our reason, to read by hand).

    python experiments/bench_grader.py            # everything (about 3 minutes on 2 cores)
    python experiments/bench_grader.py --quick    # 300 rows per file, fewer sandbox runs
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from math_verify import parse, verify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards.code import CodeExecution  # noqa: E402 - the repository is on the path from here on
from rewards.math_answer import grade_answer  # noqa: E402
from rewards.pool import get_default_pool  # noqa: E402
from rewards.sandbox import isolation  # noqa: E402

AUDIT = ROOT / "data" / "grading" / "label_audit.jsonl"
FILES = [
    "equiv_cases.jsonl",
    "labeled_outputs_gsm8k_openai_gpt3.jsonl",
    "labeled_outputs_qwen25math_math_cot100.jsonl",
    "labeled_outputs_skythought_math500.jsonl",
    "labeled_outputs_skythought_minerva.jsonl",  # physics, chemistry, astronomy: units, e-notation golds
    "olympiadbench_scoring_examples.jsonl",  # olympiad expressions and physics answers
    "glmv_verifier_cases.jsonl",  # plain-text and Unicode formulas, unit spellings
]


def math_verify_alone(gold: str, pred: str, pred_is_answer: bool = False) -> bool:
    """math-verify 0.9.0 used alone, as its README shows: verify(parse(gold), parse(pred)).

    A bare gold is wrapped in `$...$` (without it math-verify's LaTeX extractor misses
    most MATH golds; this is also how the `math_verify_0_9_0` field of the data was
    computed), and so is a bare prediction that is an answer alone (`pred_kind` answer_only), not a
    solution text. Runs in a pool worker's main thread, so math-verify's own timeouts work.
    """
    gold_text = gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"
    if pred_is_answer and not ("$" in pred or "\\boxed" in pred):
        pred = f"${pred}$"
    try:
        return bool(verify(parse(gold_text), parse(pred)))
    except Exception:  # noqa: BLE001 - math-verify's own failure is a "not equal"
        return False


def _rows(name: str, limit: int | None) -> list[dict]:
    with open(ROOT / "data" / "grading" / name) as f:
        rows = [json.loads(line) for line in f]
    return rows[:limit] if limit else rows


def row_id(row: dict) -> str:
    """A row's id in its file: `id`, or `problem_id/model/sample` for the labeled outputs."""
    return row.get("id") or f"{row.get('problem_id')}/{row.get('model', '')}/{row.get('sample', '')}"


def load_audit() -> dict[tuple[str, str], bool]:
    """The label audit: `(file, row id)` -> the corrected reference, for rows whose published label is wrong."""
    with open(AUDIT) as f:
        return {(e["file"], e["id"]): bool(e["corrected"]) for e in map(json.loads, f)}


def agreement_figures(labels: list[bool], ours: list[bool], mv: list[bool]) -> dict:
    """Agreement, false positives (paid where the reference says wrong) and false negatives, ours and
    math-verify's, against one set of reference labels."""
    n = len(labels)
    agree_ours = sum(o == lab for o, lab in zip(ours, labels))
    agree_mv = sum(m == lab for m, lab in zip(mv, labels))
    return {
        "agreement_ours": round(agree_ours / n, 4),
        "agreement_math_verify": round(agree_mv / n, 4),
        "ours_minus_math_verify_rows": agree_ours - agree_mv,
        "false_positives_ours": sum(o and not lab for o, lab in zip(ours, labels)),
        "false_positives_math_verify": sum(m and not lab for m, lab in zip(mv, labels)),
        "false_negatives_ours": sum(lab and not o for o, lab in zip(ours, labels)),
        "false_negatives_math_verify": sum(lab and not m for m, lab in zip(mv, labels)),
    }


def _machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, no GPU ({platform.machine()}, Python {platform.python_version()})"


def bench_agreement(pool, limit: int | None) -> tuple[dict, list[dict], dict]:
    """Per file and overall: the figures against the published labels (`raw`) and with the label audit applied
    (`audited`); and every row where our verdict or math-verify's differs from either reference."""
    # a pool task is pickled by module name: this file's function as bench_grader's, not __main__'s
    import bench_grader as self_module

    audit = load_audit()
    per_file, disagreements = {}, []
    everything = {"labels": [], "audited": [], "ours": [], "mv": []}
    ours_seconds = 0.0
    for name in FILES:
        rows = _rows(name, limit)
        golds = [r["gold"] for r in rows]
        preds = [r.get("pred", r.get("output")) for r in rows]
        labels = [bool(r.get("expected", r.get("label"))) for r in rows]
        audited = [audit.get((name, row_id(r)), lab) for r, lab in zip(rows, labels)]
        start = time.monotonic()
        ours = pool.map(grade_answer, list(zip(preds, golds)), timeout=5.0, memory_mb=1024)
        ours_s = time.monotonic() - start
        answer_only = [r.get("pred_kind") == "answer_only" for r in rows]
        mv = pool.map(self_module.math_verify_alone, list(zip(golds, preds, answer_only)), timeout=15.0, memory_mb=1024)
        ours_v = [bool(r.ok and r.value.correct) for r in ours]
        mv_v = [bool(r.ok and r.value) for r in mv]
        raw, fixed = agreement_figures(labels, ours_v, mv_v), agreement_figures(audited, ours_v, mv_v)
        per_file[name] = {
            "rows": len(rows),
            "audited_labels": sum(lab != fix for lab, fix in zip(labels, audited)),
            "raw": raw,
            "audited": fixed,
            "ours_timeouts": sum(r.reason == "timeout" for r in ours),
            "math_verify_timeouts_or_kills": sum(not r.ok for r in mv),
            "ours_gradings_per_s": round(len(rows) / ours_s, 1),
        }
        for row, pred, o, m, lab, fix, res in zip(rows, preds, ours_v, mv_v, labels, audited, ours):
            if o != lab or o != fix or m != lab or m != fix:
                verdict = res.value if res.ok else None
                disagreements.append({
                    "file": name, "id": row_id(row), "reference": lab, "audited_reference": fix, "ours": o,
                    "math_verify": m, "gold": row["gold"],
                    "extracted": verdict.extracted if verdict else None,
                    "reason": verdict.reason if verdict else res.reason,
                    "flags": row.get("flags"), "publisher_pred": row.get("publisher_pred"),
                    "pred_tail": pred[-300:] if isinstance(pred, str) else None,
                })
        for key, values in (("labels", labels), ("audited", audited), ("ours", ours_v), ("mv", mv_v)):
            everything[key] += values
        ours_seconds += ours_s
        print(f"{name:48s} rows {len(rows):5d} ({per_file[name]['audited_labels']} audited)  "
              f"ours {fixed['agreement_ours']:.4f} (FP {fixed['false_positives_ours']}, "
              f"FN {fixed['false_negatives_ours']})  math-verify {fixed['agreement_math_verify']:.4f} "
              f"(FP {fixed['false_positives_math_verify']}, FN {fixed['false_negatives_math_verify']});  "
              f"raw: ours {raw['agreement_ours']:.4f} (FP {raw['false_positives_ours']}), "
              f"math-verify {raw['agreement_math_verify']:.4f} (FP {raw['false_positives_math_verify']})  "
              f"({len(rows) / ours_s:.0f} gradings/s)")
    overall = {
        "rows": len(everything["labels"]),
        "audited_labels": sum(lab != fix for lab, fix in zip(everything["labels"], everything["audited"])),
        "raw": agreement_figures(everything["labels"], everything["ours"], everything["mv"]),
        "audited": agreement_figures(everything["audited"], everything["ours"], everything["mv"]),
        "ours_gradings_per_s": round(len(everything["labels"]) / ours_seconds, 1),
    }
    return per_file, disagreements, overall


def agreement_targets(per_file: dict, overall: dict, labels: str) -> dict:
    """The issue's targets against one reference (`raw` or `audited`)."""
    files = [figures[labels] for figures in per_file.values()]
    return {
        "at_least_math_verify_on_every_file": all(f["ours_minus_math_verify_rows"] >= 0 for f in files),
        "false_positives_at_most_math_verify_on_every_file": all(
            f["false_positives_ours"] <= f["false_positives_math_verify"] for f in files),
        "higher_overall": overall[labels]["agreement_ours"] > overall[labels]["agreement_math_verify"],
    }


def bench_sandbox(pool, runs: int) -> dict:
    program = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    tests = [{"inputs": ["2 3\n"], "outputs": ["5\n"]}] * runs
    reward = CodeExecution()
    reward([program] * 4, tests=tests[:4])  # warm-up
    start = time.monotonic()
    scores = reward([program] * runs, tests=tests)
    seconds = time.monotonic() - start
    assert all(s == 1.0 for s in scores), scores
    return {"runs": runs, "seconds": round(seconds, 2), "runs_per_s": round(runs / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 rows per file, 40 sandbox runs")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "grader.json"))
    args = parser.parse_args()

    pool = get_default_pool()
    pool.map(abs, [(-1,)] * pool.num_workers * 2)  # warm: workers started, imports done
    per_file, disagreements, overall = bench_agreement(pool, 300 if args.quick else None)
    sandbox = bench_sandbox(pool, 40 if args.quick else 200)
    print(f"overall (audited): ours {overall['audited']['agreement_ours']:.4f}  "
          f"math-verify {overall['audited']['agreement_math_verify']:.4f}  "
          f"{overall['ours_gradings_per_s']:.0f} gradings/s;  sandbox {sandbox['runs_per_s']:.1f} runs/s")
    results = {
        "benchmark": "grader",
        "command": "python experiments/bench_grader.py" + (" --quick" if args.quick else ""),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "workers": pool.num_workers,
        "sandbox_isolation": isolation(),
        "math_verify": "0.9.0, verify(parse(gold wrapped in $..$ when bare), parse(pred, wrapped so when it is a bare "
                       "answer alone)), default configs",
        "agreement_per_file": per_file,
        "agreement_overall": overall,
        "sandbox_throughput": sandbox,
        "label_audit": "data/grading/label_audit.jsonl (rows whose published label is demonstrably wrong, each "
                       "with its reason); `raw` figures use the published labels, `audited` ones the audit",
        "targets": {
            "labels": "audited (the agreement targets as judged against the audited labels; raw ones beside)",
            **agreement_targets(per_file, overall, "audited"),
            "raw": agreement_targets(per_file, overall, "raw"),
            "gradings_per_s_ge_200": overall["ours_gradings_per_s"] >= 200,
            "sandbox_runs_per_s_ge_20": sandbox["runs_per_s"] >= 20,
        },
        "disagreements_file": "experiments/results/grader_disagreements.jsonl",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    with open(out.parent / "grader_disagreements.jsonl", "w") as f:
        for row in disagreements:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {out} and {len(disagreements)} disagreements")


if __name__ == "__main__":
    main()
