"""rl.config: defaults, YAML loading, command-line overrides, type and range errors, saving."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rl.config import (SECTIONS, AlgorithmConfig, Config, ConfigError, RayConfig, describe, load_config,
                       parse_override, save_config)

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_every_field_has_a_default_and_help():
    assert list(SECTIONS) == ["model", "data", "rollout", "reward", "algorithm", "sft", "trainer", "logging", "ray",
                              "distill"]
    for section in SECTIONS.values():
        for f in dataclasses.fields(section):
            assert f.metadata.get("help"), f"{section.__name__}.{f.name} has no help"
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    config = Config()
    assert config.algorithm.loss_type == "dapo" and config.rollout.group_size == 8
    assert config.reward.functions == ["math_accuracy", "format"] and config.ray.rollout_resources == {}
    # Mutable defaults are not shared between instances.
    config.reward.functions.append("x")
    assert Config().reward.functions == ["math_accuracy", "format"]
    assert "algorithm.epsilon_high (float, default 0.28)" in describe()


@pytest.mark.parametrize("name", ["tiny_arith.yaml", "gsm8k_grpo.yaml", "tiny_steps.yaml", "tiny_code.yaml",
                                  "code_grpo.yaml", "tiny_distill.yaml", "tiny_tools.yaml"])
def test_experiment_files_load(name):
    config = load_config(EXPERIMENTS / name)
    assert isinstance(config, Config)


def test_experiment_file_contents():
    tiny = load_config(EXPERIMENTS / "tiny_arith.yaml")
    assert tiny.model.path == "preset:tiny" and tiny.data.train == "synthetic" and tiny.sft.steps > 0
    assert tiny.algorithm.lr == pytest.approx(5e-5) and tiny.reward.weights == [1.0, 0.2]
    gsm = load_config(EXPERIMENTS / "gsm8k_grpo.yaml")
    assert gsm.model.path == "Qwen/Qwen2.5-Math-1.5B" and gsm.trainer.precision == "bf16"
    assert gsm.data.train == "gsm8k" and gsm.rollout.group_size == 16
    assert gsm.data.system_prompt.endswith("within \\boxed{}.")


def test_overrides_parse_yaml_values():
    config = load_config(EXPERIMENTS / "tiny_arith.yaml", [
        "algorithm.beta=0.01", "reward.functions=[math_accuracy,format]", "reward.weights=[1, 0.5]",
        "data.levels=[2,3]", "ray.address=auto", "ray.num_cpus=4", "logging.wandb_project=null",
        "trainer.resume=true", "algorithm.lr=3e-5", "ray.rollout_resources={rollout_node: 1}",
        "algorithm.delta=1.5",
    ])
    assert config.algorithm.beta == 0.01
    assert config.reward.functions == ["math_accuracy", "format"]
    assert config.reward.weights == [1.0, 0.5] and all(isinstance(w, float) for w in config.reward.weights)
    assert config.data.levels == [2, 3] and config.ray.address == "auto" and config.ray.num_cpus == 4
    assert config.logging.wandb_project is None and config.trainer.resume is True
    assert config.algorithm.lr == pytest.approx(3e-5)  # PyYAML reads 3e-5 as a string; float fields accept it
    assert config.ray.rollout_resources == {"rollout_node": 1.0} and config.algorithm.delta == 1.5
    # Later overrides win; overrides work without a file too.
    assert load_config(None, ["rollout.group_size=4", "rollout.group_size=6"]).rollout.group_size == 6


@pytest.mark.parametrize("override, message", [
    ("algorithm.betta=0.1", r"unknown field algorithm\.betta \(did you mean 'beta'\?\)"),
    ("algo.beta=0.1", r"unknown section 'algo' \(did you mean 'algorithm'\?\)"),
    ("rollout.group_size=8.5", r"rollout\.group_size: expected int, got 8\.5"),
    ("rollout.group_size=true", r"rollout\.group_size: expected int, got True"),
    ("trainer.resume=1", r"trainer\.resume: expected bool, got 1"),
    ("algorithm.lr=fast", r"algorithm\.lr: expected float, got 'fast'"),
    ("data.levels=[1, two]", r"data\.levels\[1\]: expected int, got 'two'"),
    ("data.levels=3", r"data\.levels: expected list\[int\], got 3"),
    ("ray.num_cpus=many", r"ray\.num_cpus: expected int \| None, got 'many'"),
    ("ray.learner_resources=[gpu]", r"ray\.learner_resources: expected dict\[str, float\]"),
    ("ray.learner_resources={gpu: lots}", r"ray\.learner_resources\['gpu'\]: expected float"),
    ("reward.functions=math_accuracy", r"reward\.functions: expected list\[str\]"),
    ("trainer.precision=float16", r"trainer\.precision: must be one of 'fp32', 'bf16'"),
    ("trainer.precision=fp9", r"trainer\.precision: must be one of 'fp32', 'bf16', 'fp8'.*got 'fp9'"),
    ("algorithm.loss_type=ppo", r"algorithm\.loss_type: must be one of .*'dapo'"),
    ("reward.weights=[1.0]", r"reward\.weights: has 1 entries for 2 reward functions"),
    ("rollout.group_size=1", r"rollout\.group_size: must be >= 2"),
    ("rollout.top_p=0", r"rollout\.top_p: must be in \(0, 1\]"),
    ("algorithm.norm_lr_scale=0", r"algorithm\.norm_lr_scale: must be > 0"),
    ("algorithm.lr_schedule=step", r"algorithm\.lr_schedule: must be one of 'constant', 'linear', 'cosine'"),
    ("data.train=mnist", r"data\.train: must be one of 'synthetic', 'synthetic_code', 'code', 'humaneval', 'mbpp', 'gsm8k', .*got 'mnist'"),
    ("data.train=math", r"data\.train: 'math' is MATH-500, a test set"),
    ("algorithm.mini_batches=1000", r"algorithm\.mini_batches: 1000 mini-batches cannot split"),
    ("trainer.one_step_off_policy=true", r"algorithm\.rollout_correction_cap: must be set with trainer\.one_step_off"),
    ("distill.mode=expert", r"distill\.mode: must be one of 'on_policy', 'traces', 'expert_iteration', got 'expert'"),
    ("distill.modes=traces", r"unknown field distill\.modes \(did you mean 'mode'\?\)"),
    ("distill.traces_per_problem=0", r"distill\.traces_per_problem: must be >= 1"),
    ("distill.rule_reward_weight=-1", r"distill\.rule_reward_weight: must be >= 0"),
    ("distill.top_p=1.5", r"distill\.top_p: must be in \(0, 1\]"),
    ("beta=0.1", r"must look like section\.field=value"),
    ("algorithm.beta", r"must look like section\.field=value"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EXPERIMENTS / "tiny_arith.yaml", [override])


def test_config_error_is_a_value_error_the_cli_catches():
    from model.config import ConfigError as ModelConfigError

    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, ModelConfigError)


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="algorithm.epsilon_low: expected float"):
        AlgorithmConfig(epsilon_low="wide")
    with pytest.raises(ConfigError, match="ray.num_cpus: must be >= 1"):
        RayConfig(num_cpus=0)
    assert AlgorithmConfig(lr=1).lr == 1.0 and isinstance(AlgorithmConfig(lr=1).lr, float)


def test_bad_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "section.yaml").write_text("algorithm: 3\n")
    with pytest.raises(ConfigError, match="algorithm: must be a mapping"):
        load_config(tmp_path / "section.yaml")
    (tmp_path / "broken.yaml").write_text("algorithm: {beta: [\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    for text in ("", "# only a comment\n"):  # an empty job would silently train on the defaults
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match="the job file is empty"):
            load_config(tmp_path / "empty.yaml")
    (tmp_path / "partial.yaml").write_text("rollout:\n  group_size: 4\nsft:\n")
    partial = load_config(tmp_path / "partial.yaml")
    assert partial.rollout.group_size == 4 and partial.rollout.prompts_per_step == 16 and partial.sft.steps == 0


def test_save_and_reload_round_trip(tmp_path):
    config = load_config(EXPERIMENTS / "gsm8k_grpo.yaml", ["ray.rollout_resources={node_a: 1}", "algorithm.beta=0.001"])
    path = save_config(config, tmp_path / "run" / "config.yaml")
    assert path.read_text().startswith("# reasonrl run configuration")
    again = load_config(path)
    assert again == config and again.to_dict() == config.to_dict()
    assert config.to_dict()["algorithm"]["beta"] == 0.001


def test_parse_override():
    assert parse_override("rollout.temperature=0.7") == ("rollout", "temperature", 0.7)
    assert parse_override("logging.wandb_project=my-run") == ("logging", "wandb_project", "my-run")
    assert parse_override("model.path=") == ("model", "path", "")


@pytest.mark.parametrize("override, message", [
    ("algorithm.lr=1e30", r"algorithm\.lr: must be in \(0, 1\], got 1e\+30"),
    ("algorithm.lr=0", r"algorithm\.lr: must be in \(0, 1\]"),
    ("algorithm.norm_lr_scale=1e6", r"algorithm\.norm_lr_scale: lr x norm_lr_scale must be <= 1"),
    ("algorithm.weight_decay=5", r"algorithm\.weight_decay: must be in \[0, 1\]"),
    ("sft.lr=2", r"sft\.lr: must be in \(0, 1\], got 2"),
])
def test_values_with_no_sane_range_are_bounded(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
