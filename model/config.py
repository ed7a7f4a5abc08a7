"""ModelArgs: the hyper-parameters of a DeepSeek-V3 policy, in the Hugging Face config.json names.

Field names are those of `DeepseekV3ForCausalLM`'s config.json, so one file describes the model for
our PyTorch code, for transformers and for vLLM. Presets give the sizes the project uses.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCHITECTURE = "DeepseekV3ForCausalLM"
MODEL_TYPE = "deepseek_v3"

# vLLM's CPU attention backend for MLA supports exactly one latent width (docs/ARCHITECTURE.md, "vLLM on CPU").
VLLM_CPU_MLA_DIM = 576  # kv_lora_rank + qk_rope_head_dim


class ConfigError(ValueError):
    """A model configuration or checkpoint that cannot describe a valid DeepSeek-V3 policy."""


@dataclass
class ModelArgs:
    """Hyper-parameters of the DeepSeek-V3 architecture (names as in HF config.json)."""

    # shape
    vocab_size: int = field(default=2048, metadata={"help": "Tokenizer vocabulary size (rows of the embedding)."})
    hidden_size: int = field(default=256, metadata={"help": "Width of the residual stream."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Number of transformer blocks."})
    max_position_embeddings: int = field(default=2048, metadata={"help": "Longest sequence the rotary table covers."})
    rms_norm_eps: float = field(default=1e-6, metadata={"help": "Epsilon of the block and final RMSNorms."})
    initializer_range: float = field(default=0.02, metadata={"help": "Std of the normal init of every weight."})
    tie_word_embeddings: bool = field(default=False, metadata={"help": "Share the embedding with the output head."})
    hidden_act: str = field(default="silu", metadata={"help": "FFN activation; DeepSeek uses SwiGLU (silu)."})

    # mla: multi-head latent attention (DeepSeek-V2 section 2.1)
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads."})
    q_lora_rank: int | None = field(default=128, metadata={"help": "Rank of the query compression; None: a full-rank q_proj."})
    kv_lora_rank: int = field(default=512, metadata={"help": "Width of the compressed KV latent c_KV (what the cache stores)."})
    qk_nope_head_dim: int = field(default=32, metadata={"help": "Per-head query/key width without position encoding."})
    qk_rope_head_dim: int = field(default=64, metadata={"help": "Width of the decoupled RoPE query/key (the key part is shared by all heads)."})
    v_head_dim: int = field(default=32, metadata={"help": "Per-head value width."})
    rope_theta: float = field(default=10000.0, metadata={"help": "RoPE base."})
    rope_interleave: bool = field(default=True, metadata={"help": "RoPE on interleaved pairs, as DeepSeek's weights expect (the only layout vLLM serves for MLA)."})
    attention_bias: bool = field(default=False, metadata={"help": "Biases on q_a_proj, kv_a_proj_with_mqa and o_proj."})

    # moe: DeepSeekMoE with auxiliary-loss-free balancing (DeepSeek-V3 section 2.1.2)
    intermediate_size: int = field(default=512, metadata={"help": "FFN width of the first dense layers."})
    moe_intermediate_size: int = field(default=64, metadata={"help": "FFN width of one expert."})
    n_routed_experts: int = field(default=8, metadata={"help": "Routed experts per MoE layer."})
    n_shared_experts: int = field(default=1, metadata={"help": "Shared experts per MoE layer (always active)."})
    num_experts_per_tok: int = field(default=2, metadata={"help": "Routed experts each token activates (top-k)."})
    n_group: int = field(default=4, metadata={"help": "Expert groups for node-limited routing."})
    topk_group: int = field(default=2, metadata={"help": "Groups a token may route to."})
    routed_scaling_factor: float = field(default=1.0, metadata={"help": "Scale of the routed experts' output."})
    norm_topk_prob: bool = field(default=True, metadata={"help": "Normalise the top-k gate values to sum to one."})
    first_k_dense_replace: int = field(default=1, metadata={"help": "The first k layers use a dense FFN instead of MoE."})
    scoring_func: str = field(default="sigmoid", metadata={"help": "Gate affinity function; V3 uses sigmoid."})
    topk_method: str = field(default="noaux_tc", metadata={"help": "Routing with the bias-corrected scores (auxiliary-loss-free balancing)."})
    aux_loss_alpha: float = field(default=0.0, metadata={"help": "Weight of the sequence-wise balance loss (V3 eq. 17-20); 0 turns it off."})

    # mtp: multi-token prediction (DeepSeek-V3 section 2.2)
    num_nextn_predict_layers: int = field(default=0, metadata={"help": "MTP modules (extra future tokens predicted); 0 turns MTP off."})

    # special tokens
    bos_token_id: int = field(default=0, metadata={"help": "Begin-of-sequence token id."})
    eos_token_id: int = field(default=1, metadata={"help": "End-of-sequence token id."})
    pad_token_id: int | None = field(default=2, metadata={"help": "Padding token id."})

    def __post_init__(self) -> None:
        problems = []
        positive = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank",
                    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "intermediate_size",
                    "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group"]
        problems += [f"{name} must be a positive integer, got {getattr(self, name)!r}"
                     for name in positive if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0]
        if self.q_lora_rank is not None and self.q_lora_rank <= 0:
            problems.append(f"q_lora_rank must be positive or None, got {self.q_lora_rank}")
        if problems:
            raise ConfigError("; ".join(problems))
        if self.qk_rope_head_dim % 2:
            problems.append(f"qk_rope_head_dim must be even (RoPE rotates pairs), got {self.qk_rope_head_dim}")
        if self.n_routed_experts % self.n_group:
            problems.append(f"n_routed_experts ({self.n_routed_experts}) must be divisible by n_group ({self.n_group})")
        elif self.n_routed_experts // self.n_group < 2:
            problems.append("each expert group needs at least 2 experts (a group's score is the sum of its top-2)")
        if self.topk_group > self.n_group:
            problems.append(f"topk_group ({self.topk_group}) exceeds n_group ({self.n_group})")
        elif self.num_experts_per_tok > self.topk_group * (self.n_routed_experts // self.n_group):
            problems.append(f"num_experts_per_tok ({self.num_experts_per_tok}) exceeds the experts in topk_group "
                            f"({self.topk_group}) groups of {self.n_routed_experts // self.n_group}")
        if not 0 <= self.first_k_dense_replace <= self.num_hidden_layers:
            problems.append(f"first_k_dense_replace ({self.first_k_dense_replace}) must lie in [0, num_hidden_layers]")
        if self.hidden_act != "silu":
            problems.append(f"hidden_act must be 'silu' (SwiGLU), got {self.hidden_act!r}")
        if self.scoring_func != "sigmoid" or self.topk_method != "noaux_tc":
            problems.append("only DeepSeek-V3 routing is implemented (scoring_func='sigmoid', topk_method='noaux_tc'), "
                            f"got scoring_func={self.scoring_func!r}, topk_method={self.topk_method!r}")
        if not self.rope_interleave:
            problems.append("rope_interleave=False is not supported (DeepSeek weights and vLLM's MLA use interleaved RoPE)")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            token = getattr(self, name)
            if token is not None and not 0 <= token < self.vocab_size:
                problems.append(f"{name} ({token}) is outside the vocabulary [0, {self.vocab_size})")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def is_moe_layer(self, layer_id: int) -> bool:
        return layer_id >= self.first_k_dense_replace

    def vllm_cpu_problems(self) -> list[str]:
        """Why vLLM's CPU backend could not serve this model (empty if it can)."""
        width = self.kv_lora_rank + self.qk_rope_head_dim
        if width != VLLM_CPU_MLA_DIM:
            return [f"kv_lora_rank + qk_rope_head_dim = {width}; vLLM's CPU MLA backend needs exactly {VLLM_CPU_MLA_DIM}"]
        return []

    # ------------------------------------------------------------------ config.json
    def to_hf_dict(self) -> dict[str, Any]:
        """The config.json of this model, readable by transformers (DeepseekV3Config) and vLLM."""
        config = {"architectures": [ARCHITECTURE], "model_type": MODEL_TYPE}
        config.update(dataclasses.asdict(self))
        config["num_key_value_heads"] = self.num_attention_heads  # MLA: every head reads the shared latent
        config["moe_layer_freq"] = 1  # every layer after first_k_dense_replace is MoE (vLLM reads this)
        config["rope_scaling"] = None
        config["dtype"] = "float32"
        return config

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any], source: str = "config") -> "ModelArgs":
        """Build ModelArgs from a config.json dict; keys we do not model are ignored, wrong architectures refused."""
        architectures = config.get("architectures") or []
        model_type = config.get("model_type")
        if model_type != MODEL_TYPE and ARCHITECTURE not in architectures:
            found = ", ".join(architectures) or f"model_type={model_type!r}"
            raise ConfigError(f"{source} describes {found}, not {ARCHITECTURE}: this model class reads DeepSeek-V3 "
                              "checkpoints only (use transformers' AutoModelForCausalLM for other architectures)")
        rope_scaling = config.get("rope_scaling") or (config.get("rope_parameters") or {})
        if rope_scaling.get("rope_type", rope_scaling.get("type", "default")) not in ("default", None):
            raise ConfigError(f"{source}: rope scaling {rope_scaling!r} is not supported yet (only plain RoPE)")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.items() if k in known}
        if "rope_theta" not in kwargs and "rope_theta" in (config.get("rope_parameters") or {}):
            kwargs["rope_theta"] = config["rope_parameters"]["rope_theta"]
        heads = config.get("num_key_value_heads", config.get("num_attention_heads"))
        if heads is not None and heads != config.get("num_attention_heads", heads):
            raise ConfigError(f"{source}: num_key_value_heads ({heads}) must equal num_attention_heads in MLA")
        if isinstance(kwargs.get("eos_token_id"), list):
            kwargs["eos_token_id"] = kwargs["eos_token_id"][0]
        try:
            return cls(**kwargs)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelArgs":
        path = Path(path)
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: a checkpoint folder needs config.json") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from None
        return cls.from_hf_dict(config, source=str(path))


