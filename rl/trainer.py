"""The GRPO driver (single controller): prompts -> rollout workers -> rewards -> advantages -> learner ->
weights back to the rollout workers, with evaluation, checkpoints and logging around it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shlex
import shutil
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import ray
import torch
from ray.exceptions import RayActorError
from rich.progress import Progress

from model import decode_completion, init_pretrained, load_tokenizer
from model.tokenizer import TOKENIZER_DIR
from model.checkpoint import check_checkpoint
from model.config import ARCHITECTURE
from model.vllm_engine import acceptance
from problems import build_prompt, load_problems
from rl import algos
from rl.batch import LearnerBatch, RolloutBatch
from rl.config import ConfigError, check_placement, save_config
from rl.evaluate import evaluate
from rl.learner import LEARNER_STATE
from rl.learner_group import LearnerGroup
from rl.learner_settings import LearnerSettings
from rl.logger import MetricsLogger, plot_run, sample_records, step_line
from rl.prompt_cursor import PromptCursor
from rl.prompt_filter import ZeroVarianceFilter
from rl.ray_cluster import join_or_start
from rl.rewarding import column_errors, reward_worker_actor
from rl.rollout import generate_on_workers, rollout_worker_actor, start_generation_on_workers
from rl.sft import sft_from_checkpoint
from rl.tool_rollout import ToolRolloutStats, ToolSettings, check_tool_tokenizer

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
ALL_DROPPED_WARN_STEPS = 3  # steps in a row with every group dropped before the trainer says so loudly


@contextmanager
def timed(timings: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    timings[f"time/{name}_s"] = time.perf_counter() - started


CHECKPOINT_FILES = ("config.json", "model.safetensors", LEARNER_STATE, TRAINER_STATE)
RUN_FILES = ("metrics.jsonl", "samples.jsonl", CHECKPOINTS, "init", "sft", "tensorboard", "reward_accuracy.png")
WARM_START_KEY = "warm_start.json"  # the settings that made a cached init/ or sft/ policy
RUN_CONFIG = "config.yaml"


def checkpoint_steps(output_dir: Path) -> list[Path]:
    """The run's checkpoint folders (checkpoints/step_N), oldest first."""
    folders = (p for p in (output_dir / CHECKPOINTS).glob("step_*") if p.name[5:].isdigit())
    return sorted(folders, key=lambda p: int(p.name[5:]))


def checkpoint_damage(folder: Path) -> str | None:
    """What makes a checkpoint folder unusable for a resume, or None when it is whole: a missing file, weights
    shorter than their header promises, a learner state cut short (torch.save writes a zip whose directory comes
    last, so a truncated one has none), or a trainer state that is not JSON. Cheap: no tensor is read."""
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        return f"no {', '.join(missing)}"
    try:
        check_checkpoint(folder)
    except ValueError as error:  # model.config.ConfigError, naming the file
        return str(error).replace(f"{folder}/", "")
    if not zipfile.is_zipfile(folder / LEARNER_STATE):
        return f"{LEARNER_STATE} is truncated ({(folder / LEARNER_STATE).stat().st_size} bytes)"
    try:
        json.loads((folder / TRAINER_STATE).read_text())["step"]
    except (ValueError, KeyError, TypeError):
        return f"{TRAINER_STATE} is truncated or not a trainer state"
    return None


def latest_checkpoint(output_dir: Path, log=print) -> Path | None:
    """The newest whole checkpoint folder. Checkpoints are written atomically (an interrupted one stays hidden
    as '.tmp-step_N'), but a folder can still lose or cut files afterwards (a full disk, a hand-made copy): a
    damaged one (`checkpoint_damage`) is passed over, and the choice is logged."""
    damaged = []
    for folder in reversed(checkpoint_steps(output_dir)):
        damage = checkpoint_damage(folder)
        if damage is None:
            if damaged:
                log(f"checkpoint {'; '.join(damaged)}: taking {folder}, the newest whole checkpoint")
            return folder
        damaged.append(f"{folder} is damaged ({damage})")
    return None


def folder_digest(folder: Path) -> str:
    """SHA-256 of a checkpoint folder's files (names and bytes, in name order; subfolders aside)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def problems_digest(problems: list) -> str:
    """SHA-256 of the problems (every field, in order)."""
    rows = json.dumps([dataclasses.asdict(p) for p in problems], sort_keys=True, default=str)
    return hashlib.sha256(rows.encode()).hexdigest()


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder: a folder that holds a run is continued (resume), replaced (overwrite),
    or an error that says so. Nothing is deleted without overwrite."""
    held = [name for name in RUN_FILES if (output_dir / name).exists()]
    if held and not resume:
        if not overwrite:
            raise ConfigError(f"trainer.output_dir: {output_dir} already holds a run ({', '.join(held)}); continue it "
                              "with --resume (trainer.resume=true), replace it with trainer.overwrite=true, or choose "
                              "another trainer.output_dir")
        for name in held:
            target = output_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".reasonrl-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as error:  # read-only, no permission, a file in the path, a full disk
        raise ConfigError(f"trainer.output_dir: cannot write into {output_dir}: {error.strerror or error}") from None


