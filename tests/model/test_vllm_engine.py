"""The engine settings name every kernel choice a CPU would otherwise make (no vLLM engine starts here)."""

import pytest

from model import init_pretrained
from model.vllm_engine import engine_kwargs


@pytest.fixture(scope="module")
def policy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine") / "tiny"
    init_pretrained("tiny", folder)
    return folder


def test_cpu_engine_names_its_attention_backend_on_any_cpu(policy_folder, monkeypatch):
    """vLLM-CPU picks AMX_MLA on a CPU with AMX unless the backend is named, and AMX_MLA kills an fp32 engine at
    start-up: the default settings name CPU_MLA whether or not this CPU has AMX."""
    import model.vllm_engine as engine

    for has_amx in (False, True):
        monkeypatch.setattr(engine, "cpu_has_amx", lambda: has_amx)
        monkeypatch.setattr(engine, "on_cpu", lambda: True)
        kwargs = engine_kwargs(policy_folder)
        assert kwargs["attention_config"] == {"backend": "CPU_MLA"}
        assert kwargs["dtype"] == "float32" and kwargs["enforce_eager"] is True
        assert kwargs["compilation_config"] == {"custom_ops": ["-rotary_embedding"]}  # the rotary kernel's bug
        assert kwargs["model"] == str(policy_folder) and kwargs["max_model_len"] == 2048


def test_amx_backend_is_an_option_only_where_it_can_run(policy_folder, monkeypatch):
    import model.vllm_engine as engine

    monkeypatch.setattr(engine, "on_cpu", lambda: True)
    monkeypatch.setattr(engine, "cpu_has_amx", lambda: True)
    assert engine_kwargs(policy_folder, "bf16", "AMX_MLA")["attention_config"] == {"backend": "AMX_MLA"}
    assert engine_kwargs(policy_folder, "bf16")["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="AMX_MLA' takes bf16 weights only"):
        engine_kwargs(policy_folder, "fp32", "AMX_MLA")
    with pytest.raises(ValueError, match="cannot serve .* on CPU; choose one of CPU_MLA, AMX_MLA"):
        engine_kwargs(policy_folder, "fp32", "CPU_ATTN")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        engine_kwargs(policy_folder, "fp16")
    monkeypatch.setattr(engine, "cpu_has_amx", lambda: False)
    with pytest.raises(ValueError, match="needs a CPU with AMX"):
        engine_kwargs(policy_folder, "bf16", "AMX_MLA")


def test_overrides_win_and_a_non_folder_is_named(policy_folder, tmp_path):
    assert engine_kwargs(policy_folder, max_model_len=512, seed=3)["max_model_len"] == 512
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        engine_kwargs(tmp_path)