PRESETS: dict[str, ModelArgs] = {
    # About 5M parameters; kv_lora_rank + qk_rope_head_dim = 576 as vLLM's CPU MLA backend needs.
    "tiny": ModelArgs(),
    # About 21M parameters (5x tiny; the same tokenizer and MLA width): a teacher worth distilling into tiny on a CPU
    # (experiments/bench_distill.py).
    "mini": ModelArgs(
        hidden_size=512, num_hidden_layers=6, num_attention_heads=8, q_lora_rank=256, qk_nope_head_dim=64,
        v_head_dim=64, intermediate_size=1024, moe_intermediate_size=128,
    ),
    # 864M parameters (203M active per token), for GPUs.
    "small": ModelArgs(
        vocab_size=32768, hidden_size=1024, num_hidden_layers=16, num_attention_heads=16,
        q_lora_rank=512, kv_lora_rank=512, qk_nope_head_dim=64, qk_rope_head_dim=64, v_head_dim=64,
        intermediate_size=4096, moe_intermediate_size=512, n_routed_experts=32, n_shared_experts=1,
        num_experts_per_tok=4, n_group=4, topk_group=2, routed_scaling_factor=2.5, first_k_dense_replace=1,
        max_position_embeddings=8192,
    ),
}


def preset(name: str, **overrides: Any) -> ModelArgs:
    """A copy of a named preset with some fields replaced."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
