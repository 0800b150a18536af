# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Float64 reference semantics of `attn.attention` (numpy).

This is the executable form of the op description in docs/AttnDialect.md:
bottom-right aligned masks, GQA by head index arithmetic, scale, softcap,
additive bias, per-head sinks, LSE, and rows without admissible keys giving
0 (LSE -inf); FP8 (e4m3) inputs with their descales and FlashAttention-3's
rounding of P (attention_fp8_reference, round_e4m3). Execution tests on the
CPU and the GPU compare against it.
"""

import math

import numpy as np


def admitted_keys(i, sq, sk, mask="none", left=0, right=0):
    """Half-open range [lo, hi) of keys admitted for query row i.

    Query row i sits at key position p = i + sk - sq (bottom-right aligned).
    `causal` admits j <= p; `window` admits p - left <= j <= p + right.
    Mirrors MaskAttr::getAdmittedKeys in lib/IR/AttnDialect.cpp.
    """
    p = i + sk - sq
    if mask == "none":
        return 0, sk
    if mask == "causal":
        return 0, min(max(p + 1, 0), sk)
    if mask == "window":
        if left < 0 or right < 0:
            raise ValueError("window extents must be non-negative")
        return max(p - left, 0), max(min(p + right + 1, sk), 0)
    raise ValueError(f"unknown mask {mask!r}")


def admitted_matrix(sq, sk, mask="none", left=0, right=0):
    """[Sq, Sk] booleans: which keys each query row admits."""
    allowed = np.zeros((sq, sk), dtype=bool)
    for i in range(sq):
        lo, hi = admitted_keys(i, sq, sk, mask, left, right)
        allowed[i, lo:hi] = True
    return allowed


def attention_reference(q, k, v, *, layout="bhsd", mask="none", left=0, right=0,
                        scale=None, softcap=None, bias=None, sinks=None):
    """Returns (output, lse) in float64.

    q: [B, Hq, Sq, D], k: [B, Hkv, Sk, D], v: [B, Hkv, Sk, Dv] for
    layout="bhsd" ([B, S, H, D] for "bshd"); bias broadcastable to
    [B, Hq, Sq, Sk]; sinks [Hq]. The output has q's layout; lse is
    [B, Hq, Sq].
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if layout == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    elif layout != "bhsd":
        raise ValueError(f"unknown layout {layout!r}")
    b, hq, sq, d = q.shape
    _, hkv, sk, dv = v.shape
    if hq % hkv:
        raise ValueError("Hq must be a multiple of Hkv")
    group = hq // hkv
    if scale is None:
        scale = 1.0 / math.sqrt(d)

    # GQA: query head h reads KV head h // group.
    kh = np.repeat(k, group, axis=1)
    vh = np.repeat(v, group, axis=1)
    s = scale * np.einsum("bhid,bhjd->bhij", q, kh)
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    if bias is not None:
        s = s + np.broadcast_to(np.asarray(bias, dtype=np.float64), s.shape)

    s = np.where(admitted_matrix(sq, sk, mask, left, right), s, -np.inf)

    m = s.max(axis=-1, initial=-np.inf)
    if sinks is not None:
        sink = np.asarray(sinks, dtype=np.float64)[None, :, None]
        m = np.maximum(m, sink)
    # Rows with nothing admitted (m = -inf) must not produce NaN.
    m_safe = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m_safe[..., None])
    l = p.sum(axis=-1)
    if sinks is not None:
        l = l + np.exp(sink - m_safe)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.einsum("bhij,bhjd->bhid", p, vh) / np.where(l > 0, l, 1.0)[..., None]
        lse = np.where(l > 0, m_safe + np.log(np.where(l > 0, l, 1.0)), -np.inf)
    if layout == "bshd":
        o = o.transpose(0, 2, 1, 3)
    return o, lse


# e4m3 (f8E4M3FN): 1 sign, 4 exponent (bias 7), 3 mantissa bits, no
# infinities; the largest finite magnitude is 1.75 * 2**8.
E4M3_MAX = 448.0
# FlashAttention-3's exponent offset of FP8's P (Max_offset): P in [0, 2**8].
FP8_P_OFFSET = 8


