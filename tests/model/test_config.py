import dataclasses
import json

import pytest

from model.config import PRESETS, ConfigError, ModelArgs, preset


def test_presets_are_valid_and_tiny_fits_vllm_cpu():
    for name in PRESETS:
        assert isinstance(preset(name), ModelArgs)
    assert preset("tiny").vllm_cpu_problems() == []


@pytest.mark.parametrize("overrides, named", [
    ({"n_routed_experts": 6, "n_group": 4}, "n_routed_experts (6) must be divisible by n_group (4)"),
    ({"topk_group": 5}, "topk_group (5) exceeds n_group (4)"),
    ({"num_experts_per_tok": 5}, "num_experts_per_tok (5)"),
    ({"qk_rope_head_dim": 63}, "qk_rope_head_dim must be even"),
    ({"hidden_size": 0}, "hidden_size must be a positive integer"),
    ({"first_k_dense_replace": 9}, "first_k_dense_replace (9)"),
    ({"eos_token_id": 5000}, "eos_token_id (5000) is outside the vocabulary"),
    ({"scoring_func": "softmax"}, "scoring_func='softmax'"),
    ({"hidden_act": "gelu"}, "hidden_act must be 'silu'"),
])
def test_inconsistent_dimensions_are_named(overrides, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        preset("tiny", **overrides)


def test_vllm_cpu_limit_is_reported():
    assert "576" in preset("tiny", kv_lora_rank=256).vllm_cpu_problems()[0]


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset("huge")


def test_hf_dict_round_trip_and_foreign_keys_ignored():
    args = preset("tiny", num_nextn_predict_layers=1)
    config = args.to_hf_dict()
    assert config["architectures"] == ["DeepseekV3ForCausalLM"] and config["num_key_value_heads"] == 4
    config["some_future_field"] = 1
    assert ModelArgs.from_hf_dict(config) == args


def test_other_architecture_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64}))
    with pytest.raises(ConfigError, match="Qwen2ForCausalLM, not DeepseekV3ForCausalLM"):
        ModelArgs.load(path)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config.json is missing"):
        ModelArgs.load(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        ModelArgs.load(tmp_path / "config.json")


def test_yarn_rope_scaling_is_refused_clearly():
    config = dataclasses.replace(preset("tiny")).to_hf_dict()
    config["rope_scaling"] = {"type": "yarn", "factor": 40}
    with pytest.raises(ConfigError, match="rope scaling"):
        ModelArgs.from_hf_dict(config)
