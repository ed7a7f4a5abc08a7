import pytest
import torch
import torch.nn.functional as F

from model.config import preset
from model.deepseek import MoE, KVCache, Transformer


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return Transformer(preset("tiny", **overrides))


def test_gate_picks_top_k_of_bias_corrected_scores_within_the_best_groups():
    args = preset("tiny")
    moe = MoE(args)
    torch.manual_seed(1)
    torch.nn.init.normal_(moe.gate.weight, std=0.5)
    moe.gate.e_score_correction_bias.normal_(std=0.3)
    x = torch.randn(64, args.hidden_size)
    weights, indices, scores = moe.gate(x)
    per_group = args.n_routed_experts // args.n_group
    for token in range(x.size(0)):  # brute force, one token at a time
        s = torch.sigmoid(x[token] @ moe.gate.weight.T)
        biased = s + moe.gate.e_score_correction_bias
        group_score = biased.view(args.n_group, per_group).topk(2).values.sum(-1)
        groups = set(group_score.topk(args.topk_group).indices.tolist())
        allowed = [e for e in range(args.n_routed_experts) if e // per_group in groups]
        best = sorted(allowed, key=lambda e: -biased[e].item())[:args.num_experts_per_tok]
        assert set(indices[token].tolist()) == set(best)
        expected = s[indices[token]] / s[indices[token]].sum() * args.routed_scaling_factor
        torch.testing.assert_close(weights[token], expected)
        assert {e // per_group for e in indices[token].tolist()} <= groups
    torch.testing.assert_close(scores, torch.sigmoid(x @ moe.gate.weight.T))


def test_batched_experts_equal_a_per_token_loop():
    args = preset("tiny")
    torch.manual_seed(2)
    moe = Transformer(args).layers[1].mlp
    x = torch.randn(40, args.hidden_size)
    weights, indices, _ = moe.gate(x)
    batched = moe.experts(x, weights, indices)
    e = moe.experts
    reference = torch.stack([
        sum(weights[t, k] * (F.silu(x[t] @ e.gate_up_proj[i, :64].T) * (x[t] @ e.gate_up_proj[i, 64:].T)) @ e.down_proj[i].T
            for k, i in enumerate(indices[t].tolist()))
        for t in range(x.size(0))])
    torch.testing.assert_close(batched, reference, atol=1e-6, rtol=1e-5)


def test_shared_experts_always_run():
    args = preset("tiny")
    torch.manual_seed(3)
    moe = Transformer(args).layers[1].mlp
    x = torch.randn(2, 5, args.hidden_size)
    with torch.no_grad():
        moe.experts.down_proj.zero_()  # routed experts contribute nothing now
        out, _ = moe(x)
        torch.testing.assert_close(out, moe.shared_experts(x))
        moe.shared_experts.down_proj.weight.zero_()
        assert moe(x)[0].abs().max() == 0


def test_balancing_bias_moves_expert_load_toward_uniform():
    args = preset("tiny")
    torch.manual_seed(4)
    moe = Transformer(args).layers[1].mlp.train()
    x = torch.randn(512, 1, args.hidden_size) + 1.0  # inputs share a direction ...
    with torch.no_grad():
        moe.gate.weight[:2] += 0.005  # ... that experts 0 and 1 are tuned to: they are overloaded

    def load_ratio(speed):
        with torch.no_grad():
            moe(x)
        return moe.update_balance_bias(speed)

    before = load_ratio(0.0)
    ratios = [load_ratio(0.01) for _ in range(60)]
    assert before > 2.5, before  # 4.0 would mean experts 0 and 1 take every token
    assert ratios[-1] < 1.5 and min(ratios[-10:]) < before / 2, (before, ratios[-10:])
    bias = moe.gate.e_score_correction_bias
    assert bias[:2].max() < bias[2:].min()  # the overloaded experts were pushed down


def test_transformer_updates_every_moe_layer():
    model = tiny_model(seed=4).train()
    with torch.no_grad():
        model(torch.randint(0, 2048, (2, 16)))
    ratio = model.update_balance_bias(speed=0.001)["moe/max_load_ratio"]
    assert ratio > 1.0
    for layer in model.layers[1:]:
        assert layer.mlp.expert_load.sum() == 0 and layer.mlp.gate.e_score_correction_bias.abs().sum() > 0


def test_sequence_balance_loss_matches_the_v3_formula_and_trains_the_router():
    model = tiny_model(seed=5, aux_loss_alpha=0.01).train()
    batch = torch.randint(0, 2048, (3, 16))
    out = model(batch)
    assert out.balance_loss > 0
    out.balance_loss.backward()
    assert model.layers[1].mlp.gate.weight.grad.abs().sum() > 0
    # the formula: f_i = E/(K T) * count_i, P_i = mean_t s_i / sum_j s_j; L = sum_i f_i P_i, mean over sequences
    moe = model.layers[1].mlp
    scores = torch.rand(3 * 16, 8)
    indices = scores.topk(2, dim=-1).indices
    loss = moe._sequence_balance_loss(scores, indices, 3, 16)
    expected = []
    for b in range(3):
        s, idx = scores[b * 16:(b + 1) * 16], indices[b * 16:(b + 1) * 16]
        f = torch.bincount(idx.flatten(), minlength=8).float() * 8 / (2 * 16)
        p = (s / s.sum(-1, keepdim=True)).mean(0)
        expected.append((f * p).sum())
    torch.testing.assert_close(loss, torch.stack(expected).mean())


@pytest.mark.parametrize("mtp", [0, 1])
def test_incremental_decoding_with_the_compressed_cache_equals_a_full_forward(mtp):
    model = tiny_model(seed=6, num_nextn_predict_layers=mtp).eval()
    ids = torch.randint(0, 2048, (3, 20))
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache(model.args, batch_size=3, max_len=24)
        steps = [model(ids[:, :7], cache=cache).logits]
        steps += [model(ids[:, t:t + 1], cache=cache).logits for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=2e-5, rtol=1e-4)
    # the cache stores only the latent and the rope key: (kv_lora_rank + qk_rope_head_dim) floats per layer
    per_token = sum(layer.kv_latent[0, 0].nbytes + layer.k_rope[0, 0].nbytes for layer in cache.layers)
    assert per_token == 4 * 576 * model.args.num_hidden_layers


def test_padding_left_or_right_does_not_change_real_tokens():
    model = tiny_model(seed=7).eval()
    short, long = torch.randint(3, 2048, (5,)), torch.randint(3, 2048, (9,))
    with torch.no_grad():
        alone = model(short[None]).logits[0]
        left = torch.cat([torch.full((4,), 2), short])
        right = torch.cat([short, torch.full((4,), 2)])
        batch = torch.stack([left, long, right])
        mask = torch.stack([torch.arange(9) >= 4, torch.ones(9, dtype=torch.bool), torch.arange(9) < 5]).long()
        out = model(batch, attention_mask=mask).logits
        torch.testing.assert_close(out[0, 4:], alone, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(out[2, :5], alone, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(out[1], model(long[None]).logits[0], atol=2e-5, rtol=1e-4)
        # decoding a left-padded batch with the cache agrees as well
        cache = KVCache(model.args, 3, 12)
        model(batch, attention_mask=mask, cache=cache)
        nxt = torch.randint(3, 2048, (3, 1))
        step = model(nxt, attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1), cache=cache)
        ref = model(torch.cat([short, nxt[0]])[None]).logits[0, -1]
        torch.testing.assert_close(step.logits[0, 0], ref, atol=2e-5, rtol=1e-4)


def test_packed_rows_equal_each_sequence_alone():
    model = tiny_model(seed=9).eval()
    first, second, third = (torch.randint(3, 2048, (n,)) for n in (6, 4, 7))
    # row 0 holds two sequences and a padded tail, row 1 one sequence; segment ids need only be contiguous runs
    ids = torch.stack([torch.cat([first, second, torch.zeros(1, dtype=torch.long)]), torch.cat([third, third[:4]])])
    segments = torch.tensor([[0] * 6 + [1] * 4 + [-1], [5] * 7 + [-1] * 4])
    with torch.no_grad():
        packed = model(ids, segment_ids=segments).logits
        for row, start, sequence in ((0, 0, first), (0, 6, second), (1, 0, third)):
            alone = model(sequence[None]).logits[0]
            torch.testing.assert_close(packed[row, start:start + len(sequence)], alone, atol=2e-5, rtol=1e-4)
        # logits_at computes the head at the given flattened positions only
        at = torch.tensor([3, 7, 11 + 2])
        torch.testing.assert_close(model(ids, segment_ids=segments, logits_at=at).logits, packed.flatten(0, 1)[at])
    with pytest.raises(ValueError, match="segment_ids"):
        model(ids, segment_ids=segments, attention_mask=torch.ones_like(ids))


def test_multi_token_prediction_module_trains_and_is_off_by_default():
    assert tiny_model().mtp.__len__() == 0
    model = tiny_model(seed=8, num_nextn_predict_layers=2).train()
    ids = torch.randint(0, 2048, (2, 12))
    out = model(ids)
    assert [tuple(t.shape) for t in out.mtp_logits] == [(2, 11, 2048), (2, 10, 2048)]
    # depth d = k + 1 predicts token i + 1 + d at position i; the last d + 1 positions have no target in ids
    loss = sum(F.cross_entropy(l[:, :12 - (k + 2)].flatten(0, 1), ids[:, k + 2:].flatten())
               for k, l in enumerate(out.mtp_logits))
    loss.backward()
    assert model.mtp[1].eh_proj.weight.grad.abs().sum() > 0
    assert model.eval()(ids).mtp_logits == []


def test_mtp_depth_d_at_position_i_has_seen_tokens_up_to_i_plus_d_and_predicts_the_next():
    """The alignment rl.algos.mtp_loss relies on: the depth-d logits at position i read tokens 0..i + d (the
    trunk's up to i, the embedding of i + d) and nothing later, so the token they predict is i + 1 + d."""
    model = tiny_model(seed=9, num_nextn_predict_layers=2).eval()
    ids = torch.randint(0, 2048, (1, 10), generator=torch.Generator().manual_seed(1))
    base = model(ids, with_mtp=True).mtp_logits
    i = 3
    for depth, logits in enumerate(base, start=1):
        changed = ids.clone()
        changed[0, i + 1 + depth] = (ids[0, i + 1 + depth] + 1) % 2048  # the target: not visible at position i
        unseen = model(changed, with_mtp=True).mtp_logits[depth - 1]
        assert (unseen[0, :i + 1] - logits[0, :i + 1]).abs().max() < 1e-5
        changed = ids.clone()
        changed[0, i + depth] = (ids[0, i + depth] + 1) % 2048  # the token the module is shown at position i
        moved = model(changed, with_mtp=True).mtp_logits[depth - 1]
        assert (moved[0, :i] - logits[0, :i]).abs().max() < 1e-5
        assert (moved[0, i] - logits[0, i]).abs().max() > 1e-2


def test_cache_overflow_and_bad_masks_are_clear_errors():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="KV cache holds 4 tokens"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=KVCache(model.args, 1, 4))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))


