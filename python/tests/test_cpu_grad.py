# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of the attention backward: attn.attention (with its LSE)
followed by attn.attention_grad, through attn-tile and attn-to-cpu, against
the float64 gradients of python/attn/reference.py (themselves checked by
finite differences in test_reference.py).

f32 must agree within 1e-5 relative to each gradient's scale; f16/bf16 by
FlashAttention's rule: at most twice the error of the same math done
directly in that dtype (autograd's unfused backward, emulated here), plus a
small atol. Skips when attn-opt or mlir-runner is missing.
"""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import admitted_keys, attention_grad_reference  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")


def case(id, b=1, hq=4, hkv=4, sq=17, sk=17, d=32, dv=None, dtype="f32",
         mask="none", left=0, right=0, scale=None, softcap=None, bias=None,
         sinks=False, layout="bhsd", block=(16, 16),
         dynamic=False, returns=("dq", "dk", "dv")):
    return pytest.param(dict(b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, dv=dv or d,
                             dtype=dtype, mask=mask, left=left, right=right,
                             scale=scale, softcap=softcap, bias=bias, sinks=sinks,
                             layout=layout, block=block, dynamic=dynamic,
                             returns=returns), id=id)


CASES = [
    case("mha", b=2, sq=17, sk=17, block=(64, 64)),
    case("mqa_causal", hq=4, hkv=1, sq=33, sk=33, mask="causal"),
    case("gqa_causal_blocks", hq=6, hkv=2, sq=71, sk=71, mask="causal", block=(16, 8)),
    case("gqa_window_bshd", hq=4, hkv=2, sq=45, sk=45, mask="window", left=7, right=3,
         layout="bshd"),
    case("causal_sq_lt_sk", sq=17, sk=50, mask="causal"),
    case("causal_sq_gt_sk_empty_rows", sq=50, sk=17, mask="causal"),
    case("softcap_causal", sq=33, sk=33, mask="causal", scale=0.3, softcap=3.0),
    case("bias_broadcast", hq=4, hkv=2, bias=(1, 4, 1, 17)),
    case("sinks_window", hq=4, hkv=2, sq=33, sk=33, mask="window", left=5, sinks=True),
    case("sinks_empty_rows", sq=33, sk=5, mask="causal", sinks=True),
    case("mla_d48_dv32", hq=2, hkv=2, sq=33, sk=33, d=48, dv=32, mask="causal", scale=0.17),
    case("dynamic_shapes", b=2, hq=4, hkv=2, sq=17, sk=33, mask="causal", dynamic=True),
    case("only_dv", hq=4, hkv=2, sq=33, sk=33, mask="causal", returns=("dv",)),
    case("only_dq", hq=4, hkv=2, sq=33, sk=33, mask="causal", returns=("dq",)),
    case("f16_gqa_causal", hq=4, hkv=2, sq=47, sk=47, dtype="f16", mask="causal"),
    case("bf16_window_bias", hq=2, hkv=2, sq=40, sk=40, d=64, dtype="bf16", mask="window",
         left=9, bias=(1, 1, 40, 40)),
    case("bf16_softcap_sinks", hq=4, hkv=1, sq=33, sk=33, dtype="bf16", softcap=20.0,
         sinks=True),
]


def _shape(c, h, s, e):
    return [c["b"], s, h, e] if c["layout"] == "bshd" else [c["b"], h, s, e]


def module_text(c):
    """@train(q, k, v, do[, bias][, sinks]) -> (the requested gradients...,
    dsinks): the forward with its LSE, then its gradient."""
    dt = c["dtype"]
    dyn = {0, 1 if c["layout"] == "bshd" else 2} if c["dynamic"] else set()

    def ty(s, dtype=dt, dynamic_dims=()):
        return cpu.tensor_type(["?" if i in dynamic_dims else d for i, d in enumerate(s)], dtype)

    qt = ty(_shape(c, c["hq"], c["sq"], c["d"]), dynamic_dims=dyn)
    kt = ty(_shape(c, c["hkv"], c["sk"], c["d"]), dynamic_dims=dyn)
    vt = ty(_shape(c, c["hkv"], c["sk"], c["dv"]), dynamic_dims=dyn)
    ot = ty(_shape(c, c["hq"], c["sq"], c["dv"]), dynamic_dims=dyn)
    lt = ty([c["b"], c["hq"], c["sq"]], "f32", {0, 2} if c["dynamic"] else ())
    args = [("%q", qt), ("%k", kt), ("%v", vt), ("%do", ot)]
    extra, fwd = "", ["%q", "%k", "%v"]
    if c["bias"]:
        args.append(("%bias", ty(c["bias"])))
        extra += " bias(%bias)"
    if c["sinks"]:
        st = ty([c["hq"]], "f32")
        args.append(("%sinks", st))
        extra += " sinks(%sinks)"
    if c["layout"] == "bshd":
        extra += " layout = bshd"
    if c["mask"] == "causal":
        extra += " mask = <causal>"
    elif c["mask"] == "window":
        extra += f" mask = <window, left = {c['left']}, right = {c['right']}>"
    if c["scale"] is not None:
        extra += f" scale = {c['scale']}"
    if c["softcap"] is not None:
        extra += f" softcap = {c['softcap']}"
    fwd_types = [qt, kt, vt] + [t for n, t in args[4:]]
    grad_results = [qt, kt, vt] + ([ty([c["hq"]], "f32")] if c["sinks"] else [])
    names = ["%dq", "%dk", "%dv"] + (["%dsinks"] if c["sinks"] else [])
    ret = [(n, t) for n, t in zip(names, grad_results) if n[1:] in c["returns"] or n == "%dsinks"]
    return (
        f"func.func @train({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(t for _, t in ret)}) {{\n"
        f"  %o, %lse = attn.attention {', '.join(fwd)}{extra} : ({', '.join(fwd_types)}) -> ({ot}, {lt})\n"
        f"  {', '.join(names)} = attn.attention_grad %q, %k, %v, %o, %do, %lse{extra} : "
        f"({', '.join([qt, kt, vt, ot, ot, lt] + [t for _, t in args[4:]])}) -> ({', '.join(grad_results)})\n"
        f"  return {', '.join(n for n, _ in ret)} : {', '.join(t for _, t in ret)}\n}}\n")


def lowp_grads(q, k, v, do, c, bias, sinks):
    """Autograd's unfused backward with every intermediate rounded to the
    dtype (what the same math costs in that precision)."""
    dt = c["dtype"]
    r = lambda x: cpu.round_to(x, dt).astype(np.float64)
    if c["layout"] == "bshd":
        q, k, v, do = (x.transpose(0, 2, 1, 3) for x in (q, k, v, do))
    g = c["hq"] // c["hkv"]
    kh, vh = np.repeat(k, g, 1), np.repeat(v, g, 1)
    scale = c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"])
    s = r(r(np.einsum("bhid,bhjd->bhij", q, kh)) * scale)
    th = None
    if c["softcap"]:
        th = r(np.tanh(s / c["softcap"]))
        s = r(c["softcap"] * th)
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
    e = np.exp(s - m[..., None])
    l = e.sum(-1) + (np.exp(sinks[None, :, None] - m) if sinks is not None else 0)
    p = r(e / np.where(l > 0, l, 1)[..., None])
    dvh = r(np.einsum("bhij,bhid->bhjd", p, do))
    dp = r(np.einsum("bhid,bhjd->bhij", do, vh))
    ds = r(p * r(dp - r((dp * p).sum(-1))[..., None]))
    if th is not None:
        ds = r(ds * r(1 - th * th))
    ds = r(ds * scale)
    dq = r(np.einsum("bhij,bhjd->bhid", ds, kh))
    dkh = r(np.einsum("bhij,bhid->bhjd", ds, q))
    b, hkv, sk = c["b"], c["hkv"], c["sk"]
    dk = dkh.reshape(b, hkv, g, sk, -1).sum(2)
    dv = dvh.reshape(b, hkv, g, sk, -1).sum(2)
    dsinks = None
    if sinks is not None:
        o = r(np.einsum("bhij,bhjd->bhid", p, vh))
        p_sink = r(np.exp(sinks[None, :, None] - m) / np.where(l > 0, l, 1))
        dsinks = -(p_sink * r((do * o).sum(-1))).sum(axis=(0, 2))
    if c["layout"] == "bshd":
        dq, dk, dv = (x.transpose(0, 2, 1, 3) for x in (dq, dk, dv))
    return dq, dk, dv, dsinks


@pytest.mark.parametrize("c", CASES)
def test_attention_grad(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    dt = c["dtype"]
    rnd = lambda *s: cpu.round_to(rng.standard_normal(s), dt)
    q = rnd(*_shape(c, c["hq"], c["sq"], c["d"]))
    k = rnd(*_shape(c, c["hkv"], c["sk"], c["d"]))
    v = rnd(*_shape(c, c["hkv"], c["sk"], c["dv"]))
    do = rnd(*_shape(c, c["hq"], c["sq"], c["dv"]))
    args = [(q, dt), (k, dt), (v, dt), (do, dt)]
    bias = sinks = None
    if c["bias"]:
        bias = rnd(*c["bias"])
        args.append((bias, dt))
    if c["sinks"]:
        sinks = rng.standard_normal(c["hq"]).astype(np.float32)
        args.append((sinks, "f32"))
    shapes = {"dq": q.shape, "dk": k.shape, "dv": v.shape}
    results = [(shapes[n], dt) for n in ("dq", "dk", "dv") if n in c["returns"]]
    if c["sinks"]:
        results.append(((c["hq"],), "f32"))
    dynamic = ({0, 1 if c["layout"] == "bshd" else 2} if c["dynamic"] else ())
    flags = (f"--attn-to-cpu=block-q={c['block'][0]} block-kv={c['block'][1]}",)
    out = cpu.run(module_text(c), "train", args, results, flags=flags, dynamic=dynamic)

    ref = attention_grad_reference(
        q, k, v, do, layout=c["layout"], mask=c["mask"], left=c["left"], right=c["right"],
        scale=c["scale"], softcap=c["softcap"], bias=bias, sinks=sinks)
    ref = dict(zip(("dq", "dk", "dv", "dsinks"), ref))
    lowp = None if dt == "f32" else dict(zip(("dq", "dk", "dv", "dsinks"), lowp_grads(q, k, v, do, c, bias, sinks)))
    names = [n for n in ("dq", "dk", "dv") if n in c["returns"]] + (["dsinks"] if c["sinks"] else [])
    for name, got in zip(names, out):
        got = got.astype(np.float64)
        want = ref[name]
        assert not np.isnan(got).any(), f"NaN in {name}"
        scale = max(1.0, np.abs(want).max())
        err = np.abs(got - want).max()
        if dt == "f32":
            assert err <= 1e-5 * scale, f"{name}: max error {err:.3g}"
        else:
            # dsinks has only Hq elements, so its max error (and the
            # low-precision one it is held to) is a noisy statistic: over 400
            # random inputs of bf16_softcap_sinks the ratio had median 0.29
            # and exceeded 2 three times, each by a small low-precision error,
            # not a large one here. The inputs come from a stable seed, so
            # every run checks the same case.
            lp_err = np.abs(lowp[name] - want).max()
            assert err <= 2 * lp_err + 1e-5 * scale, \
                f"{name}: max error {err:.3g} vs low-precision {lp_err:.3g}"
    # Rows with no admissible key (and no sink) get no gradient at all.
    if c["mask"] == "causal" and c["sq"] > c["sk"] and not c["sinks"] and "dq" in c["returns"]:
        dq = out[0]
        empty = c["sq"] - c["sk"]
        rows = dq[:, :, :empty] if c["layout"] == "bhsd" else dq[:, :empty]
        assert np.all(rows == 0)
