# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of FP8 (f8E4M3FN) attn.attention through attn-tile and
attn-to-cpu, against the float64 references of python/attn/reference.py.

Each case is checked twice:

(a) against attention_fp8_reference with the lowering's key-block size,
    which emulates FlashAttention-3's rounding of P to e4m3 (offset by 2**8,
    relative to the running maximum) bit for bit: with an f32 output the
    two agree to 1e-5 of the output's scale, with bf16 to two bf16 ulps;

(b) against the exact float64 attention of the dequantized inputs, with the
    tolerance of FlashAttention-3's FP8 forward tests
    (Dao-AILab/flash-attention, hopper/test_flash_attn.py,
    test_flash_attn_output):

        max|out - out_ref| <= rtol * max|out_pt - out_ref| + fwd_atol
        fwd_atol = 2 * max|out_ref + 0.3 - 0.3 - out_ref|  (in bf16)
        rtol = 2 (3 with softcap)

    where out_pt is their "PyTorch implementation" in low precision
    (test_util.attention_ref with upcast=False, intermediate_dtype=fp8):
    dequantized Q, K, V rounded to bf16, the softmax's P rounded to bf16 and
    then to e4m3 (unlike the kernel, without the 2**8 offset), O rounded to
    bf16. It is emulated here in numpy (products in float64, as a GPU's bf16
    matmul accumulates in f32). Unlike FA3's test, out_ref here is float64
    of the dequantized inputs, not rounded to bf16.

