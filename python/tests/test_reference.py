# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Tests of the float64 reference semantics (python/attn/reference.py)."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import reference  # noqa: E402
from attn.reference import admitted_keys, attention_reference  # noqa: E402


def rand(rng, *shape):
    return rng.standard_normal(shape)


def naive(q, k, v, allowed, scale):
    """Single-head softmax attention by definition, row by row."""
    out = np.zeros((q.shape[0], v.shape[1]))
    for i in range(q.shape[0]):
        js = [j for j in range(k.shape[0]) if allowed(i, j)]
        if not js:
            continue
        s = np.array([scale * q[i] @ k[j] for j in js])
        w = np.exp(s - s.max())
        out[i] = (w / w.sum()) @ v[js]
    return out


@pytest.mark.parametrize("sq,sk", [(8, 8), (3, 11), (11, 3)])
def test_causal_is_bottom_right(sq, sk):
    rng = np.random.default_rng(0)
    q, k, v = rand(rng, 1, 1, sq, 4), rand(rng, 1, 1, sk, 4), rand(rng, 1, 1, sk, 5)
    o, lse = attention_reference(q, k, v, mask="causal")
    ref = naive(q[0, 0], k[0, 0], v[0, 0], lambda i, j: j <= i + sk - sq, 0.5)
    np.testing.assert_allclose(o[0, 0], ref, rtol=1e-12, atol=1e-12)
    # Rows above the diagonal when Sq > Sk see no key: zeros, LSE -inf.
    empty = [i for i in range(sq) if i + sk - sq < 0]
    assert np.all(o[0, 0, empty] == 0)
    assert np.all(np.isneginf(lse[0, 0, empty]))
    assert not np.isnan(o).any()


@pytest.mark.parametrize("left,right", [(0, 0), (3, 0), (2, 5)])
def test_window_admits_exactly_the_band(left, right):
    sq = sk = 16
    for i in range(sq):
        lo, hi = admitted_keys(i, sq, sk, "window", left, right)
        assert list(range(lo, hi)) == [j for j in range(sk) if i - left <= j <= i + right]
    # Interior rows see exactly left + right + 1 keys.
    lo, hi = admitted_keys(8, sq, sk, "window", left, right)
    assert hi - lo == left + right + 1


def test_gqa_equals_repeated_mha():
    rng = np.random.default_rng(1)
    q, k, v = rand(rng, 2, 28, 5, 8), rand(rng, 2, 4, 9, 8), rand(rng, 2, 4, 9, 8)
    o, lse = attention_reference(q, k, v, mask="causal")
    o2, lse2 = attention_reference(q, np.repeat(k, 7, 1), np.repeat(v, 7, 1), mask="causal")
    np.testing.assert_array_equal(o, o2)
    np.testing.assert_array_equal(lse, lse2)
    # Head 13 reads KV head 13 // 7 = 1.
    ref = naive(q[0, 13], k[0, 1], v[0, 1], lambda i, j: j <= i + 4, 1 / math.sqrt(8))
    np.testing.assert_allclose(o[0, 13], ref, rtol=1e-12, atol=1e-12)


def test_bshd_is_a_transpose():
    rng = np.random.default_rng(2)
    q, k, v = rand(rng, 1, 4, 6, 8), rand(rng, 1, 2, 6, 8), rand(rng, 1, 2, 6, 8)
    o, lse = attention_reference(q, k, v, mask="window", left=2, right=1)
    t = lambda x: x.transpose(0, 2, 1, 3)
    ob, lseb = attention_reference(t(q), t(k), t(v), layout="bshd", mask="window", left=2, right=1)
    np.testing.assert_allclose(t(ob), o, rtol=1e-12)
    np.testing.assert_allclose(lseb, lse, rtol=1e-12)


def test_sinks_only_enter_the_denominator():
    rng = np.random.default_rng(3)
    q, k, v = rand(rng, 1, 2, 4, 8), rand(rng, 1, 2, 6, 8), rand(rng, 1, 2, 6, 8)
    sinks = np.array([0.5, -1.0])
    o, lse = attention_reference(q, k, v, sinks=sinks)
    o0, lse0 = attention_reference(q, k, v)
    # exp(lse) = exp(lse0) + exp(sink); the output shrinks by exp(lse0 - lse).
    np.testing.assert_allclose(np.exp(lse), np.exp(lse0) + np.exp(sinks)[None, :, None], rtol=1e-12)
    np.testing.assert_allclose(o, o0 * np.exp(lse0 - lse)[..., None], rtol=1e-12)


