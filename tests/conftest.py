"""Shared test set-up: quiet, local-only Ray and vLLM, and one vLLM engine per test run."""

import os
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(tempfile.gettempdir(), "reasonrl-vllm-cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

# On 2 cores shared with vLLM, Ray workers and reward processes, two OpenMP threads spin against each other
# and every op slows 10-80x (measured: a 1M-float multiply took 8 ms with 2 threads, 0.1 ms with 1).
torch.set_num_threads(int(os.environ.get("REASONRL_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny policy folder with weights far from init, shared by the whole test run.

    Parity checks on random weights are weak (near-uniform logprobs hide errors: vLLM's rotary bug drifts
    8e-3 nats at init but 2-5 nats on trained weights), so this policy is fitted for a few steps to GSM8K
    text and its routing biases are set to random values.
    """
    import json
    from pathlib import Path

    from model import Transformer, load_tokenizer, preset, save_pretrained

    torch.manual_seed(0)
    model = Transformer(preset("tiny"))
    tokenizer = load_tokenizer()
    rows = [json.loads(line) for line in (Path(__file__).parent.parent / "data" / "gsm8k_train.jsonl").open()][:64]
    texts = [r["question"] + "\n" + r["answer"] for r in rows]
    batch = tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=96)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(25):
        ids = batch.input_ids[(step % 8) * 8:(step % 8 + 1) * 8]
        logits = model(ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for layer in model.layers[model.args.first_k_dense_replace:]:
            layer.mlp.gate.e_score_correction_bias.normal_(std=0.05)
    return save_pretrained(model.eval(), tmp_path_factory.mktemp("tiny") / "policy")


@pytest.fixture(scope="session")
def vllm_engine(tiny_checkpoint):
    """One vLLM engine serving the tiny checkpoint (start-up costs 15-45 s, so tests share it)."""
    from model.vllm_engine import make_engine

    engine = make_engine(tiny_checkpoint, max_model_len=512, max_num_seqs=64)
    yield engine
    del engine


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One in-process Ray instance for the test run (start-up costs 5-8 s)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")),
             runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    yield ray
    ray.shutdown()
