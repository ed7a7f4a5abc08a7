"""FP8 training of the linear layers as DeepSeek-V3 does it (V3 report, sec. 3.3).

The three GEMMs of a linear layer y = x W^T run on float8 e4m3 operands with fine-grained scales:
  forward  y  = x W^T      x in 1x128 tiles (per token, per 128 input channels), W in 128x128 blocks
  dgrad    dx = dy W       dy in 1x128 tiles (per token, per 128 output channels), W in the same 128x128 blocks
  wgrad    dW = dy^T x     dy^T and x^T in 1x128 tiles along the token axis (the reduction axis of this GEMM)
Each scale is the tile's or block's amax / 448 (e4m3's largest value), so one outlier costs the precision of its own
128 values only. Partial sums are promoted to fp32 every 128 elements of the reduction axis: the product of one
128-wide slice is scaled by its two operands' scales and added to an fp32 accumulator (V3 sec. 3.3.2).
Master weights, their gradients and the optimizer state stay fp32; the output of a GEMM is in the compute dtype
(bf16 under autocast), and x waits for wgrad in that dtype too (V3 caches it in FP8: less memory, one more
rounding). What stays out of FP8 is the one list HIGH_PRECISION below.

How the GEMMs run is chosen by the device type of the input (never silently by probing hardware):
  cuda  `torch.nn.functional.scaled_mm` with BlockWise1x128 / BlockWise128x128 scales (Hopper, CUDA >= 12.9);
        a torch or GPU without it is a clear error, unless another path is asked for: "scaled_mm_rowwise" (one
        `torch._scaled_mm` with row-wise scales per 128-slice of K, the slices summed in fp32: V3's promotion done by
        torch, on any FP8 GPU, slower) or "emulated".
  cpu   the emulated path: the same quantisation, then the product of the dequantised operands in fp32 (which is
        the GPU's sum of scaled 128-slice products). CPUs have no FP8 GEMM; this is what the tests check.
`to_fp8(model, gemm="emulated")` forces the emulated path on any device.

Shapes: M tokens, K input features (the reduction axis of the forward), N output features. Dimensions that are not
multiples of 128 are padded with zeros, which add nothing to any sum; outputs are cut back.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.deepseek import Experts

BLOCK = 128  # tile width and weight block side (V3's N_C: the promotion interval too)
E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
GEMMS = ("auto", "emulated", "scaled_mm", "scaled_mm_rowwise")
GPU_GEMMS = ("scaled_mm", "scaled_mm_rowwise")

# What stays in high precision (bf16 under fp8 training), as V3 keeps it: module names matched with fnmatch against
# model.named_modules(). Only nn.Linear and the routed Experts are ever swapped; the entries that are not linear
# layers (norms, attention core) are listed so the list is the whole answer to "what is not FP8".
HIGH_PRECISION = {
    "embed_tokens": "the embedding",
    "lm_head": "the output head",
    "*.gate": "the MoE router (sigmoid affinities decide the routing)",
    "*norm": "every RMSNorm (computed in fp32 anyway)",
    "*.self_attn": "the attention core: softmax(QK^T)V runs in the compute dtype (its projections are FP8)",
    "mtp.*.eh_proj": "the MTP modules' input projection",
    "mtp.*.shared_head*": "the MTP heads",
}


@dataclass
class Quantized:
    """An e4m3 matrix and its fp32 scales: value ~= data * scale of its tile or block.

    data (R', C') is the matrix padded to multiples of 128 along the quantised axes; shape is the unpadded (R, C).
    scale is (R', C'/128) for 1x128 tiles (one scale per row and 128 columns) or (R'/128, C'/128) for 128x128
    blocks.
    """

    data: torch.Tensor
    scale: torch.Tensor
    shape: tuple[int, int]
    blocks: bool  # True: 128x128 blocks; False: 1x128 tiles along the rows

    def row_scales(self) -> torch.Tensor:
        """One scale per row and 128 columns (R', C'/128): block scales repeated over the block's 128 rows."""
        return self.scale.repeat_interleave(BLOCK, dim=0) if self.blocks else self.scale

    def t(self) -> Quantized:
        """The transpose of a block-quantised matrix (the same blocks and scales, transposed; no requantising)."""
        if not self.blocks:
            raise ValueError("only 128x128 blocks transpose without requantising; 1x128 tiles must be quantised "
                             "again along the other axis")
        return Quantized(self.data.t(), self.scale.t(), (self.shape[1], self.shape[0]), blocks=True)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """x (R, C) zero-padded to (rows, cols), row-major (a transposed x is copied: the GPU GEMM reads rows)."""
    return F.pad(x, (0, cols - x.size(1), 0, rows - x.size(0))) if x.shape != (rows, cols) else x.contiguous()


