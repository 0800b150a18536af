# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The GPU correctness suite's cases, shared with the bundle builder
(python -m attn.bundles --gpu-suite)."""

import math


def case(id, b=2, hq=8, hkv=8, sq=113, sk=113, d=128, dv=None, dtype="bf16",
         causal=False, window=None, softcap=None, scale=None, bias=None,
         sinks=False, lse=False, layout="bhsd", kernel=None):
    return dict(id=id, b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, dv=dv or d,
                dtype=dtype, causal=causal, window=window, softcap=softcap,
                scale=scale, bias=bias, sinks=sinks, lse=lse, layout=layout,
                kernel=kernel)


CASES = [
    case("mha_bf16", b=2, hq=8, hkv=8),
    case("mqa_causal_f16", hq=8, hkv=1, dtype="f16", causal=True),
    case("gqa4_causal_d64", hq=16, hkv=4, d=64, causal=True, sq=1000, sk=1000, lse=True),
    case("gqa7_window", b=1, hq=14, hkv=2, sq=203, sk=203, window=(31, 0)),
    case("causal_sq_lt_sk", b=1, hq=4, hkv=4, sq=113, sk=2049, causal=True),
    case("causal_sq_gt_sk", b=1, hq=4, hkv=4, sq=203, sk=113, causal=True, lse=True),
    case("window_left_right_bshd_f16", b=1, hq=8, hkv=2, sq=1000, sk=1000, window=(64, 16),
         dtype="f16", layout="bshd"),
    case("softcap", b=1, hq=8, hkv=4, sq=203, sk=203, softcap=30.0, causal=True),
    case("bias", b=2, hq=4, hkv=4, sq=113, sk=113, bias=(False, True, False, False)),
    case("sinks_window", b=1, hq=8, hkv=2, sq=203, sk=203, window=(63, 0), sinks=True, lse=True),
    case("d96_f16", b=1, hq=4, hkv=4, d=96, dtype="f16"),
    case("d256_causal", b=1, hq=4, hkv=2, d=256, causal=True),
    case("mla_d192_dv128", b=1, hq=8, hkv=8, d=192, dv=128, causal=True, scale=0.1352),
    case("decode_len1", b=8, hq=32, hkv=8, sq=1, sk=4224, causal=True),
    case("long_4224", b=1, hq=8, hkv=8, sq=4224, sk=4224, causal=True),
    # f16 cases that the tensor-core kernel (kernel=auto|mma) takes.
    case("f16_gqa7_window_softcap", b=1, hq=14, hkv=2, sq=203, sk=203, d=64, dtype="f16",
         window=(31, 0), softcap=30.0),
    case("f16_sinks_lse_empty_rows", b=2, hq=8, hkv=2, sq=203, sk=113, dtype="f16", causal=True,
         sinks=True, lse=True),
    case("f16_causal_sq_gt_sk_lse", b=1, hq=4, hkv=4, sq=203, sk=113, dtype="f16", causal=True, lse=True),
    case("f16_bias_d64", b=2, hq=4, hkv=2, sq=1000, sk=1000, d=64, dtype="f16",
         bias=(False, True, False, False)),
    case("f16_decode_len1", b=8, hq=32, hkv=8, sq=1, sk=4224, dtype="f16", causal=True),
    case("f16_long_4224_d64", b=1, hq=8, hkv=8, sq=4224, sk=4224, d=64, dtype="f16", causal=True),
    case("f16_mla_d192_dv128", b=1, hq=4, hkv=4, d=192, dv=128, dtype="f16", causal=True),
    # Head dims above 128 (64-row blocks, Q re-read from shared memory).
    case("f16_d256_window_2049", b=1, hq=4, hkv=1, sq=2049, sk=2049, d=256, dtype="f16",
         window=(500, 0)),
    case("d256_bias_lse", b=2, hq=2, hkv=2, sq=203, sk=203, d=256, bias=(True, False, False, False),
         lse=True),
    case("mla_sinks_lse_bshd_1000", b=1, hq=8, hkv=8, sq=1000, sk=1000, d=192, dv=128,
         causal=True, sinks=True, lse=True, layout="bshd"),
    case("quickbench_shape", b=1, hq=4, hkv=4, sq=256, sk=256, causal=True),
    case("batch8_2049_f16", b=8, hq=4, hkv=1, sq=2049, sk=2049, dtype="f16", causal=True),
    # Non-causal d128 at key counts off the 128-key steps: GQA in f16 with
    # the LSE (Sk = 1409, Sq < Sk), bshd with sinks (Sk = 352), MQA with
    # Sk < Sq. They also passed with 176-key steps (block_kv, 2026-12-04).
    case("gqa4_f16_lse_sk1409", b=2, hq=8, hkv=2, sq=1000, sk=1409, dtype="f16", lse=True),
    case("bshd_sinks_lse_sk352", b=1, hq=4, hkv=4, sq=177, sk=352, layout="bshd", sinks=True,
         lse=True),
    case("mqa_sk100", b=3, hq=4, hkv=1, sq=300, sk=100),
    # Past 8192 keys these variants launch their length alternative (176
    # keys a step, docs/design-length-choice.md); 8192 itself is its first
    # size, 8191 the default's last. Key counts off both steps.
    case("long_keys_alt_8195", b=1, hq=4, hkv=2, sq=200, sk=8195),
    case("long_keys_alt_f16_lse_bshd_8192", b=2, hq=2, hkv=1, sq=129, sk=8192, dtype="f16",
         lse=True, layout="bshd"),
    case("long_keys_alt_sinks_lse_9000", b=1, hq=2, hkv=2, sq=64, sk=9000, sinks=True, lse=True),
    case("long_keys_default_8191", b=1, hq=2, hkv=2, sq=64, sk=8191),
    # Causal D = Dv = 128 through 2048 keys launches its length alternative
    # (one warpgroup of 64 rows, 64 keys a step); 2048 is its last size, 2049
    # the default's first. The shorter causal cases above run it too.
    case("causal_short_alt_2048_gqa_bshd_lse", b=1, hq=8, hkv=2, sq=2048, sk=2048, causal=True,
         layout="bshd", lse=True),
    case("causal_default_2049_sq_lt_sk", b=1, hq=4, hkv=4, sq=300, sk=2049, causal=True),
    # Causal D = Dv = 64 below 1792 keys: 64 keys a step, three blocks an SM;
    # 1791 is its last size, 1792 the default's first (gqa4_causal_d64 above
    # runs it too).
    case("causal_d64_alt_1791_gqa_bshd_lse", b=2, hq=8, hkv=2, sq=1791, sk=1791, d=64,
         causal=True, layout="bshd", lse=True),
    case("causal_d64_alt_sq_lt_sk_sinks_f16", b=1, hq=4, hkv=4, sq=77, sk=1500, d=64, causal=True,
         dtype="f16", sinks=True),
    case("causal_d64_default_1792", b=1, hq=4, hkv=4, sq=300, sk=1792, d=64, causal=True),
]


def variant(c):
    """The kernel variant a case needs (the keys of a manifest's variant)."""
    v = {"dtype": c["dtype"], "head_dim": c["d"], "value_head_dim": c["dv"],
         "layout": c["layout"],
         "mask": "window" if c["window"] else ("causal" if c["causal"] else "none"),
         "scale": c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"]),
         "softcap": c["softcap"], "bias": c["bias"] is not None, "sinks": c["sinks"],
         "lse": c["lse"]}
    if c["window"]:
        v["window_left"], v["window_right"] = c["window"]
    if c["bias"] is not None:
        v["bias_broadcast"] = list(c["bias"])
        v["bias_dtype"] = c["dtype"]
    if c["sinks"]:
        v["sinks_dtype"] = "f32"
    return v


# FP8 (e4m3) forward: q, k, v of float8_e4m3fn with descales per tensor or
# per (batch, KV head), the output in `out` (test_gpu_fp8).
def fp8_case(id, descale="head", out="bf16", neg_k=False, **kw):
    """`neg_k`: K stored negated with negative descales (the same values;
    the kernel's negative score factor)."""
    c = case(id, dtype="f8e4m3", **kw)
    c.update(descale=descale, out_dtype=out, neg_k=neg_k)
    return c


FP8_CASES = [
    fp8_case("fp8_gqa4_causal_1000", b=2, hq=8, hkv=2, sq=1000, sk=1000, causal=True),
    fp8_case("fp8_tensor_f16_lse_515", b=1, hq=4, hkv=4, sq=515, sk=515, descale="tensor",
             out="f16", lse=True),
    fp8_case("fp8_d256_window_sinks_bshd", b=1, hq=8, hkv=2, sq=700, sk=700, d=256,
             window=(100, 0), sinks=True, lse=True, layout="bshd"),
    fp8_case("fp8_softcap_sq_gt_sk_f32", b=1, hq=4, hkv=1, sq=300, sk=200, causal=True,
             softcap=30.0, out="f32", lse=True),
    fp8_case("fp8_d256_dv128_causal", b=1, hq=4, hkv=4, sq=513, sk=513, d=256, dv=128,
             causal=True),
    fp8_case("fp8_long_4224", b=1, hq=8, hkv=8, sq=4224, sk=4224),
    fp8_case("fp8_negative_descale_causal", b=2, hq=4, hkv=2, sq=333, sk=333, causal=True,
             neg_k=True, lse=True),
]


def fp8_variant(c):
    v = variant(c)
    v["descale"], v["out_dtype"] = c["descale"], c["out_dtype"]
    return v


# The backward (attn.gpu.attention_backward, autograd): the forward with its
# LSE, then the gradient kernels.
GRAD_CASES = [
    case("grad_mha_bf16_d64", b=2, hq=4, hkv=4, sq=200, sk=200, d=64),
    case("grad_gqa_causal_f16", b=1, hq=8, hkv=2, sq=257, sk=257, dtype="f16", causal=True,
         lse=True),
    case("grad_window_bshd", b=1, hq=4, hkv=2, sq=190, sk=190, d=64, window=(31, 8),
         layout="bshd", lse=True),
    case("grad_softcap_causal", b=1, hq=4, hkv=4, sq=150, sk=150, softcap=30.0, causal=True,
         lse=True),
    case("grad_sinks_window_f16", b=1, hq=4, hkv=2, sq=160, sk=160, d=64, dtype="f16",
         window=(40, 0), sinks=True, lse=True),
    case("grad_sinks_empty_rows", b=1, hq=4, hkv=4, sq=120, sk=60, d=64, causal=True,
         sinks=True, lse=True),
    case("grad_causal_sq_gt_sk", b=1, hq=2, hkv=2, sq=150, sk=70, d=64, causal=True, lse=True),
    case("grad_bias_f16", b=2, hq=4, hkv=2, sq=100, sk=100, d=64, dtype="f16",
         bias=(False, True, False, False), lse=True),
    case("grad_mla_d192_dv128", b=1, hq=4, hkv=4, sq=130, sk=130, d=192, dv=128, causal=True,
         scale=0.1352, lse=True),
    case("grad_d256_f16", b=1, hq=2, hkv=1, sq=100, sk=100, d=256, dtype="f16", lse=True),
    case("grad_f32_mqa", b=1, hq=4, hkv=1, sq=90, sk=90, d=64, dtype="f32", causal=True,
         lse=True),
    # The tensor-core backward (f16/bf16, head dims multiples of 16 up to
    # 128: mma.sync dQ and dK/dV kernels of 64-row tiles): many key and query
    # blocks, partial last blocks, GQA/MQA, masks crossing tiles, D != Dv,
    # the unswizzled head dim 96, and row/key counts that are not multiples
    # of 4 (the LSE and Delta rows' alignment).
    case("grad_d128_bf16_1000", b=1, hq=4, hkv=4, sq=1000, sk=1000, d=128),
    case("grad_gqa4_causal_d128_f16_1100", b=1, hq=8, hkv=2, sq=1100, sk=1100, dtype="f16",
         causal=True),
    case("grad_window_gqa3_d128_701", b=2, hq=6, hkv=2, sq=701, sk=701, window=(100, 0)),
    case("grad_mqa_window_softcap_d64_f16", b=1, hq=4, hkv=1, sq=333, sk=333, d=64, dtype="f16",
         window=(64, 16), softcap=30.0),
    case("grad_causal_sq_lt_sk_d128", b=1, hq=4, hkv=2, sq=100, sk=333, causal=True),
    case("grad_d128_dv64_bias_bshd_f16", b=2, hq=4, hkv=2, sq=213, sk=213, d=128, dv=64,
         dtype="f16", bias=(True, False, False, False), layout="bshd"),
    case("grad_d96_causal_f16", b=1, hq=2, hkv=2, sq=150, sk=150, d=96, dtype="f16", causal=True),
    case("grad_sq_gt_sk_d64_f16", b=1, hq=2, hkv=1, sq=301, sk=77, d=64, dtype="f16"),
    case("grad_sinks_causal_d128_bf16", b=2, hq=4, hkv=2, sq=257, sk=257, causal=True,
         sinks=True, softcap=20.0, bias=(False, False, False, False)),
    # Head dims past 128 (on sm_90a: the wgmma kernels with dK and dV in
    # blocks of their own): DeepSeek's 192/128 with GQA, 256 with a window
    # and softcap, 256/128 with sinks and a bias, 128/256 bshd with Sq > Sk.
    case("grad_mla_gqa_causal_d192_dv128_700", b=1, hq=8, hkv=2, sq=700, sk=700, d=192, dv=128,
         causal=True, scale=0.1352),
    case("grad_d256_window_softcap_f16_500", b=2, hq=4, hkv=2, sq=500, sk=500, d=256,
         dtype="f16", window=(100, 0), softcap=30.0),
    case("grad_d256_dv128_sinks_bias_333", b=1, hq=4, hkv=4, sq=333, sk=333, d=256, dv=128,
         causal=True, sinks=True, bias=(True, False, False, False)),
    case("grad_d128_dv256_bshd_sq_gt_sk_f16", b=1, hq=4, hkv=2, sq=300, sk=150, d=128, dv=256,
         dtype="f16", layout="bshd"),
    # 192/64: 32-row tiles (head dim past 128) with dK and dV in one block
    # (D + Dv = 256), and the tiles' statistics as two 128-byte copies.
    case("grad_d192_dv64_gqa_causal_f16_333", b=2, hq=4, hkv=2, sq=333, sk=333, d=192, dv=64,
         dtype="f16", causal=True),
    # MHA's causal blocks dealt heaviest first in L2-sized sections of (head,
    # batch) pairs (getGradBlockIds): 72 pairs of 1100 rows make sections of
    # 32 (the fused d128 dK/dV kernel), 64 (the deterministic d128 dK/dV and
    # dQ kernels, mma.sync's dK/dV, the fused d64) or 128, the last ones
    # partial.
    case("grad_mha_causal_sections_d128_1100", b=3, hq=24, hkv=24, sq=1100, sk=1100,
         causal=True),
    case("grad_mha_causal_sections_d64_1100", b=3, hq=24, hkv=24, sq=1100, sk=1100, d=64,
         causal=True),
]
for c in GRAD_CASES:
    c["lse"] = True  # the forward of a backward computes its LSE
# The sm_90a dQ and dK/dV kernels (TMA, wgmma, 128 rows a block) are what
# "auto" compiles for sm_90a wherever they take the variant (f16/bf16, head
# dims multiples of 64 up to 256), so on an H200 the cases above run them.
# The cases mma.sync takes (head dims up to 128) again with it pinned
# (kernel="mma", what sm_80 runs), and the wgmma ones with those pinned
# (skipped off Hopper), so that both stay tested on any one GPU. Their
# forwards are the cases' own.
_HALF = [c for c in GRAD_CASES if c["dtype"] in ("f16", "bf16")]
GRAD_CASES += [dict(c, id=c["id"].replace("grad_", "grad_mma_", 1), kernel="mma")
               for c in _HALF if c["d"] in (64, 128) and c["dv"] in (64, 128)]
GRAD_CASES += [dict(c, id=c["id"].replace("grad_", "grad_wgmma_", 1), kernel="wgmma")
               for c in _HALF if c["d"] % 64 == 0 and c["dv"] % 64 == 0]
# The non-deterministic backward ("deterministic": false): on sm_90a, head
# dims 64 and 128, dQ fused into the dK/dV kernel with atomics (prep, dK/dV,
# convert); elsewhere the deterministic kernels under its names.
GRAD_CASES += [dict(c, id=c["id"].replace("grad_", "grad_nd_", 1), deterministic=False)
               for c in _HALF]
# Three of them with dQ added by f32 atomics ("dq_reduce": "atomic").
GRAD_CASES += [dict(c, id=c["id"].replace("grad_", "grad_nd_atomic_", 1), deterministic=False,
                    dq_reduce="atomic")
               for c in _HALF if c["id"] in ("grad_gqa4_causal_d128_f16_1100",
                                             "grad_mqa_window_softcap_d64_f16",
                                             "grad_d128_dv64_bias_bshd_f16")]


def grad_variant(c):
    """The backward's kernel variant (the forward's is variant(c)), with
    "kernel" and "deterministic": false where the case asks for them."""
    v = {key: val for key, val in variant(c).items() if key != "lse"}
    if c.get("kernel"):
        v["kernel"] = c["kernel"]
    if c.get("deterministic") is False:
        v["deterministic"] = False
    if c.get("dq_reduce"):
        v["dq_reduce"] = c["dq_reduce"]
    return dict(v, op="attention_grad")


# Context parallelism (attn.distributed.context_parallel_attention, ring
# attention; python/tests/test_distributed_gpu.py): 2 ranks on one GPU, so
# the sequence is 4 zigzag chunks (of 64, 150 and 101 rows: partial tiles).
# The ring's block calls are the forward with its LSE and the backward,
# unmasked and, for causal cases, causal (each rank's own block); sinks are
# merged by the ring, so the kernels run without them (cp_variants).
CP_CASES = [
    case("cp_mha_bf16_d64", b=2, hq=4, hkv=4, sq=256, sk=256, d=64),
    case("cp_gqa_causal_bf16", b=1, hq=8, hkv=2, sq=600, sk=600, causal=True),
    case("cp_causal_bshd_softcap_sinks", b=1, hq=4, hkv=2, sq=404, sk=404, d=64, causal=True,
         softcap=30.0, sinks=True, layout="bshd"),
]
for c in CP_CASES:
    c["lse"] = True


def cp_variants(c):
    """The forward and backward variants of the ring's block calls in case c
    (the backward both ways: attention_backward follows
    torch.are_deterministic_algorithms_enabled())."""
    out = []
    for causal in (False, True) if c["causal"] else (False,):
        block = dict(c, causal=causal, sinks=False, lse=True)
        out += [variant(block), grad_variant(block),
                grad_variant(dict(block, deterministic=False))]
    return out


def paged_case(id, lens, page=16, hq=8, hkv=2, sq=1, d=128, dv=None, dtype="bf16", layout="nhd",
               causal=True, window=None, softcap=None, scale=None, sinks=False, lse=False,
               table_dtype="i32", splits=None, v_prefix=False):
    return dict(id=id, lens=list(lens), page=page, hq=hq, hkv=hkv, sq=sq, d=d, dv=dv or d,
                dtype=dtype, layout=layout, causal=causal, window=window, softcap=softcap,
                scale=scale, sinks=sinks, lse=lse, table_dtype=table_dtype, splits=splits,
                v_prefix=v_prefix)


# Paged decode (issue 7): page sizes 1, 16, 64, 128 and 61, partial last
# pages, permuted tables, NaN in every unused slot, empty sequences, mixed
# lengths, GQA/MQA, multi-token, window, softcap, sinks + LSE, HND, i64.
PAGED_CASES = [
    paged_case("paged_mixed_lengths_p16", lens=[1, 127, 128, 129, 2049, 16384], lse=True),
    paged_case("paged_p1_gqa4", lens=[5, 300, 1], page=1, hq=16, hkv=4),
    paged_case("paged_p61_hnd_f16", lens=[61, 62, 1000, 0], page=61, dtype="f16", layout="hnd",
               lse=True),
    paged_case("paged_p64_mqa_i64", lens=[4096, 33], page=64, hq=32, hkv=1, table_dtype="i64"),
    paged_case("paged_p128_multitoken", lens=[700, 129, 5], page=128, sq=5, hq=8, hkv=8),
    paged_case("paged_window_softcap", lens=[3000, 17], causal=False, window=(255, 0),
               softcap=30.0),
    paged_case("paged_sinks_lse_empty", lens=[0, 513, 1], sinks=True, lse=True, dtype="f16"),
    paged_case("paged_d64_noncausal_split7", lens=[2500, 100], d=64, causal=False, splits=7),
    paged_case("paged_d256_split1", lens=[1500], d=256, hq=4, hkv=1, splits=1),
    # Dv = 80: the combine kernel's last 32-column group is half a warp's.
    paged_case("paged_d80_split5_lse", lens=[900, 33], d=80, hq=4, hkv=2, splits=5, lse=True),
    # DeepSeek MLA absorbed decode: one latent KV head of 576 (512 + 64 rope),
    # values = its first 512 columns (a view of the key cache), pages of 64,
    # scale 0.1352, 16..128 query heads, batch 1..64.
    paged_case("mla_b1_h128", lens=[4097], page=64, hq=128, hkv=1, d=576, dv=512,
               scale=0.1352, v_prefix=True, lse=True),
    paged_case("mla_b64_h16", lens=[(37 * i) % 700 + 1 for i in range(64)], page=64, hq=16,
               hkv=1, d=576, dv=512, scale=0.1352, v_prefix=True),
    paged_case("mla_b4_h32_mtp2", lens=[300, 2, 1000, 129], page=64, hq=32, hkv=1, sq=2,
               d=576, dv=512, scale=0.1352, v_prefix=True, dtype="f16"),
    # The latent kernel beyond MLA's defaults: two KV heads, HND pages of 61,
    # three tokens, window + softcap, sinks + LSE, an empty sequence.
    paged_case("latent_hkv2_d288_p61_hnd_window_softcap", lens=[1000, 61, 0, 2049], page=61,
               hq=8, hkv=2, sq=3, d=288, dv=256, layout="hnd", causal=False, window=(300, 0),
               softcap=30.0, sinks=True, lse=True, v_prefix=True, dtype="f16"),
    # The sm_90a latent kernel (64 packed rows on wgmma) beyond MLA's
    # defaults: two KV heads of 320 / 256, HND pages of 61, three tokens (48
    # rows a KV head), window + softcap, sinks + LSE, an empty sequence.
    paged_case("latent_wgmma_hkv2_d320_dv256_p61_hnd_window_softcap", lens=[1000, 61, 0, 2049],
               page=61, hq=32, hkv=2, sq=3, d=320, dv=256, layout="hnd", causal=False,
               window=(300, 0), softcap=30.0, sinks=True, lse=True, v_prefix=True),
    # MLA at 128 heads with two tokens (MTP): 256 rows, four row tiles.
    paged_case("mla_b3_h128_mtp2", lens=[1, 700, 3000], page=64, hq=128, hkv=1, sq=2, d=576,
               dv=512, scale=0.1352, v_prefix=True, lse=True),
    # MLA's shapes with a separate value cache: the general kernel's wide
    # tiling (value columns split over blocks).
    paged_case("mla_separate_values_h16", lens=[777, 64], page=64, hq=16, hkv=1, d=576, dv=512,
               scale=0.1352),
]


def paged_variant(c):
    v = {"op": "paged_attention", "dtype": c["dtype"], "head_dim": c["d"],
         "value_head_dim": c["dv"], "page_size": c["page"], "cache_layout": c["layout"],
         "table_dtype": c["table_dtype"], "lens_dtype": c["table_dtype"],
         "mask": "window" if c["window"] else ("causal" if c["causal"] else "none"),
         "scale": c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"]),
         "softcap": c["softcap"], "sinks": c["sinks"], "lse": c["lse"],
         "values": "key_prefix" if c["v_prefix"] else "separate"}
    if c["window"]:
        v["window_left"], v["window_right"] = c["window"]
    if c["sinks"]:
        v["sinks_dtype"] = "f32"
    return v


# Poisoned caches (issue 17): every paged variant the kernels take along page
# sizes 1, 2, 3, 16, 48, 64, 256, NHD and HND (HND caches made by transposing
# NHD ones, so that torch's strides of size-1 dimensions are left as they
# were), f16 and bf16, head dims 64, 128, 256 and DeepSeek MLA's latent
# 576/512 (values = the first 512 columns of the key rows), causal; each run
# with 1 and 16 query tokens. Tables are i32 for NHD, i64 for HND.
POISON_PAGES = (1, 2, 3, 16, 48, 64, 256)
POISON_HEADS = ((64, 64), (128, 128), (256, 256), (576, 512))
# What a block table holds past a sequence's live pages, in turn.
POISON_TABLE_TAILS = ("nan_page", "minus_one", "huge")


def poison_case(page, layout, dtype, d, dv):
    latent = (d, dv) == (576, 512)
    return paged_case(f"poison_p{page}_{layout}_{dtype}_d{d}" + ("_latent" if latent else ""),
                      lens=poison_lengths(page), page=page, d=d, dv=dv, dtype=dtype,
                      layout=layout, hq=16 if latent else 8, hkv=1 if latent else 2,
                      scale=0.1352 if latent else None, v_prefix=latent,
                      table_dtype="i64" if layout == "hnd" else "i32")


def poison_lengths(page):
    """Lengths 0, 1, P - 1, P, P + 1 in one batch, and one spanning several
    key tiles and splits."""
    return [0, 1, max(page - 1, 0), page, page + 1, 3 * page + 200]


POISON_CASES = [poison_case(page, layout, dtype, d, dv)
                for (d, dv) in POISON_HEADS for page in POISON_PAGES
                for layout in ("nhd", "hnd") for dtype in ("f16", "bf16")]
# Issue 17 as reported: fp16, head dim 256, 4 query heads over 4 KV heads,
# pages of 1, HND (transposed from NHD), 12 sequences of 54 tokens, causal.
ISSUE17_CASE = paged_case("issue17_p1_hnd_f16_d256", lens=[54] * 12, page=1, hq=4, hkv=4,
                          d=256, dtype="f16", layout="hnd")


def gated_case(id, t, b=1, hk=2, hv=4, d=128, dv=None, dtype="bf16", gate="head", l2norm=True,
               init=False, gate_dtype="f32", scale=None):
    return dict(id=id, t=t, b=b, hk=hk, hv=hv, d=d, dv=dv or d, dtype=dtype, gate=gate,
                l2norm=l2norm, init=init, gate_dtype=gate_dtype, scale=scale)


# Gated DeltaNet (issue 8): T 1, 63, 64, 65, 1000, 2049; head dims 64, 100,
# 128; Hk != Hv; with and without an initial state; fp16 and bf16; per-head
# (GDN) and per-channel (KDA) gates; gates and beta in f32 or the input type.
GATED_CASES = [
    gated_case("gdn_decode_t1_init", t=1, b=4, init=True),
    gated_case("gdn_t63_d64_f16", t=63, b=2, hk=2, hv=2, d=64, dtype="f16", l2norm=False),
    gated_case("gdn_t64_gqa8_init", t=64, hk=1, hv=8, init=True),
    gated_case("gdn_t65_d100_init", t=65, b=2, d=100, init=True, gate_dtype="bf16"),
    gated_case("gdn_t1000_qwen_heads", t=1000, hk=2, hv=4, scale=0.125),
    gated_case("gdn_t2049_f16_init", t=2049, hk=1, hv=2, dtype="f16", init=True),
    gated_case("kda_t1000", t=1000, hk=2, hv=2, gate="channel"),
    gated_case("kda_t65_d64_f16_init", t=65, b=2, hk=1, hv=2, d=64, dtype="f16", gate="channel",
               init=True, l2norm=False),
    gated_case("kda_decode_t1_d100", t=1, b=3, hk=1, hv=2, d=100, gate="channel", init=True),
]


def gated_variant(c, init=None):
    return {"op": "gated_delta_rule", "dtype": c["dtype"], "key_head_dim": c["d"],
            "value_head_dim": c["dv"], "chunk": 64, "gate_kind": c["gate"],
            "gate_dtype": c["gate_dtype"] if c["gate_dtype"] == "f32" else c["dtype"],
            "beta_dtype": "f32", "qk_l2norm": c["l2norm"],
            "scale": c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"]),
            "initial_state": c["init"] if init is None else init}


def sparse_case(id, b, sq, sk, top_k, hq=16, d=576, dv=512, block=1, causal=True, lse=False,
                all_invalid_row=True):
    return dict(id=id, b=b, sq=sq, sk=sk, top_k=top_k, hq=hq, d=d, dv=dv, block=block,
                causal=causal, lse=lse, all_invalid_row=all_invalid_row)


# DeepSeek Sparse Attention (issue 9): token-sparse MLA over the latent cache
# (one KV head, 576/512, values = the first 512 columns), top-k 512 and 2048,
# prefill (Sq = Sk) and decode, index lists with -1 entries, indices past the
# sequence and future tokens, a row with nothing valid.
SPARSE_CASES = [
    sparse_case("dsa_decode_topk512_b4", b=4, sq=1, sk=3000, top_k=512, lse=True),
    sparse_case("dsa_decode_mtp2_topk2048_h128", b=2, sq=2, sk=8192, top_k=2048, hq=128),
    sparse_case("dsa_prefill_topk2048", b=1, sq=2560, sk=2560, top_k=2048),
    sparse_case("dsa_prefill_topk512_b2", b=2, sq=700, sk=700, top_k=512, lse=True),
]


def sparse_variant(c):
    """Compiled from attn.sparse_attention itself (its lowering: the paged
    kernels gpu.sparse_attention runs)."""
    return {"op": "sparse_attention", "dtype": "bf16", "head_dim": c["d"],
            "value_head_dim": c["dv"], "block_size": c["block"],
            "mask": "causal" if c["causal"] else "none", "scale": 0.1352, "softcap": None,
            "sinks": False, "lse": c["lse"], "values": "key_prefix"}


def nsa_case(id, t, s=None, b=1, hkv=4, group=16, d=128, dv=None, cmp_block=32, cmp_stride=16,
             sel_block=64, num_selected=16, window=512, missing=0, gates="bf16"):
    return dict(id=id, t=t, s=s or t, b=b, hq=hkv * group, hkv=hkv, d=d, dv=dv or d,
                cmp_block=cmp_block, cmp_stride=cmp_stride, sel_block=sel_block,
                num_selected=num_selected, window=window, dtype="bf16", missing=missing,
                gates=gates)


# Native Sparse Attention (issue 9), GQA groups of 16, the NSA paper's
# l = 32, d = 16, l' = 64, 16 blocks, a 512-token window.
NSA_CASES = [
    nsa_case("nsa_t63_b3", t=63, b=3, hkv=1),
    nsa_case("nsa_t1024_b2", t=1024, b=2, hkv=2),
    nsa_case("nsa_t4096", t=4096, hkv=4),
    nsa_case("nsa_chunk_t64_s3000", t=64, s=3000, b=2, hkv=2),
    # The last 4 compressed tokens not made: the compressed branch's paged path.
    nsa_case("nsa_t300_cmp_missing4", t=300, hkv=2, missing=4),
    # Only the forced blocks (the initial one and two local ones) selected: a
    # chunk's keys between block 0 and its first window are read by no
    # branch (the test puts NaN there).
    nsa_case("nsa_chunk_forced_only_t64_s3000", t=64, s=3000, b=2, hkv=2, num_selected=3),
    # The selected branch's kernel (nsa.attend) off the paper's shape: groups
    # of 4 (12 zero rows of its m16 tile), head dim 64, blocks of 32 (two
    # entries per 64-key tile) and of 48 (tiles straddle entries), blocks of
    # 128 (an entry over two tiles) after a chunk, f32 gates.
    nsa_case("nsa_g4_d64_sel32_t777_b2", t=777, b=2, hkv=2, group=4, d=64, sel_block=32,
             window=256),
    nsa_case("nsa_sel48_t500_s900", t=500, s=900, hkv=1, sel_block=48, num_selected=8,
             window=100),
    nsa_case("nsa_sel128_f32gates_t1000_s1500", t=1000, s=1500, hkv=1, sel_block=128,
             num_selected=8, gates="f32"),
    # Blocks of 24 keys: not whole 16-key warp tiles, so the selected branch
    # runs on the paged kernels over the compacted selections.
    nsa_case("nsa_sel24_paged_t300", t=300, hkv=1, group=8, sel_block=24, num_selected=6,
             window=64),
    # The NSA paper's 192 / 128 heads (the selected branch on the wide
    # tiling), after a chunk, and 192 / 128 with blocks of 24 (paged path).
    nsa_case("nsa_d192_dv128_t700_s1200_b2", t=700, s=1200, b=2, hkv=2, d=192, dv=128),
    nsa_case("nsa_d192_dv128_sel24_paged_t200", t=200, hkv=1, group=4, d=192, dv=128,
             sel_block=24, num_selected=6, window=64),
]


def nsa_variant(c):
    return {"op": "nsa", "dtype": c["dtype"], "head_dim": c["d"], "value_head_dim": c["dv"],
            "q_heads": c["hq"],
            "kv_heads": c["hkv"], "cmp_block": c["cmp_block"], "cmp_stride": c["cmp_stride"],
            "sel_block": c["sel_block"], "num_selected": c["num_selected"],
            "initial_blocks": 1, "local_blocks": 2, "scale": 1 / math.sqrt(c["d"]),
            "window": c["window"], "page_size": 64}


def indexer_case(id, b, sq, sk, top_k, causal=True, heads=64, d=128):
    return dict(id=id, b=b, sq=sq, sk=sk, top_k=top_k, causal=causal, heads=heads, d=d)


# DeepSeek-V3.2's lightning indexer: 64 heads x 128, top-k 512 and 2048,
# prefill (rows with fewer admitted keys than top_k: -1 padding) and decode.
INDEXER_CASES = [
    indexer_case("indexer_prefill_topk512", b=2, sq=777, sk=777, top_k=512),
    indexer_case("indexer_decode_topk2048", b=3, sq=2, sk=5000, top_k=2048),
    indexer_case("indexer_nomask_sk100_topk128", b=1, sq=5, sk=100, top_k=128, causal=False),
]


def indexer_variant(c):
    return {"op": "lightning_indexer", "dtype": "bf16", "heads": c["heads"],
            "head_dim": c["d"], "weights_dtype": "f32",
            "mask": "causal" if c["causal"] else "none"}


def variants():
    return ([variant(c) for c in CASES] + [variant(c) for c in GRAD_CASES]
            + [fp8_variant(c) for c in FP8_CASES]
            + [grad_variant(c) for c in GRAD_CASES]
            + [v for c in CP_CASES for v in cp_variants(c)] + [paged_variant(c) for c in PAGED_CASES + POISON_CASES + [ISSUE17_CASE]]
            + [gated_variant(c) for c in GATED_CASES] + [sparse_variant(c) for c in SPARSE_CASES]
            + [nsa_variant(c) for c in NSA_CASES] + [indexer_variant(c) for c in INDEXER_CASES])
