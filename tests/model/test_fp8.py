"""FP8 numerics (model/fp8.py) on the emulated path: scales, round trips, each GEMM against fp32, a whole policy.

Bounds and where they come from. e4m3 keeps 3 mantissa bits, so rounding a value in its normal range moves it by at
most 2^-4 of itself, and one in the subnormal range by at most half its spacing, 2^-10 x the tile's scale: that is
the round trip's elementwise bound, exact (no float kernel is involved). A GEMM multiplies two such operands; with
errors of random sign over K terms its relative (Frobenius) error is about sqrt(2) x the operands' RMS relative
rounding error, about 0.04 on Gaussian data (measured 0.036-0.037 for forward, dgrad and wgrad here). The bound 0.06
leaves room for heavier-tailed real activations; the lower bound shows the operands really were quantised (fp32
rounding alone is ~1e-7). On the tiny policy's own activations and gradients the errors measured 0.006-0.03: values
that share a scale are more alike there than Gaussian noise is.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from model import Transformer, load_pretrained, preset
from model import fp8
from model.deepseek import Experts
from model.fp8 import (
    BLOCK,
    E4M3_MAX,
    HIGH_PRECISION,
    Fp8Experts,
    Fp8Linear,
    apply_precision,
    autocast_dtype,
    blockwise_matmul_emulated,
    blockwise_matmul_rowwise_slices,
    blockwise_matmul_scaled_mm,
    dequantize,
    fp8_grouped_linear,
    fp8_linear,
    fp8_modules,
    gemm_errors,
    quantize_activation_tiles,
    quantize_weight_blocks,
    relative_error,
    resolve_gemm,
    rowwise_scaled_mm_available,
    scaled_mm_available,
    to_fp8,
)



def test_tile_scales_are_amax_over_448_and_an_all_zero_tile_gets_scale_one():
    x = torch.zeros(3, 2 * BLOCK)
    x[0, :BLOCK] = torch.linspace(-2.0, 1.0, BLOCK)  # amax 2
    x[1, BLOCK + 5] = 900.0  # one value in a tile of zeros
    q = quantize_activation_tiles(x)  # row 2 and three more tiles are all zero
    assert q.data.dtype == torch.float8_e4m3fn and q.scale.dtype == torch.float32
    torch.testing.assert_close(q.scale, torch.tensor([[2.0 / E4M3_MAX, 1.0], [1.0, 900.0 / E4M3_MAX], [1.0, 1.0]]))
    restored = dequantize(q)
    assert torch.isfinite(restored).all() and (restored[x == 0] == 0).all()
    assert restored[1, BLOCK + 5] == 900.0 and restored[0, 0] == -2.0  # the amax maps to 448 exactly


def test_an_outlier_costs_the_precision_of_its_own_tile_only():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4 * BLOCK, generator=generator)
    spiked = x.clone()
    spiked[3, BLOCK + 7] = 1e6
    plain, outlier = quantize_activation_tiles(x), quantize_activation_tiles(spiked)
    other_tiles = torch.ones(8, 4, dtype=torch.bool)
    other_tiles[3, 1] = False
    assert torch.equal(outlier.scale[other_tiles], plain.scale[other_tiles])  # every other tile untouched
    elsewhere = other_tiles.repeat_interleave(BLOCK, dim=1)
    assert relative_error(dequantize(outlier)[elsewhere], x[elsewhere]) < 0.04
    # one scale for the whole tensor would push the other values into e4m3's subnormals
    per_tensor = torch.clamp(spiked / (1e6 / E4M3_MAX), -E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).float()
    assert relative_error(per_tensor[elsewhere] * (1e6 / E4M3_MAX), x[elsewhere]) > 0.5


def test_weight_blocks_are_128x128_and_odd_shapes_are_padded():
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(200, 300, generator=generator) * 0.02
    w[BLOCK:, :BLOCK] *= 1000.0  # the block (1, 0) is far larger than the others
    q = quantize_weight_blocks(w)
    assert q.data.shape == (256, 384) and q.scale.shape == (2, 3) and q.shape == (200, 300)
    for i, j in [(0, 0), (1, 0), (1, 2)]:
        block = w[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK]
        assert q.scale[i, j].item() == pytest.approx(block.abs().max().item() / E4M3_MAX, rel=1e-6)
    assert dequantize(q).shape == w.shape
    assert (q.data.float()[200:] == 0).all() and (q.data.float()[:, 300:] == 0).all()


@pytest.mark.parametrize("quantize", [quantize_activation_tiles, quantize_weight_blocks])
def test_round_trip_error_is_within_e4m3_rounding_elementwise(quantize):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(130, 260, generator=generator) * torch.logspace(-3, 2, 260)  # columns over five decades
    q = quantize(x)
    scale = q.row_scales().repeat_interleave(BLOCK, dim=1)[:130, :260]
    error = (dequantize(q) - x).abs()
    assert (error <= (2.0 ** -4 * x.abs() + 2.0 ** -10 * scale) * (1 + 1e-5)).all()  # + fp32 rounding
    assert relative_error(dequantize(q), x) < 0.04


def test_emulated_gemm_is_the_sum_of_the_scaled_products_of_each_128_slice():
    """What the GPU computes: each 128-wide slice of K multiplied on the e4m3 values, scaled by its two operands'
    scales and added to an fp32 accumulator."""
    generator = torch.Generator().manual_seed(3)
    for b in (quantize_weight_blocks(torch.randn(150, 300, generator=generator)),
              quantize_activation_tiles(torch.randn(150, 300, generator=generator))):
        a = quantize_activation_tiles(torch.randn(70, 300, generator=generator))
        a_values, b_values, a_scales, b_scales = a.data.float(), b.data.float(), a.row_scales(), b.row_scales()
        accumulator = torch.zeros(70, b.data.size(0))
        for k in range(a_scales.size(1)):
            piece = slice(k * BLOCK, (k + 1) * BLOCK)
            accumulator += (a_values[:, piece] @ b_values[:, piece].t()) * a_scales[:, k, None] * b_scales[None, :, k]
        out = blockwise_matmul_emulated(a, b)
        assert out.shape == (70, 150) and out.dtype == torch.float32
        torch.testing.assert_close(out, accumulator[:, :150], rtol=1e-5, atol=1e-4)


def test_each_gemm_is_within_fp8_rounding_of_fp32_on_random_data():
    generator = torch.Generator().manual_seed(4)
    x, weight = torch.randn(256, 384, generator=generator), torch.randn(320, 384, generator=generator) * 0.05
    errors = gemm_errors(x, weight, torch.randn(256, 320, generator=generator))
    assert all(0.01 < error < 0.06 for error in errors.values()), errors


def policy_activations(checkpoint, names: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(input x, output gradient dy) of the named linear layers in a real forward and backward of the policy."""
    policy = load_pretrained(checkpoint)
    captured = {name: [] for name in names}

    def keep_input(name):
        return lambda module, inputs, output: captured[name].append(inputs[0].detach())  # None: output unchanged

    def keep_output_gradient(name):
        return lambda module, grad_inputs, grad_outputs: captured[name].append(grad_outputs[0].detach())

    for name in names:
        policy.get_submodule(name).register_forward_hook(keep_input(name))
        policy.get_submodule(name).register_full_backward_hook(keep_output_gradient(name))
    ids = torch.randint(3, policy.args.vocab_size, (4, 97), generator=torch.Generator().manual_seed(5))
    logits = policy(ids[:, :-1]).logits
    F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    return {name: (x.flatten(0, -2), dy.flatten(0, -2)) for name, (x, dy) in captured.items()}


