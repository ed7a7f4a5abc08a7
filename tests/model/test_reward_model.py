"""Reward models: the policy backbone with a scalar head, saved in transformers' token-classification layout."""

import pytest
import torch

from model import ConfigError, load_pretrained
from model.reward_model import RewardModel, load_reward_model, save_reward_model


@pytest.fixture(scope="module")
def reward_model(tiny_checkpoint):
    model = RewardModel.from_policy(tiny_checkpoint, "prm").eval()
    with torch.no_grad():  # a head that is not all zeros, so the parity checks below mean something
        model.score.weight.normal_(std=0.5)
        model.score.bias.fill_(0.1)
    return model


def test_a_new_reward_model_reads_the_policys_hidden_states_and_starts_at_one_half(tiny_checkpoint):
    policy = load_pretrained(tiny_checkpoint).eval()
    fresh = RewardModel.from_policy(tiny_checkpoint, "orm").eval()
    ids = torch.randint(3, 2048, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fresh.backbone.hidden_states(ids), policy.hidden_states(ids))
        # the policy's logits are its LM head on exactly these hidden states
        torch.testing.assert_close(policy.lm_head(policy.hidden_states(ids)), policy(ids).logits)
        assert fresh(ids).eq(0).all()
    assert not any("lm_head" in name or "mtp" in name for name, _ in fresh.named_parameters())


def test_a_saved_reward_model_loads_back_exactly_and_in_transformers(reward_model, tmp_path):
    from transformers import AutoModelForTokenClassification

    folder = save_reward_model(reward_model, tmp_path / "prm")
    again = load_reward_model(folder)
    assert again.kind == "prm"
    ids = torch.randint(3, 2048, (3, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # left padding
    with torch.no_grad():
        ours = reward_model(ids, attention_mask=mask)
        assert torch.equal(again(ids, attention_mask=mask), ours)
        theirs_model = AutoModelForTokenClassification.from_pretrained(str(folder), dtype=torch.float32).eval()
        assert type(theirs_model).__name__ == "DeepseekV3ForTokenClassification"
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        theirs = theirs_model(ids, attention_mask=mask, position_ids=positions).logits[..., 0]
    real = mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() <= 1e-4


def test_a_policy_folder_is_not_a_reward_model(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="is not a reward model: its config.json names"):
        load_reward_model(tiny_checkpoint)
    with pytest.raises(ConfigError, match="is not a reward model folder"):
        load_reward_model(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="kind must be one of"):
        RewardModel.from_policy(tiny_checkpoint, "value")