def test_parameter_count_of_the_tiny_preset():
    model = tiny_model()
    assert 4e6 < model.num_parameters() < 6e6
    assert model.num_parameters(active=True) < model.num_parameters()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
@pytest.mark.parametrize("autocast, tolerance", [(False, 1e-4), (True, 3e-2)])
def test_grouped_matmul_experts_on_gpu_equal_the_per_expert_loop(monkeypatch, autocast, tolerance):
    import model.deepseek as deepseek

    torch.manual_seed(0)
    experts = deepseek.Experts(8, 64, 32).cuda()
    for weight in experts.parameters():
        torch.nn.init.normal_(weight, std=0.1)
    x = torch.randn(50, 64, device="cuda")
    indices = torch.rand(50, 7, device="cuda").topk(2).indices  # expert 7 gets no token
    gate_weights = torch.rand(50, 2, device="cuda")

    def run():
        inputs = x.clone().requires_grad_()
        experts.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            out = experts(inputs, gate_weights, indices)
        (out.float() ** 2).sum().backward()
        return [out.float(), inputs.grad, experts.gate_up_proj.grad, experts.down_proj.grad]

    assert deepseek.use_grouped_mm(x)
    grouped = run()
    monkeypatch.setattr(deepseek, "use_grouped_mm", lambda _: False)
    looped = run()
    for a, b in zip(grouped, looped):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)