def test_each_gemm_is_within_fp8_rounding_of_fp32_on_the_policy_activations(tiny_checkpoint):
    names = ["layers.0.self_attn.q_a_proj", "layers.1.self_attn.kv_b_proj", "layers.0.mlp.down_proj",
             "layers.3.self_attn.o_proj"]
    policy = load_pretrained(tiny_checkpoint)
    for name, (x, dy) in policy_activations(tiny_checkpoint, names).items():
        errors = gemm_errors(x, policy.get_submodule(name).weight.detach(), dy)
        assert all(1e-3 < error < 0.06 for error in errors.values()), (name, errors)


def test_the_experts_grouped_gemms_equal_one_fp8_linear_per_expert():
    """One quantisation of each operand for all experts (segments laid at multiples of 128) quantises exactly as
    one fp8_linear per expert does: same tiles, same blocks; an expert with no tokens gets a zero gradient."""
    generator = torch.Generator().manual_seed(8)
    counts = [5, 0, 130, 77, 1]
    x, weights = torch.randn(sum(counts), 200, generator=generator), torch.randn(5, 150, 200, generator=generator)
    dy = torch.randn(sum(counts), 150, generator=generator)
    x_grouped, w_grouped = x.clone().requires_grad_(), weights.clone().requires_grad_()
    y = fp8_grouped_linear(x_grouped, w_grouped, counts, "emulated")
    y.backward(dy)
    x_each, w_each = x.clone().requires_grad_(), weights.clone().requires_grad_()
    y_each = torch.cat([fp8_linear(rows, w_each[e], "emulated") for e, rows in enumerate(x_each.split(counts))
                        if len(rows)])
    y_each.backward(dy)
    for grouped, each in [(y, y_each), (x_grouped.grad, x_each.grad), (w_grouped.grad, w_each.grad)]:
        assert relative_error(grouped, each) < 1e-6
    assert (w_grouped.grad[1] == 0).all()


