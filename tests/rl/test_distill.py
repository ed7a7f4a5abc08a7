"""Distillation (rl/distill.py, rl/teacher.py): the checks made before anything starts, the traces' verification and
order, expert iteration's rounds, and every mode run for real on tiny sizes (Ray, vLLM, the verifier), resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rl.distill
import rl.trainer
from model import init_pretrained, load_tokenizer
from model.config import ConfigError
from problems import load_problems
from rl import api
from rl.batch import LearnerBatch, RolloutBatch, Sample
from rl.config import DISTILL_MODES, load_config
from problems import Problem
from rewards.tools import OUTPUT_OPEN
from rl.distill import (DISTILLERS, ROUNDS, TRACES_FILE, TRACES_REPORT, ExpertIterationDistiller, OnPolicyDistiller,
                        TracesDistiller, check_distill, policy_text, round_line, round_seed, teacher_metrics,
                        verified_traces, verify_traces)
from rl.sft import sft_from_checkpoint
from rl.teacher import Teacher

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "experiments" / "tiny_distill.yaml"
SMALL = ["sft.steps=8", "data.num_train=8", "data.num_eval=6", "rollout.prompts_per_step=4", "rollout.group_size=4",
         "rollout.max_new_tokens=48", "rollout.eval_samples=2", "trainer.eval_every=2", "trainer.save_every=1",
         "logging.progress=false", "logging.tensorboard=false", "reward.num_workers=1", "sft.batch_size=8"]


# the tool task (experiments/tiny_tools.yaml's), every reference solution calling python for its product
TOOLS = ["data.train=synthetic_tools", "data.eval=synthetic_tools", "data.levels=[1,2]", "data.tool_traces=1.0",
         "rollout.tools=[python]",
         "rollout.max_turns=3", "rollout.tool_timeout_s=2.0", "rollout.max_observation_tokens=40",
         "rollout.max_new_tokens=96"]


def small_config(output_dir, teacher, *extra):
    return load_config(JOB, [*SMALL, f"trainer.output_dir={output_dir}", f"distill.teacher={teacher}", *extra])


def records(output_dir):
    return [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]


def no_start(*_, **__):
    pytest.fail("something started before the configuration was checked")


@pytest.fixture(scope="module")
def memorizing_teacher(tmp_path_factory):
    """A tiny policy fitted to the reference solutions of SMALL's 8 training problems (10 s): it answers them
    right, so the verifier has traces to keep."""
    folder = tmp_path_factory.mktemp("teacher")
    problems, _ = load_problems(load_config(JOB, SMALL).data)
    init_pretrained("tiny", folder / "init")
    return sft_from_checkpoint(folder / "init", folder / "policy", problems, steps=60, batch_size=8, lr=3e-3,
                               threads=1, max_tokens=128, log=None)


@pytest.fixture(scope="module")
def tool_teacher(tmp_path_factory):
    """A tiny policy fitted to SMALL's 8 training problems of the tool task, the calls and the outputs' masks as
    the warm start learns them (20 s): it calls python as the reference solutions do, and answers (60 steps
    were too few to write the programs and answers right at T=1)."""
    folder = tmp_path_factory.mktemp("tool_teacher")
    problems, _ = load_problems(load_config(JOB, [*SMALL, *TOOLS]).data)
    init_pretrained("tiny", folder / "init")
    return sft_from_checkpoint(folder / "init", folder / "policy", problems, steps=200, batch_size=8, lr=3e-3,
                               threads=1, max_tokens=160, log=None)


# ------------------------------------------------------------------------------------------------ before anything


def test_every_mode_has_a_driver():
    assert set(DISTILLERS) == set(DISTILL_MODES)
    assert DISTILLERS["on_policy"] is OnPolicyDistiller and DISTILLERS["traces"] is TracesDistiller
    assert DISTILLERS["expert_iteration"] is ExpertIterationDistiller


@pytest.mark.parametrize("mode, teacher, message", [
    ("on_policy", None, r"distill\.teacher: name the teacher"),
    ("traces", "missing", r"distill\.teacher: .*missing: no such checkpoint folder or traces file"),
    ("on_policy", "traces.jsonl", r"distill\.teacher: .*traces\.jsonl is a file: on_policy distillation needs"),
    ("traces", "notes.txt", r"distill\.teacher: .*notes\.txt is neither a checkpoint folder nor a JSON Lines file"),
    ("traces", "empty_folder", r"distill\.teacher: .*empty_folder/config\.json is missing"),
])
def test_a_bad_teacher_is_named_before_anything_starts(tmp_path, monkeypatch, mode, teacher, message):
    for name in ("traces.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "empty_folder").mkdir()
    monkeypatch.setattr(rl.trainer, "join_or_start", no_start)
    monkeypatch.setattr(rl.distill, "join_or_start", no_start)
    monkeypatch.setattr(rl.trainer.GRPOTrainer, "prepare_policy", no_start)
    overrides = [f"distill.mode={mode}", f"trainer.output_dir={tmp_path / 'run'}"]
    overrides += [] if teacher is None else [f"distill.teacher={tmp_path / teacher}"]
    with pytest.raises(ConfigError, match=message):
        api.distill(JOB, [*SMALL, *overrides] + (["distill.teacher=null"] if teacher is None else []))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, message", [
    ("tokenizer", r"does not share the student's tokenizer and vocabulary \(model\.path preset:tiny\): 1 tokens with "
                  r"other ids or missing \(e\.g\. '<extra>'\)"),
    ("vocab_size", r"vocabulary size 4096 \(the student's: 2048\)"),
])
def test_a_teacher_with_another_tokenizer_or_vocabulary_is_refused_before_any_actor(tiny_checkpoint, tmp_path,
                                                                                     monkeypatch, change, message):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_checkpoint, teacher)
    if change == "tokenizer":
        tokenizer = load_tokenizer(teacher)
        tokenizer.add_tokens(["<extra>"])
        tokenizer.save_pretrained(teacher)
    else:
        config = json.loads((teacher / "config.json").read_text())
        (teacher / "config.json").write_text(json.dumps(config | {"vocab_size": 4096}))
    monkeypatch.setattr(rl.trainer, "join_or_start", no_start)
    monkeypatch.setattr(rl.trainer.GRPOTrainer, "prepare_policy", no_start)
    config = small_config(tmp_path / "run", teacher)
    with pytest.raises(ConfigError, match=message):
        check_distill(config)
    with pytest.raises(ConfigError, match=message):  # the driver checks it too, before its warm start or any actor
        OnPolicyDistiller(config, log=lambda *_: None).setup()
    check_distill(small_config(tmp_path / "run", tiny_checkpoint))  # the same teacher unchanged is fine
    check_distill(small_config(tmp_path / "run", teacher, "distill.mode=traces"))  # traces are text: any tokenizer


# ------------------------------------------------------------------------------------------------ pieces


def test_verified_traces_keep_each_correct_answer_once():
    records = [{"id": "a", "problem": "1 + 1?", "answer": "2", "outputs": ["x \\boxed{2}", "x  \\boxed{2}\n", "3",
                                                                           "y \\boxed{2}"],
                "correct": [True, True, False, True]},
               {"id": "b", "problem": "2 + 2?", "answer": "4", "outputs": ["5"], "correct": [False]}]
    rows, counts = verified_traces(records, "teacher/")
    assert [row["completion"] for row in rows] == ["x \\boxed{2}", "y \\boxed{2}"]  # whitespace-only twins once
    assert rows[0] == {"id": "a", "problem": "1 + 1?", "answer": "2", "completion": "x \\boxed{2}",
                       "teacher": "teacher/"}
    assert counts == {"correct": 3, "kept": 2, "duplicates": 1, "problems_with_trace": 1}


def test_trace_batches_go_through_every_trace_each_epoch_in_an_order_set_by_the_seed(tmp_path):
    distiller = TracesDistiller(load_config(JOB, [*SMALL, f"trainer.output_dir={tmp_path}", "sft.batch_size=4"]))
    distiller.traces = [f"trace {i}" for i in range(10)]
    epochs = [distiller.trace_batch(step) for step in range(5)]  # 20 traces: two epochs of 10
    first, second = sum(epochs[:2], []) + epochs[2][:2], epochs[2][2:] + sum(epochs[3:], [])
    assert sorted(first) == sorted(second) == sorted(distiller.traces) and first != second
    assert distiller.trace_batch(3) == epochs[3]  # a step's batch depends on the step alone (a resumed run's too)


def test_the_teacher_scores_each_sampled_token_as_the_learner_would(tiny_checkpoint):
    """A teacher that is the student gives the student's own logprobs (so a zero advantage), also in row chunks."""
    from model import load_pretrained

    policy = load_pretrained(tiny_checkpoint).eval()
    prompts, completions = [[0, 3, 10, 11, 4], [0, 3, 12, 4], [0, 5]], [[20, 21, 22], [30, 31, 32, 33, 34], [7]]
    samples = []
    for prompt, completion in zip(prompts, completions):
        with torch.no_grad():
            logits = policy(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1] / 0.7
        logprobs = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()
        samples.append(Sample(prompt, completion, logprobs, truncated=False))
    batch = LearnerBatch.from_rollouts(RolloutBatch(samples, torch.arange(3), advantages=torch.zeros(3)), pad_id=2,
                                       mask_truncated=True)
    for positions in (0, 12):
        teacher = Teacher(str(tiny_checkpoint), temperature=0.7, micro_batch_positions=positions)
        scored = teacher.logprobs(batch)
        assert scored.shape == batch.completion_ids.shape
        torch.testing.assert_close(scored * batch.completion_mask, batch.rollout_logprobs, atol=1e-5, rtol=0)
        # distill.kl=full: the same sampled-token logprobs, and each position's whole distribution (or its top k)
        sampled, distribution, ids = teacher.distributions(batch)
        torch.testing.assert_close(sampled, scored, atol=1e-6, rtol=0)
        assert distribution.shape == (*batch.completion_ids.shape, policy.lm_head.out_features) and ids.size(-1) == 0
        picked = distribution.gather(-1, batch.completion_ids[..., None])[..., 0]
        torch.testing.assert_close(picked * batch.completion_mask, batch.rollout_logprobs, atol=1e-5, rtol=0)
        _, top, top_ids = teacher.distributions(batch, top_k=5)
        assert top.shape == top_ids.shape == (*batch.completion_ids.shape, 5)
        torch.testing.assert_close(top, distribution.gather(-1, top_ids), atol=1e-6, rtol=0)
    metrics = teacher_metrics(batch, batch.rollout_logprobs.clone(), torch.zeros_like(scored))
    assert metrics["distill/reverse_kl"] == 0 and metrics["distill/advantage_mean"] == 0