Descales are drawn as FA3's tests draw them (uniform in [0, 2) per batch and
KV head). Skips when attn-opt or mlir-runner is missing.
"""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import admitted_matrix, attention_fp8_reference, round_e4m3  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")

F8 = "f8E4M3FN"


def case(id, b=1, hq=4, hkv=4, sq=17, sk=17, d=64, out="bf16", mask="none", left=0,
         right=0, scale=None, softcap=None, bias=None, sinks=False, lse=False, layout="bhsd",
         descale="head", block=(64, 64), dynamic=False, spread=1.0):
    return pytest.param(dict(b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, out=out, mask=mask,
                             left=left, right=right, scale=scale, softcap=softcap, bias=bias,
                             sinks=sinks, lse=lse, layout=layout, descale=descale, block=block,
                             dynamic=dynamic, spread=spread),
                        id=id)


CASES = [
    case("mha_per_tensor", b=2, hq=4, hkv=4, descale="tensor", lse=True),
    case("mha_f32_out", b=2, out="f32", lse=True),
    case("gqa4_per_head_causal", b=2, hq=8, hkv=2, sq=113, sk=113, mask="causal", lse=True),
    case("gqa_causal_f32_out_small_blocks", hq=6, hkv=2, sq=70, sk=70, out="f32",
         mask="causal", block=(16, 16), lse=True),
    case("window_bshd", hq=4, hkv=2, sq=113, sk=113, mask="window", left=20, right=3,
         layout="bshd", block=(32, 16)),
    case("sq_lt_sk_causal", sq=17, sk=113, mask="causal", lse=True, d=128),
    case("empty_rows", sq=113, sk=17, mask="causal", lse=True, out="f32"),
    case("dynamic_shapes", b=2, hq=4, hkv=2, sq=17, sk=33, mask="causal", dynamic=True,
         lse=True),
    case("f16_out_sinks", hq=4, hkv=2, sq=33, sk=33, out="f16", sinks=True, lse=True),
    case("bias_scale", hq=4, hkv=4, sq=33, sk=33, bias=(1, 4, 1, 33), scale=0.09),
    # Large logits: the running maximum grows from block to block, so the
    # blocks' P are rounded against different maxima.
    case("spread_logits", hq=2, hkv=1, sq=40, sk=150, spread=4.0, block=(32, 16), out="f32"),
]

# Softcap: the lowering's tanh (math-expand) is not numpy's, so P's rounding
# is not reproduced bit for bit; only (b) is checked.
SOFTCAP = [case("softcap_causal", hq=4, hkv=2, sq=33, sk=33, mask="causal", softcap=15.0,
                spread=2.0)]


def module_text(c):
    """A function @attn wrapping one FP8 attn.attention."""
    layout = c["layout"]
    def shape(h, s, dd):
        return [c["b"], s, h, dd] if layout == "bshd" else [c["b"], h, s, dd]
    dyn = {0, 1 if layout == "bshd" else 2} if c["dynamic"] else set()
    def ty(s, dtype=F8, dynamic_dims=()):
        return cpu.tensor_type(["?" if i in dynamic_dims else d for i, d in enumerate(s)], dtype)
    # Static descales also with dynamic Q, K, V (the verifier takes either).
    ds = ty([] if c["descale"] == "tensor" else [c["b"], c["hkv"]], "f32")
    args = [("%q", ty(shape(c["hq"], c["sq"], c["d"]), dynamic_dims=dyn)),
            ("%k", ty(shape(c["hkv"], c["sk"], c["d"]), dynamic_dims=dyn)),
            ("%v", ty(shape(c["hkv"], c["sk"], c["d"]), dynamic_dims=dyn))]
    extra = ""
    if c["bias"]:
        args.append(("%bias", ty(c["bias"], "f32")))
        extra += " bias(%bias)"
    if c["sinks"]:
        args.append(("%sinks", ty([c["hq"]], "f32")))
        extra += " sinks(%sinks)"
    args += [("%dq", ds), ("%dk", ds), ("%dv", ds)]
    extra += " descale(%dq, %dk, %dv)"
    if layout == "bshd":
        extra += " layout = bshd"
    if c["mask"] == "causal":
        extra += " mask = <causal>"
    elif c["mask"] == "window":
        extra += f" mask = <window, left = {c['left']}, right = {c['right']}>"
    if c["scale"] is not None:
        extra += f" scale = {c['scale']}"
    if c["softcap"] is not None:
        extra += f" softcap = {c['softcap']}"
    results = [ty(shape(c["hq"], c["sq"], c["d"]), c["out"], dyn)]
    if c["lse"]:
        results.append(ty([c["b"], c["hq"], c["sq"]], "f32", {0, 2} if c["dynamic"] else ()))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @attn({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.attention %q, %k, %v{extra} : ({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def inputs(c):
    """e4m3 Q, K, V (standard normal times `spread`, rounded), descales in
    [0, 2) as FA3's tests draw them, bias and sinks (f32)."""
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    def shape(h, s):
        return (c["b"], s, h, c["d"]) if c["layout"] == "bshd" else (c["b"], h, s, c["d"])
    q, k, v = (round_e4m3(c["spread"] * rng.standard_normal(shape(h, s)))
               for h, s in ((c["hq"], c["sq"]), (c["hkv"], c["sk"]), (c["hkv"], c["sk"])))
    dshape = () if c["descale"] == "tensor" else (c["b"], c["hkv"])
    # Kept away from 0 so that every head carries signal.
    dq, dk, dv = (np.float32(0.25) + 1.75 * rng.random(dshape).astype(np.float32)
                  for _ in range(3))
    bias = rng.standard_normal(c["bias"]).astype(np.float32) if c["bias"] else None
    sinks = rng.standard_normal(c["hq"]).astype(np.float32) if c["sinks"] else None
    return q, k, v, (dq, dk, dv), bias, sinks


def run(c, q, k, v, descales, bias, sinks):
    args = [(q, F8), (k, F8), (v, F8)]
    if bias is not None:
        args.append((bias, "f32"))
    if sinks is not None:
        args.append((sinks, "f32"))
    args += [(np.asarray(x, np.float32), "f32") for x in descales]
    o_shape = ((c["b"], c["sq"], c["hq"], c["d"]) if c["layout"] == "bshd"
               else (c["b"], c["hq"], c["sq"], c["d"]))
    results = [(o_shape, c["out"])]
    if c["lse"]:
        results.append(((c["b"], c["hq"], c["sq"]), "f32"))
    dynamic = ({0, 1 if c["layout"] == "bshd" else 2} if c["dynamic"] else ())
    flags = (f"--attn-to-cpu=block-q={c['block'][0]} block-kv={c['block'][1]}",)
    out = cpu.run(module_text(c), "attn", args, results, flags=flags, dynamic=dynamic)
    return [x.astype(np.float64) for x in out]


def reference(c, q, k, v, descales, bias, sinks, block_kv=None):
    return attention_fp8_reference(
        q, k, v, *descales, layout=c["layout"], mask=c["mask"], left=c["left"],
        right=c["right"], scale=c["scale"], softcap=c["softcap"], bias=bias, sinks=sinks,
        block_kv=block_kv)