def test_fp8_linear_computes_in_the_autocast_dtype_and_gives_master_weights_fp32_gradients():
    layer = to_fp8(torch.nn.Sequential(torch.nn.Linear(200, 130, bias=True)))[0]
    assert isinstance(layer, Fp8Linear)
    x = torch.randn(5, 7, 200, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.shape == (5, 7, 130) and y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32
    assert layer.bias.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_to_fp8_swaps_the_mla_and_expert_projections_and_keeps_the_high_precision_list():
    model = Transformer(dataclasses.replace(preset("tiny"), num_nextn_predict_layers=1))
    keys = list(model.state_dict())
    to_fp8(model)
    assert list(model.state_dict()) == keys  # checkpoints and optimizer state do not change
    swapped = set(fp8_modules(model))
    for name, module in model.named_modules():
        if name.endswith(("_proj", "proj_with_mqa")) and not name.endswith("eh_proj"):
            assert name in swapped, name
        if isinstance(module, Experts):
            assert isinstance(module, Fp8Experts), name
    for name in ["embed_tokens", "lm_head", "layers.1.mlp.gate", "norm", "mtp.0.eh_proj", "mtp.0.shared_head.norm"]:
        assert name not in swapped and type(model.get_submodule(name)) is not Fp8Linear, name
    assert "lm_head" in HIGH_PRECISION and "*.gate" in HIGH_PRECISION


def test_a_whole_policy_backward_in_fp8_agrees_with_fp32(tiny_checkpoint):
    """The gradient of every parameter together, fp8 (with bf16 for the rest) against fp32.

    Each GEMM adds about 4% relative error (above), and a parameter's gradient passes through up to 4 blocks of
    them backward; bf16 alone gives about 1-2%. Measured here: relative error ~0.10 and cosine ~0.995 for fp8. The
    bounds 0.2 and 0.98 are what that leaves with a margin; a wrong GEMM (transposed or unscaled operand) gives
    relative errors of order 1.
    """
    ids = torch.randint(3, 2048, (4, 97), generator=torch.Generator().manual_seed(6))

    def gradients(precision):
        policy = apply_precision(load_pretrained(tiny_checkpoint), precision, gemm="emulated")
        dtype = autocast_dtype(precision)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = policy(ids[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])

    loss32, grad32 = gradients("fp32")
    loss8, grad8 = gradients("fp8")
    assert abs(loss8 - loss32) / loss32 < 0.01
    assert grad8.shape == grad32.shape
    assert relative_error(grad8, grad32) < 0.2
    assert F.cosine_similarity(grad8, grad32, dim=0).item() > 0.98


def test_the_gemm_path_is_chosen_by_device_type_and_can_be_forced():
    assert resolve_gemm("auto", torch.device("cpu")) == "emulated"
    assert resolve_gemm("emulated", torch.device("cuda")) == "emulated"
    for gpu_gemm in ("scaled_mm", "scaled_mm_rowwise"):
        with pytest.raises(RuntimeError, match=f"{gpu_gemm} cannot run: the tensor is on the CPU.*emulated"):
            resolve_gemm(gpu_gemm, torch.device("cpu"))
    with pytest.raises(ValueError, match="gemm must be one of"):
        to_fp8(torch.nn.Linear(4, 4), gemm="fast")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype("fp9")


@pytest.mark.parametrize("gpu_gemm", [blockwise_matmul_scaled_mm, blockwise_matmul_rowwise_slices])
@pytest.mark.parametrize("tokens, k, n", [(300, 200, 576), (2048, 1024, 4096), (100, 512, 128)])
def test_the_gpu_gemms_give_torch_the_layouts_its_scaled_mm_checks_for(gpu_gemm, tokens, k, n):
    """On the meta device torch's own shape and stride checks of scaled_mm run without a GPU: operands in the
    layouts the forward, dgrad and wgrad GEMMs build (blockwise: a's scales column-major, b column-major, 128x128
    scales padded to 4 blocks along K; row-wise: contiguous (M, 1) and (1, N) scales) pass them, and the outputs
    come back in the linear layer's shapes."""
    x, weight = torch.empty(tokens, k, device="meta"), torch.empty(n, k, device="meta")
    dy = torch.empty(tokens, n, device="meta")
    weight_q = quantize_weight_blocks(weight)
    gemms = {"forward": (quantize_activation_tiles(x, BLOCK), weight_q, (tokens, n)),
             "dgrad": (quantize_activation_tiles(dy, BLOCK), weight_q.t(), (tokens, k)),
             "wgrad": (quantize_activation_tiles(dy.t(), BLOCK), quantize_activation_tiles(x.t(), BLOCK), (n, k))}
    for name, (a, b, shape) in gemms.items():
        out = gpu_gemm(a, b)
        assert out.shape == shape and out.dtype in (torch.bfloat16, torch.float32), name


@pytest.mark.parametrize("gpu_gemm", [blockwise_matmul_scaled_mm, blockwise_matmul_rowwise_slices])
def test_the_grouped_expert_gemms_give_torch_the_layouts_its_scaled_mm_checks_for(gpu_gemm):
    """The operands fp8_grouped_linear slices from its once-quantised matrices (an expert's rows, its weight blocks,
    its token columns for wgrad), through torch's checks on the meta device."""
    padded, starts, tokens, k, n = [128, 256, 128], [0, 128, 384], 512, 1024, 576
    x, dy, weights = (torch.empty(*shape, device="meta") for shape in [(tokens, k), (tokens, n), (3, n, k)])
    weights_q, rows = fp8._expert_blocks(weights)
    x_q, dy_q = quantize_activation_tiles(x), quantize_activation_tiles(dy)
    dy_t, x_t = quantize_activation_tiles(dy.t(), BLOCK), quantize_activation_tiles(x.t(), BLOCK)
    for e, (start, size) in enumerate(zip(starts, padded)):
        weight = fp8._expert_weight(weights_q, e, rows, (n, k))
        assert gpu_gemm(fp8._rows(x_q, start, start + size, size), weight).shape == (size, n)
        assert gpu_gemm(fp8._rows(dy_q, start, start + size, size), weight.t()).shape == (size, k)
        assert gpu_gemm(fp8._columns(dy_t, start, start + size, size),
                        fp8._columns(x_t, start, start + size, size)).shape == (n, k)


@pytest.mark.parametrize("gpu_gemm, missing", [(blockwise_matmul_scaled_mm, scaled_mm_available),
                                               (blockwise_matmul_rowwise_slices, rowwise_scaled_mm_available)])
def test_the_gpu_gemms_give_the_emulated_products(gpu_gemm, missing):
    if missing() is not None:
        pytest.skip(missing())
    generator = torch.Generator(device="cuda").manual_seed(7)
    x, dy = (torch.randn(256, k, device="cuda", generator=generator) for k in (384, 512))
    w, t = (torch.randn(n, 384, device="cuda", generator=generator) for n in (512, 640))
    weight_q = quantize_weight_blocks(w)
    pairs = {"forward": (quantize_activation_tiles(x, BLOCK), weight_q),
             "dgrad": (quantize_activation_tiles(dy, BLOCK), weight_q.t()),
             "wgrad": (quantize_activation_tiles(x, BLOCK), quantize_activation_tiles(t, BLOCK))}
    for name, (a, b) in pairs.items():
        assert relative_error(gpu_gemm(a, b), blockwise_matmul_emulated(a, b)) < 0.01, name  # bf16 outputs