def round_e4m3(x):
    """Rounds to the nearest e4m3 value, ties to even, as float64: normals
    keep 3 mantissa bits (exponents -6 to 8), smaller magnitudes are
    multiples of 2**-9 (subnormals), magnitudes from 448 on (infinities
    too) saturate to +-448 as the GPU's cvt.rn.satfinite and attn's CPU
    lowering do; NaN stays NaN."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    with np.errstate(invalid="ignore"):
        _, e2 = np.frexp(np.where(np.isfinite(a) & (a > 0), a, 1.0))
        exp = np.clip(e2 - 1, -6, 8)  # floor(log2 |x|), within e4m3's range
        ulp = np.ldexp(1.0, exp - 3)
        r = np.where(np.isfinite(a), np.round(a / ulp) * ulp, E4M3_MAX)  # half to even
    r = np.minimum(r, E4M3_MAX)
    return np.where(np.isnan(x), np.nan, np.copysign(r, x))


def _descale_per_head(d, b, h):
    """A descale ([] per tensor or [B, Hkv]) as a [B, h] float64 array."""
    d = np.asarray(d, dtype=np.float64)
    return np.broadcast_to(d, (b, h)) if d.ndim == 0 else d


def attention_fp8_reference(q, k, v, descale_q, descale_k, descale_v, *, layout="bhsd",
                            mask="none", left=0, right=0, scale=None, softcap=None,
                            bias=None, sinks=None, block_kv=None):
    """FP8 attn.attention (f8E4M3FN q, k, v given as their float values)
    with descales of shape [] (per tensor) or [B, Hkv] (per batch and KV
    head; query heads of a group share descale_q[b, g]). Returns (output,
    lse) in float64.

    Without `block_kv`: the exact attention of the dequantized inputs
    (q * descale_q etc.), P unrounded. With `block_kv`: the tiled loops of
    attn-tile with that key-block size, FlashAttention-3's FP8 softmax
    emulated: scores summed over the head dim in f32 (as the lowering
    does), P = exp2(s - m + 8) in f32 with m the running maximum of the key
    blocks so far, rounded to e4m3 before P.V, the row sum taken before the
    rounding, O = descale_v * acc / l. Only the rounding of P is emulated
    bit for bit (the rest is float64), so the lowering should agree with it
    to f32 precision.
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not np.array_equal(round_e4m3(x), x):
            raise ValueError(f"{name} is not e4m3-representable")
    if layout == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    elif layout != "bhsd":
        raise ValueError(f"unknown layout {layout!r}")
    b, hq, sq, d = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    dq, dk, dv = (_descale_per_head(x, b, hkv) for x in (descale_q, descale_k, descale_v))
    if block_kv is None:
        o, lse = attention_reference(
            q * np.repeat(dq, group, 1)[:, :, None, None], k * dk[:, :, None, None],
            v * dv[:, :, None, None], mask=mask, left=left, right=right,
            scale=scale if scale is not None else 1.0 / math.sqrt(d), softcap=softcap,
            bias=bias, sinks=sinks)
    else:
        o, lse = _fp8_tiled(q, k, v, dq, dk, dv, mask, left, right, scale, softcap, bias,
                            sinks, block_kv)
    if layout == "bshd":
        o = o.transpose(0, 2, 1, 3)
    return o, lse


