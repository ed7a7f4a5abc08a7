"""Distillation (`reasonrl distill`): what a stronger policy knows, taught to the student (model.path), in the run
folder `train` writes (config.yaml, metrics.jsonl, checkpoints, resume, the plot).

Three modes (`distill.mode`), each a driver built on GRPOTrainer:
- on_policy (`OnPolicyDistiller`): GRPO's loop with the teacher as the signal. The student samples as in GRPO; a
  teacher actor (rl/teacher.py: forward only, one forward per batch) scores every sampled token; each token's
  advantage is teacher logprob - student logprob (rl.algos' `reverse_kl` estimator), plus, with
  distill.rule_reward_weight, the rule reward's GRPO advantage. Loss, mask and importance-sampling correction are
  the algorithm section's, as in GRPO; the per-token reverse KL to the teacher is logged each step. With
  distill.kl=full the teacher hands over its whole next-token distribution at each position instead, and the
  learner adds the exact KL to it to the loss (rl.algos.reverse_kl_to_teacher, GKD's signal).
- traces (`TracesDistiller`): the teacher (a checkpoint folder sampled through rollout workers, or a JSON Lines file
  of anyone's traces) answers the training problems, distill.traces_per_problem times each; the verifier (the
  rewards grader training and evaluation use, evals.grading) keeps the correct answers, each distinct one once
  (rejection sampling), in the run folder's traces.jsonl, which a later run can take as its teacher. The learner
  then fine-tunes the student on them: rl/sft.py's batches, the `sft` loss (negative log-likelihood).
- expert_iteration (`ExpertIterationDistiller`): no teacher but the student's own search. Rounds of: the policy
  searches the training problems on the rollout workers (`RolloutWorker.search`), the same verifier keeps the
  correct answers once each, and the learner fine-tunes the policy on them as traces does; after every round the
  held-out problems are answered greedily, by sampling and by the search, so what the search adds to the policy
  (and how much of it moves into the policy) shows round by round.

With rollout.tools, every mode distils a policy that calls tools: on_policy's rollouts are the student's multi-turn
tool rollouts (rl/tool_rollout.py), the teacher reads the tools' outputs as context and scores only the student's own
tokens; traces' teacher answers with the tools and expert_iteration's search calls them (search/tools.py). A trace
then holds each call's output, which fine-tuning masks as an observation (rl/sft.py), and the verifier reads only
the policy's own words around them (policy_text), so no trace is kept for an answer that only a tool printed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import ray
import torch

from evals.grading import grade_outputs
from evals.predictions import read_predictions
from model import decode_completion, load_tokenizer
from model.checkpoint import check_checkpoint
from model.config import ConfigError
from problems import Problem, build_prompt, load_problems
from rewards.tools import split_observations
from rl import algos
from rl.batch import LearnerBatch, RolloutBatch
from rl.evaluate import SEARCH_CONCURRENCY, evaluate, evaluate_with_search
from rl.learner_settings import LearnerSettings
from rl.logger import plot_run
from rl.ray_cluster import join_or_start
from rl.rollout import generate_on_workers, search_on_workers
from rl.sft import sft_batch
from rl.teacher import check_teacher_vocabulary, teacher_actor
from rl.tool_rollout import ToolSettings, check_tool_tokenizer
from rl.trainer import CHECKPOINTS, GRPOTrainer, prepare_output_dir, timed

TRACES_FILE = "traces.jsonl"  # the kept traces, one a line: id, problem, answer, completion, teacher
TRACES_REPORT = "traces.json"  # what made them (the cache key) and their counts
ON_POLICY_ESTIMATOR = "reverse_kl"  # rl.algos' registry
TRACES_SUFFIXES = (".jsonl", ".json")  # what a traces file teacher may be called
ROUNDS = "rounds"  # expert_iteration: the run folder's subfolder of each round's kept traces (round_N.jsonl)
ROUND_CURVES = {"eval/greedy_pass@1": "held-out greedy pass@1", "eval/pass@1": "held-out sampled pass@1",
                "eval/search_pass@1": "held-out search pass@1"}  # expert_iteration's plot


def check_distill(config) -> None:
    """The distill section's mistakes that need the file system, before anything starts: no teacher named, a
    missing or damaged teacher (a file where a folder is needed), (on_policy) a teacher whose tokenizer or
    vocabulary is not the student's, and (traces, with rollout.tools) a teacher whose tokenizer cannot write the
    call format.

    Raises:
        ConfigError: naming distill.teacher.
    """
    teacher, mode = config.distill.teacher, config.distill.mode
    if mode == "expert_iteration":  # no teacher: the student's own search
        return
    if teacher is None:
        raise ConfigError("distill.teacher: name the teacher: a checkpoint folder, or in distill.mode=traces a JSON "
                          "Lines file of traces")
    if Path(teacher).is_file():
        if mode != "traces":
            raise ConfigError(f"distill.teacher: {teacher} is a file: {mode} distillation needs the teacher's "
                              "checkpoint folder (a file of traces teaches in distill.mode=traces)")
        if Path(teacher).suffix not in TRACES_SUFFIXES:
            raise ConfigError(f"distill.teacher: {teacher} is neither a checkpoint folder nor a JSON Lines file of "
                              "traces (*.jsonl)")
        return
    if not Path(teacher).exists():
        raise ConfigError(f"distill.teacher: {teacher}: no such checkpoint folder or traces file")
    try:
        check_checkpoint(teacher)
    except ConfigError as error:
        raise ConfigError(f"distill.teacher: {error}") from None
    if mode == "on_policy":
        check_teacher_vocabulary(teacher, config.model.path)
    else:  # traces: the teacher answers with the rollout's tools, in its own tokenizer
        check_tool_tokenizer(config.rollout, load_tokenizer(teacher), f"distill.teacher {teacher}'s tokenizer")


# ------------------------------------------------------------------------------------------------ on-policy


class OnPolicyDistiller(GRPOTrainer):
    """GRPO's driver whose advantage is the teacher's per-token signal (distill.mode=on_policy)."""

    command = "distill"  # the `reasonrl` command that runs this driver

    def setup(self) -> None:
        check_distill(self.config)  # before the warm start or any actor
        super().setup()
        self.teacher = self.start_teacher()

    def start_teacher(self):
        """The teacher actor: on a GPU of its own when the cluster has one left over by the rollout workers and the
        learners, else on the CPUs, which it shares with the other stages (they take turns)."""
        config = self.config
        gpus = ray.cluster_resources().get("GPU", 0)
        taken = config.rollout.num_workers + (config.trainer.num_learners if self.learner_device() == "cuda" else 0)
        on_gpu = gpus - taken >= 1
        teacher = teacher_actor(num_gpus=1 if on_gpu else 0).remote(
            config.distill.teacher, temperature=config.rollout.temperature, device="cuda" if on_gpu else "cpu",
            precision=config.trainer.precision, threads=os.cpu_count() or 1, pack=config.trainer.pack_sequences,
            micro_batch_positions=config.trainer.micro_batch_positions)
        ray.get(teacher.ready.remote())
        return teacher

    def samples_to_learn(self, batch: RolloutBatch, flat: torch.Tensor) -> torch.Tensor:
        """Every sample: a group whose rule rewards are all equal, or a sample none applies to, still carries the
        teacher's per-token signal."""
        return torch.ones(len(batch), dtype=torch.bool)

    def learner_batch(self, batch: RolloutBatch) -> tuple[LearnerBatch, dict]:
        """The learner's tensors with the teacher's signal. distill.kl=sampled: per-token advantages, the teacher's
        logprob of each sampled token minus the student's (the rollout engine's, of the distribution it sampled),
        plus the weighted rule-reward advantage. distill.kl=full: the teacher's next-token distributions, whose KL
        the learner adds to its loss, and the weighted rule-reward advantage alone as the advantage."""
        learner_batch, metrics = super().learner_batch(batch)
        distill = self.config.distill
        started = time.perf_counter()
        if distill.kl == "full":
            teacher_logprobs, distribution, ids = ray.get(
                self.teacher.distributions.remote(learner_batch, distill.kl_top_k))
            learner_batch = dataclasses.replace(learner_batch, teacher_logprobs=distribution, teacher_ids=ids)
        else:
            teacher_logprobs = ray.get(self.teacher.logprobs.remote(learner_batch))
        metrics["time/teacher_s"] = time.perf_counter() - started
        inputs = algos.AdvantageInputs(rewards=batch.rewards, group_ids=batch.group_ids,
                                       mask=learner_batch.completion_mask, logprobs=learner_batch.rollout_logprobs,
                                       teacher_logprobs=teacher_logprobs)
        if distill.kl == "full":  # the teacher's signal is the learner's KL term; the rule reward, if any, is here
            advantages = distill.rule_reward_weight * algos.get_adv_estimator("grpo")(
                inputs, scale_by_std=self.config.algorithm.scale_rewards)
        else:
            advantages = algos.get_adv_estimator(ON_POLICY_ESTIMATOR)(
                inputs, rule_reward_weight=distill.rule_reward_weight, scale_by_std=self.config.algorithm.scale_rewards)
        metrics |= teacher_metrics(learner_batch, teacher_logprobs, advantages)
        return dataclasses.replace(learner_batch, advantages=advantages), metrics

    def shutdown(self) -> None:
        if getattr(self, "teacher", None) is not None and ray.is_initialized():
            ray.kill(self.teacher)
        super().shutdown()


