"""rl.logger: sampled completions with their rewards and reasons (samples.jsonl, TensorBoard text)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import pytest

from rl.batch import RolloutBatch, Sample
from problems import synthetic_problems
from rl.logger import MetricsLogger, sample_markdown, sample_records
from rl.rewarding import RewardWorker

GROUP = 4


def right(problem) -> str:
    return problem.solution


def wrong(problem) -> str:
    return "<think>\n5 * 6 = }."  # the shape of the old reward hack: truncated mid-line, no final answer


@pytest.fixture(scope="module")
def step_batch():
    """Six groups of four completions scored by the real reward stage: group g has g % 5 right answers."""
    problems = synthetic_problems(6, seed=0, levels=[1, 2])
    completions = [right(p) if i < g % 5 else wrong(p) for g, p in enumerate(problems) for i in range(GROUP)]
    columns = {"answer": [p.answer for p in problems for _ in range(GROUP)]}
    scored = RewardWorker(["math_accuracy", "format", "length_penalty"], [1.0, 0.2, 1.0]).score(completions, columns)
    return problems, completions, scored, scored_batch(problems, completions, scored, GROUP)


def scored_batch(problems, completions, scored, group_size):
    """The step's RolloutBatch as the trainer has it when it logs samples (token ids do not matter here)."""
    samples = [Sample([], [], [], False) for _ in completions]
    batch = RolloutBatch.from_groups(samples, [asdict(p) for p in problems], group_size, completions)
    batch.add_rewards(scored)
    return batch


def test_records_are_the_best_and_worst_of_random_groups(step_batch):
    problems, completions, scored, batch = step_batch
    records = sample_records(7, batch, k=4, seed=1)
    assert len(records) == 4 and [r["pick"] for r in records] == ["best", "worst", "best", "worst"]
    assert records[0]["group"] == records[1]["group"] < records[2]["group"] == records[3]["group"]
    for record in records:
        group = record["group"]
        assert record["problem_id"] == problems[group].id and record["answer"] == problems[group].answer
        assert group * GROUP <= record["sample"] < (group + 1) * GROUP
        assert record["completion"] == completions[record["sample"]] and record["step"] == 7
        assert record["group_rewards"] == scored["total"][group * GROUP:(group + 1) * GROUP]
        choose = max if record["pick"] == "best" else min
        assert record["reward"] == choose(record["group_rewards"])
        assert set(record["components"]) == set(record["reasons"]) == {"math_accuracy", "format", "length_penalty"}
        assert record["reasons"]["length_penalty"] is None
    assert json.loads(json.dumps(records)) == records


def test_the_reasons_show_why_a_sample_scored(step_batch):
    problems, completions, scored, batch = step_batch
    records = [r for step in range(20) for r in sample_records(step, batch, k=2)]
    wrong_ones = [r for r in records if r["completion"] == wrong(None)]
    right_ones = [r for r in records if r["completion"] != wrong(None)]
    assert wrong_ones and right_ones
    for record in wrong_ones:
        assert record["reasons"]["math_accuracy"] == "unfinished-text (last number '6' is not an answer)"
        assert record["reasons"]["format"] == "missing or misplaced think block" and record["reward"] == 0.0
    for record in right_ones:
        assert record["reasons"]["math_accuracy"].endswith(f"extracted '{record['answer']}', gold '{record['answer']}'")
        assert record["reasons"]["format"] == "ok" and record["reward"] == pytest.approx(1.2)


def test_choice_is_deterministic_and_moves_with_the_step(step_batch):
    problems, completions, scored, batch = step_batch
    pick = lambda step, seed=0: [r["sample"] for r in sample_records(step, batch, 2, seed)]
    assert pick(3) == pick(3) and pick(3, seed=5) == pick(3, seed=5)
    assert len({tuple(pick(step)) for step in range(30)}) == 6  # every group gets read over the steps