def fa3_lowp_reference(c, q, k, v, descales, bias, sinks):
    """FA3's out_pt: attention_ref(upcast=False, intermediate_dtype=fp8), see
    the module docstring."""
    bf = lambda x: cpu.round_to(x, "bf16").astype(np.float64)
    if c["layout"] == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    b, hq, sq, d = q.shape
    g = hq // c["hkv"]
    dq, dk, dv = (np.broadcast_to(np.asarray(x, np.float64), (b, c["hkv"])) for x in descales)
    q = bf(q * np.repeat(dq, g, 1)[:, :, None, None])
    kh = np.repeat(bf(k * dk[:, :, None, None]), g, 1)
    vh = np.repeat(bf(v * dv[:, :, None, None]), g, 1)
    scale = c["scale"] if c["scale"] is not None else 1 / math.sqrt(d)
    s = bf(np.einsum("bhid,bhjd->bhij", q, kh) * scale)
    if c["softcap"]:
        s = bf(np.tanh(s / c["softcap"]) * c["softcap"])
    if bias is not None:
        s = bf(s + bias)
    s = np.where(admitted_matrix(sq, c["sk"], c["mask"], c["left"], c["right"]), s, -np.inf)
    m = s.max(-1, initial=-np.inf)
    if sinks is not None:
        m = np.maximum(m, sinks.astype(np.float64)[None, :, None])
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m[..., None])
    l = e.sum(-1) + (np.exp(sinks[None, :, None] - m) if sinks is not None else 0)
    p = round_e4m3(bf(e / np.where(l > 0, l, 1)[..., None]))
    o = bf(np.einsum("bhij,bhjd->bhid", p, vh))
    return o.transpose(0, 2, 1, 3) if c["layout"] == "bshd" else o


def check_fa3_tolerance(c, o, ref, lowp):
    ref_bf = cpu.round_to(ref, "bf16").astype(np.float64)
    noise = cpu.round_to(cpu.round_to(ref_bf + 0.3, "bf16") - 0.3, "bf16") - ref_bf
    fwd_atol = 2 * np.abs(noise).max()
    rtol = 3 if c["softcap"] else 2
    err, lp_err = np.abs(o - ref).max(), np.abs(lowp - ref).max()
    assert err <= rtol * lp_err + fwd_atol, \
        f"max error {err:.3g} > {rtol} * {lp_err:.3g} (FA3's PyTorch path) + {fwd_atol:.3g}"


def check_lse(lse, ref_lse, tol):
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)), "-inf rows differ"
    both = np.isneginf(lse)
    d = np.abs(np.where(both, 0, lse) - np.where(both, 0, ref_lse)).max()
    assert d <= tol * max(1.0, np.abs(np.where(both, 0, ref_lse)).max()), f"lse error {d:.3g}"


@pytest.mark.parametrize("c", CASES)
def test_fp8_attention(c):
    q, k, v, descales, bias, sinks = inputs(c)
    out = run(c, q, k, v, descales, bias, sinks)
    o = out[0]
    assert not np.isnan(o).any(), "NaN in the output"

    # (a) P's rounding emulated with the lowering's key blocks: tight.
    tiled, tiled_lse = reference(c, q, k, v, descales, bias, sinks, block_kv=c["block"][1])
    scale = max(1.0, np.abs(tiled).max())
    err = np.abs(o - tiled).max()
    if c["out"] == "f32":
        assert err <= 1e-5 * scale, f"max error {err:.3g} against the emulated rounding of P"
    else:
        ulp = 2.0 ** -7 if c["out"] == "bf16" else 2.0 ** -10
        bound = 2 * ulp * np.maximum(np.abs(tiled), 2.0 ** -14) + 1e-6 * scale
        assert np.all(np.abs(o - tiled) <= bound), \
            f"max error {err:.3g} against the emulated rounding of P"

    # (b) The exact attention of the dequantized inputs, FA3's tolerance.
    exact, exact_lse = reference(c, q, k, v, descales, bias, sinks)
    check_fa3_tolerance(c, o, exact, fa3_lowp_reference(c, q, k, v, descales, bias, sinks))

    if c["lse"]:
        # The LSE does not see P's rounding: both references give it.
        check_lse(out[1], tiled_lse, 1e-5)
        check_lse(out[1], exact_lse, 1e-5)
    # Rows with no admissible key (and no sink) are exactly zero.
    if c["mask"] == "causal" and c["sq"] > c["sk"] and not c["sinks"]:
        empty = c["sq"] - c["sk"]
        rows = o[:, :, :empty] if c["layout"] == "bhsd" else o[:, :empty]
        assert np.all(rows == 0)


