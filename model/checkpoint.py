"""Read and write the Hugging Face `DeepseekV3ForCausalLM` checkpoint layout.

A checkpoint folder holds config.json, generation_config.json, model.safetensors (or shards with
model.safetensors.index.json) and the tokenizer files; the same folder loads in our Transformer, in
transformers' DeepseekV3ForCausalLM and in vLLM. Our model keeps the routed experts of a layer stacked;
the checkpoint has one tensor per expert, as DeepSeek publishes them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.config import ConfigError, ModelArgs, preset
from model.deepseek import Gate, Transformer
from model.tokenizer import TOKENIZER_DIR, load_tokenizer

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# The checkpoint stores one tensor per expert and projection; our model stacks them per layer.
_EXPERT_KEY = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def _checkpoint_name(name: str, n_layers: int) -> str:
    """Our parameter name -> its name in the HF checkpoint (experts excepted)."""
    if name == "lm_head.weight":
        return name
    match = re.match(r"^mtp\.(\d+)\.(?:block\.)?(.*)$", name)
    if match:  # MTP modules are stored as extra layers after the main ones, as DeepSeek-V3 does
        return f"model.layers.{n_layers + int(match.group(1))}.{match.group(2)}"
    return "model." + name


def to_hf_state_dict(model: Transformer, state_dict: dict[str, torch.Tensor] | None = None
                     ) -> dict[str, torch.Tensor]:
    """The model's weights in checkpoint layout (what save_pretrained writes and vLLM's loader takes).

    state_dict: the weights to convert when they are not the module's own, e.g. the full tensors gathered
    from a sharded (FSDP) copy of the model; default model.state_dict().
    """
    n_layers = model.args.num_hidden_layers
    state_dict = model.state_dict() if state_dict is None else state_dict
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if name == "lm_head.weight" and model.args.tie_word_embeddings:
            continue
        prefix, _, leaf = name.rpartition(".")
        if prefix.endswith("mlp.experts"):
            base = _checkpoint_name(prefix, n_layers)
            for expert, weight in enumerate(tensor.unbind(0)):
                if leaf == "gate_up_proj":
                    gate, up = weight.chunk(2, dim=0)
                    out[f"{base}.{expert}.gate_proj.weight"], out[f"{base}.{expert}.up_proj.weight"] = gate, up
                else:
                    out[f"{base}.{expert}.down_proj.weight"] = weight
        else:
            out[_checkpoint_name(name, n_layers)] = tensor
    for k in range(model.args.num_nextn_predict_layers):  # each MTP layer carries the embedding and head, as in V3
        out[f"model.layers.{n_layers + k}.embed_tokens.weight"] = state_dict["embed_tokens.weight"]
        out[f"model.layers.{n_layers + k}.shared_head.head.weight"] = state_dict["lm_head.weight"]
    return out


def from_hf_state_dict(model: Transformer, weights: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load checkpoint-layout weights into model, naming every missing, unexpected or mis-shaped tensor. An MTP
    layer's copies of the embedding and the LM head (`embed_tokens`, `shared_head.head`) are not read: the model
    uses its own, as vLLM's drafter does."""
    n_layers = model.args.num_hidden_layers
    expected = to_hf_state_dict(model)
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    shapes = [f"{key}: checkpoint {tuple(weights[key].shape)}, model {tuple(tensor.shape)}"
              for key, tensor in expected.items() if key in weights and weights[key].shape != tensor.shape]
    problems = []
    for label, items in (("missing tensors", missing), ("unexpected tensors", unexpected), ("shape mismatches", shapes)):
        if items:
            problems.append(f"{len(items)} {label}: " + "; ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
    if problems:
        raise ConfigError(f"{source} does not match its config: " + " | ".join(problems))
    ours = {}
    for name in model.state_dict():
        prefix, _, leaf = name.rpartition(".")
        base = _checkpoint_name(prefix, n_layers)
        experts = range(model.args.n_routed_experts)
        if prefix.endswith("mlp.experts") and leaf == "gate_up_proj":
            ours[name] = torch.stack([torch.cat([weights[f"{base}.{e}.gate_proj.weight"],
                                                 weights[f"{base}.{e}.up_proj.weight"]]) for e in experts])
        elif prefix.endswith("mlp.experts"):
            ours[name] = torch.stack([weights[f"{base}.{e}.down_proj.weight"] for e in experts])
        elif name == "lm_head.weight" and model.args.tie_word_embeddings:
            ours[name] = weights["model.embed_tokens.weight"]
        else:
            ours[name] = weights[_checkpoint_name(name, n_layers)]
    model.load_state_dict(ours, strict=True)


def standalone_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors ready for safetensors: a tensor whose storage another one already
    uses (a tied or MTP embedding) becomes a separate copy."""
    tensors, seen = {}, set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[name] = tensor
    return tensors


def save_pretrained(model: Transformer, folder: str | Path, tokenizer_dir: str | Path | None = TOKENIZER_DIR,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the model (and the tokenizer files from tokenizer_dir) as a HF checkpoint folder.

    state_dict: full weights to write instead of the module's own (see to_hf_state_dict).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.args.save(folder / "config.json")
    generation = {"bos_token_id": model.args.bos_token_id, "eos_token_id": model.args.eos_token_id,
                  "pad_token_id": model.args.pad_token_id}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_file(standalone_tensors(to_hf_state_dict(model, state_dict)), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            shutil.copy(Path(tokenizer_dir) / name, folder / name)
    return folder


def load_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (one file, or shards listed in the index)."""
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).exists():
        files = [folder / WEIGHTS_NAME]
    elif (folder / INDEX_NAME).exists():
        index = json.loads((folder / INDEX_NAME).read_text())
        files = [folder / name for name in sorted(set(index["weight_map"].values()))]
    else:
        raise ConfigError(f"{folder} has no {WEIGHTS_NAME} or {INDEX_NAME}: no weights to load")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        if not file.exists():
            raise ConfigError(f"{file} is listed in {INDEX_NAME} but missing")
        try:
            weights.update(load_file(str(file)))
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"{file} is not a readable safetensors file: {error}") from None
    return weights


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> Transformer:
    """Load a HF-layout DeepSeek-V3 checkpoint folder into our Transformer."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a checkpoint folder")
    args = ModelArgs.load(folder / "config.json")
    with torch.device(device):
        model = Transformer(args)
    from_hf_state_dict(model, load_weights(folder), source=str(folder))
    model.to(dtype=dtype)
    for gate in (m for m in model.modules() if isinstance(m, Gate)):
        gate.e_score_correction_bias.data = gate.e_score_correction_bias.data.float()  # routing stays in fp32
    return model


def init_pretrained(preset_name: str, folder: str | Path, seed: int = 0, num_nextn_predict_layers: int = 0
                    ) -> Transformer:
    """Write a freshly initialised policy of a preset (with the project's tokenizer) as a checkpoint folder, with
    num_nextn_predict_layers MTP modules (DeepSeek-V3's depth D; 0 = none).

    Raises:
        ConfigError: for an unknown preset, or a folder path that is an existing file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a folder to write a checkpoint into")
    tokenizer = load_tokenizer()
    args = preset(preset_name, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  num_nextn_predict_layers=num_nextn_predict_layers)
    torch.manual_seed(seed)
    model = Transformer(args)
    save_pretrained(model, folder)
    return model


def check_checkpoint(folder: str | Path) -> Path:
    """A checkpoint folder that can be served, checked before any engine starts: it is a folder with a readable
    config.json and safetensors weights whose files hold every byte their headers promise (a truncated copy is
    named here rather than in a 90-line vLLM traceback). Works for any Hugging Face causal-LM folder.

    Raises:
        ConfigError: naming the path and what is wrong with it.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"{folder}: no such checkpoint folder")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a checkpoint folder")
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{folder}/config.json is missing or not JSON: {error}") from None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{folder} has no *.safetensors weights")
    for file in files:
        _check_safetensors_file(file)
    return folder


def _check_safetensors_file(file: Path) -> None:
    """The file's 8-byte header length, its JSON header, and data as long as the header's last tensor ends."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        prefix = handle.read(8)
        header_len = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if header_len < 0 or 8 + header_len > size:
            raise ConfigError(f"{file} is truncated or not a safetensors file ({size} bytes)")
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{file} has an unreadable safetensors header") from None
    end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise ConfigError(f"{file} is truncated: its header promises {8 + header_len + end} bytes, the file has {size}")