@dataclasses.dataclass
class PendingRollouts:
    """Rollouts sent to the workers and not yet collected."""

    problems: list
    prompts: list[list[int]]
    sampling: dict  # the generate keyword arguments (n, max_tokens, temperature, top_p, seed)
    wait: Callable[[], list]  # waits for the samples and returns them in prompt order
    cursor_before: dict  # the prompt cursor's state before these problems were drawn (what a checkpoint keeps)
    updates: int  # learner updates taken when they were sent
    skipped: int = 0  # prompts skipped as predicted zero-variance while drawing these (rl.prompt_filter)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says where it stopped and the command that resumes it."""


class RunDiverged(RuntimeError):
    """The loss or the gradient norm went non-finite: the weights after that update are not worth keeping."""


def check_mtp(config) -> None:
    """An MTP loss weight (sft.mtp_weight, algorithm.mtp_weight) or drafting (rollout.speculative_tokens) set for a
    starting policy without MTP modules: a ConfigError naming the field, before the warm start and Ray. A hub policy
    is checked when the learner (or the rollout engine) loads it.
    """
    path = config.model.path
    if path.startswith("preset:"):
        depth, fix = config.model.num_nextn_predict_layers, "set model.num_nextn_predict_layers"
    elif (Path(path) / "config.json").is_file():
        depth = json.loads((Path(path) / "config.json").read_text()).get("num_nextn_predict_layers", 0)
        fix = "start from a checkpoint with MTP layers"
    else:
        return
    for field, weight in (("sft.mtp_weight", config.sft.mtp_weight if config.sft.steps > 0 else 0.0),
                          ("algorithm.mtp_weight", config.algorithm.mtp_weight),
                          ("rollout.speculative_tokens", config.rollout.speculative_tokens)):
        if weight > 0 and not depth:
            raise ConfigError(f"{field}: is {weight:g}, but the policy {path} has no MTP modules "
                              f"(num_nextn_predict_layers = 0); {fix}, or set {field} to 0")


def check_fp8(config) -> None:
    """trainer.precision=fp8 for a starting policy that is not our DeepSeek-V3 class (a local folder of another
    architecture): a ConfigError before the warm start and Ray (model/fp8.py swaps our class's layers). A hub policy
    is checked when the learner loads it."""
    path = config.model.path
    if config.trainer.precision != "fp8" or path.startswith("preset:") or not (Path(path) / "config.json").is_file():
        return
    architectures = json.loads((Path(path) / "config.json").read_text()).get("architectures") or []
    if ARCHITECTURE not in architectures:
        raise ConfigError(f"trainer.precision: fp8 runs our DeepSeek-V3 class only (model/fp8.py); {path} is "
                          f"{', '.join(architectures) or 'another architecture'}: use bf16")


def check_finite(metrics: dict[str, float], step: int, output_dir: Path) -> None:
    """Stop the run when a learner update's loss or gradient norm is NaN or infinite, saying at which step (the
    checkpoints already written are intact: resume from one with a lower learning rate, say).

    Raises:
        RunDiverged: naming the step and the values.
    """
    bad = {name: metrics[name] for name in ("loss", "grad_norm")
           if name in metrics and not math.isfinite(metrics[name])}
    if bad:
        values = ", ".join(f"{name} {value}" for name, value in bad.items())
        raise RunDiverged(f"step {step}: the learner's {values}: the run stops here. The checkpoints in "
                          f"{output_dir / CHECKPOINTS} are from before; resume from one with a lower algorithm.lr "
                          "or algorithm.max_grad_norm")