def teacher_metrics(batch: LearnerBatch, teacher_logprobs: torch.Tensor, advantages: torch.Tensor) -> dict:
    """How far the student's samples are from the teacher, per token and per completion (every sampled token,
    masked or not), and the mean advantage of the tokens the loss takes.

    Returns:
        distill/reverse_kl: mean over tokens of log pi_student - log pi_teacher (the per-token reverse KL's
        estimate on the student's samples); distill/reverse_kl_per_completion: its sum over a completion, averaged;
        distill/teacher_logprob_mean, distill/student_logprob_mean; distill/advantage_mean.
    """
    sampled = batch.policy_mask
    per_token = (batch.rollout_logprobs - teacher_logprobs) * sampled
    # distill.kl=full's advantage is the rule reward's, one per completion
    per_token_advantages = advantages[:, None].expand_as(sampled) if advantages.dim() == 1 else advantages
    tokens = sampled.sum().clamp(min=1.0)
    return {"distill/reverse_kl": (per_token.sum() / tokens).item(),
            "distill/reverse_kl_per_completion": per_token.sum(-1).mean().item(),
            "distill/teacher_logprob_mean": ((teacher_logprobs * sampled).sum() / tokens).item(),
            "distill/student_logprob_mean": ((batch.rollout_logprobs * sampled).sum() / tokens).item(),
            "distill/advantage_mean": algos.masked_mean(per_token_advantages, batch.completion_mask).item()}