def test_a_group_of_equal_rewards_shows_two_different_completions(step_batch):
    problems, completions, scored, batch = step_batch
    records = [r for step in range(30) for r in sample_records(step, batch, k=2)]
    uniform = [r for r in records if r["group"] == 0]  # group 0: every completion wrong
    assert uniform and {r["sample"] for r in uniform} == {0, 3}


def test_sizes_and_groups_of_one(step_batch):
    problems, completions, scored, batch = step_batch
    assert sample_records(0, batch, k=0) == []
    assert len(sample_records(0, batch, k=3)) == 3
    assert len(sample_records(0, batch, k=100)) == 12  # every group's best and worst
    singles = scored_batch(problems[:4], completions[:4], {"total": scored["total"][:4], "components": {},
                                                           "reasons": {}}, group_size=1)
    assert [r["pick"] for r in sample_records(0, singles, k=4)] == ["best"] * 4
    with pytest.raises(ValueError, match="samples for 5 prompts"):
        scored_batch(problems[:5], completions, scored, GROUP)


@pytest.mark.parametrize("tensorboard", [False, True])
def test_log_samples_writes_samples_jsonl_and_tensorboard_text(tmp_path, step_batch, tensorboard):
    problems, completions, scored, batch = step_batch
    logger = MetricsLogger(tmp_path, jsonl=True, tensorboard=tensorboard)
    logger.log_samples(1, [])
    assert not (tmp_path / "samples.jsonl").exists()  # nothing to log, no file
    first, second = (sample_records(step, batch, k=2) for step in (1, 2))
    logger.log_samples(1, first)
    logger.log_samples(2, second)
    logger.close()
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == first + second
    if tensorboard:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
        events.Reload()
        texts = events.Tensors("samples/text_summary")
        assert [t.step for t in texts] == [1, 2]
        shown = texts[0].tensor_proto.string_val[0].decode()
        assert first[0]["question"] in shown and "math_accuracy = " in shown


def test_markdown_names_the_pick_scores_and_reasons(step_batch):
    problems, completions, scored, batch = step_batch
    record = sample_records(0, batch, k=1)[0]
    text = sample_markdown(record)
    assert text.startswith(f"**best** of group {record['group']} ({record['problem_id']})")
    assert f"({record['reasons']['math_accuracy']})" in text and record["completion"] in text