# ------------------------------------------------------------------------------------------------ for real


def test_on_policy_distillation_runs_for_real(ray_session, tiny_checkpoint, tmp_path):
    """The student's rollouts scored by the teacher actor: every group is kept, the per-token reverse KL is logged
    each step, the learner and vLLM still agree on the student's logprobs, and the run folder is train's."""
    summary = api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path}", f"distill.teacher={tiny_checkpoint}",
                                "trainer.steps=2", "distill.rule_reward_weight=0.5"], log=lambda *_: None)
    steps = [r for r in records(tmp_path) if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert r["groups/kept_frac"] == 1.0 and r["time/teacher_s"] > 0
        assert 0 < r["distill/reverse_kl"] < 20  # a student barely warmed up is far from the teacher
        assert r["distill/reverse_kl"] == pytest.approx(r["distill/student_logprob_mean"]
                                                        - r["distill/teacher_logprob_mean"], abs=1e-5)
        assert r["mismatch/logprob_abs_diff_max"] < 1e-3 and "grad_norm" in r
    assert [r["step"] for r in records(tmp_path) if "eval/pass@1" in r] == [0, 2]
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "checkpoints" / "step_2" / "model.safetensors").exists()
    assert Path(summary["plot"]).stat().st_size > 0
    assert load_config(tmp_path / "config.yaml").distill.rule_reward_weight == 0.5