# ------------------------------------------------------------------------------------------------ traces


class FineTunesOnTraces:
    """What the two drivers that fine-tune on verified traces share (a mixin before GRPOTrainer): the `sft` loss,
    the traces' batches (self.traces), one fine-tuning step, and the rollout workers given the learner's weights
    before they serve the policy again (a fine-tuning step does not send them)."""

    traces: list[Problem]  # the training problems with a verified trace as their solution, one entry per trace
    synced_updates = 0  # the learner updates the rollout workers' weights hold

    def learner_settings(self) -> tuple[LearnerSettings, float]:
        """The `sft` loss at sft.lr (the algorithm section's schedule, warm-up, clipping and mini-batches), on the
        logprobs of the logits themselves (temperature 1)."""
        settings, _ = super().learner_settings()
        return dataclasses.replace(settings, loss_type="sft", lr=self.config.sft.lr, beta=0.0, entropy_coeff=0.0,
                                   rollout_correction_cap=None, num_iterations=1), 1.0

    def trace_batch(self, step: int) -> list[Problem]:
        """The traces of the step that follows `step` finished steps: sft.batch_size of them, consecutive in the
        order of their epoch (a permutation drawn from the seed and the epoch's number)."""
        size = min(self.config.sft.batch_size, len(self.traces))
        orders: dict[int, list[int]] = {}
        batch = []
        for position in range(step * size, (step + 1) * size):
            epoch, index = divmod(position, len(self.traces))
            if epoch not in orders:
                orders[epoch] = list(range(len(self.traces)))
                random.Random(self.config.trainer.seed * 1_000_003 + epoch).shuffle(orders[epoch])
            batch.append(self.traces[orders[epoch][index]])
        return batch

    def sft_step(self, traces: list[Problem], step: int) -> dict:
        """One learner update on the traces; `step` steps of this stretch of fine-tuning came before (sft/epoch)."""
        config, timings = self.config, {}
        batch = sft_batch(traces, self.tokenizer, config.data.system_prompt, config.sft.max_tokens)
        with timed(timings, "learn"):
            learned = self.learners.train_step(batch)
        self.updates += 1
        metrics = {"sft/loss": learned["actor/pg_loss"], "sft/epoch": (step + 1) * len(traces) / len(self.traces),
                   "sft/tokens": batch.completion_mask.sum().item()}
        # the loss terms of a GRPO step (ratios, clipping, the vLLM mismatch) mean nothing here
        metrics |= {k: v for k, v in learned.items() if not k.startswith(("actor/", "mismatch/")) and k != "loss"}
        return metrics | timings

    def sync_workers(self) -> None:
        """The rollout workers given the learner's weights, if they do not hold them yet."""
        if self.synced_updates != self.updates:
            blob = self.learners.weights_blob()
            ray.get([worker.load_weights.remote(blob) for worker in self.workers])
            self.synced_updates = self.updates

    def evaluate(self) -> dict:
        """The held-out evaluation, on rollout workers given the learner's weights first."""
        self.sync_workers()
        return super().evaluate()

    def warn_if_nothing_learned(self, metrics: dict) -> None:
        """No groups to drop here: every step learns."""