def _fp8_tiled(q, k, v, dq, dk, dv, mask, left, right, scale, softcap, bias, sinks, block_kv):
    """attention_fp8_reference's emulation of attn-tile's FP8 loops (bhsd)."""
    f32 = np.float32
    log2e = 1.4426950408889634
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    group = hq // hkv
    kh, vh = np.repeat(k, group, 1), np.repeat(v, group, 1)
    # S = Q.K^T summed over d in order, in f32 (products of e4m3 values are
    # exact in f32).
    s = np.zeros((b, hq, sq, sk), f32)
    qf, kf = q.astype(f32), kh.astype(f32)
    for i in range(d):
        s = s + qf[..., :, i, None] * kf[..., None, :, i]
    # The factor of S: f32(scale * log2 e) (or scale / softcap), times
    # f32(dq * dk) of the (batch, KV head), in f32.
    scale = float(f32(scale)) if scale is not None else 1.0 / math.sqrt(d)
    factor0 = f32(scale / softcap if softcap is not None else scale * log2e)
    qk = (dq.astype(f32) * dk.astype(f32)).astype(f32)
    factor = np.repeat(factor0 * qk, group, 1)[:, :, None, None]
    t = s * factor
    if softcap is not None:
        t = np.tanh(t) * f32(softcap * log2e)
    if bias is not None:
        t = t + np.broadcast_to(np.asarray(bias, f32) * f32(log2e), t.shape)
    t = np.where(admitted_matrix(sq, sk, mask, left, right), t, f32(-np.inf)).astype(f32)
    if sinks is not None:
        m = np.broadcast_to((np.asarray(sinks, f32) * f32(log2e))[None, :, None],
                            (b, hq, sq)).astype(f32)
        l = np.full((b, hq, sq), 2.0 ** FP8_P_OFFSET)
    else:
        m = np.full((b, hq, sq), -np.inf, f32)
        l = np.zeros((b, hq, sq))
    acc = np.zeros((b, hq, sq, vh.shape[-1]))
    for k0 in range(0, sk, block_kv):
        tb = t[..., k0:k0 + block_kv]
        m_new = np.maximum(m, tb.max(-1))
        m_safe = np.where(m_new == -np.inf, f32(0), m_new).astype(f32)
        p = np.exp2((tb - m_safe[..., None]) + f32(FP8_P_OFFSET)).astype(f32)
        alpha = np.exp2(m - m_safe).astype(f32).astype(np.float64)
        l = l * alpha + p.astype(np.float64).sum(-1)
        p8 = round_e4m3(p)
        acc = acc * alpha[..., None] + np.einsum("bhij,bhjd->bhid", p8, vh[:, :, k0:k0 + block_kv])
        m = m_new
    dvh = np.repeat(dv, group, 1)[:, :, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.where(l[..., None] > 0, acc / np.where(l > 0, l, 1)[..., None] * dvh, 0.0)
        lse = np.where(l > 0, (m.astype(np.float64) + np.log2(np.where(l > 0, l, 1))
                               - FP8_P_OFFSET) * math.log(2), -np.inf)
    return o, lse


def attention_grad_reference(q, k, v, do, *, layout="bhsd", mask="none", left=0,
                             right=0, scale=None, softcap=None, bias=None,
                             sinks=None):
    """Returns (dq, dk, dv, dsinks) in float64: the gradients of
    sum(attention_reference(...)[0] * do) (dsinks is None without sinks).

    The executable form of attn.attention_grad's description: P from the
    softmax, Delta = rowsum(dO * O), dS = P * (dP - Delta), softcap's
    1 - tanh^2, dK/dV summed over each GQA group, and the sink gradient
    -sum p_sink * Delta. The bias gets no gradient. Rows with no admissible
    key (and no sink) contribute nothing. test_reference.py checks it
    against finite differences of attention_reference.
    """
    q, k, v, do = (np.asarray(x, dtype=np.float64) for x in (q, k, v, do))
    if layout == "bshd":
        q, k, v, do = (x.transpose(0, 2, 1, 3) for x in (q, k, v, do))
    elif layout != "bhsd":
        raise ValueError(f"unknown layout {layout!r}")
    b, hq, sq, d = q.shape
    _, hkv, sk, dv = v.shape
    group = hq // hkv
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    kh = np.repeat(k, group, axis=1)
    vh = np.repeat(v, group, axis=1)
    r = scale * np.einsum("bhid,bhjd->bhij", q, kh)
    dt_dr = np.ones_like(r)
    t = r
    if softcap is not None:
        th = np.tanh(r / softcap)
        t, dt_dr = softcap * th, 1.0 - th * th
    if bias is not None:
        t = t + np.broadcast_to(np.asarray(bias, dtype=np.float64), t.shape)
    s = np.where(admitted_matrix(sq, sk, mask, left, right), t, -np.inf)
    m = s.max(axis=-1, initial=-np.inf)
    if sinks is not None:
        sink = np.asarray(sinks, dtype=np.float64)[None, :, None]
        m = np.maximum(m, sink)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m_safe[..., None])
    l = e.sum(axis=-1)
    if sinks is not None:
        l = l + np.exp(sink - m_safe)
    inv_l = np.where(l > 0, 1.0 / np.where(l > 0, l, 1.0), 0.0)
    p = e * inv_l[..., None]
    o = np.einsum("bhij,bhjd->bhid", p, vh)
    dp = np.einsum("bhid,bhjd->bhij", do, vh)
    delta = (do * o).sum(axis=-1)
    ds = p * (dp - delta[..., None]) * dt_dr
    dq = scale * np.einsum("bhij,bhjd->bhid", ds, kh)
    dk = scale * np.einsum("bhij,bhid->bhjd", ds, q)
    dvh = np.einsum("bhij,bhid->bhjd", p, do)
    dk = dk.reshape(b, hkv, group, sk, d).sum(axis=2)
    dvh = dvh.reshape(b, hkv, group, sk, dv).sum(axis=2)
    dsinks = None
    if sinks is not None:
        p_sink = np.exp(sink - m_safe) * inv_l
        dsinks = -(p_sink * delta).sum(axis=(0, 2))
    if layout == "bshd":
        dq, dk, dvh = (x.transpose(0, 2, 1, 3) for x in (dq, dk, dvh))
    return dq, dk, dvh, dsinks