def test_on_policy_distillation_on_the_full_kl_runs_for_real(ray_session, tiny_checkpoint, memorizing_teacher,
                                                            tmp_path):
    """distill.kl=full: the teacher actor ships its top-k distribution at each position through Ray to the learner,
    whose loss takes the KL to it: logged each step, falling over a few steps toward a teacher the student is not."""
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path}", f"distill.teacher={memorizing_teacher}",
                      f"model.path={tiny_checkpoint}", "sft.steps=0", "trainer.steps=4", "trainer.eval_every=0",
                      "distill.kl=full", "distill.kl_top_k=64", "algorithm.lr=5e-3"], log=lambda *_: None)
    steps = [r for r in records(tmp_path) if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    kl = [r["distill/reverse_kl_full"] for r in steps]
    assert all(r["time/teacher_s"] > 0 and r["distill/advantage_mean"] == 0 and "distill/reverse_kl" in r
               for r in steps)
    assert kl[0] > 2 and max(kl[2:]) < kl[0] - 0.5, kl  # measured: 5.4 nats, then 4.2-4.4 (new samples each step)
    assert load_config(tmp_path / "config.yaml").distill.kl == "full"


def test_traces_distillation_from_a_checkpoint_runs_for_real(ray_session, memorizing_teacher, tmp_path):
    """The teacher answers the training problems through a rollout worker, the verifier keeps the correct answers
    once each in traces.jsonl, and the learner fine-tunes the student on them; evaluation and checkpoints as train."""
    messages = []
    summary = api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path}", f"distill.teacher={memorizing_teacher}",
                                "distill.mode=traces", "trainer.steps=2", "sft.steps=0"], log=messages.append)
    rows = [json.loads(line) for line in (tmp_path / TRACES_FILE).read_text().splitlines()]
    report = json.loads((tmp_path / TRACES_REPORT).read_text())["report"]
    problems = {p.id: p for p in load_problems(load_config(JOB, SMALL).data)[0]}
    assert rows and all(row["id"] in problems and row["answer"] == problems[row["id"]].answer for row in rows)
    assert all(f"\\boxed{{{row['answer']}}}" in row["completion"] for row in rows)  # what the verifier passed
    assert len({(row["id"], " ".join(row["completion"].split())) for row in rows}) == len(rows)  # each once
    assert report["answers"] + report["truncated"] == 8 * 4 and report["kept"] == len(rows)
    assert report["correct"] == report["kept"] + report["duplicates"]
    assert summary["traces"] == report and any("traces:" in m and "kept" in m for m in messages)
    logged = records(tmp_path)
    assert logged[0]["traces/kept"] == len(rows)
    steps = [r for r in logged if "sft/loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["sft/loss"] > 0 and "grad_norm" in r for r in steps)
    assert not any(key.startswith(("mismatch/", "actor/")) for r in steps for key in r)
    assert [r["step"] for r in logged if "eval/pass@1" in r] == [0, 2]
    assert (tmp_path / "checkpoints" / "step_2" / "model.safetensors").exists()
    assert Path(summary["plot"]).stat().st_size > 0


@pytest.mark.slow
def test_on_policy_distillation_resumes_on_the_same_next_batch(ray_session, tiny_checkpoint, tmp_path):
    straight = ["trainer.steps=3", "trainer.eval_every=0", f"distill.teacher={tiny_checkpoint}"]
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'a'}", *straight], log=lambda *_: None)
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'b'}", *straight, "trainer.steps=2"],
                log=lambda *_: None)
    messages = []
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'b'}", *straight], resume=True, log=messages.append)
    assert any("resumed from" in m and "step_2" in m for m in messages)
    expected = [r for r in records(tmp_path / "a") if r["step"] == 3]
    resumed = [r for r in records(tmp_path / "b") if r["step"] == 3]
    assert resumed[0]["batch/problem_ids_sha1"] == expected[0]["batch/problem_ids_sha1"]
    assert "distill/reverse_kl" in resumed[0]