class TracesDistiller(FineTunesOnTraces, GRPOTrainer):
    """Fine-tunes the student on the teacher's verified traces (distill.mode=traces): trainer.steps learner steps
    of sft.batch_size traces each, in an order drawn per epoch from the seed (so a resumed run takes the same
    batches); the rollout workers serve the student only for the held-out evaluation."""

    command = "distill"  # the `reasonrl` command that runs this driver

    def setup(self) -> None:
        config = self.config
        check_distill(config)  # before the teacher, the warm start or any actor
        prepare_output_dir(self.output_dir, config.trainer.resume, config.trainer.overwrite)
        if config.trainer.overwrite:
            for name in (TRACES_FILE, TRACES_REPORT):
                (self.output_dir / name).unlink(missing_ok=True)
        problems, _ = load_problems(config.data)
        self.started_ray = join_or_start(config.ray.address, num_cpus=config.ray.num_cpus)
        self.traces, self.traces_report = self.prepare_traces(problems)
        super().setup()
        self.owns_ray = self.owns_ray or self.started_ray  # the trainer's shutdown then stops the Ray started here
        self.synced_updates = self.updates  # the rollout workers hold the weights of this many updates
        if self.step == 0 and not self.history:
            self.record({f"traces/{name}": value for name, value in self.traces_report.items()
                         if isinstance(value, (int, float))})

    # ------------------------------------------------------------------ the traces
    def prepare_traces(self, problems: list[Problem]) -> tuple[list[Problem], dict]:
        """The training problems with a kept trace as their solution (one entry per trace) and the report; read
        from the run folder when its traces.jsonl was made with the same settings (a resumed run samples none)."""
        distill, config = self.config.distill, self.config
        tools = ToolSettings.from_config(config.rollout)
        key = {"teacher": str(Path(distill.teacher).resolve()), "teacher_file_sha1": file_sha1(distill.teacher),
               "problem_ids_sha1": hashlib.sha1(" ".join(p.id for p in problems).encode()).hexdigest(),
               "traces_per_problem": distill.traces_per_problem, "temperature": distill.temperature,
               "top_p": distill.top_p, "max_new_tokens": config.rollout.max_new_tokens, "seed": config.trainer.seed,
               "system_prompt": config.data.system_prompt,
               **({"tools": dataclasses.asdict(tools)} if tools else {})}  # (a plain run's key is as it was)
        traces_path, report_path = self.output_dir / TRACES_FILE, self.output_dir / TRACES_REPORT
        if traces_path.is_file() and report_path.is_file() and json.loads(report_path.read_text())["key"] == key:
            rows = [json.loads(line) for line in traces_path.read_text().splitlines()]
            report = json.loads(report_path.read_text())["report"]
            self.log(f"traces: {len(rows)} verified traces from {traces_path} (made before with these settings)")
        else:
            started = time.perf_counter()
            answered, transcripts, report = self.teacher_answers(problems)
            rows, counts = verify_traces(answered, transcripts, str(distill.teacher), config.reward.timeout_s)
            report |= counts | {"seconds": time.perf_counter() - started}
            self.timings["time/traces_s"] = report["seconds"]  # sampling and verifying, in the run's summary
            write_lines_atomically(traces_path, [json.dumps(row) for row in rows])
            write_lines_atomically(report_path, [json.dumps({"key": key, "report": report}, indent=1)])
            self.log(f"traces: {report['answers']} answers to {report['problems_answered']} problems from "
                     f"{distill.teacher}: {report['correct']} correct, {report['kept']} kept "
                     f"({report['duplicates']} duplicates), {report['problems_with_trace']} problems with a trace "
                     f"({report['seconds']:.0f}s) -> {traces_path}")
        if not rows:
            raise ConfigError(f"distill.teacher: the verifier found none of the teacher's answers correct ({report}): "
                              "there is nothing to fine-tune the student on")
        by_id = {p.id: p for p in problems}
        return [dataclasses.replace(by_id[row["id"]], solution=row["completion"]) for row in rows], report

    def teacher_answers(self, problems: list[Problem]) -> tuple[list[Problem], list[list[str]], dict]:
        """The problems the teacher answered, their answers (with rollout.tools: whole transcripts, each call's
        output in its ```output block), and counts: read from a traces file, or sampled from a checkpoint through
        rollout workers (as many as rollout.num_workers, in the places the student's take afterwards; completions
        cut at rollout.max_new_tokens are not answers and are left out)."""
        distill, config = self.config.distill, self.config
        if Path(distill.teacher).is_file():
            answered, outputs, read = read_predictions(distill.teacher, problems)
            return answered, outputs, {"problems_answered": len(answered), "answers": sum(map(len, outputs)),
                                       "truncated": 0, "rows_unmatched": read["rows_unmatched"]}
        tokenizer = load_tokenizer(distill.teacher)
        prompts = [build_prompt(p, tokenizer, config.data.system_prompt) for p in problems]
        workers = [self.new_rollout_worker(i, distill.teacher) for i in range(config.rollout.num_workers)]
        tools = ToolSettings.from_config(config.rollout)
        try:
            samples = generate_on_workers(workers, prompts, n=distill.traces_per_problem,
                                          max_tokens=config.rollout.max_new_tokens, temperature=distill.temperature,
                                          top_p=distill.top_p, seed=config.trainer.seed,
                                          **({"tools": tools} if tools else {}))
        finally:
            for worker in workers:
                ray.kill(worker)
        n = distill.traces_per_problem
        outputs = [[decode_completion(tokenizer, s.completion_ids) for s in samples[i * n:(i + 1) * n]
                    if not s.truncated] for i in range(len(problems))]
        answered = [(p, texts) for p, texts in zip(problems, outputs) if texts]
        return ([p for p, _ in answered], [texts for _, texts in answered],
                {"problems_answered": len(answered), "answers": sum(len(t) for _, t in answered),
                 "truncated": sum(s.truncated for s in samples)})

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict:
        """One learner step of supervised fine-tuning on a batch of traces (no rollouts, no rewards)."""
        return self.sft_step(self.trace_batch(self.step), self.step)

    def fit(self) -> dict:
        return super().fit() | {"traces": self.traces_report, "traces_file": str(self.output_dir / TRACES_FILE)}

    def shutdown(self) -> None:
        super().shutdown()
        if getattr(self, "started_ray", False) and ray.is_initialized():  # set-up stopped before the trainer's own
            ray.shutdown()


