# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of attn.attention through attn-tile and attn-to-cpu, against
the float64 reference (python/attn/reference.py).

f32 must agree within 1e-5 (relative to the output's scale); f16/bf16 by
FlashAttention's rule: the error may be at most twice the error of the same
math done directly in that dtype (emulated here), plus a small atol.
Skips when attn-opt or mlir-runner is missing.
"""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import admitted_keys, attention_reference  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")


def case(id, b=1, hq=4, hkv=4, sq=17, sk=17, d=64, dv=None, dtype="f32",
         mask="none", left=0, right=0, scale=None, softcap=None, bias=None,
         sinks=False, lse=False, layout="bhsd", block=(64, 64), dynamic=False):
    return pytest.param(dict(b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, dv=dv or d,
                             dtype=dtype, mask=mask, left=left, right=right,
                             scale=scale, softcap=softcap, bias=bias, sinks=sinks,
                             lse=lse, layout=layout, block=block, dynamic=dynamic),
                        id=id)


CASES = [
    case("mha_d64", b=2, hq=4, hkv=4, sq=17, sk=17, d=64),
    case("mqa_causal_d40", hq=8, hkv=1, sq=33, sk=33, d=40, mask="causal"),
    case("gqa4_causal_d96_lse", hq=8, hkv=2, sq=113, sk=113, d=96, mask="causal", lse=True),
    case("gqa7_window_left", hq=14, hkv=2, sq=33, sk=33, d=64, mask="window", left=5),
    case("causal_sq_lt_sk", sq=17, sk=113, mask="causal", lse=True),
    case("causal_sq_gt_sk_empty_rows", sq=113, sk=17, mask="causal", lse=True),
    case("window_left_d128_len203", hq=2, hkv=2, sq=203, sk=203, d=128, mask="window", left=31),
    case("window_left_right_bshd", hq=4, hkv=2, sq=113, sk=113, mask="window", left=7, right=5, layout="bshd"),
    case("softcap_causal", mask="causal", scale=0.3, softcap=3.0, sq=33, sk=33),
    case("bias_full_causal", b=2, mask="causal", bias=(2, 1, 17, 17)),
    case("bias_broadcast", hq=4, hkv=2, bias=(1, 4, 1, 17), sq=17, sk=17),
    case("sinks_window_lse", hq=4, hkv=2, sq=33, sk=33, mask="window", left=3, sinks=True, lse=True),
    case("sinks_empty_rows", sq=33, sk=5, mask="causal", sinks=True, lse=True),
    case("d256", hq=2, hkv=1, sq=17, sk=17, d=256),
    case("mla_prefill_d192_dv128", hq=2, hkv=2, sq=33, sk=33, d=192, dv=128, mask="causal", scale=0.1352),
    case("decode_len1", hq=8, hkv=2, sq=1, sk=203, mask="causal", lse=True),
    case("len1_len1", sq=1, sk=1),
    case("small_blocks", hq=4, hkv=2, sq=113, sk=113, mask="window", left=20, right=3, block=(16, 8)),
    case("dynamic_shapes", b=2, hq=4, hkv=2, sq=17, sk=33, mask="causal", dynamic=True, lse=True),
    case("f16_gqa_causal", hq=8, hkv=2, sq=113, sk=113, d=64, dtype="f16", mask="causal"),
    case("bf16_window_bias", hq=4, hkv=4, sq=203, sk=203, d=128, dtype="bf16", mask="window",
         left=63, bias=(1, 1, 203, 203)),
    case("bf16_softcap_sinks", hq=4, hkv=1, sq=33, sk=33, dtype="bf16", softcap=20.0, sinks=True),
]


def module_text(c):
    """A function @attn wrapping one attn.attention."""
    layout = c["layout"]
    def shape(h, s, dd):
        return [c["b"], s, h, dd] if layout == "bshd" else [c["b"], h, s, dd]
    dt = c["dtype"]
    dyn = {0, 1 if layout == "bshd" else 2} if c["dynamic"] else set()
    def ty(s, dtype=dt, dynamic_dims=()):
        return cpu.tensor_type(["?" if i in dynamic_dims else d for i, d in enumerate(s)], dtype)
    args = [("%q", ty(shape(c["hq"], c["sq"], c["d"]), dynamic_dims=dyn)),
            ("%k", ty(shape(c["hkv"], c["sk"], c["d"]), dynamic_dims=dyn)),
            ("%v", ty(shape(c["hkv"], c["sk"], c["dv"]), dynamic_dims=dyn))]
    extra = ""
    if c["bias"]:
        args.append(("%bias", ty(c["bias"])))
        extra += " bias(%bias)"
    if c["sinks"]:
        args.append(("%sinks", ty([c["hq"]], "f32")))
        extra += " sinks(%sinks)"
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
    results = [ty(shape(c["hq"], c["sq"], c["dv"]), dynamic_dims=dyn)]
    if c["lse"]:
        results.append(ty([c["b"], c["hq"], c["sq"]], "f32", {0, 2} if c["dynamic"] else ()))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @attn({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.attention %q, %k, %v{extra} : ({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def lowp_reference(q, k, v, dtype, c, bias, sinks):
    """The same math with every intermediate rounded to `dtype`."""
    r = lambda x: cpu.round_to(x, dtype).astype(np.float64)
    if c["layout"] == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    g = c["hq"] // c["hkv"]
    kh, vh = np.repeat(k, g, 1), np.repeat(v, g, 1)
    scale = c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"])
    s = r(r(np.einsum("bhid,bhjd->bhij", q, kh)) * scale)
    if c["softcap"]:
        s = r(c["softcap"] * np.tanh(s / c["softcap"]))
    if bias is not None:
        s = r(s + bias)
    allowed = np.zeros((c["sq"], c["sk"]), bool)
    for i in range(c["sq"]):
        lo, hi = admitted_keys(i, c["sq"], c["sk"], c["mask"], c["left"], c["right"])
        allowed[i, lo:hi] = True
    s = np.where(allowed, s, -np.inf)
    m = s.max(-1, initial=-np.inf)
    if sinks is not None:
        m = np.maximum(m, sinks[None, :, None])
    m = np.where(np.isfinite(m), m, 0)
    p = r(np.exp(s - m[..., None]))
    l = p.sum(-1) + (np.exp(sinks[None, :, None] - m) if sinks is not None else 0)
    o = r(np.einsum("bhij,bhjd->bhid", r(p / np.where(l > 0, l, 1)[..., None]), vh))
    return o.transpose(0, 2, 1, 3) if c["layout"] == "bshd" else o


@pytest.mark.parametrize("c", CASES)
def test_attention(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    dt = c["dtype"]
    def shape(h, s, dd):
        return (c["b"], s, h, dd) if c["layout"] == "bshd" else (c["b"], h, s, dd)
    q = cpu.round_to(rng.standard_normal(shape(c["hq"], c["sq"], c["d"])), dt)
    k = cpu.round_to(rng.standard_normal(shape(c["hkv"], c["sk"], c["d"])), dt)
    v = cpu.round_to(rng.standard_normal(shape(c["hkv"], c["sk"], c["dv"])), dt)
    args = [(q, dt), (k, dt), (v, dt)]
    bias = sinks = None
    if c["bias"]:
        bias = cpu.round_to(rng.standard_normal(c["bias"]), dt)
        args.append((bias, dt))
    if c["sinks"]:
        sinks = rng.standard_normal(c["hq"]).astype(np.float32)
        args.append((sinks, "f32"))
    o_shape = shape(c["hq"], c["sq"], c["dv"])
    results = [(o_shape, dt)]
    if c["lse"]:
        results.append(((c["b"], c["hq"], c["sq"]), "f32"))
    dynamic = ({0, 1 if c["layout"] == "bshd" else 2} if c["dynamic"] else ())
    flags = (f"--attn-to-cpu=block-q={c['block'][0]} block-kv={c['block'][1]}",)
    out = cpu.run(module_text(c), "attn", args, results, flags=flags, dynamic=dynamic)

    ref, ref_lse = attention_reference(
        q, k, v, layout=c["layout"], mask=c["mask"], left=c["left"], right=c["right"],
        scale=c["scale"], softcap=c["softcap"], bias=bias, sinks=sinks)
    o = out[0].astype(np.float64)
    assert not np.isnan(o).any(), "NaN in the output"
    scale = max(1.0, np.abs(ref).max())
    err = np.abs(o - ref).max()
    if dt == "f32":
        assert err <= 1e-5 * scale, f"max error {err:.3g}"
    else:
        lp = lowp_reference(q, k, v, dt, c, bias, sinks)
        lp_err = np.abs(lp - ref).max()
        assert err <= 2 * lp_err + 1e-5 * scale, f"max error {err:.3g} vs low-precision {lp_err:.3g}"
    if c["lse"]:
        lse = out[1].astype(np.float64)
        both_inf = np.isneginf(lse) & np.isneginf(ref_lse)
        assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)), "-inf rows differ"
        with np.errstate(invalid="ignore"):
            d = np.abs(np.where(both_inf, 0, lse - ref_lse)).max()
        assert d <= 1e-5 * max(1.0, np.abs(np.where(both_inf, 0, ref_lse)).max()), f"lse error {d:.3g}"
    # Rows with no admissible key (and no sink) are exactly zero.
    if c["mask"] == "causal" and c["sq"] > c["sk"] and not c["sinks"]:
        empty = c["sq"] - c["sk"]
        rows = o[:, :, :empty] if c["layout"] == "bhsd" else o[:, :empty]
        assert np.all(rows == 0)
