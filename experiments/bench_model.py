"""Benchmark the policy: forward+backward time and peak memory of our DeepSeek-V3 against transformers'
DeepseekV3ForCausalLM on the same weights (tiny preset, batch 16 x 256 tokens, CPU), and KV-cache bytes per
token of our compressed MLA cache against multi-head attention of the same width.

    python experiments/bench_model.py [--batch 16 --seq 256 --steps 5 --threads 2]

Each implementation runs in its own subprocess (so peak RSS is its own), alternating, several rounds;
the figures are medians. Writes experiments/results/model.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULT = REPO / "experiments" / "results" / "model.json"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(impl: str, checkpoint: str, batch: int, seq: int, steps: int, threads: int) -> dict:
    """Runs in a child process: time `steps` forward+backward passes after one warm-up."""
    import torch

    torch.set_num_threads(threads)
    if impl == "ours":
        from model import load_pretrained

        model = load_pretrained(checkpoint).train()
        forward = lambda ids: model(ids).logits  # noqa: E731
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).train()
        forward = lambda ids: model(ids).logits  # noqa: E731
    ids = torch.randint(3, model.config.vocab_size if impl != "ours" else model.args.vocab_size, (batch, seq),
                        generator=torch.Generator().manual_seed(0))

    def step():
        logits = forward(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)

    before = rss_mib()
    step()  # warm-up
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": statistics.median(times), "peak_rss_mib": peak, "peak_over_model_mib": peak - before}


def kv_cache_bytes(args, dtype_bytes: int = 2) -> dict:
    """Per token, all layers, bf16: MLA caches c_KV + the rope key; MHA of the same width caches K and V per head."""
    mla = (args.kv_lora_rank + args.qk_rope_head_dim) * args.num_hidden_layers * dtype_bytes
    mha = args.num_attention_heads * (args.qk_nope_head_dim + args.qk_rope_head_dim + args.v_head_dim)
    mha *= args.num_hidden_layers * dtype_bytes
    return {"mla_bytes": mla, "mha_bytes": mha, "reduction": round(1 - mla / mha, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.batch, args.seq, args.steps, args.threads)))
        return

    import torch

    from model import Transformer, preset, save_pretrained

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        save_pretrained(Transformer(preset("tiny")), folder)
        runs: dict[str, list[dict]] = {"ours": [], "transformers": []}
        for _ in range(args.rounds):
            for impl in runs:
                command = [sys.executable, __file__, "--child", impl, folder, "--batch", str(args.batch),
                           "--seq", str(args.seq), "--steps", str(args.steps), "--threads", str(args.threads)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                runs[impl].append(json.loads(output.strip().splitlines()[-1]))
    summary = {impl: {key: round(statistics.median(r[key] for r in rs), 4) for key in rs[0]} for impl, rs in runs.items()}
    ratio = summary["ours"]["step_s"] / summary["transformers"]["step_s"]
    memory_ratio = summary["ours"]["peak_over_model_mib"] / summary["transformers"]["peak_over_model_mib"]
    result = {
        "benchmark": "forward+backward of the tiny DeepSeek-V3 policy, ours vs transformers DeepseekV3ForCausalLM",
        "command": "python experiments/bench_model.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} cores visible, CPU only "
                   f"(torch {torch.__version__}, {args.threads} threads)",
        "shape": {"batch": args.batch, "seq": args.seq, "steps": args.steps, "rounds": args.rounds},
        "fwd_bwd_s": {"ours": summary["ours"]["step_s"], "transformers": summary["transformers"]["step_s"]},
        "time_ratio_ours_over_transformers": round(ratio, 3),
        "target_time_ratio": 0.7,
        "peak_rss_mib": {k: v["peak_rss_mib"] for k, v in summary.items()},
        "peak_rss_over_loaded_model_mib": {k: v["peak_over_model_mib"] for k, v in summary.items()},
        "memory_ratio_ours_over_transformers": round(memory_ratio, 3),
        "kv_cache_per_token_bf16": {name: kv_cache_bytes(preset(name)) for name in ("tiny", "small")}
        | {"deepseek_v3_671b": kv_cache_bytes(preset("tiny", hidden_size=7168, num_hidden_layers=61,
                                                     num_attention_heads=128, qk_nope_head_dim=128, v_head_dim=128,
                                                     q_lora_rank=1536, intermediate_size=18432))},
        "runs": runs,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fwd+bwd {args.batch}x{args.seq}: ours {summary['ours']['step_s']:.3f}s, transformers "
          f"{summary['transformers']['step_s']:.3f}s, ratio {ratio:.2f} (target <= 0.7)")
    print(f"peak RSS over loaded model: ours {summary['ours']['peak_over_model_mib']:.0f} MiB, transformers "
          f"{summary['transformers']['peak_over_model_mib']:.0f} MiB")
    for name, kv in result["kv_cache_per_token_bf16"].items():
        print(f"KV cache per token ({name}): MLA {kv['mla_bytes']} B vs MHA {kv['mha_bytes']} B: "
              f"{kv['reduction']:.1%} less")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