def paged_attention_reference(q, k_cache, v_cache, block_table, seq_lens, *,
                              cache_layout="nhd", mask="none", left=0, right=0,
                              scale=None, softcap=None, sinks=None):
    """Float64 semantics of `attn.paged_attention`; returns (output, lse).

    q: [B, Sq, Hq, D]; k_cache / v_cache: [P, page, Hkv, D] ("nhd") or
    [P, Hkv, page, D] ("hnd"); block_table: [B, max_pages] page indices;
    seq_lens: [B]. Sequence b has L = seq_lens[b] keys, clamped to [0,
    max_pages * page]; its key j is in page block_table[b, j // page] at
    slot j % page; its Sq queries are its last tokens (bottom-right aligned,
    Sk = L). Table entries past ceil(L / page) are not read. Output
    [B, Sq, Hq, Dv]; lse [B, Hq, Sq].
    """
    q = np.asarray(q, dtype=np.float64)
    kc, vc = (np.asarray(x, dtype=np.float64) for x in (k_cache, v_cache))
    if cache_layout == "hnd":
        kc, vc = (x.transpose(0, 2, 1, 3) for x in (kc, vc))
    elif cache_layout != "nhd":
        raise ValueError(f"unknown cache layout {cache_layout!r}")
    table = np.asarray(block_table)
    lens = np.asarray(seq_lens)
    b, sq, hq, d = q.shape
    page, hkv, dv = kc.shape[1], kc.shape[2], vc.shape[3]
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    out = np.zeros((b, sq, hq, dv))
    lse = np.full((b, hq, sq), -np.inf)
    for i in range(b):
        n = min(max(int(lens[i]), 0), table.shape[1] * page)
        j = np.arange(n)
        pages = table[i, j // page]
        k = kc[pages, j % page]          # [n, Hkv, D]
        v = vc[pages, j % page]
        o_i, lse_i = attention_reference(
            q[i:i + 1], k[None], v[None], layout="bshd", mask=mask, left=left,
            right=right, scale=scale, softcap=softcap, sinks=sinks)
        out[i] = o_i[0]
        lse[i] = lse_i[0]
    return out, lse


def _l2norm(x):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)


def _gated_delta_setup(q, k, v, g, beta, initial_state, qk_l2norm, scale):
    """Float64 inputs (q, k L2-normalized if asked), the scale, the initial
    state, a zero output and the value heads per key head."""
    q, k, v, g, beta = (np.asarray(x, dtype=np.float64) for x in (q, k, v, g, beta))
    b, t, hk, dk = q.shape
    hv, dv = v.shape[2], v.shape[3]
    if scale is None:
        scale = 1.0 / math.sqrt(dk)
    if qk_l2norm:
        q, k = _l2norm(q), _l2norm(k)
    state = (np.zeros((b, hv, dk, dv)) if initial_state is None
             else np.array(initial_state, dtype=np.float64))
    return q, k, v, g, beta, scale, state, np.zeros((b, t, hv, dv)), hv // hk