@pytest.mark.slow
def test_traces_distillation_resumes_without_the_teacher_and_its_file_teaches_a_later_run(
        ray_session, memorizing_teacher, tmp_path, monkeypatch):
    traces = ["distill.mode=traces", "trainer.eval_every=0", "sft.steps=0"]
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'a'}", f"distill.teacher={memorizing_teacher}",
                      *traces, "trainer.steps=2"], log=lambda *_: None)
    made = (tmp_path / "a" / TRACES_FILE).read_text()
    messages = []
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'a'}", f"distill.teacher={memorizing_teacher}",
                      *traces, "trainer.steps=3"], resume=True, log=messages.append)
    assert any("made before with these settings" in m for m in messages)  # no teacher engine started again
    assert any("resumed from" in m and "step_2" in m for m in messages)
    assert (tmp_path / "a" / TRACES_FILE).read_text() == made
    assert [r["step"] for r in records(tmp_path / "a") if "sft/loss" in r] == [1, 2, 3]

    # the file as the teacher of a new run: read, verified again, the same traces
    api.distill(JOB, [*SMALL, f"trainer.output_dir={tmp_path / 'b'}", f"distill.teacher={tmp_path / 'a' / TRACES_FILE}",
                      *traces, "trainer.steps=1"], log=lambda *_: None)
    reread = [json.loads(line) for line in (tmp_path / "b" / TRACES_FILE).read_text().splitlines()]
    assert [(r["id"], r["completion"]) for r in reread] == [(r["id"], r["completion"]) for r in
                                                            map(json.loads, made.splitlines())]


