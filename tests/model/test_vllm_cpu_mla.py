"""CPU_MLA with multi-token decode queries (model/vllm_cpu_mla.py): each query token laid out as a single-token
request of its own attends, through vLLM's CPU decode kernel, exactly as causal attention over the latent cache."""

import torch
from vllm import _custom_ops as ops

from model.vllm_cpu_mla import expand_decode_queries

BLOCK, LATENT, ROPE = 16, 512, 64  # the only shape the CPU kernel compiles for


def test_each_query_token_gets_its_requests_blocks_and_its_own_context():
    block_table = torch.tensor([[7, 8, 0], [3, 4, 5], [9, 0, 0]])
    seq_lens = torch.tensor([20, 40, 5])
    query_start_loc = torch.tensor([0, 2, 5, 6])  # queries of 2, 3 and 1 tokens
    table, lens = expand_decode_queries(block_table, seq_lens, query_start_loc)
    assert table.tolist() == [[7, 8, 0], [7, 8, 0], [3, 4, 5], [3, 4, 5], [3, 4, 5], [9, 0, 0]]
    assert lens.tolist() == [19, 20, 38, 39, 40, 5]
    assert table.dtype == lens.dtype == torch.int32


def test_the_cpu_kernel_over_expanded_queries_is_causal_attention_over_the_cache():
    torch.manual_seed(0)
    heads, scale = 4, 0.1
    seq_lens = torch.tensor([21, 35, 3])
    query_lens = torch.tensor([3, 2, 3])  # the last: a short prompt, all of it one query
    blocks_per_request = 3
    cache = torch.randn(len(seq_lens) * blocks_per_request + 1, BLOCK, LATENT + ROPE)
    block_table = torch.randperm(len(cache) - 1)[: len(seq_lens) * blocks_per_request].view(len(seq_lens), -1)
    query_start_loc = torch.cat([torch.zeros(1, dtype=torch.long), query_lens.cumsum(0)])
    q = torch.randn(int(query_lens.sum()), heads, LATENT + ROPE)

    table, lens = expand_decode_queries(block_table, seq_lens, query_start_loc)
    out = torch.zeros(len(q), heads, LATENT)
    ops.mla_decode_kvcache_cpu(out, q, cache, scale, table, lens)

    for request in range(len(seq_lens)):
        latents = cache[block_table[request]].reshape(-1, LATENT + ROPE)[: seq_lens[request]]
        rows = slice(int(query_start_loc[request]), int(query_start_loc[request + 1]))
        scores = torch.einsum("qhd,sd->qhs", q[rows], latents) * scale
        positions = torch.arange(seq_lens[request])
        last_seen = seq_lens[request] - query_lens[request] + torch.arange(query_lens[request])  # causal, per token
        scores = scores.masked_fill((positions[None, :] > last_seen[:, None])[:, None, :], float("-inf"))
        expected = torch.einsum("qhs,sd->qhd", scores.softmax(-1), latents[:, :LATENT])
        torch.testing.assert_close(out[rows], expected, atol=1e-4, rtol=1e-4)