def gated_delta_reference(q, k, v, g, beta, *, initial_state=None, qk_l2norm=False,
                          scale=None):
    """Float64 semantics of `attn.gated_delta_rule`, token by token; returns
    (output [B, T, Hv, Dv], final_state [B, Hv, Dk, Dv]).

    q, k: [B, T, Hk, Dk]; v: [B, T, Hv, Dv]; g: log-space decay gates
    [B, T, Hv] (per head, Gated DeltaNet) or [B, T, Hv, Dk] (per key channel,
    Kimi Delta Attention); beta: [B, T, Hv]; initial_state: [B, Hv, Dk, Dv].
    Value head h reads key head h // (Hv / Hk). Per token:
    S = exp(g) * S (or diag(exp(g)) S); u = beta (v - S^T k); S += k u^T;
    o = S^T (scale q).
    """
    q, k, v, g, beta, scale, state, out, group = _gated_delta_setup(
        q, k, v, g, beta, initial_state, qk_l2norm, scale)
    b, t, hv = q.shape[0], q.shape[1], v.shape[2]
    for i in range(b):
        for h in range(hv):
            s = state[i, h]
            for j in range(t):
                qq, kk = q[i, j, h // group] * scale, k[i, j, h // group]
                decay = np.exp(g[i, j, h])
                s = (decay[:, None] * s) if g.ndim == 4 else decay * s
                u = beta[i, j, h] * (v[i, j, h] - s.T @ kk)
                s = s + np.outer(kk, u)
                out[i, j, h] = s.T @ qq
            state[i, h] = s
    return out, state


def gated_delta_chunked(q, k, v, g, beta, *, initial_state=None, qk_l2norm=False,
                        scale=None, chunk_size=64):
    """The chunked (WY / UT-transform) evaluation of the same recurrence for
    per-head gates, in float64: within a chunk of C tokens the updates are
    matrix products, the state is carried across chunks. With G the in-chunk
    cumulative log gates, A[i, j] = beta_i (k_i . k_j) exp(G_i - G_j) for
    j < i, T = (I + A)^-1 diag(beta), W = T (K * exp(G)), U = T V:
      V' = U - W S
      O  = (Q * exp(G)) S + (Q K^T * exp(G_i - G_j), j <= i) V'
      S  = exp(G_C) S + (K * exp(G_C - G))^T V'
    The form a chunked kernel implements; equal to gated_delta_reference."""
    if np.ndim(g) != 3:
        raise ValueError("the chunked form here takes per-head gates [B, T, Hv]")
    q, k, v, g, beta, scale, state, out, group = _gated_delta_setup(
        q, k, v, g, beta, initial_state, qk_l2norm, scale)
    b, t, hv = q.shape[0], q.shape[1], v.shape[2]
    for i in range(b):
        for h in range(hv):
            s = state[i, h]
            for c0 in range(0, t, chunk_size):
                sl = slice(c0, min(t, c0 + chunk_size))
                Q = q[i, sl, h // group] * scale
                K = k[i, sl, h // group]
                V = v[i, sl, h]
                bt = beta[i, sl, h]
                G = np.cumsum(g[i, sl, h])
                n = len(G)
                decay = np.exp(G[:, None] - G[None, :])
                A = np.tril(bt[:, None] * (K @ K.T) * decay, -1)
                T = np.linalg.solve(np.eye(n) + A, np.diag(bt))
                W = T @ (K * np.exp(G)[:, None])
                U = T @ V
                Vn = U - W @ s
                out[i, sl, h] = (Q * np.exp(G)[:, None]) @ s + (np.tril(Q @ K.T * decay) @ Vn)
                s = np.exp(G[-1]) * s + (K * np.exp(G[-1] - G)[:, None]).T @ Vn
            state[i, h] = s
    return out, state


def sparse_attention_reference(q, k, v, indices, *, block_size=1, mask="none", left=0,
                               right=0, scale=None, softcap=None, sinks=None):
    """attn.sparse_attention in float64, row by row over the gathered keys.

    q [B, Sq, Hq, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv], indices
    [B, Sq, Hkv, N] (negative entries, blocks at or past Sk and keys the
    mask does not admit are skipped). Returns (output [B, Sq, Hq, Dv], lse
    [B, Hq, Sq]); a row with nothing selected gives zeros and an LSE of
    -inf (or the sink alone).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    indices = np.asarray(indices)
    b, sq, hq, d = q.shape
    _, sk, hkv, dv = v.shape
    group = hq // hkv
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    out = np.zeros((b, sq, hq, dv))
    lse = np.full((b, hq, sq), -np.inf)
    for bi in range(b):
        for i in range(sq):
            lo, hi = admitted_keys(i, sq, sk, mask, left, right)
            for g in range(hkv):
                keys = [int(n) * block_size + r for n in indices[bi, i, g] if n >= 0
                        for r in range(block_size)]
                keys = np.array([j for j in keys if j < sk and lo <= j < hi], dtype=np.int64)
                for h in range(g * group, (g + 1) * group):
                    s = scale * (k[bi, keys, g] @ q[bi, i, h])
                    if softcap is not None:
                        s = softcap * np.tanh(s / softcap)
                    logits = list(s) + ([float(sinks[h])] if sinks is not None else [])
                    if not logits:
                        continue
                    m = max(logits)
                    e = np.exp(s - m)
                    z = e.sum() + (math.exp(float(sinks[h]) - m) if sinks is not None else 0.0)
                    out[bi, i, h] = (e @ v[bi, keys, g]) / z
                    lse[bi, h, i] = m + math.log(z)
    return out, lse


def lightning_indexer_reference(q, k, weights, top_k, *, mask="none", left=0, right=0):
    """attn.lightning_indexer in float64: (indices [B, Sq, top_k] with -1
    padding, scores [B, Sq, Sk] with -inf where the mask does not admit).
    Ties go to the lower key index."""
    q, k, w = (np.asarray(x, dtype=np.float64) for x in (q, k, weights))
    b, sq, _, _ = q.shape
    sk = k.shape[1]
    logits = np.einsum("bthd,bsd->bths", q, k)
    scores = np.einsum("bth,bths->bts", w, np.maximum(logits, 0.0))
    allowed = np.zeros((sq, sk), dtype=bool)
    for t in range(sq):
        lo, hi = admitted_keys(t, sq, sk, mask, left, right)
        allowed[t, lo:hi] = True
    scores = np.where(allowed[None], scores, -np.inf)
    indices = np.full((b, sq, top_k), -1, dtype=np.int64)
    for bi in range(b):
        for t in range(sq):
            cand = np.flatnonzero(allowed[t])
            order = cand[np.lexsort((cand, -scores[bi, t, cand]))][:top_k]
            indices[bi, t, :len(order)] = order
    return indices, scores


def nsa_reference(q, k, v, k_cmp, v_cmp, gates, *, cmp_block, cmp_stride, sel_block,
                  num_selected, window, initial_blocks=1, local_blocks=2, scale=None):
    """attn.nsa in float64, row by row (see the op's description).

    Returns (output [B, Sq, Hq, Dv], selected block indices [B, Sq, Hkv,
    num_selected] with -1 padding, block scores [B, Sq, Hkv, NB] before the
    always-selected blocks are forced).
    """
    q, k, v, k_cmp, v_cmp, gates = (np.asarray(x, dtype=np.float64)
                                    for x in (q, k, v, k_cmp, v_cmp, gates))
    b, sq, hq, d = q.shape
    sk, hkv, dv = k.shape[1], k.shape[2], v.shape[3]
    tc = k_cmp.shape[1]
    group = hq // hkv
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    nb = -(-sk // sel_block)
    out = np.zeros((b, sq, hq, dv))
    sel = np.full((b, sq, hkv, num_selected), -1, dtype=np.int64)
    block_scores = np.zeros((b, sq, hkv, nb))

    def attend(qv, keys, vals):
        if len(keys) == 0:
            return np.zeros(vals.shape[-1]), np.zeros(0)
        s = scale * (keys @ qv)
        p = np.exp(s - s.max())
        p /= p.sum()
        return p @ vals, p

    for bi in range(b):
        for t in range(sq):
            pos = t + sk - sq
            vis = [c for c in range(tc) if c * cmp_stride + cmp_block <= pos + 1]
            last = pos // sel_block
            for g in range(hkv):
                heads = range(g * group, (g + 1) * group)
                o_cmp = {}
                for h in heads:
                    o, p = attend(q[bi, t, h], k_cmp[bi, vis, g], v_cmp[bi, vis, g])
                    o_cmp[h] = o
                    for c, pc in zip(vis, p):
                        lo, hi = c * cmp_stride, c * cmp_stride + cmp_block
                        for j in range(nb):
                            if lo < (j + 1) * sel_block and hi > j * sel_block:
                                block_scores[bi, t, g, j] += pc
                cand = list(range(min(last, nb - 1) + 1))
                key = {j: (np.inf if j < initial_blocks or j > last - local_blocks
                           else block_scores[bi, t, g, j]) for j in cand}
                chosen = sorted(cand, key=lambda j: (-key[j], j))[:num_selected]
                sel[bi, t, g, :len(chosen)] = chosen
                slc_keys = [j * sel_block + r for j in chosen for r in range(sel_block)
                            if j * sel_block + r <= pos and j * sel_block + r < sk]
                win_keys = [j for j in range(max(0, pos - window + 1), min(pos, sk - 1) + 1)]
                for h in heads:
                    o_slc, _ = attend(q[bi, t, h], k[bi, slc_keys, g], v[bi, slc_keys, g])
                    o_win, _ = attend(q[bi, t, h], k[bi, win_keys, g], v[bi, win_keys, g])
                    gt = gates[bi, t, h]
                    out[bi, t, h] = gt[0] * o_cmp[h] + gt[1] * o_slc + gt[2] * o_win
    return out, sel, block_scores