def test_weights_and_biases_run_is_written_offline(tmp_path, monkeypatch):
    """wandb for real, in offline mode (no network here): metrics and the samples table reach its run files."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = MetricsLogger(tmp_path, jsonl=True, tensorboard=False, wandb_project="reasonrl-test",
                           config={"algorithm": {"beta": 0.0}})
    logger.log(1, {"reward/mean": 0.25, "accuracy": 0.5})
    logger.log_samples(1, [{"problem_id": "syn-1", "answer": "4", "reward": 1.0, "completion": "\\boxed{4}"}])
    logger.log(2, {"reward/mean": 0.5})
    run_dir = logger.wandb.dir
    logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and run_dir.startswith(str(runs[0]))
    # the run's protobuf log (synced later by `wandb sync`), written by wandb's own service process: on a loaded
    # machine its last records can land a moment after finish() returns
    log_file = next(runs[0].glob("run-*.wandb"))
    deadline = time.monotonic() + 30
    while b"accuracy" not in log_file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    records = log_file.read_bytes()
    assert b"reward/mean" in records and b"accuracy" in records
    tables = list((runs[0] / "files" / "media" / "table").glob("samples_1_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["problem_id", "answer", "reward", "completion"] and table["data"][0][0] == "syn-1"


def test_step_line_is_one_plain_line_with_the_step_s_figures():
    from rl.logger import step_line

    record = {"step": 12, "reward/mean": 0.53, "accuracy": 0.41, "groups/kept_frac": 0.5,
              "completion/length_mean": 23.4,
              "time/generate_s": 2.0, "time/reward_s": 0.2, "time/learn_s": 1.5, "time/weight_sync_s": 0.3,
              "eval/pass@1": 0.345, "eval/pass@1_stderr": 0.02, "eval/maj@n": 0.4, "eval/pass@n": 0.6, "eval/n": 8}
    line = step_line(record, 90)
    assert "\n" not in line and "\x1b" not in line  # no terminal control codes in a log file
    assert line == ("step 12/90  reward 0.530  accuracy 0.410  kept 0.50  length 23  4.0s  | held-out pass@1 0.345 "
                    "±0.020 maj@8 0.400 pass@8 0.600")
    assert step_line({"step": 0, **{k: v for k, v in record.items() if k.startswith("eval/")}}, 90).startswith(
        "step 0/90  | held-out pass@1 0.345")


def test_plot_has_the_moving_average_and_eval_error_bars(tmp_path):
    from rl.logger import moving_average, plot_run

    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    logger = MetricsLogger(tmp_path, jsonl=True, tensorboard=False)
    logger.log(0, {"eval/pass@1": 0.2, "eval/pass@1_stderr": 0.02})
    for step in range(1, 30):
        logger.log(step, {"reward/mean": 0.3 + 0.01 * step})
    logger.log(30, {"reward/mean": float("nan"), "eval/pass@1": 0.4, "eval/pass@1_stderr": 0.03})
    logger.close()
    out = plot_run(tmp_path / "metrics.jsonl", tmp_path / "plot.png", title="test run")
    assert out.stat().st_size > 10_000


def test_a_resumed_run_drops_the_records_the_stopped_run_wrote_after_its_checkpoint(tmp_path):
    """A run stopped after step 5 (its last line cut short by a kill) and resumed from its checkpoint of step 3 logs
    steps 4 and 5 again: each step's records appear once, in metrics.jsonl and samples.jsonl alike."""
    stopped = MetricsLogger(tmp_path, jsonl=True, tensorboard=False)
    stopped.log(0, {"eval/pass@1": 0.1})
    for step in range(1, 6):
        stopped.log(step, {"reward/mean": step / 10})
        stopped.log_samples(step, [{"step": step, "pick": "best"}, {"step": step, "pick": "worst"}])
    stopped.close()
    with (tmp_path / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 6, "reward/me')
    resumed = MetricsLogger(tmp_path, jsonl=True, tensorboard=False, resume_step=3)
    for step in (4, 5):
        resumed.log(step, {"reward/mean": step / 10})
        resumed.log_samples(step, [{"step": step, "pick": "best"}, {"step": step, "pick": "worst"}])
    resumed.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(r["step"], r["pick"]) for r in samples] == [(s, p) for s in range(1, 6) for p in ("best", "worst")]

    MetricsLogger(tmp_path, jsonl=True, tensorboard=False, resume_step=-1).close()  # resumed with no checkpoint
    assert (tmp_path / "metrics.jsonl").read_text() == (tmp_path / "samples.jsonl").read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "samples.jsonl"]


def test_a_resumed_run_s_tensorboard_drops_the_events_after_its_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stopped = MetricsLogger(tmp_path, jsonl=False, tensorboard=True)
    for step in range(1, 6):
        stopped.log(step, {"reward/mean": 0.0})
    stopped.close()
    resumed = MetricsLogger(tmp_path, jsonl=False, tensorboard=True, resume_step=3)
    for step in (4, 5):
        resumed.log(step, {"reward/mean": 1.0})
    resumed.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]


def test_records_of_tool_rollouts_add_the_transcript_and_markdown_shows_it(step_batch):
    problems, completions, scored, batch = step_batch
    transcripts = [f"transcript {i}: ```output\n42\n```" for i in range(len(batch))]
    plain, with_tools = sample_records(3, batch, k=2), sample_records(3, batch, k=2, transcript=transcripts.__getitem__)
    assert all("transcript" not in record for record in plain)
    for record, tool_record in zip(plain, with_tools):
        assert tool_record == record | {"transcript": transcripts[record["sample"]]}  # the graded text unchanged
        assert transcripts[record["sample"]] in sample_markdown(tool_record)