def test_softcap_and_bias_order():
    rng = np.random.default_rng(4)
    q, k, v = 4 * rand(rng, 1, 1, 3, 4), 4 * rand(rng, 1, 1, 5, 4), rand(rng, 1, 1, 5, 4)
    bias = rand(rng, 1, 1, 1, 5)
    o, lse = attention_reference(q, k, v, scale=0.3, softcap=2.0, bias=bias)
    s = 2.0 * np.tanh(0.3 * q[0, 0] @ k[0, 0].T / 2.0) + bias[0, 0]
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(o[0, 0], (p / p.sum(-1, keepdims=True)) @ v[0, 0], rtol=1e-12)
    np.testing.assert_allclose(lse[0, 0], np.log(np.exp(s).sum(-1)), rtol=1e-12)


def test_fully_masked_row_with_sink_is_zero_not_nan():
    rng = np.random.default_rng(5)
    q, k, v = rand(rng, 1, 1, 4, 4), rand(rng, 1, 1, 2, 4), rand(rng, 1, 1, 2, 4)
    o, lse = attention_reference(q, k, v, mask="causal", sinks=np.array([0.0]))
    # Rows 0 and 1 admit no key; the sink alone takes all the weight.
    assert np.all(o[0, 0, :2] == 0)
    np.testing.assert_allclose(lse[0, 0, :2], 0.0)
    assert not np.isnan(o).any()


GRAD_CASES = [
    dict(),
    dict(mask="causal", hq=4, hkv=2),
    dict(mask="window", left=2, right=1, layout="bshd"),
    dict(mask="causal", softcap=2.0, scale=0.7),
    dict(bias=(1, 2, 5, 6), sinks=True),
    dict(mask="causal", sq=7, sk=4, sinks=True),   # rows with only the sink
    dict(mask="causal", sq=7, sk=4),               # rows with nothing at all
    dict(dv=3, hq=4, hkv=1),
]


@pytest.mark.parametrize("c", GRAD_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "mha")
def test_grad_matches_finite_differences(c):
    """attention_grad_reference is the gradient of attention_reference:
    central differences of sum(o * do) in every input element."""
    c = dict(c)
    rng = np.random.default_rng(11)
    b, hq, hkv = 1, c.pop("hq", 2), c.pop("hkv", 2)
    sq, sk, d, dv = c.pop("sq", 5), c.pop("sk", 6), 4, c.pop("dv", 4)
    bshd = c.get("layout") == "bshd"
    shape = (lambda h, s, e: (b, s, h, e)) if bshd else (lambda h, s, e: (b, h, s, e))
    q, k, v = rand(rng, *shape(hq, sq, d)), rand(rng, *shape(hkv, sk, d)), rand(rng, *shape(hkv, sk, dv))
    do = rand(rng, *shape(hq, sq, dv))
    if "bias" in c:
        c["bias"] = rand(rng, *c["bias"])
    if c.pop("sinks", False):
        c["sinks"] = rand(rng, hq)
    dq, dk, dvv, ds = reference.attention_grad_reference(q, k, v, do, **c)

    def loss(q, k, v, sinks):
        kw = dict(c)
        if sinks is not None:
            kw["sinks"] = sinks
        return float((attention_reference(q, k, v, **kw)[0] * do).sum())

    eps = 1e-6
    sinks = c.get("sinks")
    for name, x, g in [("q", q, dq), ("k", k, dk), ("v", v, dvv)] + \
            ([("sinks", sinks, ds)] if sinks is not None else []):
        fd = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            args = {"q": q, "k": k, "v": v, "sinks": sinks}
            for sign in (1, -1):
                y = x.copy()
                y[i] += sign * eps
                args[name] = y
                fd[i] += sign * loss(args["q"], args["k"], args["v"], args["sinks"]) / (2 * eps)
        np.testing.assert_allclose(g, fd, atol=1e-7, rtol=1e-6, err_msg=name)
    assert not any(np.isnan(x).any() for x in (dq, dk, dvv))
    if c.get("mask") == "causal" and sq > sk and sinks is None:
        assert np.all(dq[:, :, : sq - sk] == 0)


