"""Run configuration: one dataclass per section, loaded from YAML and overridable from the command line.

    config = load_config("experiments/tiny_arith.yaml", ["algorithm.beta=0.01", "reward.functions=[math_accuracy]"])

Every field has a default and a `help` (the single source for docs and the CLI); values are checked against the
type hints (Optional, list[int], dict[str, float] included) and the section's `__post_init__` rules, and any unknown
or ill-typed field raises `ConfigError` naming it. The defaults are the embedded default: the tiny policy learning
synthetic arithmetic on a CPU (experiments/tiny_arith.yaml spells it out).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from model.config import ConfigError as _ModelConfigError
from model.fp8 import PRECISIONS
from problems import split_error
from rewards.tools import TOOLS
from rl.algos import loss_names
from rl.rewarding import reward_name_error
from search import METHODS, check_options


class ConfigError(_ModelConfigError):
    """An unknown section or field, a value of the wrong type, or a value outside its allowed range.

    A ValueError (through model.config.ConfigError, so the CLI reports both kinds the same way).
    """


def _field(default: Any, help: str) -> Any:  # noqa: A002 - `help` is the metadata key TRL and HfArgumentParser use
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


def _choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    _require(value in choices, name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")


class _Section:
    """Type checking shared by every section: runs before the section's own `validate`."""

    section: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            name = f"{self.section}.{f.name}"
            setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], name))
        self.validate()

    def validate(self) -> None:
        """Range and consistency checks of the section (ConfigError naming the field)."""


@dataclass
class ModelConfig(_Section):
    section: typing.ClassVar[str] = "model"
    path: str = _field("preset:tiny", "Policy checkpoint: a local folder or hub name in the Hugging Face causal-LM "
                       "layout, or 'preset:NAME' to initialise one of model/'s presets (tiny, small).")
    seed: int = _field(0, "Initialisation seed for 'preset:' policies.")
    num_nextn_predict_layers: int = _field(0, "MTP modules (DeepSeek-V3's depth D: the module at depth d predicts "
                                           "the token d + 1 ahead) of a 'preset:' policy; a checkpoint folder's "
                                           "config.json says how many it has. sft.mtp_weight and "
                                           "algorithm.mtp_weight train them. 0 = none.")

    def validate(self) -> None:
        _require(bool(self.path), "model.path", "must not be empty")
        _require(self.num_nextn_predict_layers >= 0, "model.num_nextn_predict_layers", "must be >= 0")
        _require(self.num_nextn_predict_layers == 0 or self.path.startswith("preset:"),
                 "model.num_nextn_predict_layers", f"applies to 'preset:' policies only; {self.path}'s config.json "
                 "says how many MTP modules it has")



@dataclass
class DataConfig(_Section):
    section: typing.ClassVar[str] = "data"
    train: str = _field("synthetic", "Training problems: synthetic (seeded arithmetic), synthetic_code (seeded "
                        "one-line Python functions, with tests), synthetic_tools (seeded multi-digit arithmetic, for "
                        "rollout.tools), gsm8k (its train split) or "
                        "math_train (MATH's 7500, from the hub only); the test sets math500/math and "
                        "aime2024/aime2025 are refused.")
    eval: str = _field("synthetic", "Held-out problems (a test split): synthetic, synthetic_code or "
                       "synthetic_tools (disjoint from training), humaneval, gsm8k, "
                       "math500 (alias math), aime2024 (aime24), aime2025 (aime25).")
    levels: list[int] = _field([1, 2, 3], "Synthetic difficulty levels (number of arithmetic operations, or of chained "
                               "operations in a synthetic_code function).")
    num_train: int = _field(2000, "Training problems to use (synthetic: to generate); 0 = the whole dataset.")
    num_eval: int = _field(200, "Evaluation problems to use; 0 = the whole evaluation set.")
    seed: int = _field(0, "Seed of the synthetic generator and of the prompt order.")
    tool_traces: float = _field(0.5, "synthetic_tools: share of the reference solutions (the warm start's targets) "
                                "that call the Python tool; the rest work the arithmetic out line by line (0: a "
                                "policy warm-started without tools). The questions do not depend on it.")
    max_prompt_tokens: int = _field(256, "Longest prompt (in tokens) the rollout engine must accept.")
    system_prompt: str | None = _field(None, "System message put before every question (problems.build_prompt), "
                                       "e.g. Qwen2.5-Math's 'Please reason step by step, and put your final answer "
                                       "within \\boxed{}.'; None = the question alone (the tiny policy's format).")

    def validate(self) -> None:
        for name, split in (("train", "train"), ("eval", "test")):  # unknown names, and training on a test set
            error = split_error(getattr(self, name), split)
            _require(error is None, f"data.{name}", error or "")
        _require(bool(self.levels) and all(level >= 1 for level in self.levels), "data.levels",
                 f"must be a non-empty list of levels >= 1, got {self.levels}")
        _require(self.num_train >= 0, "data.num_train", "must be >= 0")
        _require(self.num_eval >= 0, "data.num_eval", "must be >= 0")
        _require(self.max_prompt_tokens > 0, "data.max_prompt_tokens", "must be > 0")
        _require(self.train not in ("synthetic", "synthetic_code", "synthetic_tools") or self.num_train > 0,
                 "data.num_train", "must be > 0 for synthetic training data (there is no 'whole' synthetic set)")
        _require(0 <= self.tool_traces <= 1, "data.tool_traces", f"must be in [0, 1], got {self.tool_traces}")