# ------------------------------------------------------------------------------------------------ expert iteration


class ExpertIterationDistiller(FineTunesOnTraces, GRPOTrainer):
    """Expert iteration (distill.mode=expert_iteration): the student's own search is its teacher. Each round the
    policy searches the training problems (distill.search_method, distill.search_budget policy tokens a search,
    distill.traces_per_problem searches a problem, next to the rollout workers' engines), the verifier keeps the
    correct answers once each (rounds/round_N.jsonl in the run folder), and the learner fine-tunes the policy on them
    for distill.sft_steps_per_round steps; the held-out evaluation follows: greedy, sampled and searched pass@1.

    A step of this run is a round: metrics.jsonl holds one record per round (step 0: the start), checkpoints/step_N
    is the policy after round N, and a resumed run continues after the last whole round (a round a kill cut short
    is searched again, with the same seeds)."""

    command = "distill"  # the `reasonrl` command that runs this driver
    step_name = "round"

    def setup(self) -> None:
        check_distill(self.config)
        if self.config.distill.teacher is not None:
            self.log(f"distill.teacher ({self.config.distill.teacher}) is not read: in expert_iteration the student's "
                     "own search teaches it")
        if self.config.trainer.overwrite:
            shutil.rmtree(self.output_dir / ROUNDS, ignore_errors=True)
        super().setup()
        self.synced_updates = self.updates  # the rollout workers hold the weights of this many updates
        self.traces = []

    def run_steps(self) -> int:
        """A step of this run is a round."""
        return self.config.distill.rounds

    def learner_steps(self) -> int:
        """The learning-rate schedule spans every round's fine-tuning."""
        return self.config.distill.rounds * self.config.distill.sft_steps_per_round

    def search(self, prompts: list[list[int]], seeds: list[int | None], *args, **options) -> list[dict]:
        """Searches spread over the rollout workers (rl.rollout.search_on_workers), with their current weights."""
        return search_on_workers(self.workers, prompts, seeds, *args, **options)

    # ------------------------------------------------------------------ one round
    def search_traces(self, round_number: int) -> tuple[list[Problem], dict]:
        """The round's verified traces (the training problems with one as their solution, one entry per trace, also
        written to rounds/round_N.jsonl) and the counts: searches, correct, kept, duplicates, problems with a trace,
        the search's accuracy on the training problems and its mean policy tokens."""
        config, distill = self.config, self.config.distill
        prompts = [build_prompt(p, self.tokenizer, config.data.system_prompt) for p in self.train_problems]
        self.sync_workers()
        searched = evaluate_with_search(
            self.search, self.train_problems, prompts, method=distill.search_method,
            budget_tokens=distill.search_budget, k=distill.traces_per_problem, temperature=distill.temperature,
            max_tokens=config.rollout.max_new_tokens, seed=round_seed(config.trainer.seed, round_number),
            concurrency=SEARCH_CONCURRENCY, name="traces", **distill.search_options,
            **(self.tools.search_options() if self.tools else {}))
        rows, counts = verified_traces(searched["records"], f"round {round_number}: {distill.search_method}")
        path = self.output_dir / ROUNDS / f"round_{round_number}.jsonl"
        path.parent.mkdir(exist_ok=True)
        write_lines_atomically(path, [json.dumps(row) for row in rows])
        by_id = {p.id: p for p in self.train_problems}
        traces = [dataclasses.replace(by_id[row["id"]], solution=row["completion"]) for row in rows]
        scores = searched["scores"]
        return traces, {"searches": len(self.train_problems) * distill.traces_per_problem, **counts,
                        "search_accuracy": scores["pass@1"], "search_policy_tokens": scores["mean_policy_tokens"]}

    def run_round(self, round_number: int) -> dict:
        """Search, verify, fine-tune: the round's metrics (traces/*, sft/* of its first and last step, times)."""
        timings: dict[str, float] = {}
        with timed(timings, "search"):
            self.traces, report = self.search_traces(round_number)
        metrics = {f"traces/{name}": value for name, value in report.items()}
        if not self.traces:
            self.log(f"WARNING: round {round_number}: none of the {report['searches']} searches answered right: "
                     "nothing to fine-tune on, the policy stays as it was")
            return metrics | timings
        steps = [self.sft_step(self.trace_batch(step), step) for step in range(self.config.distill.sft_steps_per_round)]
        timings["time/learn_s"] = sum(step["time/learn_s"] for step in steps)
        metrics |= {"sft/loss": sum(step["sft/loss"] for step in steps) / len(steps),
                    "sft/loss_first": steps[0]["sft/loss"], "sft/loss_last": steps[-1]["sft/loss"],
                    "sft/epoch": steps[-1]["sft/epoch"], "grad_norm": steps[-1].get("grad_norm", math.nan)}
        return metrics | timings

    def evaluate(self) -> dict:
        """The held-out problems three ways, on the current weights: greedy decoding (eval/greedy_pass@1), sampling
        as `train` evaluates (eval/pass@1 and the rest), and the round's search with one search a problem
        (eval/search_pass@1); eval/search_gain is what the search adds to greedy decoding."""
        config, distill = self.config, self.config.distill
        self.sync_workers()
        greedy = evaluate(self.generate, self.eval_problems, self.tokenizer, k=1,
                          max_tokens=config.rollout.max_new_tokens, temperature=0.0, seed=config.trainer.seed,
                          system_prompt=config.data.system_prompt, tools=self.tools)["scores"]
        prompts = [build_prompt(p, self.tokenizer, config.data.system_prompt) for p in self.eval_problems]
        searched = evaluate_with_search(
            self.search, self.eval_problems, prompts, method=distill.search_method,
            budget_tokens=distill.search_budget, k=1, temperature=distill.temperature,
            max_tokens=config.rollout.max_new_tokens, seed=config.trainer.seed, concurrency=SEARCH_CONCURRENCY,
            **distill.search_options, **(self.tools.search_options() if self.tools else {}))["scores"]
        self.timings["time/evaluation_s"] = (self.timings.get("time/evaluation_s", 0.0) + greedy["seconds"]
                                             + searched["seconds"])
        return {"eval/greedy_pass@1": greedy["pass@1"], "eval/greedy_pass@1_stderr": greedy["pass@1_stderr"],
                "eval/search_pass@1": searched["pass@1"], "eval/search_pass@1_stderr": searched["pass@1_stderr"],
                "eval/search_policy_tokens": searched["mean_policy_tokens"],
                "eval/search_gain": searched["pass@1"] - greedy["pass@1"], **super().evaluate()}

    # ------------------------------------------------------------------ the loop
    def train_loop(self) -> dict:
        rounds = self.run_steps()
        self.setup()
        if self.step == 0:
            self.record(self.evaluate())
            self.log(round_line(self.history[-1], rounds))
        started, evaluation_before = time.perf_counter(), self.timings.get("time/evaluation_s", 0.0)
        while self.step < rounds:
            metrics = self.run_round(self.step + 1)
            self.step += 1
            metrics |= self.evaluate()
            self.record(metrics)
            self.log(round_line(self.history[-1], rounds))
            self.save_checkpoint()  # every round: a resumed run continues after the last whole one
        self.metrics.close()
        self.timings["time/expert_iteration_s"] = (time.perf_counter() - started
                                                   - (self.timings.get("time/evaluation_s", 0.0) - evaluation_before))
        plot = plot_run(self.output_dir / "metrics.jsonl", self.output_dir / "reward_accuracy.png",
                        title=f"expert iteration on {self.config.data.train} ({self.output_dir.name})",
                        xlabel="round", curves=ROUND_CURVES)
        evals = [h for h in self.history if "eval/pass@1" in h]
        return {"output_dir": str(self.output_dir), "plot": str(plot), "steps": self.step, "rounds": self.step,
                "timings": self.timings, "start_policy": str(self.policy_path),
                "checkpoint": str(self.output_dir / CHECKPOINTS / f"step_{self.step}"),
                "eval_before": evals[0] if evals else None, "eval_after": evals[-1] if evals else None,
                "history": self.history}