class GRPOTrainer:
    """Runs a GRPO job described by a Config (rl/config.py) on a Ray cluster (in-process by default)."""

    command = "train"  # the `reasonrl` command that runs this trainer (the Ctrl-C message names it)
    step_name = "step"  # what one step of the run is called (the Ctrl-C message says after which it stopped)

    def __init__(self, config, log=print):
        self.config = config
        self.log = log
        self.output_dir = Path(config.trainer.output_dir)
        self.step = 0
        self.history: list[dict] = []
        self.timings: dict[str, float] = {}  # seconds per stage of this process's run (the demo reports them)
        self.all_dropped_streak = 0  # steps in a row whose groups were all dropped as zero-variance
        self.updates = 0  # learner updates taken in this process (a step whose groups were all dropped takes none)
        self.pending: PendingRollouts | None = None  # the next step's rollouts, sent early (one-step off-policy)
        self.weight_syncs: list = []  # the last weight update's calls to the rollout workers
        self.tools: ToolSettings | None = None  # the tools rollouts call (rollout.tools), set up in setup()
        # the rollout workers' draft counters at the last reading (rollout.speculative_tokens > 0)
        self.draft_counters = {"drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "accepted_per_position": []}

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:

        config = self.config
        prepare_output_dir(self.output_dir, config.trainer.resume, config.trainer.overwrite)
        # A damaged checkpoint is named now, not in an actor's traceback after the warm start and Ray's start-up.
        checkpoint = self.resume_checkpoint() if config.trainer.resume else None
        save_config(self.run_config(), self.output_dir / RUN_CONFIG)
        self.train_problems, self.eval_problems = load_problems(config.data)
        self.check_reward_columns()
        check_mtp(config)
        check_fp8(config)
        start = config.model.path
        if config.rollout.tools and (start.startswith("preset:") or Path(start).is_dir()):  # before the warm start
            check_tool_tokenizer(config.rollout, load_tokenizer(start if Path(start).is_dir() else TOKENIZER_DIR),
                                 f"the tokenizer of model.path {start}")
        with timed(self.timings, "sft"):
            self.policy_path = self.prepare_policy()
        self.tokenizer = load_tokenizer(self.policy_path)
        check_tool_tokenizer(config.rollout, self.tokenizer)  # a hub policy's, before any actor
        self.tools = ToolSettings.from_config(config.rollout)
        started = time.perf_counter()
        self.owns_ray = join_or_start(config.ray.address, num_cpus=config.ray.num_cpus, log=self.log)
        check_placement(config, ray.cluster_resources())  # before any actor: Ray would wait forever, silently
        self.workers = [self.new_rollout_worker(i) for i in range(config.rollout.num_workers)]
        num_learners = config.trainer.num_learners
        settings, temperature = self.learner_settings()
        self.learners = LearnerGroup(
            str(self.policy_path), settings, self.learner_steps(), config.rollout.max_new_tokens,
            num_learners=num_learners, device=self.learner_device(),
            precision=config.trainer.precision, temperature=temperature, seed=config.trainer.seed,
            threads=max(1, (os.cpu_count() or 1) // num_learners), resources=config.ray.learner_resources,
            pack=config.trainer.pack_sequences, micro_batch_positions=config.trainer.micro_batch_positions)
        self.rewarder = reward_worker_actor().remote(config.reward.functions, config.reward.weights,
                                                     config.reward.num_workers, config.reward.timeout_s)
        ray.get([w.ready.remote() for w in self.workers] + [self.rewarder.ready.remote()])
        self.learners.ready()
        self.timings["time/startup_s"] = time.perf_counter() - started
        self.cursor = PromptCursor(self.train_problems, seed=config.data.seed)
        self.prompt_filter = ZeroVarianceFilter(config.rollout.zero_variance_target, seed=config.trainer.seed,
                                                skip=config.rollout.skip_zero_variance_prompts)
        # A resumed run logs the steps after its checkpoint again: the stopped run's records of them go first.
        resume_step = (-1 if checkpoint is None else self.checkpoint_step(checkpoint)) if config.trainer.resume else None
        self.metrics = MetricsLogger(self.output_dir, config.logging.jsonl, config.logging.tensorboard,
                                     config.logging.wandb_project, config.to_dict(), resume_step=resume_step)
        if checkpoint is not None:
            self.restore(checkpoint)

    def learner_settings(self) -> tuple[LearnerSettings, float]:
        """What the learners train with: their loss and optimiser settings (the algorithm section's), and the
        temperature their logprobs are taken at (the rollouts')."""
        return LearnerSettings.from_config(self.config.algorithm), self.config.rollout.temperature

    def run_steps(self) -> int:
        """The steps the run takes (what `step_name` counts)."""
        return self.config.trainer.steps

    def learner_steps(self) -> int:
        """Learner updates the whole run takes (what the learning-rate schedule spans): one per step."""
        return self.config.trainer.steps

    def resume_checkpoint(self) -> Path | None:
        """The checkpoint a resumed run continues from: the newest whole one (a damaged newer one is passed over,
        and the log says which was taken). None when the run has no checkpoint yet: it starts again at step 0.

        Raises:
            ConfigError: every checkpoint of the run is damaged (each named, with what is wrong with it).
        """
        folders = checkpoint_steps(self.output_dir)
        checkpoint = latest_checkpoint(self.output_dir, self.log)
        if checkpoint is None and folders:
            damage = "; ".join(f"{folder.name}: {checkpoint_damage(folder)}" for folder in folders)
            raise ConfigError(f"trainer.resume: no checkpoint in {self.output_dir / CHECKPOINTS} is whole ({damage}); "
                              "nothing to resume from: start afresh with trainer.overwrite=true (--overwrite)")
        if checkpoint is None:
            self.log(f"trainer.resume: {self.output_dir} has no checkpoint yet: the run starts again at step 0")
        return checkpoint

    @staticmethod
    def checkpoint_step(checkpoint: Path) -> int:
        return json.loads((checkpoint / TRAINER_STATE).read_text())["step"]

    def run_config(self):
        """The config as the run folder keeps it (config.yaml): the job, without this invocation's resume or
        overwrite, so `reasonrl train <run folder>/config.yaml --resume` continues the run."""
        trainer = dataclasses.replace(self.config.trainer, resume=False, overwrite=False)
        return dataclasses.replace(self.config, trainer=trainer)

    def learner_device(self) -> str:
        """trainer.learner_device with "auto" resolved: cuda when the cluster has a GPU for every learner beside
        the one each rollout worker takes on a GPU cluster (learners and rollout workers share no GPU yet)."""
        device, wanted = self.config.trainer.learner_device, self.config.trainer.num_learners
        gpus = ray.cluster_resources().get("GPU", 0)
        free = gpus - (self.config.rollout.num_workers if gpus > 0 else 0)
        if device == "auto":
            return "cuda" if free >= wanted else "cpu"
        if device == "cuda" and free < wanted:
            raise RuntimeError(f"trainer.learner_device=cuda with {wanted} learner(s), but the Ray cluster has "
                               f"{gpus:g} GPU(s) and {self.config.rollout.num_workers} of them go to the rollout "
                               "workers")
        return device

    def prepare_policy(self) -> Path:
        """The checkpoint GRPO starts from: the configured one, built from a preset, then SFT-warmed if asked.

        A policy built here (init/, sft/) is cached in the run folder with what made it (the settings, the starting
        policy's content and the training problems, never a path), and reused only when that is the same: a resumed
        run, or a run folder copied elsewhere, keeps its warm start; a changed config builds a new one."""
        config = self.config
        path = config.model.path
        if Path(path).exists():
            check_checkpoint(path)  # a damaged folder is named now, not in a vLLM traceback inside an actor
        if path.startswith("preset:"):
            path = self.cached(self.output_dir / "init", self.start_policy_key(),
                               lambda out: init_pretrained(config.model.path.split(":", 1)[1], out, config.model.seed,
                                                           config.model.num_nextn_predict_layers))
        if config.sft.steps > 0:
            # What the warm start is made of, never where it lies: a run folder copied elsewhere keeps its warm start.
            sft = {name: value for name, value in dataclasses.asdict(config.sft).items()
                   if name != "mtp_weight" or value}  # warm starts made before the MTP loss keep their key
            key = {"from": self.start_policy_key(), "sft": sft, "seed": config.trainer.seed,
                   "problems": problems_digest(self.train_problems), "system_prompt": config.data.system_prompt}

            def warm_start(out: Path) -> None:
                started = time.perf_counter()
                sft_from_checkpoint(path, out, self.train_problems, steps=config.sft.steps,
                                    batch_size=config.sft.batch_size, lr=config.sft.lr, seed=config.trainer.seed,
                                    threads=os.cpu_count() or 1, system_prompt=config.data.system_prompt,
                                    max_tokens=config.sft.max_tokens, mtp_weight=config.sft.mtp_weight,
                                    log=self.log)
                self.log(f"SFT warm start: {time.perf_counter() - started:.0f}s")

            path = self.cached(self.output_dir / "sft", key, warm_start)
        return Path(path)

    def start_policy_key(self) -> dict:
        """model.path by content: a preset's name and seed, a local folder's digest (folder_digest), a hub name."""
        path = self.config.model.path
        if path.startswith("preset:"):
            key = {"preset": path, "seed": self.config.model.seed}
            if self.config.model.num_nextn_predict_layers:  # keys of runs without MTP modules stay as they were
                key["num_nextn_predict_layers"] = self.config.model.num_nextn_predict_layers
            return key
        return {"sha256": folder_digest(Path(path))} if Path(path).is_dir() else {"hub": path}

    def cached(self, folder: Path, key: dict, build) -> Path:
        """folder if it holds a policy made with the settings `key`; otherwise build(out) into a fresh folder,
        atomically renamed to folder."""
        stamp = folder / WARM_START_KEY
        if stamp.is_file() and json.loads(stamp.read_text()) == key:
            return folder
        if folder.exists():
            self.log(f"{folder} was made with other settings: building it again")
        tmp = folder.with_name(f".tmp-{folder.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        (tmp / WARM_START_KEY).write_text(json.dumps(key))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return folder

    def check_reward_columns(self) -> None:
        """Every reward function finds the dataset columns it needs (rewards.calls.required_columns), before SFT
        or any actor starts. A column that is None in every training row (a math set's `tests`) counts as absent."""
        rows = [dataclasses.asdict(p) for p in self.train_problems]
        columns = [name for name in (rows[0] if rows else {}) if any(row[name] is not None for row in rows)]
        errors = column_errors(self.config.reward.functions, columns, f"data.train {self.config.data.train!r}")
        if errors:
            raise ConfigError("; ".join(errors))

    def new_rollout_worker(self, index: int, checkpoint: str | Path | None = None):
        """Rollout worker `index`, serving `checkpoint` (default: the policy being trained)."""
        config = self.config
        max_len = config.data.max_prompt_tokens + config.rollout.max_new_tokens
        on_gpus = ray.cluster_resources().get("GPU", 0) > 0  # one GPU per worker (no colocation with learners yet)
        return rollout_worker_actor(resources=config.ray.rollout_resources, threads=config.rollout.threads,
                                    num_gpus=1 if on_gpus else 0).remote(
            str(checkpoint or self.policy_path), max_len, config.trainer.seed + index, config.rollout.kv_cache_gib,
            config.rollout.enforce_eager, config.rollout.precision, config.rollout.attention_backend,
            speculative_tokens=config.rollout.speculative_tokens)

    # ------------------------------------------------------------------ one GRPO step
    def generate(self, prompts: list[list[int]], **sampling) -> list:
        """Spread prompts over the rollout workers (rl.rollout.generate_on_workers); a worker that died is
        replaced, given the current weights, and the request is sent again (once)."""

        try:
            return generate_on_workers(self.workers, prompts, **sampling)
        except RayActorError:
            self.replace_dead_workers()
            return generate_on_workers(self.workers, prompts, **sampling)

    def replace_dead_workers(self) -> None:
        for index, worker in enumerate(self.workers):
            try:
                ray.get(worker.ready.remote(), timeout=60)
            except Exception:
                self.log(f"rollout worker {index} died: starting a new one with the current weights")
                self.workers[index] = self.new_rollout_worker(index)
                blob = self.learners.weights_blob()
                ray.get(self.workers[index].load_weights.remote(blob))

    def start_rollouts(self, step: int) -> PendingRollouts:
        """Draw the prompts of the step that follows `step` finished steps and send them to the rollout workers,
        without waiting for the samples."""
        config = self.config
        cursor_before = self.cursor.state_dict()
        problems, skipped = self.prompt_filter.select(self.cursor, config.rollout.prompts_per_step, step)
        prompts = [build_prompt(p, self.tokenizer, config.data.system_prompt) for p in problems]
        sampling = dict(n=config.rollout.group_size, max_tokens=config.rollout.max_new_tokens,
                        temperature=config.rollout.temperature, top_p=config.rollout.top_p,
                        seed=config.trainer.seed * 100_003 + step)
        if self.tools is not None:
            sampling["tools"] = self.tools
        wait = start_generation_on_workers(self.workers, prompts, **sampling)
        return PendingRollouts(problems, prompts, sampling, wait, cursor_before, self.updates, skipped)

    def collect_rollouts(self, pending: PendingRollouts) -> list:
        """The samples of rollouts sent earlier; if a worker died meanwhile, it is replaced and they are asked for
        again."""
        try:
            return pending.wait()
        except RayActorError:
            self.replace_dead_workers()
            return self.generate(pending.prompts, **pending.sampling)

    def train_step(self) -> dict:

        config, timings = self.config, {}
        pending, self.pending = self.pending or self.start_rollouts(self.step), None
        problems = pending.problems
        with timed(timings, "generate"):  # one-step off-policy: the wait for what was sent during the last step
            samples = self.collect_rollouts(pending)
        tool_metrics = self.tool_metrics(samples, timings["time/generate_s"]) if self.tools else {}
        # read before the next step's rollouts are sent: a worker answers after the calls queued before this one
        drafts = self.draft_metrics() if config.rollout.speculative_tokens else {}
        batch = RolloutBatch.from_groups(samples, [dataclasses.asdict(p) for p in problems], config.rollout.group_size,
                                         [decode_completion(self.tokenizer, s.policy_ids()) for s in samples])
        with timed(timings, "reward"):
            scored = ray.get(self.rewarder.score.remote(batch.completions, batch.columns))
        batch.add_rewards(scored)
        if config.logging.samples_per_step:
            def transcript(i: int) -> str:  # with tools: a chosen sample's whole exchange, decoded for it alone
                return decode_completion(self.tokenizer, samples[i].completion_ids)

            records = sample_records(self.step + 1, batch, k=config.logging.samples_per_step, seed=config.trainer.seed,
                                     transcript=transcript if self.tools else None)
            self.metrics.log_samples(self.step + 1, records)
        batch.advantages = algos.compute_grpo_advantages(batch.rewards, batch.group_ids,
                                                         scale_by_std=config.algorithm.scale_rewards)
        flat = algos.zero_variance_groups(batch.rewards, batch.group_ids)
        keep = self.samples_to_learn(batch, flat)
        metrics = self.rollout_metrics(batch, scored, keep) | tool_metrics
        # Streaks of zero-variance groups per prompt: what the next draws skip by (before they are drawn, below)
        metrics |= self.prompt_filter.update([p.id for p in problems],
                                             flat.view(len(problems), config.rollout.group_size)[:, 0].tolist())
        metrics["prompts/skipped"] = float(pending.skipped)
        metrics["batch/problem_ids_sha1"] = hashlib.sha1(" ".join(p.id for p in problems).encode()).hexdigest()[:12]
        metrics["rollout/policy_lag"] = self.updates - pending.updates  # learner updates the sampling policy missed
        if config.trainer.one_step_off_policy and self.step + 1 < config.trainer.steps:
            # The next step's rollouts, sampled by the weights the workers hold now, while the learner learns.
            self.pending = self.start_rollouts(self.step + 1)
        if keep.any():
            learner_batch, batch_metrics = self.learner_batch(batch.select(keep))
            metrics |= batch_metrics
            with timed(timings, "learn"):
                metrics |= self.learners.train_step(learner_batch)
            check_finite(metrics, self.step + 1, self.output_dir)
            self.updates += 1
            with timed(timings, "weight_sync"):
                ray.get(self.weight_syncs)  # the previous step's, long done: only to surface a failure
                blob = self.learners.weights_blob()
                # A worker takes the new weights after the generation it is running (its calls run in order).
                self.weight_syncs = [w.load_weights.remote(blob) for w in self.workers]
                if self.pending is None:
                    ray.get(self.weight_syncs)
        generated = sum(len(s.policy_ids()) for s in samples)  # sampled tokens (a tool's output is not)
        metrics["throughput/rollout_tokens_per_s"] = generated / max(timings["time/generate_s"], 1e-9)
        return metrics | drafts | timings

    def draft_metrics(self) -> dict[str, float]:
        """The rollout workers' MTP drafts since the last reading (model.vllm_engine.acceptance), as `draft/*`."""
        counters = ray.get([worker.draft_counters.remote() for worker in self.workers])
        now: dict = {key: sum(c[key] for c in counters) for key in ("drafts", "draft_tokens", "accepted_tokens")}
        positions = [c["accepted_per_position"] for c in counters]
        now["accepted_per_position"] = [sum(p[j] for p in positions if j < len(p))
                                        for j in range(max(map(len, positions), default=0))]
        before, self.draft_counters = self.draft_counters, now
        return {f"draft/{name}": value for name, value in acceptance(before, now).items()}

    def samples_to_learn(self, batch: RolloutBatch, flat: torch.Tensor) -> torch.Tensor:
        """(N,) True for the samples the learner takes: not those no reward function applies to (they teach
        nothing), nor, with algorithm.drop_zero_variance_groups, those of groups that all scored alike (`flat`)."""
        keep = ~batch.rewards.isnan()
        if self.config.algorithm.drop_zero_variance_groups:
            keep &= ~flat
        return keep

    def learner_batch(self, batch: RolloutBatch) -> tuple[LearnerBatch, dict]:
        """The kept samples (with their advantages) as the learner's tensors, and metrics of making them (none
        here; on-policy distillation's teacher adds its own)."""
        return LearnerBatch.from_rollouts(batch, pad_id=self.tokenizer.pad_token_id,
                                          mask_truncated=self.config.algorithm.mask_truncated_completions), {}

    def tool_metrics(self, samples: list, generate_seconds: float) -> dict:
        """What the tools cost this step: calls per sample, the share of completion tokens that are their output,
        and the seconds the rollout workers waited for the sandbox (the slowest worker's; also as a share of the
        generation's time)."""
        stats: list[ToolRolloutStats] = ray.get([worker.take_tool_stats.remote() for worker in self.workers])
        waited = max(s.tool_seconds for s in stats)
        observed = sum(end - start for s in samples for start, end in s.observation_spans)
        return {"tools/calls_per_sample": sum(len(s.observation_spans) for s in samples) / len(samples),
                "tools/observation_token_frac": observed / max(sum(len(s.completion_ids) for s in samples), 1),
                "time/tools_s": waited, "tools/sandbox_time_frac": waited / max(generate_seconds, 1e-9)}

    def rollout_metrics(self, batch: RolloutBatch, scored: dict, keep: torch.Tensor) -> dict:
        lengths = torch.tensor([len(s.completion_ids) for s in batch.samples], dtype=torch.float)
        scored_rewards = batch.rewards[~batch.rewards.isnan()]
        metrics = {"reward/mean": scored_rewards.mean().item() if len(scored_rewards) else math.nan,
                   "reward/std": scored_rewards.std().item() if len(scored_rewards) > 1 else 0.0,
                   "completion/length_mean": lengths.mean().item(), "completion/length_max": lengths.max().item(),
                   "completion/truncated_frac": sum(s.truncated for s in batch.samples) / len(batch),
                   "groups/kept_frac": keep.float().mean().item(), "time/reward_fn_s": scored["seconds"]}
        for name, values in batch.reward_components.items():
            numbers = torch.tensor([v for v in values if v is not None] or [0.0])
            metrics[f"reward/{name}/mean"] = numbers.mean().item()
            metrics[f"reward/{name}/std"] = numbers.std().item() if len(numbers) > 1 else 0.0
        if "math_accuracy" in scored["components"]:
            metrics["accuracy"] = metrics["reward/math_accuracy/mean"]
        for name, reason in scored["errors"].items():
            metrics[f"reward/{name}/error"] = reason
        return metrics

    # ------------------------------------------------------------------ evaluation, checkpoints
    def evaluate(self) -> dict:
        config = self.config
        # spread over every rollout worker, each prompt with its own seed, as a training step is
        result = evaluate(self.generate, self.eval_problems, self.tokenizer, k=config.rollout.eval_samples,
                          max_tokens=config.rollout.max_new_tokens, temperature=config.rollout.eval_temperature,
                          seed=config.trainer.seed, system_prompt=config.data.system_prompt, tools=self.tools)
        self.timings["time/evaluation_s"] = self.timings.get("time/evaluation_s", 0.0) + result["scores"]["seconds"]
        if self.tools is not None and self.pending is None:  # the evaluation's tool time is no step's
            ray.get([worker.take_tool_stats.remote() for worker in self.workers])
        return {f"eval/{k}": v for k, v in result["scores"].items()}

    def save_checkpoint(self) -> Path:
        """learner state + trainer state into checkpoints/step_N, made visible by an atomic rename."""
        root = self.output_dir / CHECKPOINTS
        final, tmp = root / f"step_{self.step}", root / f".tmp-step_{self.step}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.learners.save(str(tmp))
        # Rollouts already sent for the next step are not part of the checkpoint: a resumed run draws them again.
        cursor = self.pending.cursor_before if self.pending is not None else self.cursor.state_dict()
        state = {"step": self.step, "cursor": cursor, "history": self.history,
                 "prompt_filter": self.prompt_filter.state_dict()}
        (tmp / TRAINER_STATE).write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final

    def restore(self, checkpoint: Path) -> None:
        self.learners.load(str(checkpoint))
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        self.step, self.history = state["step"], state["history"]
        self.cursor.load_state_dict(state["cursor"])
        if "prompt_filter" in state:  # checkpoints from before the filter start it afresh
            self.prompt_filter.load_state_dict(state["prompt_filter"])
        blob = self.learners.weights_blob()
        ray.get([w.load_weights.remote(blob) for w in self.workers])
        self.log(f"resumed from {checkpoint} at step {self.step}")

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Set up, train trainer.steps steps (evaluating and checkpointing on the way; the last step always has its
        checkpoint) and return the run's summary.

        Raises:
            RunInterrupted: on Ctrl-C, with the partial checkpoint removed; its message says where the run stopped
                and the command that resumes it.
        """
        try:
            return self.train_loop()
        except KeyboardInterrupt:
            raise self.interrupted() from None

    def train_loop(self) -> dict:
        config = self.config
        self.setup()
        if self.step == 0 and config.trainer.eval_every:
            self.record(self.evaluate())
            self.log(step_line(self.history[-1], config.trainer.steps))
        loop_started, self.loop_eval_s = time.perf_counter(), 0.0
        # A progress bar on a terminal; elsewhere (a log file, CI, nohup) one plain line per step.
        bar = config.logging.progress and sys.stdout.isatty()
        with Progress(disable=not bar) as progress:
            task = progress.add_task("GRPO", total=config.trainer.steps, completed=self.step)
            while self.step < config.trainer.steps:
                metrics = self.train_step()
                self.step += 1
                if config.trainer.eval_every and (self.step % config.trainer.eval_every == 0
                                                  or self.step == config.trainer.steps):
                    metrics |= self.evaluate()
                    self.loop_eval_s += metrics["eval/seconds"]
                self.record(metrics)
                self.warn_if_nothing_learned(metrics)
                if bar:
                    progress.update(task, completed=self.step,
                                    description=f"GRPO reward {metrics.get('reward/mean', math.nan):.2f}")
                else:
                    self.log(step_line(self.history[-1], config.trainer.steps))
                if config.trainer.save_every and self.step % config.trainer.save_every == 0:
                    self.save_checkpoint()
        final = self.output_dir / CHECKPOINTS / f"step_{self.step}"
        if not final.is_dir():  # the last step always has its checkpoint (with trainer.save_every=0, only it)
            final = self.save_checkpoint()
        self.metrics.close()
        self.timings["time/grpo_s"] = time.perf_counter() - loop_started - self.loop_eval_s
        plot = plot_run(self.output_dir / "metrics.jsonl", self.output_dir / "reward_accuracy.png",
                        title=f"GRPO on {config.data.train} ({self.output_dir.name})")
        evals = [h for h in self.history if "eval/pass@1" in h]
        return {"output_dir": str(self.output_dir), "plot": str(plot), "steps": self.step, "timings": self.timings,
                "start_policy": str(self.policy_path),  # what GRPO started from: the warm start, or model.path
                "checkpoint": str(final),  # the last step's
                "eval_before": evals[0] if evals else None, "eval_after": evals[-1] if evals else None}

    def interrupted(self) -> RunInterrupted:
        """What a Ctrl-C leaves: the partial checkpoint and warm start removed, the logs closed, and the message
        that says where the run stopped, which checkpoint a resume continues from, and the command."""
        partials = [*(self.output_dir / CHECKPOINTS).glob(".tmp-step_*"), self.output_dir / ".tmp-init",
                    self.output_dir / ".tmp-sft"]
        for partial in partials:
            shutil.rmtree(partial, ignore_errors=True)
        if getattr(self, "metrics", None) is not None:
            self.metrics.close()
        run_config = self.output_dir / RUN_CONFIG
        if not run_config.is_file():
            return RunInterrupted("run stopped before it started: nothing to resume")
        checkpoint = latest_checkpoint(self.output_dir, log=lambda _: None)
        where = f"after {self.step_name} {self.step} of {self.run_steps()}" if self.step else "before its first step"
        continued = (f"a resumed run continues from its checkpoint {checkpoint}" if checkpoint is not None
                     else "it has no checkpoint yet: a resumed run starts again at step 0")
        return RunInterrupted(f"run stopped {where}; {continued}.\n"
                              f"resume with: reasonrl {self.command} {shlex.quote(str(run_config))} --resume")

    def warn_if_nothing_learned(self, metrics: dict) -> None:
        """Say loudly when every group has been dropped as zero-variance for ALL_DROPPED_WARN_STEPS steps in a row:
        no sample differs from its group, so nothing is learned; it is how a reward that cannot see its inputs (or
        a task far too easy or too hard for the policy) shows."""
        self.all_dropped_streak = self.all_dropped_streak + 1 if metrics["groups/kept_frac"] == 0 else 0
        if self.all_dropped_streak and self.all_dropped_streak % ALL_DROPPED_WARN_STEPS == 0:
            self.log(f"WARNING: steps {self.step - self.all_dropped_streak + 1}-{self.step}: every group was dropped "
                     f"as zero-variance (all samples of each prompt scored the same; reward mean "
                     f"{metrics['reward/mean']:.3f}), so nothing was learned. Read samples.jsonl: a reward that "
                     f"cannot see its inputs scores every sample alike, and so does a task far too easy or too hard "
                     f"for the policy.")

    def record(self, metrics: dict) -> None:
        self.history.append({"step": self.step, **metrics})
        self.metrics.log(self.step, metrics)

    def shutdown(self) -> None:
        """Stop the actors; shut Ray down only if this trainer started it."""
        if not ray.is_initialized():
            return
        for actor in [*getattr(self, "workers", []), getattr(self, "rewarder", None)]:
            if actor is not None:
                ray.kill(actor)
        if getattr(self, "learners", None) is not None:
            self.learners.kill()
        if getattr(self, "owns_ray", False):
            ray.shutdown()