@pytest.mark.parametrize("c", SOFTCAP)
def test_fp8_softcap(c):
    q, k, v, descales, bias, sinks = inputs(c)
    o = run(c, q, k, v, descales, bias, sinks)[0]
    exact, _ = reference(c, q, k, v, descales, bias, sinks)
    check_fa3_tolerance(c, o, exact, fa3_lowp_reference(c, q, k, v, descales, bias, sinks))
    tiled, _ = reference(c, q, k, v, descales, bias, sinks, block_kv=c["block"][1])
    # A few of P's roundings may differ from the emulation's (tanh): each
    # moves O by at most a sixteenth of one |v| * descale_v.
    assert np.abs(o - tiled).max() <= 0.1 * np.abs(tiled).max()


def test_rows_of_p_rounding_matter():
    """The emulated rounding of P is what (a) checks: without it the
    reference differs from the tiled one by far more than (a)'s bound."""
    c = CASES[1].values[0]
    q, k, v, descales, bias, sinks = inputs(c)
    tiled, _ = reference(c, q, k, v, descales, bias, sinks, block_kv=c["block"][1])
    exact, _ = reference(c, q, k, v, descales, bias, sinks)
    assert np.abs(tiled - exact).max() > 100 * 1e-5 * max(1.0, np.abs(tiled).max())


def test_e4m3_conversions():
    """attn-expand-f8e4m3fn through attn-to-cpu: arith.truncf f32 ->
    f8E4M3FN against round_e4m3 (ties, subnormals, saturation, NaN), and
    arith.extf back (which prints the results) on all 256 codes."""
    rng = np.random.default_rng(stable_seed("e4m3 conversions"))
    codes = np.arange(256)
    grid = np.array([c for c in codes if c & 0x7F != 0x7F])
    exact = np.array([(-1.0) ** (c >> 7) * ((c & 7) * 2.0 ** -9 if (c >> 3) & 15 == 0
                                           else (1 + (c & 7) / 8) * 2.0 ** (((c >> 3) & 15) - 7))
                      for c in grid])
    mags = np.abs(exact[exact > 0])
    # Every value, every midpoint between neighbours (ties to even) and
    # points just off them, the saturation range, specials, random values.
    mids = (mags[:-1] + np.diff(mags) / 2)
    x = np.concatenate([exact, mids, -mids, np.nextafter(mids.astype(np.float32), np.inf),
                        np.nextafter(mids.astype(np.float32), -np.inf),
                        [448, 449, 463.9, 464, 465, 480, 1e30, np.inf, -np.inf, -500, np.nan,
                         2.0 ** -10, 2.0 ** -11, 1e-30, -1e-30, -0.0],
                        rng.standard_normal(2000) * np.exp2(rng.uniform(-12, 10, 2000))])
    x = x.astype(np.float32)
    module = (
        f"func.func @conv(%x: tensor<{x.size}xf32>) -> tensor<{x.size}x{F8}> {{\n"
        f"  %e = tensor.empty() : tensor<{x.size}x{F8}>\n"
        f"  %r = linalg.generic {{indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],"
        f" iterator_types = [\"parallel\"]}} ins(%x : tensor<{x.size}xf32>) outs(%e : tensor<{x.size}x{F8}>) {{\n"
        f"  ^bb0(%a: f32, %o: {F8}):\n"
        f"    %t = arith.truncf %a : f32 to {F8}\n"
        f"    linalg.yield %t : {F8}\n"
        f"  }} -> tensor<{x.size}x{F8}>\n"
        f"  return %r : tensor<{x.size}x{F8}>\n}}\n")
    got = cpu.run(module, "conv", [(x, "f32")], [((x.size,), F8)])[0].astype(np.float64)
    want = round_e4m3(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    bad = np.flatnonzero(got[ok] != want[ok])
    assert bad.size == 0, f"{bad.size} values differ, e.g. {x[ok][bad[:5]]} -> {got[ok][bad[:5]]}"
    assert np.array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