def round_seed(seed: int, round_number: int) -> int:
    """The seed of a round's searches: each round draws its own samples, a resumed round the same ones."""
    return seed * 1_000_003 + round_number


def round_line(record: dict, rounds: int) -> str:
    """One line of a round's record: the traces it kept, then greedy, sampled and searched held-out pass@1."""
    parts = [f"round {record['step']}/{rounds}"]
    if "traces/searches" in record:
        parts.append(f"searches {record['traces/searches']} (accuracy {record['traces/search_accuracy']:.3f}) -> "
                     f"{record['traces/kept']} traces kept")
    if "sft/loss" in record:
        parts.append(f"sft loss {record['sft/loss_first']:.3f} -> {record['sft/loss_last']:.3f}")
    return "  ".join(parts) + (f"  | held-out greedy {record['eval/greedy_pass@1']:.3f}  sampled "
                               f"{record['eval/pass@1']:.3f}  search {record['eval/search_pass@1']:.3f}")



def verify_traces(problems: list[Problem], transcripts: list[list[str]], teacher: str,
                  timeout_s: float) -> tuple[list[dict], dict]:
    """The teacher's answers graded on the policy's own words (policy_text: a tool's output is not the teacher's
    answer), then verified_traces of them: the rows keep the whole transcripts, outputs and all."""
    graded = grade_outputs("traces", problems, [[policy_text(t) for t in texts] for texts in transcripts],
                           timeout_s=timeout_s)
    return verified_traces([record | {"transcripts": texts} for record, texts in zip(graded.records, transcripts)],
                           teacher)