# ------------------------------------------------------------------------------------------------ expert iteration

EXPERT = ["distill.mode=expert_iteration", "distill.search_method=self_consistency", "distill.search_options={n: 2}",
          "distill.search_budget=96", "distill.traces_per_problem=2", "distill.sft_steps_per_round=2", "sft.steps=0"]


@pytest.mark.parametrize("override, message", [
    ("distill.rounds=0", r"distill\.rounds: must be >= 1"),
    ("distill.sft_steps_per_round=0", r"distill\.sft_steps_per_round: must be >= 1"),
    ("distill.search_budget=0", r"distill\.search_budget: must be >= 1"),
    ("distill.search_method=astar", r"distill\.search_method: must be one of .*'mcts'.*got 'astar'"),
    ("distill.search_options={beam_width: 4}", r"distill\.search_options: self_consistency has no option beam_width"),
    ("distill.search_options={n: 0}", r"distill\.search_options: self_consistency option n must be >= 1"),
    ("distill.search_options={temperature: 0.5}", r"distill\.search_options: temperature: set elsewhere"),
])
def test_expert_iteration_settings_are_checked_when_the_config_loads(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(JOB, [*SMALL, *EXPERT, override])


@pytest.mark.parametrize("overrides, message", [
    (["distill.kl=reverse"], r"distill\.kl: must be one of 'sampled', 'full', got 'reverse'"),
    (["distill.kl=full", "distill.kl_top_k=-1"], r"distill\.kl_top_k: must be >= 0"),
    (["distill.kl_top_k=8"], r"distill\.kl_top_k: is read only with distill\.kl=full"),
    (["distill.kl=full", "distill.mode=traces"], r"distill\.kl: is read only in distill\.mode=on_policy"),
])
def test_on_policy_kl_settings_are_checked_when_the_config_loads(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(JOB, [*SMALL, *overrides])


def test_expert_iteration_needs_no_teacher_and_its_schedule_spans_every_round(tmp_path):
    config = load_config(JOB, [*SMALL, *EXPERT, "distill.teacher=null", "distill.rounds=3",
                               f"trainer.output_dir={tmp_path}"])
    check_distill(config)  # no teacher: nothing to refuse
    assert ExpertIterationDistiller(config).learner_steps() == 3 * 2
    assert len({round_seed(0, r) for r in range(1, 4)} | {round_seed(1, r) for r in range(1, 4)}) == 6


def fake_round_driver(tmp_path, traces: list, sft_steps: int = 3):
    """An ExpertIterationDistiller whose search finds `traces` and whose learner is a recorder: the round's logic
    alone, no actor."""
    config = load_config(JOB, [*SMALL, *EXPERT, f"distill.sft_steps_per_round={sft_steps}", "sft.batch_size=2",
                               f"trainer.output_dir={tmp_path}"])
    driver, learned, messages = ExpertIterationDistiller(config, log=lambda m: messages.append(m)), [], []
    driver.search_traces = lambda round_number: (list(traces), {"searches": 8, "correct": len(traces),
                                                                "kept": len(traces), "search_accuracy": 0.25})

    def sft_step(batch, step):
        learned.append(batch)
        return {"sft/loss": 1.0 / (step + 1), "sft/epoch": (step + 1) * len(batch) / len(traces),
                "time/learn_s": 0.5, "grad_norm": 1.0}

    driver.sft_step = sft_step
    return driver, learned, messages


def test_a_round_fine_tunes_on_its_traces_for_sft_steps_per_round_steps(tmp_path):
    traces = [f"trace {i}" for i in range(4)]
    driver, learned, _ = fake_round_driver(tmp_path, traces)
    metrics = driver.run_round(1)
    assert driver.traces == traces and len(learned) == 3 and all(len(batch) == 2 for batch in learned)
    assert sorted(learned[0] + learned[1]) == traces  # the first epoch goes through every trace once
    assert metrics["traces/kept"] == 4 and metrics["traces/search_accuracy"] == 0.25
    assert metrics["sft/loss_first"] == 1.0 and metrics["sft/loss_last"] == pytest.approx(1 / 3)
    assert metrics["sft/epoch"] == pytest.approx(1.5) and metrics["time/learn_s"] == pytest.approx(1.5)
    assert metrics["time/search_s"] >= 0


def test_a_round_whose_searches_all_fail_learns_nothing_and_says_so(tmp_path):
    driver, learned, messages = fake_round_driver(tmp_path, [])
    metrics = driver.run_round(2)
    assert learned == [] and "sft/loss" not in metrics and metrics["traces/kept"] == 0
    assert any("round 2: none of the 8 searches answered right" in m for m in messages)


def test_ctrl_c_of_expert_iteration_says_after_which_round_it_stopped(tmp_path):
    driver = ExpertIterationDistiller(load_config(JOB, [*SMALL, *EXPERT, "distill.rounds=3",
                                                        f"trainer.output_dir={tmp_path}"]))
    (tmp_path / "config.yaml").write_text("")
    driver.step = 2
    message = str(driver.interrupted())
    assert message.startswith("run stopped after round 2 of 3; it has no checkpoint yet")
    assert message.endswith(f"reasonrl distill {tmp_path / 'config.yaml'} --resume")


def test_a_round_line_says_what_was_kept_and_the_three_held_out_scores():
    record = {"step": 2, "traces/searches": 16, "traces/search_accuracy": 0.5, "traces/kept": 7, "sft/loss": 0.4,
              "sft/loss_first": 0.5, "sft/loss_last": 0.3, "eval/greedy_pass@1": 0.25, "eval/pass@1": 0.2,
              "eval/search_pass@1": 0.5}
    assert round_line(record, 3) == ("round 2/3  searches 16 (accuracy 0.500) -> 7 traces kept  sft loss 0.500 -> "
                                     "0.300  | held-out greedy 0.250  sampled 0.200  search 0.500")


def test_expert_iteration_runs_for_real(ray_session, memorizing_teacher, tmp_path):
    """A policy that knows the training problems' solutions searches them on a rollout worker; the verifier keeps
    the correct answers (rounds/round_N.jsonl), the learner fine-tunes on them, and every round is evaluated
    greedily, by sampling and by the search; the run folder is train's, one record and one checkpoint a round (the
    slow kill -9 test below runs three rounds)."""
    messages = []
    summary = api.distill(JOB, [*SMALL, *EXPERT, f"model.path={memorizing_teacher}", "distill.teacher=null",
                                "distill.rounds=1", f"trainer.output_dir={tmp_path}"], log=messages.append)
    logged = records(tmp_path)
    assert [r["step"] for r in logged] == [0, 1]
    problems = {p.id: p for p in load_problems(load_config(JOB, SMALL).data)[0]}
    for r in logged:
        for name in ("eval/greedy_pass@1", "eval/pass@1", "eval/search_pass@1"):
            assert 0 <= r[name] <= 1
        assert r["eval/search_gain"] == pytest.approx(r["eval/search_pass@1"] - r["eval/greedy_pass@1"])
        assert 0 < r["eval/search_policy_tokens"] <= 96 + 48  # the budget, passed by one call's tokens at most
    for r in logged[1:]:
        rows = [json.loads(line) for line in (tmp_path / ROUNDS / f"round_{r['step']}.jsonl").read_text().splitlines()]
        assert r["traces/searches"] == 8 * 2 and r["traces/kept"] == len(rows) > 0  # it knows them: some are right
        assert r["traces/correct"] == r["traces/kept"] + r["traces/duplicates"]
        assert all(row["id"] in problems and f"\\boxed{{{row['answer']}}}" in row["completion"] for row in rows)
        assert r["sft/loss"] > 0 and r["time/search_s"] > 0 and r["time/learn_s"] > 0
    assert any(m.startswith("round 1/1") and "traces kept" in m for m in messages)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_1"]
    assert (tmp_path / "config.yaml").is_file() and Path(summary["plot"]).stat().st_size > 0
    assert summary["rounds"] == 1 and summary["eval_after"]["step"] == 1


@pytest.mark.slow
def test_expert_iteration_killed_with_sigkill_resumes_after_its_last_whole_round(memorizing_teacher, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rl.cli", "distill", str(JOB), *SMALL, *EXPERT, f"model.path={memorizing_teacher}",
               "distill.teacher=null", "distill.rounds=3", f"trainer.output_dir={out}"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    job = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while not (out / "checkpoints" / "step_1").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(1)
    assert (out / "checkpoints" / "step_1").exists(), "the job did not finish its first round"
    os.killpg(job.pid, signal.SIGKILL)  # the driver and everything it started (Ray, vLLM, reward workers)
    job.wait()
    done = subprocess.run([*command, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stdout + done.stderr
    assert [r["step"] for r in records(out)] == [0, 1, 2, 3]  # every round once, the start's evaluation kept
    assert (out / "checkpoints" / "step_3").exists() and (out / ROUNDS / "round_3.jsonl").exists()


# ------------------------------------------------------------------------------------------------ with tools


def test_every_mode_takes_tools_and_a_traces_teacher_that_cannot_write_a_call_is_refused(tmp_path, tiny_checkpoint,
                                                                                        monkeypatch):
    for mode in ("on_policy", "traces", "expert_iteration"):
        check_distill(small_config(tmp_path / "run", tiny_checkpoint, f"distill.mode={mode}", *TOOLS))
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_checkpoint, teacher)
    tokenizer = load_tokenizer(teacher)
    monkeypatch.setattr(type(tokenizer), "decode", lambda self, ids, **_: "?")  # writes nothing back as it read it
    monkeypatch.setattr(rl.distill, "load_tokenizer", lambda path: tokenizer)
    with pytest.raises(ConfigError, match="distill.teacher .*teacher's tokenizer"):
        check_distill(small_config(tmp_path / "run", teacher, "distill.mode=traces", *TOOLS))


def test_a_trace_is_the_whole_exchange_and_is_kept_only_for_an_answer_the_teacher_wrote():
    problem = Problem("t-1", "What is 466 * 85 + 3678?", "43288", None, "synthetic_tools", 2)
    called = ("<think>\n```python\nprint(466 * 85 + 3678)\n```\n" + OUTPUT_OPEN + "43288\n```\n</think>\n"
              "The answer is \\boxed{43288}.")
    printed = ("<think>\n```python\nprint(chr(92) + 'boxed{43288}')\n```\n" + OUTPUT_OPEN + "\\boxed{43288}\n"
               "```\n</think>\nI do not know.")
    assert policy_text(called) == ("<think>\n```python\nprint(466 * 85 + 3678)\n```\n</think>\n"
                                   "The answer is \\boxed{43288}.")
    assert "boxed" not in policy_text(printed).replace("'boxed{43288}'", "")  # the program's text, not its output
    rows, counts = verify_traces([problem], [[called, printed]], "teacher/", timeout_s=5.0)
    assert [row["completion"] for row in rows] == [called]  # with the output, which fine-tuning masks
    assert counts == {"correct": 1, "kept": 1, "duplicates": 0, "problems_with_trace": 1}


def test_on_policy_distillation_with_tools_scores_only_the_students_own_tokens(ray_session, tool_teacher,
                                                                               tmp_path):
    """The student is its own teacher and calls python: the reverse KL is zero up to the learner-vs-vLLM
    mismatch, which it would not be if the tools' output counted as tokens the student sampled."""
    api.distill(JOB, [*SMALL, *TOOLS, f"trainer.output_dir={tmp_path}", f"model.path={tool_teacher}",
                      f"distill.teacher={tool_teacher}", "sft.steps=0", "trainer.steps=1"], log=lambda *_: None)
    (step,) = [r for r in records(tmp_path) if "reward/mean" in r]
    assert step["tools/calls_per_sample"] > 0.2 and step["tools/observation_token_frac"] > 0.05
    assert abs(step["distill/reverse_kl"]) < 1e-3 and step["mismatch/logprob_abs_diff_max"] < 1e-3


def test_traces_distillation_with_tools_runs_for_real(ray_session, tool_teacher, tmp_path):
    """The teacher answers through its tool; a kept trace holds the call's output (masked when the student is
    fine-tuned on it) and states the answer in the teacher's own words."""
    summary = api.distill(JOB, [*SMALL, *TOOLS, f"trainer.output_dir={tmp_path}", f"distill.teacher={tool_teacher}",
                                "distill.mode=traces", "trainer.steps=2", "sft.steps=0"], log=lambda *_: None)
    rows = [json.loads(line) for line in (tmp_path / TRACES_FILE).read_text().splitlines()]
    with_output = [row for row in rows if OUTPUT_OPEN in row["completion"]]
    assert with_output
    assert all(f"\\boxed{{{row['answer']}}}" in policy_text(row["completion"]) for row in rows)
    assert json.loads((tmp_path / TRACES_REPORT).read_text())["key"]["tools"]["tools"] == ["python"]
    steps = [r for r in records(tmp_path) if "sft/loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["sft/loss"] > 0 for r in steps)
    assert "eval/tool_calls_per_answer" in summary["eval_after"]  # the student answers with the tool too


def test_expert_iteration_with_tools_searches_with_them_and_keeps_their_outputs(ray_session, tool_teacher, tmp_path):
    api.distill(JOB, [*SMALL, *TOOLS, *EXPERT, f"trainer.output_dir={tmp_path}", f"model.path={tool_teacher}",
                      "distill.teacher=null", "distill.rounds=1"], log=lambda *_: None)
    rows = [json.loads(line) for line in (tmp_path / ROUNDS / "round_1.jsonl").read_text().splitlines()]
    assert any(OUTPUT_OPEN in row["completion"] for row in rows)
    assert all(f"\\boxed{{{row['answer']}}}" in policy_text(row["completion"]) for row in rows)
    assert [r["step"] for r in records(tmp_path) if "eval/search_pass@1" in r] == [0, 1]
