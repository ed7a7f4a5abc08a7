"""The GRPO job for real: Ray actors, vLLM rollouts, the rewards pool, checkpoints, resume and faults."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from model import load_pretrained
from rl.config import load_config
from rl.rewarding import RewardWorker
from rl.trainer import GRPOTrainer

REPO = Path(__file__).resolve().parents[2]
SMALL = ["sft.steps=8", "data.levels=[1]", "data.num_train=200", "data.num_eval=6", "rollout.prompts_per_step=4",
         "rollout.group_size=4", "rollout.max_new_tokens=32", "rollout.eval_samples=2", "trainer.eval_every=2",
         "trainer.save_every=1", "logging.progress=false", "logging.tensorboard=false", "reward.num_workers=1"]


def small_config(output_dir, *extra):
    return load_config(REPO / "experiments" / "tiny_arith.yaml",
                       [*SMALL, f"trainer.output_dir={output_dir}", *extra])


def records(output_dir):
    return [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]


def test_grpo_job_runs_end_to_end_and_resumes_with_the_same_next_batch(ray_session, tmp_path):
    straight = GRPOTrainer(small_config(tmp_path / "a", "trainer.steps=3"), log=lambda *_: None)
    try:
        summary = straight.fit()
    finally:
        straight.shutdown()
    logged = records(tmp_path / "a")
    steps = [r for r in logged if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("reward/mean", "reward/math_accuracy/mean", "reward/format/mean", "accuracy", "completion/length_mean",
                "actor/clip_frac", "entropy", "grad_norm", "mismatch/logprob_abs_diff_max",
                "throughput/rollout_tokens_per_s", "throughput/learner_tokens_per_s", "time/generate_s",
                "time/reward_s", "time/learn_s", "time/weight_sync_s"):
        assert all(key in r for r in steps if r["groups/kept_frac"] > 0), key
    # learner and vLLM agree on the sampled tokens' logprobs (fp32): about 1e-6 here
    assert all(r["mismatch/logprob_abs_diff_max"] < 1e-3 for r in steps if "mismatch/logprob_abs_diff_max" in r)
    assert [r["step"] for r in logged if "eval/pass@1" in r] == [0, 2, 3]
    assert Path(summary["plot"]).stat().st_size > 0
    assert (tmp_path / "a" / "checkpoints" / "step_3" / "model.safetensors").exists()
    samples = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert {r["step"] for r in samples} == {1, 2, 3} and all("completion" in r for r in samples)

    # the same job stopped after step 2 and resumed: step 3 draws the same prompts as the straight run
    first = GRPOTrainer(small_config(tmp_path / "b", "trainer.steps=2"), log=lambda *_: None)
    try:
        first.fit()
    finally:
        first.shutdown()
    messages = []
    resumed = GRPOTrainer(small_config(tmp_path / "b", "trainer.steps=3", "trainer.resume=true"), log=messages.append)
    try:
        resumed.fit()
    finally:
        resumed.shutdown()
    assert any("resumed from" in m and "step_2" in m for m in messages)
    step3 = [r for r in records(tmp_path / "b") if r["step"] == 3 and "reward/mean" in r]
    assert step3[0]["batch/problem_ids_sha1"] == steps[2]["batch/problem_ids_sha1"]


def test_one_step_off_policy_samples_each_batch_during_the_last_update_and_resumes_on_the_same_prompts(
        ray_session, tmp_path):
    """Generation of step t+1 is sent before the learner takes step t: every batch after the first comes from the
    policy one update behind (logged, and corrected by TIS); a checkpoint taken with rollouts in flight keeps the
    prompt cursor from before them, so a resumed run draws those prompts again."""
    off_policy = ["trainer.steps=4", "trainer.eval_every=0", "trainer.one_step_off_policy=true",
                  "algorithm.rollout_correction_cap=2.0", "algorithm.drop_zero_variance_groups=false"]
    straight = GRPOTrainer(small_config(tmp_path / "a", *off_policy), log=lambda *_: None)
    try:
        straight.fit()
    finally:
        straight.shutdown()
    steps = [r for r in records(tmp_path / "a") if "reward/mean" in r]
    assert [r["rollout/policy_lag"] for r in steps] == [0, 1, 1, 1]
    assert all(r["time/learn_s"] > 0 and "mismatch/kl" in r for r in steps)

    interrupted = GRPOTrainer(small_config(tmp_path / "b", *off_policy), log=lambda *_: None)
    try:
        interrupted.setup()
        for _ in range(2):
            interrupted.train_step()
            interrupted.step += 1
        assert interrupted.pending is not None  # step 3's rollouts are in flight
        interrupted.save_checkpoint()
    finally:
        interrupted.shutdown()
    resumed = GRPOTrainer(small_config(tmp_path / "b", *off_policy, "trainer.resume=true"), log=lambda *_: None)
    try:
        resumed.fit()
    finally:
        resumed.shutdown()
    after_resume = [r for r in records(tmp_path / "b") if "reward/mean" in r and r["step"] > 2]
    assert [r["batch/problem_ids_sha1"] for r in after_resume] == [r["batch/problem_ids_sha1"] for r in steps[2:]]
    assert [r["rollout/policy_lag"] for r in after_resume] == [0, 1]  # the first step after resume is on-policy


def test_skipping_predicted_zero_variance_prompts_draws_past_them_in_the_second_epoch_and_resumes_alike(
        ray_session, tmp_path):
    """8 training problems, 4 a step: steps 3-4 revisit them. The barely warmed policy answers nothing right, so
    every group scores alike (all 0), each revisited prompt has a streak and is kept with probability about 0.5:
    some are skipped, the draw goes on to the next ones, and a run resumed after step 3 draws step 4's prompts as
    the straight run did. With trainer.save_every=0, each run's only checkpoint is its last step's, and the resume
    starts from it."""
    skipping = ["data.num_train=8", "trainer.eval_every=0", "rollout.skip_zero_variance_prompts=true",
                "reward.functions=[math_accuracy]", "reward.weights=[1.0]", "trainer.save_every=0"]
    straight = GRPOTrainer(small_config(tmp_path / "a", "trainer.steps=4", *skipping), log=lambda *_: None)
    try:
        straight.fit()
    finally:
        straight.shutdown()
    steps = [r for r in records(tmp_path / "a") if "reward/mean" in r]
    assert [r["prompts/skipped"] for r in steps[:2]] == [0, 0]  # first epoch: nothing is known yet
    assert [r["prompts/seen_before"] for r in steps[:2]] == [0, 0]
    assert [r["prompts/zero_variance_frac"] for r in steps[:2]] == [1.0, 1.0]  # the premise: nothing solved yet
    assert steps[2]["prompts/skipped"] + steps[3]["prompts/skipped"] > 0
    assert all(r["prompts/seen_before"] > 0 for r in steps[2:])

    first = GRPOTrainer(small_config(tmp_path / "b", "trainer.steps=3", *skipping), log=lambda *_: None)
    try:
        summary = first.fit()
    finally:
        first.shutdown()
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step_3"]
    assert summary["checkpoint"] == str(tmp_path / "b" / "checkpoints" / "step_3")
    resumed = GRPOTrainer(small_config(tmp_path / "b", "trainer.steps=4", "trainer.resume=true", *skipping),
                          log=lambda *_: None)
    try:
        resumed.fit()
    finally:
        resumed.shutdown()
    step4 = [r for r in records(tmp_path / "b") if r["step"] == 4 and "reward/mean" in r]
    assert step4[0]["batch/problem_ids_sha1"] == steps[3]["batch/problem_ids_sha1"]
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step_3", "step_4"]
    assert step4[0]["prompts/skipped"] == steps[3]["prompts/skipped"]


def test_two_learners_train_one_policy_in_the_grpo_job(ray_session, tmp_path):
    """FSDP over two CPU learner actors inside the real job: the rollout workers get the gathered weights (the
    learner/vLLM logprob mismatch stays at float noise after each sync) and the checkpoint is complete."""
    trainer = GRPOTrainer(small_config(tmp_path, "trainer.steps=2", "trainer.eval_every=0", "trainer.num_learners=2",
                                       "algorithm.mini_batches=2", "sft.steps=40"),  # warm enough for reward variance
                          log=lambda *_: None)
    try:
        trainer.fit()
        assert len(set(trainer.learners.node_ids())) == 1 and len(trainer.learners.actors) == 2
    finally:
        trainer.shutdown()
    steps = [r for r in records(tmp_path) if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    learned = [r for r in steps if "grad_norm" in r]
    assert learned, "no group had reward variance: nothing was learned"
    assert all(r["mismatch/logprob_abs_diff_max"] < 1e-3 for r in learned)
    assert (tmp_path / "checkpoints" / "step_2" / "model.safetensors").exists()


@pytest.mark.slow  # 2 CPU-minutes: 40 warm-start steps and emulated FP8 GEMMs
def test_a_fp8_learner_in_the_grpo_job_shows_what_fp8_adds_to_the_rollout_mismatch(ray_session, tmp_path):
    """trainer.precision=fp8 (emulated on the CPU) against fp32 vLLM rollouts: the mismatch metrics report the FP8
    learner's distance from the engine (fp32 learners: ~1e-6), truncated IS covers it, and the checkpoint stays
    plain."""
    trainer = GRPOTrainer(small_config(tmp_path, "trainer.steps=2", "trainer.eval_every=0", "trainer.precision=fp8",
                                       "algorithm.rollout_correction_cap=2.0", "sft.steps=40"),
                          log=lambda *_: None)
    try:
        trainer.fit()
    finally:
        trainer.shutdown()
    learned = [r for r in records(tmp_path) if "grad_norm" in r]
    assert learned, "no group had reward variance: nothing was learned"
    assert all(1e-3 < r["mismatch/logprob_abs_diff_mean"] < 0.2 for r in learned), learned
    saved = load_pretrained(tmp_path / "checkpoints" / "step_2")
    assert all(type(m).__name__ != "Fp8Linear" for m in saved.modules())


def test_a_killed_rollout_worker_is_replaced_and_the_run_goes_on(ray_session, tmp_path):
    trainer = GRPOTrainer(small_config(tmp_path, "trainer.steps=2", "trainer.eval_every=0"), log=lambda *_: None)
    messages = []
    trainer.log = messages.append
    try:
        trainer.setup()
        trainer.train_step()
        trainer.step = 1
        ray_session.kill(trainer.workers[0])
        metrics = trainer.train_step()
        assert any("rollout worker 0 died" in m for m in messages)
        assert metrics["reward/mean"] >= 0 and metrics["completion/length_mean"] > 0
        # the replacement serves the learner's current weights, not the initial ones
        if "mismatch/logprob_abs_diff_max" in metrics:
            assert metrics["mismatch/logprob_abs_diff_max"] < 1e-3
    finally:
        trainer.shutdown()


def test_a_reward_function_that_raises_scores_zero_with_the_reason():
    worker = RewardWorker(["math_accuracy", "json:loads"], [1.0, 1.0])  # json.loads(list, answer=...) raises
    scored = worker.score(["<think>\n2 + 2 = 4\n</think>\nThe answer is \\boxed{4}.", "no answer"],
                          {"answer": ["4", "4"]})
    assert scored["components"]["math_accuracy"] == [1.0, 0.0]
    assert scored["components"]["json:loads"] == [0.0, 0.0]
    assert "TypeError" in scored["errors"]["json:loads"]
    assert scored["total"] == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown reward function 'nope'"):
        RewardWorker(["nope"])


@pytest.mark.slow
def test_kill_9_of_the_whole_job_then_resume_loses_only_the_steps_since_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rl.cli", "train", str(REPO / "experiments" / "tiny_arith.yaml"), *SMALL,
               "trainer.steps=6", "trainer.save_every=2", "trainer.eval_every=0", f"trainer.output_dir={out}"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    job = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while not (out / "checkpoints" / "step_2").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(1)
    assert (out / "checkpoints" / "step_2").exists(), "the job did not reach its first checkpoint"
    os.killpg(job.pid, signal.SIGKILL)  # the driver and everything it started (Ray, vLLM, reward workers)
    job.wait()
    done = subprocess.run([*command, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stdout + done.stderr
    steps = sorted({r["step"] for r in records(out) if "reward/mean" in r})
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (out / "checkpoints" / "step_6").exists()


@pytest.mark.slow
def test_ctrl_c_says_where_the_run_stopped_and_its_command_resumes_with_every_step_logged_once(tmp_path):
    """Ctrl-C of `reasonrl train` (SIGINT to the whole foreground group, Ray's processes too, as a terminal sends it)
    ends in two lines, no traceback and no partial checkpoint; the command they give resumes the run from its last
    checkpoint, with its warm start, and metrics.jsonl and samples.jsonl hold every step's records once."""
    out = tmp_path / "run"
    # `reasonrl train`, with Python's Ctrl-C handler even where pytest runs as a shell's background job (whose
    # children inherit SIGINT ignored), as in a terminal.
    reasonrl = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from rl.cli import main; sys.exit(main(sys.argv[1:]))"]
    command = [*reasonrl, "train", str(REPO / "experiments" / "tiny_arith.yaml"), *SMALL, "trainer.steps=12",
               "trainer.save_every=2", "trainer.eval_every=0", f"trainer.output_dir={out}"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    job = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 400
    while time.time() < deadline and job.poll() is None and not (
            (out / "metrics.jsonl").exists() and any(r["step"] >= 3 for r in records(out))):
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr[-3000:]
    said = [line for line in stderr.splitlines() if "Started a local Ray instance" not in line]
    assert len(said) == 2, stderr[-3000:]
    stopped = re.fullmatch(r"run stopped after step (\d+) of 12; a resumed run continues from its checkpoint "
                           + re.escape(str(out / "checkpoints")) + r"/step_(\d+)\.", said[0])
    assert stopped and 2 <= int(stopped[2]) <= int(stopped[1]) and int(stopped[2]) % 2 == 0, said[0]
    assert said[1] == f"resume with: reasonrl train {out / 'config.yaml'} --resume"
    assert all(p.name.startswith("step_") for p in (out / "checkpoints").iterdir())

    resume = [*reasonrl, *shlex.split(said[1].removeprefix("resume with: reasonrl "))]
    done = subprocess.run(resume, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {out / 'checkpoints'}/step_{stopped[2]} at step {stopped[2]}" in done.stdout
    assert "SFT warm start" not in done.stdout  # the cached warm start is reused
    assert [r["step"] for r in records(out)] == list(range(1, 13))
    samples = Counter(json.loads(line)["step"] for line in (out / "samples.jsonl").read_text().splitlines())
    assert sorted(samples) == list(range(1, 13)) and set(samples.values()) == {4}


@pytest.mark.slow
def test_two_node_ray_cluster_rollout_and_learner_on_different_nodes(tmp_path):
    """A real two-node Ray cluster on this machine; the job joins it through ray_address (--ray-address)."""
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    script = textwrap.dedent(f"""
        import json, os, sys
        os.environ["RAY_TMPDIR"] = {ray_tmp!r}
        os.environ["RAY_AUTH_MODE"] = "disabled"
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1, "include_dashboard": False,
                                                                "resources": {{"learner_node": 1}}}})
        cluster.add_node(num_cpus=1, resources={{"rollout_node": 1}})
        cluster.wait_for_nodes()
        from rl.config import load_config
        from rl.trainer import GRPOTrainer
        overrides = {SMALL!r} + ["trainer.steps=2", "trainer.eval_every=0", "trainer.output_dir={tmp_path / 'run'}",
                                 "ray.address=" + cluster.address,
                                 "ray.rollout_resources={{rollout_node: 1}}", "ray.learner_resources={{learner_node: 1}}"]
        trainer = GRPOTrainer(load_config({str(REPO / "experiments" / "tiny_arith.yaml")!r}, overrides))
        summary = trainer.fit()
        import ray
        placement = {{"rollout": ray.get([w.node_id.remote() for w in trainer.workers]),
                     "learner": trainer.learners.node_ids()}}
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        trainer.shutdown()  # it joined the cluster itself, so it disconnects too
        cluster.shutdown()
        print("RESULT", json.dumps({{"placement": placement, "nodes": nodes, "steps": summary["steps"]}}))
    """)
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT", 1)[1])
    assert result["steps"] == 2 and len(set(result["nodes"])) == 2
    assert result["placement"]["rollout"][0] != result["placement"]["learner"][0]


@pytest.mark.parametrize("gpus, learners, setting, expected", [
    (0, 1, "auto", "cpu"), (3, 1, "auto", "cuda"), (3, 2, "auto", "cpu"), (4, 2, "auto", "cuda"),
    (4, 2, "cpu", "cpu"), (3, 2, "cuda", "2 of them go to the rollout workers")])
def test_learner_device_leaves_the_rollout_workers_their_gpus(monkeypatch, tmp_path, gpus, learners, setting,
                                                              expected):
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": float(gpus)})
    trainer = GRPOTrainer(small_config(tmp_path, "rollout.num_workers=2", f"trainer.num_learners={learners}",
                                       f"trainer.learner_device={setting}"))
    if expected in ("cpu", "cuda"):
        assert trainer.learner_device() == expected
    else:
        with pytest.raises(RuntimeError, match=expected):
            trainer.learner_device()


def test_code_grpo_job_runs_programs_in_the_sandbox_and_grades_held_out_code(ray_session, tmp_path):
    """tiny_code.yaml, shrunk: every column of the training rows reaches code_execution, programs run in the real
    sandbox, and the held-out evaluation grades code by running its tests."""
    config = load_config(REPO / "experiments" / "tiny_code.yaml",
                         [*SMALL, "data.levels=[1]", f"trainer.output_dir={tmp_path}", "trainer.steps=1",
                          "trainer.eval_every=1", "sft.steps=4", "rollout.max_new_tokens=48",
                          "reward.functions=[code_execution, code_format]", "reward.weights=[1.0, 0.2]"])
    trainer = GRPOTrainer(config, log=lambda *_: None)
    try:
        trainer.fit()
    finally:
        trainer.shutdown()
    logged = records(tmp_path)
    step = next(r for r in logged if "reward/mean" in r)
    assert "reward/code_execution/mean" in step and "reward/code_format/mean" in step
    assert step["time/reward_s"] > 0
    assert [r["step"] for r in logged if "eval/pass@1" in r] == [0, 1]


def test_code_rewards_read_the_tests_column_and_run_the_programs():
    worker = RewardWorker(["code_execution", "code_format"], [1.0, 0.2])
    right = "<think>\n1. add 2\n</think>\n```python\ndef solve(n):\n    return n + 2\n```"
    wrong = "<think>\n1. add 2\n</think>\n```python\ndef solve(n):\n    return n + 3\n```"
    tests = "assert solve(1) == 3\nassert solve(5) == 7"
    scored = worker.score([right, wrong, "no code at all"], {"tests": [tests] * 3, "entry_point": ["solve"] * 3})
    assert scored["components"]["code_execution"] == [1.0, 0.0, 0.0]
    assert scored["components"]["code_format"][:2] == [1.0, 1.0] and scored["components"]["code_format"][2] == 0.0
    assert scored["total"][0] == pytest.approx(1.2) and scored["total"][1] == pytest.approx(0.2)