def verified_traces(records: list[dict], teacher: str) -> tuple[list[dict], dict]:
    """The correct answers of evals.grading's per-problem records, each distinct one once (answers that differ only
    in whitespace are one), as traces.jsonl rows, and the counts. A record of answers made with tools holds each
    answer's whole exchange in "transcripts" beside the graded "outputs" (the policy's words alone): a trace is the
    transcript, so fine-tuning sees each call's output as the policy did.

    Returns:
        (rows: id, problem, answer, completion, teacher; counts: correct, kept, duplicates, problems_with_trace).
    """
    rows, correct, duplicates, problems = [], 0, 0, 0
    for record in records:
        seen: set[str] = set()
        for output, verdict in zip(record.get("transcripts", record["outputs"]), record["correct"]):
            if not verdict:
                continue
            correct += 1
            text = " ".join(output.split())
            if text in seen:
                duplicates += 1
                continue
            seen.add(text)
            rows.append({"id": record["id"], "problem": record["problem"], "answer": record["answer"],
                         "completion": output, "teacher": teacher})
        problems += bool(seen)
    return rows, {"correct": correct, "kept": len(rows), "duplicates": duplicates, "problems_with_trace": problems}


def policy_text(transcript: str) -> str:
    """A written answer less the tools' outputs in it (rewards.tools.split_observations, as fine-tuning masks
    them): what the verifier reads."""
    return "".join(piece for piece, observed in split_observations(transcript) if not observed)


def file_sha1(path: str) -> str | None:
    """The SHA-1 of a file's bytes (a traces file teacher), None for a folder."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else None


def write_lines_atomically(path: Path, lines: list[str]) -> None:
    """Write the lines so that a reader (a resumed run) sees the old file or the whole new one."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text("".join(line + "\n" for line in lines))
    staged.replace(path)


DISTILLERS: dict[str, type[GRPOTrainer]] = {"on_policy": OnPolicyDistiller, "traces": TracesDistiller,
                                            "expert_iteration": ExpertIterationDistiller}