@dataclass
class RolloutConfig(_Section):
    section: typing.ClassVar[str] = "rollout"
    num_workers: int = _field(1, "Rollout workers (Ray actors), each with its own vLLM engine.")
    group_size: int = _field(8, "Completions sampled per prompt (G); advantages are normalised within a group.")
    prompts_per_step: int = _field(16, "Prompts per GRPO step; the batch holds prompts_per_step * group_size "
                                   "completions.")
    max_new_tokens: int = _field(128, "Longest completion; longer ones are truncated (see "
                                 "algorithm.mask_truncated_completions).")
    temperature: float = _field(1.0, "Sampling temperature of training rollouts (the learner's logprobs use it too).")
    top_p: float = _field(1.0, "Nucleus sampling threshold of training rollouts; 1.0 = off.")
    kv_cache_gib: float = _field(1.0, "vLLM KV-cache size per worker, GiB (CPU: VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = _field(True, "Run vLLM without CUDA graphs / torch.compile (faster start-up, needed on CPU).")
    threads: int = _field(1, "CPU threads of each rollout worker's engine (OMP_NUM_THREADS). Generation and learning "
                          "take turns, so on a one-machine CPU run the engine may use every core; 0 = all cores of "
                          "the driver's machine. Ray's placement still counts each worker as 1 CPU.")
    eval_samples: int = _field(4, "Samples per evaluation problem (n): pass@1 is averaged over them; pass@k for k = "
                               "1, 2, 4, ..., n (unbiased estimator) and maj@n come from them, each with its standard "
                               "error.")
    eval_temperature: float = _field(1.0, "Sampling temperature during evaluation; 0 = greedy (then use "
                                     "eval_samples=1).")
    precision: str = _field("fp32", "Rollout engine arithmetic: fp32 (logprobs match the fp32 learner to ~1e-6), or "
                            "bf16 (on a CPU with AMX, with attention_backend AMX_MLA, faster rollouts: see "
                            "experiments/bench_precision.py for what it costs in logprob mismatch).")
    attention_backend: str | None = _field(None, "vLLM attention backend on CPU, named so a CPU's features cannot "
                                           "switch it: CPU_MLA (any CPU, any precision; the default for MLA "
                                           "policies), AMX_MLA (CPUs with AMX, bf16 only), CPU_ATTN (non-MLA "
                                           "policies; their default). None = the default for the policy.")
    speculative_tokens: int = _field(0, "Tokens the policy's MTP layers draft per engine step for the target to "
                                     "verify (vLLM's MTP speculative decoding), in rollouts, evaluation and search; "
                                     "0 = off. Rejection sampling keeps the policy's distribution and logprobs; "
                                     "whether it is faster is measured (experiments/bench_mtp.py), not assumed: on "
                                     "2 CPU cores, many sequences at a time are compute-bound and verifying k + 1 "
                                     "tokens costs nearly k + 1 steps. Needs a policy with MTP layers "
                                     "(model.num_nextn_predict_layers).")

    skip_zero_variance_prompts: bool = _field(False, "Before rolling a prompt out, skip it with probability "
                                              "1 - p ** z, z its zero-variance groups in a row so far (GRESO's "
                                              "temporal filter, rl.prompt_filter; the next prompts take its place): "
                                              "prompts always solved or never solved stop costing generation. p "
                                              "adapts toward zero_variance_target. It acts only from a prompt's "
                                              "second visit, i.e. after one epoch of data.train (docs/results.md).")
    zero_variance_target: float = _field(0.25, "Share of zero-variance groups per batch that skipping steers toward "
                                         "(GRESO's 0.25): p falls while the share is above it, rises while below.")
    tools: list[str] = _field([], "Tools the policy may call mid-answer (tool-integrated reasoning, "
                              "rl/tool_rollout.py): python = a fenced ```python block, run in the sandbox with the "
                              "code reward's limits, whose output is appended as tokens no loss counts. Empty = "
                              "single-turn rollouts. Evaluation during training uses them too.")
    max_turns: int = _field(4, "With tools: engine calls per rollout (a tool call ends one); a rollout that still "
                            "calls a tool in its last turn is truncated.")
    tool_timeout_s: float = _field(5.0, "With tools: a call's wall-clock (and CPU) limit in the sandbox; a call that "
                                   "runs past it, or crashes, comes back as an output saying so.")
    max_observation_tokens: int = _field(64, "With tools: tokens of one tool output, its fences included (longer "
                                         "output is cut). Outputs count toward max_new_tokens.")

    def validate(self) -> None:
        for name in ("num_workers", "prompts_per_step", "max_new_tokens", "eval_samples"):
            _require(getattr(self, name) >= 1, f"rollout.{name}", "must be >= 1")
        _require(self.group_size >= 2, "rollout.group_size", "must be >= 2 (group-relative advantages)")
        _require(self.temperature > 0, "rollout.temperature", "must be > 0")
        _require(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
        _require(self.kv_cache_gib > 0, "rollout.kv_cache_gib", "must be > 0")
        _require(self.threads >= 0, "rollout.threads", "must be >= 0 (0 = all cores)")
        _require(self.eval_temperature >= 0, "rollout.eval_temperature", "must be >= 0")
        _require(0 <= self.zero_variance_target < 1, "rollout.zero_variance_target", "must be in [0, 1)")
        _require(0 <= self.speculative_tokens <= 8, "rollout.speculative_tokens", "must be in [0, 8] (0 = off)")
        _choice(self.precision, "rollout.precision", ("fp32", "bf16"))
        _choice(self.attention_backend, "rollout.attention_backend", (None, "CPU_MLA", "AMX_MLA", "CPU_ATTN"))
        _require(self.attention_backend != "AMX_MLA" or self.precision == "bf16", "rollout.attention_backend",
                 "AMX_MLA takes bf16 weights only: set rollout.precision=bf16 (or use CPU_MLA)")
        for name in self.tools:
            _require(name in TOOLS, "rollout.tools", f"unknown tool {name!r}{_suggest(name, TOOLS)}; tools: "
                     f"{', '.join(TOOLS)}")
        _require(self.max_turns >= 1, "rollout.max_turns", "must be >= 1")
        _require(self.tool_timeout_s > 0, "rollout.tool_timeout_s", "must be > 0")
        _require(self.max_observation_tokens >= 1, "rollout.max_observation_tokens", "must be >= 1")


@dataclass
class RewardConfig(_Section):
    section: typing.ClassVar[str] = "reward"
    functions: list[str] = _field(["math_accuracy", "format"], "Reward functions by registry name (rewards/); "
                                  "the reward of a completion is their weighted sum.")
    weights: list[float] = _field([], "One weight per reward function; empty = all 1.0.")
    num_workers: int = _field(2, "Processes in the reward pool (each call runs under a hard timeout).")
    timeout_s: float = _field(5.0, "Hard wall-clock limit per reward call, seconds; a timeout scores 0.")

    def validate(self) -> None:
        _require(bool(self.functions), "reward.functions", "must name at least one reward function")
        _require(not self.weights or len(self.weights) == len(self.functions), "reward.weights",
                 f"has {len(self.weights)} entries for {len(self.functions)} reward functions (or leave it empty)")
        _require(self.num_workers >= 1, "reward.num_workers", "must be >= 1")
        _require(self.timeout_s > 0, "reward.timeout_s", "must be > 0")

        for i, name in enumerate(self.functions):
            error = reward_name_error(name)
            _require(error is None, f"reward.functions[{i}]", error or "")


@dataclass
class AlgorithmConfig(_Section):
    section: typing.ClassVar[str] = "algorithm"
    loss_type: str = _field("dapo", "Policy loss (rl/algos.py registry, TRL's names): grpo (per-sequence token "
                            "mean), dr_grpo (sum / (B * max_new_tokens)), dapo (token mean over the global batch), "
                            "bnpo (token mean over the local batch), cispo, sapo, luspo, vespo; sft (the "
                            "completions' negative log-likelihood, advantages unread: what distill.mode=traces "
                            "fine-tunes with).")
    scale_rewards: bool = _field(True, "Divide group-centred rewards by the group std (GRPO); False = Dr. GRPO.")
    drop_zero_variance_groups: bool = _field(True, "Drop groups whose completions all got the same reward (DAPO "
                                             "dynamic sampling): they carry no gradient.")
    epsilon_low: float = _field(0.2, "Lower clip of the importance ratio: r >= 1 - epsilon_low.")
    epsilon_high: float = _field(0.28, "Upper clip: r <= 1 + epsilon_high (DAPO's clip-higher uses 0.28); for "
                                 "cispo the cap on r itself (e.g. 5.0).")
    delta: float | None = _field(None, "Two-sided clipping (INTELLECT-2): cap r at delta when the advantage is "
                                 "negative; None = off. Should exceed 1 + epsilon_high.")
    importance_sampling_level: str = _field("token", "Importance ratio per token, or per sequence (GSPO: the "
                                            "geometric mean of the token ratios).")
    num_iterations: int = _field(1, "Optimisation passes over each batch (mu); > 1 makes the ratio differ from 1.")
    mini_batches: int = _field(1, "Optimizer steps per batch per iteration (the batch is split into this many).")
    beta: float = _field(0.0, "Weight of the k3 KL to the reference policy; 0 = no reference model is loaded "
                         "(DeepSeek-R1 used 0.001).")
    kl_bias_correction: bool = _field(True, "Weight the per-token KL by the importance ratio (unbiased KL gradient, "
                                      "DeepSeek-V3.2; TRL's use_bias_correction_kl).")
    rollout_correction_cap: float | None = _field(None, "Truncated importance sampling (TIS): weight each token's "
                                                  "loss by min(pi_learner / pi_rollout, cap), correcting for the "
                                                  "rollout engine's other arithmetic (e.g. bf16 rollouts); 2.0 is "
                                                  "TIS's value. None = off (fp32 engine and learner agree to ~1e-6).")
    mask_truncated_completions: bool = _field(True, "Leave completions cut at max_new_tokens out of the loss (DAPO).")
    entropy_coeff: float = _field(0.0, "Weight of the completion tokens' mean entropy in the loss, as verl's "
                                  "entropy_coeff: loss = policy loss - entropy_coeff * entropy. Positive is an "
                                  "exploration bonus; negative minimises entropy (sharpens the sampling "
                                  "distribution, Agarwal et al. 2025); 0 = off.")
    max_grad_norm: float = _field(1.0, "Gradient clipping by global norm.")
    lr: float = _field(1e-5, "Learning rate (AdamW). 1e-6 to 3e-6 suits 1.5B-7B models (TRL's and verl's GRPO "
                       "default is 1e-6); for the 4M-parameter tiny policy see experiments/tiny_arith.yaml (measured "
                       "there: 1e-4 lowered held-out accuracy).")
    norm_lr_scale: float = _field(1.0, "Learning-rate multiplier for the RMSNorm gains (the 1-D *norm.weight "
                                  "parameters). AdamW moves every parameter by about lr a step whatever its size, "
                                  "so gains of size 1 barely move at RL learning rates; 1 = the same lr as the rest.")
    lr_schedule: str = _field("constant", "Learning-rate schedule after warm-up: constant, linear or cosine (to 0).")
    warmup_steps: int = _field(0, "Linear warm-up, in optimizer steps.")
    weight_decay: float = _field(0.0, "AdamW weight decay.")
    balance_bias_speed: float = _field(0.001, "MoE auxiliary-loss-free balancing: routing-bias update speed after "
                                       "each optimizer step (DeepSeek-V3's gamma); 0 = off.")
    mtp_weight: float = _field(0.0, "Weight of an auxiliary multi-token-prediction loss on the sampled completions, "
                               "truncated ones too (rl.algos.mtp_loss), which keeps the policy's MTP modules "
                               "(num_nextn_predict_layers > 0) predicting the policy's own tokens as it moves "
                               "(slime: 0.2, AReaL: 0.1). The "
                               "modules' inputs are detached from the trunk, so the policy's gradient is exactly "
                               "what it is without the term; costs one more trunk forward per micro-batch. 0 = off.")

    def validate(self) -> None:
        _choice(self.loss_type, "algorithm.loss_type", loss_names())
        _require(0 <= self.epsilon_low < 1, "algorithm.epsilon_low", "must be in [0, 1)")
        _require(self.epsilon_high >= 0, "algorithm.epsilon_high", "must be >= 0")
        _require(self.delta is None or self.delta > 1, "algorithm.delta", "must be > 1 (or null)")
        _require(self.rollout_correction_cap is None or self.rollout_correction_cap >= 1,
                 "algorithm.rollout_correction_cap", "must be >= 1 (or null)")
        _choice(self.importance_sampling_level, "algorithm.importance_sampling_level", ("token", "sequence"))
        _require(self.num_iterations >= 1, "algorithm.num_iterations", "must be >= 1")
        _require(self.mini_batches >= 1, "algorithm.mini_batches", "must be >= 1")
        _require(self.beta >= 0, "algorithm.beta", "must be >= 0")
        _require(self.max_grad_norm > 0, "algorithm.max_grad_norm", "must be > 0")
        # AdamW moves every parameter by about lr a step: above 1 no weight keeps its scale for one step.
        _require(0 < self.lr <= 1, "algorithm.lr", f"must be in (0, 1], got {self.lr:g}")
        _require(self.norm_lr_scale > 0, "algorithm.norm_lr_scale", "must be > 0")
        _require(self.lr * self.norm_lr_scale <= 1, "algorithm.norm_lr_scale",
                 f"lr x norm_lr_scale must be <= 1, got {self.lr * self.norm_lr_scale:g}")
        _choice(self.lr_schedule, "algorithm.lr_schedule", ("constant", "linear", "cosine"))
        _require(self.warmup_steps >= 0, "algorithm.warmup_steps", "must be >= 0")
        _require(0 <= self.weight_decay <= 1, "algorithm.weight_decay", "must be in [0, 1]")
        _require(self.balance_bias_speed >= 0, "algorithm.balance_bias_speed", "must be >= 0")
        _require(0 <= self.mtp_weight <= 10, "algorithm.mtp_weight", f"must be in [0, 10], got {self.mtp_weight:g}")


@dataclass
class SFTConfig(_Section):
    section: typing.ClassVar[str] = "sft"
    steps: int = _field(0, "Supervised warm-start steps on the training problems' reference solutions; 0 = skip.")
    lr: float = _field(1e-3, "Warm-start learning rate (AdamW).")
    batch_size: int = _field(32, "Problems per warm-start step.")
    max_tokens: int = _field(256, "Longest prompt + solution in the warm start (longer ones are cut).")
    mtp_weight: float = _field(0.0, "Weight (DeepSeek-V3's lambda: 0.3, later 0.1) of the multi-token-prediction "
                               "loss added to the warm start's next-token loss, which trains the policy's MTP "
                               "modules (the policy needs num_nextn_predict_layers > 0); 0 = off, the modules "
                               "untrained.")

    def validate(self) -> None:
        _require(self.steps >= 0, "sft.steps", "must be >= 0")
        _require(0 <= self.mtp_weight <= 10, "sft.mtp_weight", f"must be in [0, 10], got {self.mtp_weight:g}")
        _require(0 < self.lr <= 1, "sft.lr", f"must be in (0, 1], got {self.lr:g}")
        _require(self.batch_size >= 1, "sft.batch_size", "must be >= 1")
        _require(self.max_tokens >= 1, "sft.max_tokens", "must be >= 1")


@dataclass
class TrainerConfig(_Section):
    section: typing.ClassVar[str] = "trainer"
    steps: int = _field(100, "GRPO steps (one rollout batch each).")
    output_dir: str = _field("runs/grpo", "Run folder: config.yaml, metrics, checkpoints, plots.")
    save_every: int = _field(50, "Checkpoint every this many steps (and at the end); 0 = only at the end.")
    eval_every: int = _field(25, "Evaluate every this many steps (and before the first and after the last); 0 = "
                             "never.")
    seed: int = _field(0, "Seed of sampling and of the learner.")
    resume: bool = _field(False, "Continue from the newest whole checkpoint in output_dir (a damaged newer one is "
                          "passed over, and the log names the one taken; none whole is an error); without any "
                          "checkpoint the run starts again at step 0. Logs keep one record per step.")
    overwrite: bool = _field(False, "Delete what output_dir holds and start afresh. Without it (and without resume), "
                             "a run refuses an output_dir that already holds a run.")
    num_learners: int = _field(1, "Learner processes training the policy together (FSDP2: each holds a shard of the "
                               "weights and optimizer state and takes a share of every mini-batch); one per GPU.")
    learner_device: str = _field("auto", "Where the learners compute: cpu, cuda, or auto (cuda when the Ray cluster "
                                 "has a GPU for every learner).")
    one_step_off_policy: bool = _field(False, "Send the next step's prompts to the rollout workers before the "
                                       "learner takes this step, so generation overlaps learning (verl's one-step "
                                       "off-policy): each batch then comes from the policy one update behind, which "
                                       "algorithm.rollout_correction_cap (TIS) corrects; it must be set. Pays where "
                                       "rollout workers and learners have hardware of their own, not on 2 CPU cores "
                                       "(docs/results.md, 'Speed against TRL').")
    pack_sequences: bool = _field(True, "Learner forward on packed rows (the batch's sequences laid end to end, "
                                  "attention kept within each) instead of rows padded to the longest, whenever that "
                                  "cuts the positions by 10% or more (rl.policy.PACK_MIN_SAVING); same logprobs "
                                  "and gradients up to float rounding. Pays when lengths vary; the demo's lengths are "
                                  "too even to pack (docs/results.md). Our DeepSeek-V3 class only; other policies "
                                  "run padded rows.")
    micro_batch_positions: int = _field(0, "The most padded positions (rows x their longest sequence) one learner "
                                        "forward and backward runs: each mini-batch is cut into length-sorted "
                                        "micro-batches under it, each trimmed to its own longest sequence, and their "
                                        "gradients accumulated into one optimizer step (verl's dynamic batch size); "
                                        "the same step up to float rounding. Bounds the learner's memory, and on a "
                                        "CPU large batches run faster in parts (docs/results.md). 0 = each "
                                        "mini-batch in one pass.")
    precision: str = _field("fp32", "Learner arithmetic: fp32, bf16 (autocast forward/backward with fp32 master "
                            "weights, optimizer state and loss), or fp8: DeepSeek-V3's FP8 training (model/fp8.py): "
                            "the three GEMMs of every MLA and expert projection in e4m3 with 1x128 activation tiles "
                            "and 128x128 weight blocks, bf16 for what stays out (embedding, heads, router, norms, "
                            "attention), fp32 master weights and optimizer state. FP8 GEMMs on Hopper GPUs; "
                            "emulated (slower than bf16) on CPUs. Rollouts keep rollout.precision; mismatch/* "
                            "shows what FP8 adds.")

    def validate(self) -> None:
        _require(self.steps >= 0, "trainer.steps", "must be >= 0")
        _require(self.num_learners >= 1, "trainer.num_learners", "must be >= 1")
        _choice(self.learner_device, "trainer.learner_device", ("auto", "cpu", "cuda"))
        _choice(self.precision, "trainer.precision", PRECISIONS)
        _require(bool(self.output_dir), "trainer.output_dir", "must not be empty")
        _require(not Path(self.output_dir).is_file(), "trainer.output_dir",
                 f"{self.output_dir} is a file, not a folder")
        _require(not (self.resume and self.overwrite), "trainer.overwrite", "cannot be combined with trainer.resume")
        _require(self.save_every >= 0, "trainer.save_every", "must be >= 0")
        _require(self.eval_every >= 0, "trainer.eval_every", "must be >= 0")
        _require(self.micro_batch_positions >= 0, "trainer.micro_batch_positions", "must be >= 0 (0 = no micro-batches)")


@dataclass
class LoggingConfig(_Section):
    section: typing.ClassVar[str] = "logging"
    jsonl: bool = _field(True, "Write metrics.jsonl in the run folder.")
    tensorboard: bool = _field(True, "Write TensorBoard event files in the run folder.")
    wandb_project: str | None = _field(None, "Weights & Biases project to log to; None = off.")
    progress: bool = _field(True, "Show a progress bar.")
    samples_per_step: int = _field(4, "Completions written each step to samples.jsonl (and TensorBoard's text tab) "
                                   "with their rewards and the reward functions' reasons: the best and the worst "
                                   "of samples_per_step / 2 randomly drawn groups; 0 = off.")

    def validate(self) -> None:
        _require(self.samples_per_step >= 0, "logging.samples_per_step", "must be >= 0")


@dataclass
class RayConfig(_Section):
    section: typing.ClassVar[str] = "ray"
    address: str | None = _field(None, "Ray cluster to join ('auto', 'ray://host:10001'); None = start one "
                                 "in-process.")
    num_cpus: int | None = _field(None, "CPUs of the in-process Ray instance; None = all. Ignored with address.")
    rollout_resources: dict[str, float] = _field({}, "Custom Ray resources each rollout worker requests, to pin it "
                                                 "to nodes (e.g. {rollout_node: 1}).")
    learner_resources: dict[str, float] = _field({}, "Custom Ray resources the learner requests.")

    def validate(self) -> None:
        _require(self.num_cpus is None or self.num_cpus >= 1, "ray.num_cpus", "must be >= 1 (or null)")
        for name in ("rollout_resources", "learner_resources"):
            _require(all(v >= 0 for v in getattr(self, name).values()), f"ray.{name}", "amounts must be >= 0")


DISTILL_MODES = ("on_policy", "traces", "expert_iteration")
DISTILL_KL = ("sampled", "full")  # on_policy's signal: the sampled token's reverse-KL estimate, or the exact KL
SEARCH_OPTIONS_SET_ELSEWHERE = ("temperature", "max_tokens", "seed")  # expert_iteration's search: distill, rollout


@dataclass
class DistillConfig(_Section):
    section: typing.ClassVar[str] = "distill"
    mode: str = _field("on_policy", "What `reasonrl distill` teaches the student (model.path) with: on_policy (GRPO's "
                       "loop with the teacher as the signal: the student samples, the teacher scores every sampled "
                       "token, and each token's advantage is teacher logprob - student logprob, the reverse KL's "
                       "estimate; no group is dropped as zero-variance), traces (the teacher answers the training "
                       "problems, the verifier keeps the correct answers once each, written to traces.jsonl in the "
                       "run folder, and the student is fine-tuned on them for trainer.steps steps of sft.batch_size "
                       "traces at sft.lr, sft.max_tokens long at most) or expert_iteration (no teacher: distill.rounds "
                       "rounds of the student's own search on the training problems, its verified answers kept as in "
                       "traces, then sft_steps_per_round fine-tuning steps on them; trainer.steps is not read).")
    teacher: str | None = _field(None, "The teacher: a checkpoint folder (on_policy: it must share the student's "
                                 "tokenizer and vocabulary; traces: it samples through the rollout workers' engine "
                                 "at rollout.max_new_tokens), or in traces mode a JSON Lines file of anyone's "
                                 "traces, a problem id or text and a completion per row (a run's traces.jsonl "
                                 "reads as it is). None = not distilling; on_policy and traces need it, "
                                 "expert_iteration does not read it (the student's search teaches it).")
    kl: str = _field("sampled", "on_policy: how the student learns the reverse KL to the teacher. sampled: each "
                     "sampled token's advantage is teacher logprob - student logprob, the KL's one-sample estimate, "
                     "in GRPO's policy-gradient loss (Thinking Machines'; the signal says a token was worse, not "
                     "which the teacher wanted). full: the exact KL between the two next-token distributions at "
                     "every position of the student's samples, added to the loss as a token mean with its gradient "
                     "into the student's logits (GKD's; the teacher ships its distribution to the learner, see "
                     "kl_top_k); the rule reward's advantage, if weighted, is the policy-gradient term.")
    kl_top_k: int = _field(0, "on_policy with kl=full: the teacher's likeliest tokens per position shipped to the "
                           "learner, both distributions renormalized over them (large vocabularies); 0 = the whole "
                           "vocabulary (exact).")
    rule_reward_weight: float = _field(0.0, "on_policy: weight of the rule reward's GRPO advantage (reward section) "
                                       "added to every token's teacher advantage; 0 = the teacher's signal alone "
                                       "(the rewards are still scored and logged).")
    traces_per_problem: int = _field(4, "traces: answers the teacher samples per training problem; expert_iteration: "
                                     "searches per training problem and round, each with its own seed (rejection "
                                     "sampling: the verifier keeps the correct ones, each distinct answer once).")
    temperature: float = _field(1.0, "traces: the teacher's sampling temperature (DeepSeek-R1's distillation data "
                                "was sampled at 0.6 with top_p 0.95); expert_iteration: the search's.")
    top_p: float = _field(1.0, "traces: the teacher's nucleus sampling threshold; 1.0 = off.")
    rounds: int = _field(3, "expert_iteration: rounds of search -> verify -> fine-tune; the held-out evaluation "
                         "(greedy, sampled and searched pass@1) and a checkpoint follow every round, and a resumed "
                         "run continues after the last whole round.")
    search_method: str = _field("self_consistency", "expert_iteration: the search that answers the training problems "
                                "(a search.METHODS name: greedy, self_consistency, best_of_n, weighted_best_of_n, "
                                "beam, dvts, mcts), run next to the rollout workers' engines; a method that values "
                                "steps or solutions is valued by the sympy step checker. The held-out evaluation "
                                "runs it too (eval/search_pass@1).")
    search_budget: int = _field(256, "expert_iteration: policy tokens each search spends (its last engine call may "
                                "pass them by up to one call's tokens).")
    search_options: dict[str, int | bool | float | str] = _field(
        {}, "expert_iteration: the search method's options (e.g. {n: 4} for self_consistency, {num_children: 4} for "
        "mcts; `reasonrl solve --help` lists them), checked before anything starts.")
    sft_steps_per_round: int = _field(20, "expert_iteration: fine-tuning steps per round, sft.batch_size of the "
                                      "round's verified traces each, at sft.lr (the `sft` loss), on the run's "
                                      "learners.")

    def validate(self) -> None:
        _choice(self.mode, "distill.mode", DISTILL_MODES)
        _choice(self.kl, "distill.kl", DISTILL_KL)
        _require(self.kl_top_k >= 0, "distill.kl_top_k", "must be >= 0 (0 = the whole vocabulary)")
        _require(self.kl == "sampled" or self.mode == "on_policy", "distill.kl",
                 f"is read only in distill.mode=on_policy (this run's mode: {self.mode})")
        _require(self.kl_top_k == 0 or self.kl == "full", "distill.kl_top_k",
                 "is read only with distill.kl=full (the sampled estimate needs no teacher distribution)")
        _require(self.rule_reward_weight >= 0, "distill.rule_reward_weight", "must be >= 0")
        _require(self.traces_per_problem >= 1, "distill.traces_per_problem", "must be >= 1")
        _require(self.temperature >= 0, "distill.temperature", "must be >= 0")
        _require(0 < self.top_p <= 1, "distill.top_p", "must be in (0, 1]")
        _require(self.rounds >= 1, "distill.rounds", "must be >= 1")
        _require(self.search_budget >= 1, "distill.search_budget", "must be >= 1 (policy tokens a search spends)")
        _require(self.sft_steps_per_round >= 1, "distill.sft_steps_per_round", "must be >= 1")
        _choice(self.search_method, "distill.search_method", sorted(METHODS))
        given_elsewhere = sorted(set(self.search_options) & set(SEARCH_OPTIONS_SET_ELSEWHERE))
        _require(not given_elsewhere, "distill.search_options",
                 f"{', '.join(given_elsewhere)}: set elsewhere, not here: the search samples at distill.temperature, "
                 "up to rollout.max_new_tokens, each search with its own seed")
        try:
            check_options(self.search_method, dict(self.search_options))
        except ValueError as error:
            raise ConfigError(f"distill.search_options: {error}") from None
        # The teacher's folder or file is checked when a distillation starts (rl.distill.check_distill), so that a
        # job file loads on a machine that does not hold its teacher yet.


SECTIONS: dict[str, type[_Section]] = {
    "model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig, "reward": RewardConfig,
    "algorithm": AlgorithmConfig, "sft": SFTConfig, "trainer": TrainerConfig, "logging": LoggingConfig,
    "ray": RayConfig, "distill": DistillConfig,
}


@dataclass
class Config:
    """A whole run. Sections: model, data, rollout, reward, algorithm, sft, trainer, logging, ray, distill."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            _require(isinstance(getattr(self, name), cls), name, f"must be a {cls.__name__}")
        batch = self.rollout.prompts_per_step * self.rollout.group_size
        _require(not self.trainer.one_step_off_policy or self.algorithm.rollout_correction_cap is not None,
                 "algorithm.rollout_correction_cap", "must be set with trainer.one_step_off_policy (its batches come "
                 "from the policy one update behind; TIS uses 2.0)")
        _require(self.algorithm.mini_batches <= batch, "algorithm.mini_batches",
                 f"{self.algorithm.mini_batches} mini-batches cannot split a batch of {batch} completions")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Config:
        """Build from nested mappings {section: {field: value}}; missing fields keep their defaults."""
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
        sections = {}
        for name, values in raw.items():
            section_cls = SECTIONS.get(name)
            if section_cls is None:
                raise ConfigError(f"unknown section {name!r}{_suggest(name, SECTIONS)}; sections: "
                                  f"{', '.join(SECTIONS)}")
            values = values or {}
            if not isinstance(values, dict):
                raise ConfigError(f"{name}: must be a mapping of fields, got {values!r}")
            known = {f.name for f in dataclasses.fields(section_cls)}  # type: ignore[arg-type]
            for key in values:
                if key not in known:
                    raise ConfigError(f"unknown field {name}.{key}{_suggest(key, known)}; fields of {name}: "
                                      f"{', '.join(sorted(known))}")
            sections[name] = section_cls(**values)
        return cls(**sections)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (YAML/JSON-serialisable)."""
        return dataclasses.asdict(self)


def cpus_needed(config: Config) -> float:
    """Ray CPUs the job's actors ask for: one per rollout worker, one shared by the CPU learners (one per GPU
    learner), none for the reward worker (its pool's processes are outside Ray's accounting)."""
    return config.rollout.num_workers + (config.trainer.num_learners if config.trainer.learner_device == "cuda"
                                         else 1)


def local_resources(config: Config) -> dict[str, float]:
    """What an in-process Ray instance started with this config will hold: this machine's GPUs and ray.num_cpus
    CPUs (all of them when unset), so a job can be checked before anything starts."""
    return {"CPU": float(config.ray.num_cpus or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def check_placement(config: Config, resources: dict[str, float]) -> None:
    """Raise ConfigError naming the fields when the cluster's `resources` (Ray's cluster_resources()) cannot hold
    the job's actors: Ray would otherwise wait forever for them, silently. GPU clusters place rollout workers
    and learners on GPUs (rl.trainer), so only CPU-only clusters are checked."""
    if resources.get("GPU", 0) > 0:
        return
    needed, available = cpus_needed(config), resources.get("CPU", 0)
    if needed > available:
        source = "ray.num_cpus" if config.ray.address is None else f"the Ray cluster at {config.ray.address}"
        raise ConfigError(
            f"rollout.num_workers={config.rollout.num_workers} rollout workers (1 CPU each) and the learners (1 CPU) "
            f"need {needed:g} CPUs, but {source} gives {available:g}: lower rollout.num_workers, or raise "
            "ray.num_cpus (Ray would wait for the CPUs forever)")
    for name in ("rollout_resources", "learner_resources"):
        for resource, amount in getattr(config.ray, name).items():
            if amount > resources.get(resource, 0):
                raise ConfigError(f"ray.{name}: asks for {amount:g} of resource {resource!r}, which the Ray cluster "
                                  f"has {resources.get(resource, 0):g} of")


def _suggest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------------------------------------ type checking

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """`value` as `annotation` (int -> float and '1e-5' -> float allowed, nothing else), else ConfigError."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, name)
            except ConfigError:
                pass
        raise _type_error(value, annotation, name)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, annotation, name)
        return [_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(value, annotation, name)
        return {_coerce(k, args[0], f"{name} key"): _coerce(v, args[1], f"{name}[{k!r}]") for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= 2**63:
                raise ConfigError(f"{name}: {value} is too large (an integer field must fit in 64 bits)")
            return value
    elif annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and _FLOAT.match(value.strip()):  # PyYAML reads 1e-5 (no dot) as a string
            number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{name}: must be a finite number, got {value!r}")
            return number
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{name}: unsupported annotation {annotation!r}")
    raise _type_error(value, annotation, name)


def _type_error(value: Any, annotation: Any, name: str) -> ConfigError:
    return ConfigError(f"{name}: expected {_type_name(annotation)}, got {value!r} ({type(value).__name__})")


# ------------------------------------------------------------------------------------------------ load / save


def parse_override(override: str) -> tuple[str, str, Any]:
    """'section.field=value' -> (section, field, value parsed as a YAML scalar or flow list/mapping)."""
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name or "." in name:
        raise ConfigError(f"override {override!r} must look like section.field=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: cannot parse {text!r} as a YAML value ({error})") from None
    return section, name, value


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The config of a YAML file (None: the defaults) with `section.field=value` overrides applied in order.

    Raises:
        ConfigError: for an unreadable file, an unknown section or field, a value of the wrong type or range.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        if Path(path).is_dir():
            raise ConfigError(f"cannot read config {path}: it is a folder, not a YAML file")
        try:
            raw = yaml.load(Path(path).read_text(), Loader=_UniqueKeyLoader)
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read config {path}: {error}") from None
        if raw is None:  # an empty file would silently train on the defaults
            raise ConfigError(f"{path}: the job file is empty (give no file to train on the defaults: "
                              "`reasonrl train` alone)")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections")
    for override in overrides:
        section, name, value = parse_override(override)
        if section in raw and not isinstance(raw[section], dict):
            raise ConfigError(f"{section}: must be a mapping of fields")
        raw.setdefault(section, {})
        raw[section] = {**(raw[section] or {}), name: value}
    return Config.from_dict(raw)


def save_config(config: Config, path: str | Path) -> Path:
    """Write `config` as YAML (loadable by `load_config`), e.g. into the run folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# reasonrl run configuration (load with rl.config.load_config)\n"
                    + yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None))
    return path


def describe() -> str:
    """Every field with its type, default and help, one per line (for `--help` and the docs)."""
    lines = []
    for name, section in SECTIONS.items():
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):  # type: ignore[arg-type]
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            lines.append(f"{name}.{f.name} ({_type_name(hints[f.name])}, default {default!r}): {f.metadata['help']}")
    return "\n".join(lines)
