import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import ConfigError, Transformer, load_pretrained, preset, save_pretrained
from model.checkpoint import to_hf_state_dict


@pytest.mark.parametrize("overrides", [{}, {"num_nextn_predict_layers": 1}, {"tie_word_embeddings": True},
                                       {"q_lora_rank": None}])
def test_save_load_round_trip_is_exact(tmp_path, overrides):
    torch.manual_seed(0)
    model = Transformer(preset("tiny", **overrides))
    with torch.no_grad():
        model.layers[1].mlp.gate.e_score_correction_bias.normal_()
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    if overrides.get("tie_word_embeddings"):
        assert loaded.lm_head.weight is loaded.embed_tokens.weight


def test_checkpoint_uses_the_hf_layout_with_one_tensor_per_expert(tmp_path):
    model = Transformer(preset("tiny", num_nextn_predict_layers=1))
    save_pretrained(model, tmp_path)
    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
            "model.layers.0.mlp.gate_proj.weight", "model.layers.1.self_attn.kv_a_proj_with_mqa.weight",
            "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.1.mlp.experts.7.down_proj.weight",
            "model.layers.1.mlp.shared_experts.up_proj.weight", "model.layers.4.eh_proj.weight",
            "model.layers.4.shared_head.head.weight", "model.layers.4.embed_tokens.weight"} <= names
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).exists()
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["DeepseekV3ForCausalLM"]


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="is not a checkpoint folder"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="config.json is missing"):
        load_pretrained(tmp_path)
    preset("tiny").save(tmp_path / "config.json")
    with pytest.raises(ConfigError, match="no model.safetensors"):
        load_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        load_pretrained(tmp_path)


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    model = Transformer(preset("tiny"))
    weights = {k: v.clone() for k, v in to_hf_state_dict(model).items()}
    del weights["model.layers.2.self_attn.o_proj.weight"]
    del weights["model.layers.1.mlp.experts.3.up_proj.weight"]
    weights["model.layers.9.something.weight"] = torch.zeros(1)
    weights["model.norm.weight"] = torch.ones(7)
    save_pretrained(model, tmp_path)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError) as error:
        load_pretrained(tmp_path)
    message = str(error.value)
    assert "2 missing tensors: " in message
    assert "model.layers.2.self_attn.o_proj.weight" in message and "model.layers.1.mlp.experts.3.up_proj" in message
    assert "model.layers.9.something.weight" in message
    assert "model.norm.weight: checkpoint (7,), model (256,)" in message


def test_another_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    with pytest.raises(ConfigError, match="LlamaForCausalLM, not DeepseekV3ForCausalLM"):
        load_pretrained(tmp_path)


def test_sharded_checkpoints_load(tmp_path):
    torch.manual_seed(1)
    model = Transformer(preset("tiny"))
    save_pretrained(model, tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, str(tmp_path / file))
    index = {"weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    ids = torch.randint(0, 2048, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(load_pretrained(tmp_path).eval()(ids).logits, model.eval()(ids).logits,
                                   atol=0, rtol=0)
