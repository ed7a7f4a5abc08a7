"""Our policy loss and its gradients equal TRL 1.16 GRPOTrainer's on identical inputs, for every TRL loss type.

A real `trl.GRPOTrainer` is built around a tiny local DeepseekV3ForCausalLM checkpoint (our `tiny` preset, written
by `rl.api.model_init`; no download) and its `_compute_loss(model, inputs)` is called on an inputs dict built here:
prompt/completion ids and masks (left-padded prompts, completions of different lengths), advantages, old and
reference log-probabilities that differ from the current ones enough for clipping to bite, and the global token
count. Ours runs `selective_log_softmax` on the same model's logits and `rl.algos.policy_loss`. Both losses are
backpropagated and every parameter gradient compared (fp32, max abs diff <= 1e-6).

Two harness details, both stated where they happen: the trainer's model is put in train mode with
`current_gradient_accumulation_steps = 1` (the attribute Trainer sets inside its training loop, where TRL divides
the grpo/bnpo/dr_grpo losses by it); and for the vLLM importance-sampling cases `trainer.use_vllm` is flipped to True
after construction, because no vLLM server can be started for the trainer here, while `_compute_loss` only reads the
flag to decide whether to apply `inputs["importance_sampling_ratio"]`.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from rl.algos import policy_loss, selective_log_softmax

trl = pytest.importorskip("trl")

B, P, T, G = 4, 6, 8, 2  # completions, prompt tokens, completion tokens, group size

CASES = {
    "grpo": dict(loss_type="grpo"),
    "bnpo": dict(loss_type="bnpo"),
    "dr_grpo": dict(loss_type="dr_grpo"),
    "dapo": dict(loss_type="dapo"),
    "dapo-global-tokens": dict(loss_type="dapo", global_tokens_factor=3),
    "cispo": dict(loss_type="cispo", epsilon_high=1.3),
    "sapo": dict(loss_type="sapo"),
    "vespo": dict(loss_type="vespo"),
    "luspo-sequence": dict(loss_type="luspo", importance_sampling_level="sequence"),
    "gspo-sequence": dict(loss_type="grpo", importance_sampling_level="sequence"),
    "grpo-two-sided-delta": dict(loss_type="grpo", delta=1.15),
    "dapo-kl-bias-corrected": dict(loss_type="dapo", beta=0.04),
    "grpo-kl-plain": dict(loss_type="grpo", beta=0.04, use_bias_correction_kl=False),
    "dapo-vllm-is": dict(loss_type="dapo", is_ratio=True),
    "vespo-vllm-is": dict(loss_type="vespo", is_ratio=True),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rl.api import model_init

    return model_init("tiny", tmp_path_factory.mktemp("parity") / "policy", seed=0)


def _trainer(checkpoint, tmp_path, case: dict):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from model import load_tokenizer

    config = GRPOConfig(
        output_dir=str(tmp_path / "trl"), use_vllm=False, report_to=[], bf16=False, use_cpu=True,
        per_device_train_batch_size=B, num_generations=G, max_completion_length=T + 4,
        loss_type=case["loss_type"], beta=case.get("beta", 0.0), epsilon=0.2,
        epsilon_high=case.get("epsilon_high", 0.28), delta=case.get("delta"),
        importance_sampling_level=case.get("importance_sampling_level", "token"),
        use_bias_correction_kl=case.get("use_bias_correction_kl", True),
    )
    dataset = Dataset.from_dict({"prompt": ["1 + 1 =", "2 + 3 ="]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=str(checkpoint), reward_funcs=lambda completions, **_: [0.0] * len(completions),
                              args=config, train_dataset=dataset, processing_class=load_tokenizer())
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; TRL divides some losses by it
    if case.get("is_ratio"):
        trainer.use_vllm = True  # only gates applying inputs["importance_sampling_ratio"] in _compute_loss
    return trainer


def _inputs(model, case: dict) -> dict:
    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    prompt_ids = torch.randint(5, vocab, (B, P), generator=generator)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[1, :2] = 0  # left padding
    completion_ids = torch.randint(5, vocab, (B, T), generator=generator)
    lengths = torch.tensor([T, 5, 3, 7])
    completion_mask = (torch.arange(T) < lengths[:, None]).long()
    with torch.no_grad():
        logits = model(input_ids=torch.cat([prompt_ids, completion_ids], 1),
                       attention_mask=torch.cat([prompt_mask, completion_mask], 1)).logits[:, P - 1:-1]
        current = selective_log_softmax(logits, completion_ids)
    # Old/ref log-probs 0.3 nats off the current ones: ratios reach 0.5-2, so both clip sides are exercised.
    inputs = {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
        "completion_ids": completion_ids, "completion_mask": completion_mask,
        "advantages": torch.tensor([1.1, -0.7, 0.4, -1.3]),
        "old_per_token_logps": current + 0.3 * torch.randn(B, T, generator=generator),
        "num_items_in_batch": completion_mask.sum() * case.get("global_tokens_factor", 1),
    }
    if case.get("beta"):
        inputs["ref_per_token_logps"] = current + 0.3 * torch.randn(B, T, generator=generator)
    if case.get("is_ratio"):
        inputs["importance_sampling_ratio"] = torch.exp(0.2 * torch.randn(B, T, generator=generator))
    return inputs


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", list(CASES))
def test_loss_and_gradients_match_trl(checkpoint, tmp_path, name):
    case = CASES[name]
    trainer = _trainer(checkpoint, tmp_path, case)
    model = trainer.model
    inputs = _inputs(model, case)

    model.zero_grad()
    trl_loss = trainer._compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = _grads(model)

    model.zero_grad()
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, P - 1:-1]
    logprobs = selective_log_softmax(logits, inputs["completion_ids"])
    loss, metrics = policy_loss(
        logprobs, inputs["old_per_token_logps"], inputs["advantages"], inputs["completion_mask"],
        loss_type=case["loss_type"], epsilon_low=0.2, epsilon_high=case.get("epsilon_high", 0.28),
        beta=case.get("beta", 0.0), ref_logprobs=inputs.get("ref_per_token_logps"),
        max_completion_length=T + 4, num_items_in_batch=inputs["num_items_in_batch"],
        importance_sampling_level=case.get("importance_sampling_level", "token"),
        kl_bias_correction=case.get("use_bias_correction_kl", True),
        importance_sampling_ratio=inputs.get("importance_sampling_ratio"), delta=case.get("delta"),
    )
    loss.backward()
    ours = _grads(model)

    assert abs(loss.item() - trl_loss.item()) <= 1e-6, (loss.item(), trl_loss.item())
    assert ours.keys() == trl_grads.keys() and len(ours) > 10
    worst = max((ours[k] - trl_grads[k]).abs().max().item() for k in ours)
    scale = max(g.abs().max().item() for g in trl_grads.values())
    # 1e-6 absolute for gradients up to 1 (fp32 summation-order noise grows with the gradient's size: luspo sums
    # tokens instead of averaging them, and its largest gradient entries reach a few units).
    assert worst <= 1e-6 * max(1.0, scale), f"max |grad diff| {worst:.2e} (largest gradient {scale:.2e})"
    assert any(g.abs().max() > 1e-4 for g in ours.values())  # the comparison is not between zeros

    # Metrics agree with what TRL logged for the same call.
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    if "clip_ratio/region_mean" in logged:
        assert metrics["actor/clip_frac"].item() == pytest.approx(logged["clip_ratio/region_mean"], abs=1e-6)
        assert metrics["actor/clip_frac_low"].item() == pytest.approx(logged["clip_ratio/low_mean"], abs=1e-6)
        assert metrics["actor/clip_frac_high"].item() == pytest.approx(logged["clip_ratio/high_mean"], abs=1e-6)
    if "cispo_clip_ratio" in logged:
        assert metrics["actor/clip_frac"].item() == pytest.approx(logged["cispo_clip_ratio"], abs=1e-6)
    if "kl" in logged:
        assert metrics["actor/kl"].item() == pytest.approx(logged["kl"], abs=1e-6)


def test_parity_cases_cover_every_trl_loss_type():
    """If a TRL upgrade adds a loss type, this fails until the registry and the cases above cover it."""
    import inspect

    from trl.trainer.grpo_trainer import GRPOTrainer

    from rl.algos import loss_names

    source = inspect.getsource(GRPOTrainer._compute_loss)
    trl_types = {t for t in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo", "gspo", "gpg")
                 if f'"{t}"' in source}
    assert trl_types <= set(loss_names())
    assert trl_types <= {case["loss_type"] for case in CASES.values()}