def _scales(amax: torch.Tensor) -> torch.Tensor:
    """amax / 448, and 1 where amax is 0 (an all-zero tile quantises to zeros, not to 0/0 = NaN)."""
    scale = amax.float() / E4M3_MAX
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _to_e4m3(x: torch.Tensor) -> torch.Tensor:
    # |x| <= 448 by construction; the clamp guards the last ulp of the division
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)


def quantize_activation_tiles(x: torch.Tensor, row_multiple: int = 1) -> Quantized:
    """x (M, K) -> e4m3 in 1x128 tiles along K: one scale per row and 128 columns (V3's activation tiles).

    row_multiple: pad the rows to a multiple of it too (zero rows; GPU kernels want multiples of 16 or 128).
    """
    rows, cols = _round_up(x.size(0), row_multiple), _round_up(x.size(1), BLOCK)
    tiles = _pad(x.float(), rows, cols).view(rows, cols // BLOCK, BLOCK)
    scale = _scales(tiles.abs().amax(dim=-1))  # (M', K'/128)
    data = _to_e4m3(tiles / scale.unsqueeze(-1)).view(rows, cols)
    return Quantized(data, scale, (x.size(0), x.size(1)), blocks=False)


def quantize_weight_blocks(w: torch.Tensor) -> Quantized:
    """w (N, K) -> e4m3 in 128x128 blocks: one scale per 128 output x 128 input features (V3's weight blocks)."""
    rows, cols = _round_up(w.size(0), BLOCK), _round_up(w.size(1), BLOCK)
    blocks = _pad(w.float(), rows, cols).view(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
    scale = _scales(blocks.abs().amax(dim=(1, 3)))  # (N'/128, K'/128)
    data = _to_e4m3(blocks / scale[:, None, :, None]).view(rows, cols)
    return Quantized(data, scale, (w.size(0), w.size(1)), blocks=True)


def dequantize(q: Quantized) -> torch.Tensor:
    """The fp32 matrix a Quantized stands for, unpadded."""
    values = q.data.float().view(q.data.size(0), -1, BLOCK) * q.row_scales().unsqueeze(-1)
    return values.view(q.data.shape)[:q.shape[0], :q.shape[1]]


def blockwise_matmul_emulated(a: Quantized, b: Quantized) -> torch.Tensor:
    """a (M, K) times b (N, K) transposed -> fp32 (M, N), as the FP8 GEMM computes it, on a CPU.

    The GPU multiplies each 128-wide slice of K on the e4m3 values, scales the slice's product by its two operands'
    scales (one per row of a, one per row of b) and adds it to an fp32 accumulator: sum_k (s_a,k A_k)(s_b,k B_k)^T.
    Each term is the product of the two dequantised slices, so the sum is dequantize(a) @ dequantize(b)^T, which is
    what this computes, in one fp32 GEMM (tests/model/test_fp8.py checks it against the slice-by-slice sum; only the
    order of fp32 additions differs). The tensor cores' narrower accumulator inside a slice (~14 bits on H800, the
    reason V3 promotes every 128) is not modelled: inside a slice this sums in fp32.
    """
    if a.data.size(1) != b.data.size(1):
        raise ValueError(f"reduction axes differ: {tuple(a.data.shape)} and {tuple(b.data.shape)}")
    return dequantize(a) @ dequantize(b).t()


# ---------------------------------------------------------------------------------------------- the GPU path
@functools.cache  # asked at every FP8 GEMM
def scaled_mm_available() -> str | None:
    """None when torch here has the blockwise FP8 GEMM (functional.scaled_mm, BlockWise1x128 / 128x128) and a GPU of
    compute capability 9.x (Hopper) is present; otherwise what is missing, in words."""
    if not hasattr(F, "scaled_mm") or not hasattr(F, "ScalingType") or \
            not hasattr(F.ScalingType, "BlockWise128x128"):
        return f"torch {torch.__version__} has no blockwise torch.nn.functional.scaled_mm (newer torch releases have it)"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    capability = torch.cuda.get_device_capability()
    if capability[0] != 9:
        return f"blockwise FP8 scaling runs on Hopper (compute capability 9.x); this GPU is {capability}"
    return None


def _column_major(x: torch.Tensor) -> torch.Tensor:
    return x.t().contiguous().t()


def blockwise_matmul_scaled_mm(a: Quantized, b: Quantized) -> torch.Tensor:
    """a (M, K) times b (N, K) transposed -> bf16 (M, N) on the GPU's FP8 tensor cores (cuBLAS blockwise scaling;
    the layouts torch's scaled_mm checks for: b column-major, scales column-major, 128x128 scales padded to
    a multiple of 4 blocks along K). a is in 1x128 tiles; b in 1x128 tiles or 128x128 blocks."""
    recipe_b = F.ScalingType.BlockWise128x128 if b.blocks else F.ScalingType.BlockWise1x128
    if b.blocks:  # (L4, N'/128) with L4 = K'/128 rounded up to 4, column-major
        k_blocks = b.scale.size(1)
        scale_b = _column_major(F.pad(b.scale, (0, _round_up(k_blocks, 4) - k_blocks)).t())
    else:
        scale_b = _column_major(b.scale)  # (N', K'/128)
    # b.data.contiguous().t(): (K', N') column-major whether b is a weight's blocks or their transpose (dgrad)
    out = F.scaled_mm(a.data, b.data.contiguous().t(), _column_major(a.scale), F.ScalingType.BlockWise1x128,
                      scale_b, recipe_b, output_dtype=torch.bfloat16)
    return out[:a.shape[0], :b.shape[0]]


def rowwise_scaled_mm_available() -> str | None:
    """None when torch._scaled_mm with row-wise scales can run here (an FP8 GPU: compute capability 8.9 or later);
    otherwise what is missing."""
    if not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no torch._scaled_mm"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    if torch.cuda.get_device_capability() < (8, 9):
        return f"FP8 GEMMs need compute capability 8.9 or later; this GPU is {torch.cuda.get_device_capability()}"
    return None


def blockwise_matmul_rowwise_slices(a: Quantized, b: Quantized) -> torch.Tensor:
    """a (M, K) times b (N, K) transposed -> fp32 (M, N) with one torch._scaled_mm per 128-slice of K: within a
    slice every row of a and of b has one scale (its tile's or block's), which is row-wise scaling; the slices'
    products (bf16, as row-wise scaling outputs) are summed in fp32. V3's promotion every 128, K/128 GEMMs."""
    a_scales, b_scales = a.row_scales(), b.row_scales()
    b_data = b.data.contiguous()
    out = torch.zeros(a.data.size(0), b.data.size(0), device=a.data.device)
    for k in range(a_scales.size(1)):
        piece = slice(k * BLOCK, (k + 1) * BLOCK)
        scale_a, scale_b = a_scales[:, k:k + 1].contiguous(), b_scales[:, k].contiguous().view(1, -1)
        out += torch._scaled_mm(a.data[:, piece].contiguous(), b_data[:, piece].contiguous().t(), scale_a=scale_a,
                                scale_b=scale_b, out_dtype=torch.bfloat16).float()
    return out[:a.shape[0], :b.shape[0]]


# ---------------------------------------------------------------------------------------------- autograd
def _matmul(a: Quantized, b: Quantized, gemm: str) -> torch.Tensor:
    if gemm == "scaled_mm":
        return blockwise_matmul_scaled_mm(a, b)
    if gemm == "scaled_mm_rowwise":
        return blockwise_matmul_rowwise_slices(a, b)
    return blockwise_matmul_emulated(a, b)


def resolve_gemm(gemm: str, device: torch.device) -> str:
    """"auto" -> scaled_mm on a CUDA tensor, emulated on a CPU one; a GPU path where it cannot run is an error."""
    if gemm not in GEMMS:
        raise ValueError(f"gemm must be one of {', '.join(GEMMS)}, got {gemm!r}")
    if gemm == "auto":
        gemm = "scaled_mm" if device.type == "cuda" else "emulated"
    if gemm in GPU_GEMMS:
        available = scaled_mm_available if gemm == "scaled_mm" else rowwise_scaled_mm_available
        problem = "the tensor is on the CPU" if device.type != "cuda" else available()
        if problem is not None:
            raise RuntimeError(f"FP8 GEMMs through {gemm} cannot run: {problem}; to_fp8(model, gemm=...) picks "
                               f"another path: scaled_mm_rowwise (any FP8 GPU) or emulated")
    return gemm


class Fp8LinearFunction(torch.autograd.Function):
    """y = x W^T with all three GEMMs in FP8 (the module docstring's table). x (M, K), W (N, K) -> y (M, N) in
    out_dtype; dx in x's dtype, dW in W's dtype (fp32 master weights get fp32 gradients)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, gemm: str, out_dtype: torch.dtype) -> torch.Tensor:
        row_multiple = BLOCK if gemm in GPU_GEMMS else 1
        with torch.autocast(x.device.type, enabled=False):  # the quantised operands set the precision, not autocast
            weight_q = quantize_weight_blocks(weight.detach())
            y = _matmul(quantize_activation_tiles(x.detach(), row_multiple), weight_q, gemm)
        ctx.save_for_backward(x.detach().to(out_dtype))  # kept for wgrad in the compute dtype, as autocast keeps it
        ctx.weight_q, ctx.gemm, ctx.x_dtype, ctx.weight_dtype = weight_q, gemm, x.dtype, weight.dtype
        return y.to(out_dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (x,) = ctx.saved_tensors
        gemm, weight_q = ctx.gemm, ctx.weight_q
        row_multiple = BLOCK if gemm in GPU_GEMMS else 1
        dx = dw = None
        with torch.autocast(dy.device.type, enabled=False):
            if ctx.needs_input_grad[0]:  # dgrad: dy (M, N) times W (N, K): W^T's rows are the reduction's
                dx = _matmul(quantize_activation_tiles(dy, row_multiple), weight_q.t(), gemm).to(ctx.x_dtype)
            if ctx.needs_input_grad[1]:  # wgrad: dy^T (N, M) times x (M, K), both tiled along the tokens M
                dw = _matmul(quantize_activation_tiles(dy.t(), row_multiple),
                             quantize_activation_tiles(x.t(), row_multiple), gemm).to(ctx.weight_dtype)
        return dx, dw, None, None


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, gemm: str = "auto") -> torch.Tensor:
    """F.linear(x, weight) (no bias) with FP8 GEMMs, for x (..., K): the output in the compute dtype (autocast's
    where it is on, else x's)."""
    gemm = resolve_gemm(gemm, x.device)
    out_dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    y = Fp8LinearFunction.apply(x.reshape(-1, x.size(-1)), weight, gemm, out_dtype)
    return y.reshape(*x.shape[:-1], weight.size(0))


class Fp8Linear(nn.Linear):
    """nn.Linear whose GEMMs run in FP8 (fp8_linear); the fp32 weight and bias stay its parameters, so state
    dicts, checkpoints and optimizer state are an nn.Linear's. The bias is added after the GEMM, in high precision.
    """

    gemm: str = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fp8_linear(x, self.weight, self.gemm)
        return y if self.bias is None else y + self.bias.to(y.dtype)


def _rows(q: Quantized, start: int, stop: int, rows: int) -> Quantized:
    """Rows [start, stop) of a tile-quantised matrix, standing for its first `rows` of them (the rest padding)."""
    return Quantized(q.data[start:stop], q.scale[start:stop], (rows, q.shape[1]), blocks=False)


def _columns(q: Quantized, start: int, stop: int, columns: int) -> Quantized:
    """Columns [start, stop) (multiples of 128) of a tile-quantised matrix, as a row-major one of `columns` columns."""
    return Quantized(q.data[:, start:stop].contiguous(), q.scale[:, start // BLOCK:stop // BLOCK].contiguous(),
                     (q.shape[0], columns), blocks=False)


def _expert_blocks(weights: torch.Tensor) -> tuple[Quantized, int]:
    """Stacked expert weights (E, N, K) in 128x128 blocks, each expert padded to N' rows so that no block straddles
    two experts; returns them as one (E N', K') matrix and N'."""
    rows = _round_up(weights.size(1), BLOCK)
    padded = F.pad(weights.detach().float(), (0, 0, 0, rows - weights.size(1)))
    return quantize_weight_blocks(padded.reshape(-1, weights.size(2))), rows


def _expert_weight(stacked: Quantized, expert: int, rows: int, shape: tuple[int, int]) -> Quantized:
    blocks = rows // BLOCK
    return Quantized(stacked.data[expert * rows:(expert + 1) * rows],
                     stacked.scale[expert * blocks:(expert + 1) * blocks], shape, blocks=True)


class Fp8GroupedLinearFunction(torch.autograd.Function):
    """y_e = x_e W_e^T for each expert e's rows x_e of x, the three GEMMs of each in FP8 as Fp8LinearFunction's, each
    operand quantised once per call: x's rows are laid out with every expert's segment starting at a multiple of 128,
    so that no 1x128 tile along the tokens (wgrad) straddles two experts. x (T, K) grouped by expert (counts),
    weights (E, N, K) -> y (T, N)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor, counts: list[int], gemm: str,
                out_dtype: torch.dtype) -> torch.Tensor:
        padded = [_round_up(count, BLOCK) for count in counts]
        starts = [sum(padded[:e]) for e in range(len(counts))]
        # row i of x goes to row destination[i] of the padded layout
        destination = torch.cat([torch.arange(count, device=x.device) + start for count, start in zip(counts, starts)])
        with torch.autocast(x.device.type, enabled=False):
            x_padded = x.new_zeros(sum(padded), x.size(1)).index_copy_(0, destination, x.detach())
            weights_q, rows = _expert_blocks(weights)
            x_q = quantize_activation_tiles(x_padded)
            shape = (weights.size(1), weights.size(2))
            y_padded = torch.cat([_matmul(_rows(x_q, start, start + size, size),
                                          _expert_weight(weights_q, e, rows, shape), gemm)
                                  for e, (start, size) in enumerate(zip(starts, padded)) if size])
        ctx.save_for_backward(x_padded.to(out_dtype), destination)
        ctx.layout, ctx.weights_q, ctx.gemm = (padded, starts, rows, shape), weights_q, gemm
        ctx.x_dtype, ctx.weight_dtype = x.dtype, weights.dtype
        return y_padded.index_select(0, destination).to(out_dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x_padded, destination = ctx.saved_tensors
        padded, starts, rows, shape = ctx.layout
        gemm, weights_q = ctx.gemm, ctx.weights_q
        row_multiple = BLOCK if gemm in GPU_GEMMS else 1
        experts = [(e, start, size) for e, (start, size) in enumerate(zip(starts, padded)) if size]
        dx = dw = None
        with torch.autocast(dy.device.type, enabled=False):
            dy_padded = dy.new_zeros(x_padded.size(0), dy.size(1)).index_copy_(0, destination, dy)
            if ctx.needs_input_grad[0]:
                dy_q = quantize_activation_tiles(dy_padded)
                dx_padded = dy.new_zeros(x_padded.size(0), shape[1], dtype=torch.float32)
                for e, start, size in experts:
                    dx_padded[start:start + size] = _matmul(_rows(dy_q, start, start + size, size),
                                                            _expert_weight(weights_q, e, rows, shape).t(), gemm)
                dx = dx_padded.index_select(0, destination).to(ctx.x_dtype)
            if ctx.needs_input_grad[1]:  # dy^T and x^T tiled along the tokens: each tile inside one expert
                dy_t = quantize_activation_tiles(dy_padded.t(), row_multiple)
                x_t = quantize_activation_tiles(x_padded.t(), row_multiple)
                dw = torch.zeros(len(padded), *shape, dtype=ctx.weight_dtype, device=dy.device)
                for e, start, size in experts:
                    dw[e] = _matmul(_columns(dy_t, start, start + size, size),
                                    _columns(x_t, start, start + size, size), gemm)
        return dx, dw, None, None, None


def fp8_grouped_linear(x: torch.Tensor, weights: torch.Tensor, counts: list[int], gemm: str = "auto") -> torch.Tensor:
    """x (T, K), its rows grouped by expert (counts[e] rows for expert e), times each expert's weights (E, N, K)
    transposed, with FP8 GEMMs: (T, N) in the compute dtype."""
    gemm = resolve_gemm(gemm, x.device)
    out_dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    return Fp8GroupedLinearFunction.apply(x, weights, counts, gemm, out_dtype)


class Fp8Experts(Experts):
    """The routed experts with their two GEMMs in FP8 (fp8_grouped_linear): one quantisation of each operand for
    all experts, then one GEMM per expert, on every device (torch has no grouped GEMM with blockwise FP8 scales)."""

    gemm: str = "auto"

    def _looped(self, inputs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        counts = counts.tolist()
        gate, up = fp8_grouped_linear(inputs, self.gate_up_proj, counts, self.gemm).chunk(2, dim=-1)
        return fp8_grouped_linear(F.silu(gate) * up, self.down_proj, counts, self.gemm)

    def _grouped(self, inputs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self._looped(inputs, counts)


def stays_high_precision(name: str) -> bool:
    """Whether the module of this name (from named_modules) is in HIGH_PRECISION."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in HIGH_PRECISION)


def to_fp8(model: nn.Module, gemm: str = "auto") -> nn.Module:
    """Swap, in place, every nn.Linear and routed Experts of model not in HIGH_PRECISION for its FP8 version (the
    same parameters, the same names: state dicts do not change). Returns model.

    gemm: "auto" (scaled_mm on CUDA, emulated on CPU, by the input's device), "emulated", "scaled_mm" or
        "scaled_mm_rowwise".
    """
    if gemm not in GEMMS:
        raise ValueError(f"gemm must be one of {', '.join(GEMMS)}, got {gemm!r}")
    for name, module in model.named_modules():
        if stays_high_precision(name):
            continue
        if type(module) is nn.Linear:
            module.__class__ = Fp8Linear
        elif type(module) is Experts:
            module.__class__ = Fp8Experts
        else:
            continue
        module.gemm = gemm
    return model


def fp8_modules(model: nn.Module) -> list[str]:
    """Names of the modules of model whose GEMMs run in FP8."""
    return [name for name, module in model.named_modules() if isinstance(module, (Fp8Linear, Fp8Experts))]


# ---------------------------------------------------------------------------------------------- precisions
PRECISIONS = ("fp32", "bf16", "fp8")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a learner precision: None (fp32), bf16 for bf16, and for fp8 everything FP8 leaves out."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return None if precision == "fp32" else torch.bfloat16


def apply_precision(model: nn.Module, precision: str, gemm: str = "auto") -> nn.Module:
    """model as a learner of this precision runs it: to_fp8 for fp8, unchanged otherwise (autocast does the rest)."""
    autocast_dtype(precision)  # an unknown precision fails here
    return to_fp8(model, gemm) if precision == "fp8" else model


# ---------------------------------------------------------------------------------------------- measuring the numerics
def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """||value - reference|| / ||reference||, in fp32."""
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def gemm_errors(x: torch.Tensor, weight: torch.Tensor, dy: torch.Tensor) -> dict[str, float]:
    """Relative errors of the forward, dgrad and wgrad GEMMs of fp8_linear (emulated) against fp32, for input x,
    weight and output gradient dy (what the tests bound and experiments/bench_fp8.py reports)."""
    x8, w8 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    x32, w32 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    y8, y32 = fp8_linear(x8, w8, "emulated"), x32 @ w32.t()
    y8.backward(dy)
    y32.backward(dy)
    return {"forward": relative_error(y8, y32), "dgrad": relative_error(x8.grad, x32.grad),
            "wgrad": relative_error(w8.grad, w32.grad)}