def _paged_case(rng, lens, page, hq, hkv, d, dv, sq, layout="nhd"):
    """Contiguous per-sequence K/V scattered into randomly permuted pages of a
    cache whose unused slots hold NaN."""
    b = len(lens)
    max_pages = max(1, max(-(-n // page) for n in lens))
    num_pages = b * max_pages + 3
    perm = rng.permutation(num_pages)
    table = np.zeros((b, max_pages), dtype=np.int32)
    kc = np.full((num_pages, page, hkv, d), np.nan)
    vc = np.full((num_pages, page, hkv, dv), np.nan)
    ks, vs = [], []
    for i, n in enumerate(lens):
        k = rng.standard_normal((n, hkv, d))
        v = rng.standard_normal((n, hkv, dv))
        ks.append(k)
        vs.append(v)
        for p in range(max_pages):
            table[i, p] = perm[i * max_pages + p]
        for j in range(n):
            kc[table[i, j // page], j % page] = k[j]
            vc[table[i, j // page], j % page] = v[j]
    q = rng.standard_normal((b, sq, hq, d))
    if layout == "hnd":
        kc, vc = kc.transpose(0, 2, 1, 3), vc.transpose(0, 2, 1, 3)
    return q, kc, vc, table, np.array(lens, dtype=np.int32), ks, vs


@pytest.mark.parametrize("page,layout", [(1, "nhd"), (16, "nhd"), (61, "hnd"), (64, "hnd")])
def test_paged_equals_contiguous(page, layout):
    """Each sequence of a paged batch (permuted pages, partial last pages, NaN
    in every unused slot) equals attention over its contiguous K/V."""
    rng = np.random.default_rng(page)
    lens = [1, 127, 128, 129, 0, 300]
    q, kc, vc, table, lens_a, ks, vs = _paged_case(rng, lens, page, 8, 2, 32, 24, 2, layout)
    out, lse = reference.paged_attention_reference(
        q, kc, vc, table, lens_a, cache_layout=layout, mask="causal", softcap=20.0)
    assert np.isfinite(out).all()
    for i, n in enumerate(lens):
        o, l = reference.attention_reference(
            q[i:i + 1], ks[i][None], vs[i][None], layout="bshd", mask="causal", softcap=20.0)
        np.testing.assert_allclose(out[i], o[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.isinf(lse[i]), np.isinf(l[0]))
    # The zero-length sequence gives zeros and an LSE of -inf.
    assert (out[4] == 0).all() and np.isneginf(lse[4]).all()


def test_paged_decode_rows_see_the_whole_context():
    """One query token at the end of each sequence attends to all L keys
    under the causal mask (bottom-right alignment)."""
    rng = np.random.default_rng(7)
    q, kc, vc, table, lens_a, ks, vs = _paged_case(rng, [5, 17], 4, 4, 4, 16, 16, 1)
    causal, _ = reference.paged_attention_reference(q, kc, vc, table, lens_a, mask="causal")
    full, _ = reference.paged_attention_reference(q, kc, vc, table, lens_a)
    np.testing.assert_allclose(causal, full, rtol=1e-12)


# Gated delta rule (attn.gated_delta_rule): the token-by-token reference
# against its definition's algebra and against the chunked (WY / UT) form.

def _gdn_inputs(rng, b=2, t=37, hk=2, hv=4, dk=8, dv=5, channel=False):
    q, k = rand(rng, b, t, hk, dk), rand(rng, b, t, hk, dk)
    v = rand(rng, b, t, hv, dv)
    g = -np.abs(rand(rng, b, t, hv, dk) if channel else rand(rng, b, t, hv)) * 0.3
    beta = 1 / (1 + np.exp(-rand(rng, b, t, hv)))
    s0 = rand(rng, b, hv, dk, dv)
    return q, k, v, g, beta, s0


def test_gated_delta_matches_matrix_form():
    """S_t = a_t (I - b_t k k^T) S_{t-1} + b_t k v^T, o_t = S_t^T q_t."""
    rng = np.random.default_rng(0)
    q, k, v, g, beta, s0 = _gdn_inputs(rng, b=1, t=6, hk=1, hv=2)
    o, s = reference.gated_delta_reference(q, k, v, g, beta, initial_state=s0, scale=0.7)
    for h in range(2):
        S = s0[0, h]
        for t in range(6):
            kk = k[0, t, 0]
            S = np.exp(g[0, t, h]) * (np.eye(8) - beta[0, t, h] * np.outer(kk, kk)) @ S \
                + beta[0, t, h] * np.outer(kk, v[0, t, h])
            np.testing.assert_allclose(o[0, t, h], S.T @ (0.7 * q[0, t, 0]), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s[0, h], S, rtol=1e-12, atol=1e-12)


def test_gated_delta_special_cases():
    rng = np.random.default_rng(1)
    q, k, v, g, beta, s0 = _gdn_inputs(rng)
    # beta = 0 and g = 0: the state never changes; o = S0^T q * scale.
    o, s = reference.gated_delta_reference(q, k, v, np.zeros_like(g), np.zeros_like(beta),
                                           initial_state=s0)
    np.testing.assert_allclose(s, s0)
    group = 2
    expect = np.einsum("bhkv,bthk->bthv", s0, np.repeat(q, group, axis=2)) / math.sqrt(8)
    np.testing.assert_allclose(o, expect, rtol=1e-12, atol=1e-12)
    # beta = 1 with a unit key writes v exactly: S^T k = v after the update.
    kk = np.zeros((1, 1, 1, 8)); kk[..., 3] = 1.0
    vv = rand(rng, 1, 1, 1, 5)
    _, s = reference.gated_delta_reference(kk, kk, vv, np.zeros((1, 1, 1)), np.ones((1, 1, 1)),
                                           initial_state=rand(rng, 1, 1, 8, 5))
    np.testing.assert_allclose(s[0, 0].T @ kk[0, 0, 0], vv[0, 0, 0], rtol=1e-12)


@pytest.mark.parametrize("t,chunk", [(1, 16), (63, 64), (64, 64), (65, 64), (100, 16)])
@pytest.mark.parametrize("l2", [False, True])
def test_gated_delta_chunked_equals_recurrent(t, chunk, l2):
    rng = np.random.default_rng(t + chunk)
    q, k, v, g, beta, s0 = _gdn_inputs(rng, t=t)
    o1, s1 = reference.gated_delta_reference(q, k, v, g, beta, initial_state=s0, qk_l2norm=l2)
    o2, s2 = reference.gated_delta_chunked(q, k, v, g, beta, initial_state=s0, qk_l2norm=l2,
                                           chunk_size=chunk)
    np.testing.assert_allclose(o2, o1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s2, s1, rtol=1e-9, atol=1e-9)


def test_gated_delta_per_channel_gates():
    """KDA: a per-channel gate equal across channels is the per-head gate."""
    rng = np.random.default_rng(3)
    q, k, v, g, beta, s0 = _gdn_inputs(rng, t=9)
    o1, s1 = reference.gated_delta_reference(q, k, v, g, beta, initial_state=s0)
    gc = np.repeat(g[..., None], 8, axis=-1)
    o2, s2 = reference.gated_delta_reference(q, k, v, gc, beta, initial_state=s0)
    np.testing.assert_allclose(o2, o1, rtol=1e-12)
    np.testing.assert_allclose(s2, s1, rtol=1e-12)
    # Different channels decay differently: a channel gated to -inf forgets.
    gc = np.zeros_like(gc)
    gc[..., 0] = -np.inf
    _, s3 = reference.gated_delta_reference(q[:, :1], k[:, :1], np.zeros_like(v[:, :1]),
                                            gc[:, :1], np.zeros_like(beta[:, :1]), initial_state=s0)
    np.testing.assert_allclose(s3[:, :, 0], 0.0)
    np.testing.assert_allclose(s3[:, :, 1:], s0[:, :, 1:])
