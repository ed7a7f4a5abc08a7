"""Reward models: the policy's backbone with a scalar head, one score per token.

sigmoid(score at a token) estimates the probability that the solution read so far ends with the correct answer.
An outcome reward model (ORM) is read at a solution's last token; a process reward model (PRM) at the last token of
every step (Math-Shepherd, Wang et al. 2024). Both start from a policy checkpoint: same weights, the LM head
replaced by a new 1-output linear head.

A reward model folder is Hugging Face's `DeepseekV3ForTokenClassification` layout with num_labels 1: config.json
naming that architecture (plus `reasonrl_reward_kind`: "prm" or "orm"), the backbone under `model.*` as in a policy
checkpoint (no LM head, no MTP layers), the head as `score.weight` / `score.bias`, and the tokenizer files, so
`transformers.AutoModelForTokenClassification` loads it as it is.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from model.checkpoint import (TOKENIZER_FILES, WEIGHTS_NAME, from_hf_state_dict, load_weights, standalone_tensors,
                              to_hf_state_dict)
from model.config import ConfigError, ModelArgs
from model.deepseek import Transformer
from model.tokenizer import TOKENIZER_DIR

ARCHITECTURE = "DeepseekV3ForTokenClassification"
KINDS = ("prm", "orm")


class RewardModel(nn.Module):
    """A Transformer trunk and a linear head: (B, S) token ids -> (B, S) logits of P(correct)."""

    def __init__(self, args: ModelArgs, kind: str = "prm"):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"reward model kind must be one of {KINDS}, got {kind!r}")
        self.args = dataclasses.replace(args, num_nextn_predict_layers=0)  # no MTP: nothing to predict ahead
        self.kind = kind
        self.backbone = Transformer(self.args)
        self.backbone.lm_head = nn.Identity()  # the trunk's hidden states are all the head reads
        self.score = nn.Linear(self.args.hidden_size, 1)
        nn.init.zeros_(self.score.weight)  # a new head starts at P = 0.5 everywhere
        nn.init.zeros_(self.score.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.backbone.hidden_states(input_ids, attention_mask)
        return self.score(hidden).squeeze(-1)

    @classmethod
    def from_policy(cls, folder: str | Path, kind: str = "prm") -> RewardModel:
        """A reward model whose backbone is the policy checkpoint's (its LM head and MTP layers left out)."""
        folder = Path(folder)
        model = cls(ModelArgs.load(folder / "config.json"), kind)
        weights = load_weights(folder)
        keep = to_hf_state_dict(model.backbone)
        from_hf_state_dict(model.backbone, {k: v for k, v in weights.items() if k in keep}, source=str(folder))
        return model


def save_reward_model(model: RewardModel, folder: str | Path, tokenizer_dir: str | Path | None = TOKENIZER_DIR
                      ) -> Path:
    """Write the reward model as a DeepseekV3ForTokenClassification folder (see the module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.args.to_hf_dict()
    config.update(architectures=[ARCHITECTURE], num_labels=1, id2label={"0": "correct"}, label2id={"correct": 0},
                  classifier_dropout=0.0, reasonrl_reward_kind=model.kind)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors = to_hf_state_dict(model.backbone) | {"score.weight": model.score.weight, "score.bias": model.score.bias}
    save_file(standalone_tensors(tensors), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            shutil.copy(Path(tokenizer_dir) / name, folder / name)
    return folder


def load_reward_model(folder: str | Path, device: str | torch.device = "cpu") -> RewardModel:
    """Load a folder written by `save_reward_model`.

    Raises:
        ConfigError: the folder is missing, is not a reward model (a policy checkpoint, say), or its tensors do
            not match its config.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a reward model folder")
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    if ARCHITECTURE not in (config.get("architectures") or []):
        raise ConfigError(f"{folder} is not a reward model: its config.json names {config.get('architectures')}, "
                          f"not {ARCHITECTURE} (train one with `reasonrl train-rm`)")
    with torch.device(device):
        model = RewardModel(ModelArgs.from_hf_dict(config, source=str(folder)),
                            config.get("reasonrl_reward_kind", "prm"))
    weights = load_weights(folder)
    try:
        model.score.weight.data.copy_(weights.pop("score.weight"))
        model.score.bias.data.copy_(weights.pop("score.bias"))
    except KeyError as error:
        raise ConfigError(f"{folder}: no {error.args[0]} tensor (the reward head)") from None
    from_hf_state_dict(model.backbone, weights, source=str(folder))
    return model.eval()


def reward_model_inputs(tokenizer, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
    """What a reward model reads for a problem and the steps written so far: the problem as the policy reads it (a
    user turn of the chat template, so the backbone's features mean what they meant to the policy; plain text for a
    tokenizer without one), then each step encoded on its own (as search and the step labels cut them), and the
    position of each step's last token, where its score is read. With no steps, the one position is the prompt's
    last token (the value before any step)."""
    if getattr(tokenizer, "chat_template", None):
        ids = list(tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                 tokenize=True, return_dict=False))
    else:
        ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    ends = []
    for step in steps:
        ids += tokenizer.encode(step, add_special_tokens=False)
        ends.append(len(ids) - 1)
    return ids, ends or [len(ids) - 1]


def pad_right(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) token ids padded on the right with `pad_id`, and their attention mask."""
    width = max(len(ids) for ids in sequences)
    ids = torch.tensor([list(ids) + [pad_id] * (width - len(ids)) for ids in sequences])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in sequences])
    return ids, mask


@torch.no_grad()
def score_steps(model: RewardModel, tokenizer, items: Sequence[tuple[str, Sequence[str]]], batch_size: int = 16
                ) -> list[list[float]]:
    """P(correct) after each step of each (prompt, steps) item (right-padded batches of `batch_size`)."""
    model.eval()
    device = next(model.parameters()).device
    out: list[list[float]] = []
    for start in range(0, len(items), batch_size):
        encoded = [reward_model_inputs(tokenizer, prompt, steps) for prompt, steps in items[start:start + batch_size]]
        ids, mask = pad_right([ids for ids, _ in encoded], tokenizer.pad_token_id or 0)
        probs = model(ids.to(device), attention_mask=mask.to(device)).sigmoid().cpu()
        out += [probs[row, ends].tolist() for row, (_, ends) in enumerate(encoded)]
    return out
