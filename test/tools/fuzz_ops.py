# Generative fuzzing of the six attn ops through every pass and pipeline.
#
# From a seed, builds random, mostly type-correct instances of attn.attention,
# attn.attention_grad, attn.paged_attention, attn.gated_delta_rule,
# attn.sparse_attention, attn.lightning_indexer and attn.nsa -- custom and
# generic form (odd
# operandSegmentSizes included), extreme static sizes (0, 1, 2^31 - 1, 2^31,
# 2^32, 2^62, 2^63 - 1, primes, mismatches), dynamic dims, every variant
# attribute -- inside a func.func or at module top level (operands from
# tensor.empty), sometimes next to unrelated top-level ops and a host function
# named like a kernel; and lightly mutated chunks of the repository's own test
# files (type-consistent resizes, attribute flips, hoisting to top level, and
# now and then mutate.py's syntactic corruption, imported from it).
#
# Every input goes through attn-opt with no pass (parse + verify, then the
# printed form must parse again), each attn pass, --attn-to-cpu and
# --attn-to-ptx (sm_80 and sm_90a; sometimes an unsupported chip), each under a
# timeout, and sometimes attn-compile. attn-opt verifies after each pass
# (--verify-each is on by default). A run is fine when it exits 0, or exits 1
# with a located "file:line:col: error:" (line > 0). Anything else fails: a
# signal, "Stack dump", "LLVM ERROR", "PLEASE submit a bug report", an
# assertion, another exit code, exit 1 without a located error, an error at
# 0:0 or <unknown>, a timeout, or a pass whose output does not verify (the run
# is repeated with --verify-each=false: if that one then succeeds, or fails
# differently, the verifier rejected what a pass made). Failing inputs are
# written under --out with the command that reproduces them; `--seed S --only
# N` regenerates input N. The output ends with "N inputs, M failures".
#
# Passes without a CUDA toolkit (libdevice): the PTX-emitting runs are skipped
# then (as lit's cuda-toolkit feature would), with a note.
#
# What is not checked: that a pass consumes the ops (attn-tile leaving a
# non-attention op alone, attn-to-ptx on a module without attention, a
# decomposition a pass does not apply: exit 0 with valid IR is fine), nor
# what the kernels compute (the GPU suite's job).
#
# One RUN line, so that a failure still reports every input's outcome: 600
# inputs (40% mutated test files), about 3,400 attn-opt runs, 1.5 min on 2 idle
# cores, 2.5 min on busy ones. A longer campaign: --seed N --count 5000
# (--avoid to look past a known class; --inputs to check files).
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s --attn-opt attn-opt --attn-compile attn-compile --seed 1 --count 600 --mutate-weight 0.4 --jobs 2 --out %t


import argparse
import concurrent.futures
import glob
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import random

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import mutate as mutate_py  # noqa: E402  (chunks() and the syntactic mutate())

# ---------------------------------------------------------------------------
# Sizes, types and attribute values.
# ---------------------------------------------------------------------------

I64_MAX = 2**63 - 1
EXTREME = [0, 0, 1, 2**31 - 1, 2**31, 2**32, 2**48, 2**62, 2**62 + 1,
           I64_MAX, 65536, 2**40]
PRIMES = [3, 5, 7, 13, 31, 61, 127, 251, 257, 1021, 8191, 131071, 2147483647]
ODD_ELTS = ["f64", "i8", "i32", "f8E4M3FN", "index", "complex<f32>", "i1"]
FLOATS = ["f16", "bf16", "f32"]

SCALES = ["0.125", "1.0", "0.0883883", "0.0", "-1.0", "1.0e+38", "3.4e+38",
          "1.0e-45", "0x7F800000", "0xFF800000", "0x7FC00000", "0x00000001",
          "-0.0"]
SOFTCAPS = ["30.0", "50.0", "1.0", "0.0", "-5.0", "0x7FC00000", "0x7F800000",
            "1.0e-40", "3.4e+38"]
BIG_INTS = [0, -1, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**62, I64_MAX,
            -2**63]
WINDOW_EXT = [0, 1, 3, 127, 4095, -1, 2**31 - 1, 2**31, 2**62, I64_MAX]

# Features --avoid can leave out, to look past a known failure class.
FEATURES = {
    "top-level": "attn ops and tensor.empty at module top level",
    "extras": "unrelated top-level ops next to the attn ops",
    "kernel-names": "host functions named like kernels",
    "bad-chips": "unsupported chips",
    "odd-segments": "wrong operandSegmentSizes in generic attn.attention",
    "huge": "sizes above 2^48",
    "zero-heads": "attn.nsa with zero query heads",
    "dynamic-top-k": "attn.lightning_indexer with a dynamic top-k dim",
}
AVOID = set()


def pick_size(rng, values):
    v = rng.choice(values)
    if "huge" in AVOID and isinstance(v, int) and v > 2**48:
        return 2**31 - 1
    return v


class Gen:
    """Random choices for one input. `level` sets how odd the sizes get:
    0 ordinary, 1 now and then an odd size, 2 often."""

    def __init__(self, rng):
        self.rng = rng
        self.level = rng.choice([0, 0, 1, 1, 2])
        self.p_dyn = rng.choice([0.0, 0.0, 0.1, 0.3])
        self.mismatch = rng.random() < 0.12
        # Types that agree only up to dynamic dims (a static batch in the
        # query, `?` in the result): compatible, so valid.
        self.loosen = rng.random() < 0.2

    def size(self, normal):
        r = self.rng.random()
        odd = [0.0, 0.08, 0.3][self.level]
        if r < self.p_dyn:
            return "?"
        r = self.rng.random()
        if r < odd * 0.6:
            return pick_size(self.rng, EXTREME)
        if r < odd:
            return self.rng.choice(PRIMES)
        return self.rng.choice(normal)

    def elt(self):
        if self.rng.random() < 0.04:
            return self.rng.choice(ODD_ELTS)
        return self.rng.choice(FLOATS)

    def maybe(self, p):
        return self.rng.random() < p

    def int_attr(self, normal):
        if self.rng.random() < [0.03, 0.15, 0.35][self.level]:
            return self.rng.choice(BIG_INTS)
        return self.rng.choice(normal)

    def scale(self):
        return self.rng.choice(SCALES[:3] * 8 + SCALES)

    def softcap(self):
        return self.rng.choice(SOFTCAPS[:2] * 8 + SOFTCAPS)

    def mask(self):
        r = self.rng.random()
        if r < 0.25:
            return None
        if r < 0.35:
            return "none"
        if r < 0.65:
            return "causal"
        odd = self.level > 0 and self.maybe(0.4)
        ext = WINDOW_EXT if odd else [0, 1, 3, 7, 127, 4095]
        return (f"window, left = {self.rng.choice(ext)}, "
                f"right = {self.rng.choice(ext if odd else [0, 0, 2, 5])}")


def mul(a, b):
    """Product of two sizes ('?' stays dynamic; never past int64)."""
    if a == "?" or b == "?":
        return "?"
    return a * b if a * b <= I64_MAX else a


def ttype(dims, elt):
    return "tensor<" + "".join(f"{d}x" for d in dims) + elt + ">"


def corrupt(g, dims, elt):
    """A type near `dims` x `elt`: usually itself."""
    dims = list(dims)
    if g.loosen:
        dims = ["?" if g.maybe(0.25) else d for d in dims]
    if g.mismatch and g.maybe(0.3):
        r = g.rng.randrange(4)
        if r == 0 and dims:
            dims[g.rng.randrange(len(dims))] = g.rng.choice(
                [0, 1, 2, 3, "?", 2**31, 2**62])
        elif r == 1 and dims:
            del dims[g.rng.randrange(len(dims))]
        elif r == 2:
            dims.insert(g.rng.randrange(len(dims) + 1), g.rng.choice([1, 2]))
        else:
            elt = g.rng.choice(FLOATS + ODD_ELTS)
    return ttype(dims, elt)


class Op:
    """One attn op: its operands (name -> type, in order, None if absent),
    results, custom-form keywords and generic-form properties."""

    def __init__(self, name):
        self.name = name
        self.operands = []        # [(role, type)] in operand order
        self.optional = {}        # role -> keyword for optional operands
        self.results = []
        self.custom = []          # tokens after the operands, custom form
        self.props = {}           # property name -> generic text
        self.segments = None      # attn.attention's true segment sizes

    def add(self, role, typ, keyword=None):
        self.operands.append((role, typ))
        if keyword:
            self.optional[role] = keyword


def gen_attention(g):
    rng = g.rng
    b, hkv, sq, sk = g.size([1, 2, 4]), g.size([1, 2, 4, 8]), g.size([1, 7, 64, 128]), g.size([1, 16, 64, 256])
    d = g.size([16, 32, 64, 128, 192, 256, 576])
    dv = d if g.maybe(0.7) else g.size([16, 64, 128, 512])
    hq = mul(hkv, rng.choice([1, 1, 2, 4, 7]))
    elt = g.elt()
    bshd = g.maybe(0.35)
    def qkv(h, s, dd):
        return [b, s, h, dd] if bshd else [b, h, s, dd]
    op = Op("attn.attention")
    op.add("query", corrupt(g, qkv(hq, sq, d), elt))
    op.add("key", corrupt(g, qkv(hkv, sk, d), elt))
    op.add("value", corrupt(g, qkv(hkv, sk, dv), elt))
    nb, ns = add_bias_sinks(g, op, (b, hq, sq, sk), elt, 0.3)
    op.segments = [1, 1, 1, nb, ns, 0, 0]
    op.results.append(corrupt(g, qkv(hq, sq, dv), elt))
    if g.maybe(0.3):
        op.results.append(corrupt(g, [b, hq, sq], "f32"))
    add_layout(g, op, bshd)
    add_mask(g, op)
    add_scale(g, op, 0.35)
    add_softcap(g, op, 0.25)
    op.kernel = dict(elt=elt, d=d, dv=dv, layout="bshd" if bshd else "bhsd",
                     mask=op.mask, scale=op.scale, nb=nb, ns=ns,
                     lse=len(op.results) > 1)
    return op


def gen_attention_grad(g):
    """attn.attention_grad: the forward's operands, O, dO and the LSE, with
    the forward's attributes and `deterministic` (either value, or a wrongly
    typed one now and then)."""
    rng = g.rng
    b, hkv, sq, sk = g.size([1, 2]), g.size([1, 2, 4]), g.size([1, 7, 64, 130]), g.size([1, 16, 64, 200])
    d = g.size([16, 32, 64, 96, 128, 192, 256])
    dv = d if g.maybe(0.7) else g.size([16, 64, 128, 256])
    hq = mul(hkv, rng.choice([1, 1, 2, 4]))
    elt = g.elt()
    bshd = g.maybe(0.35)

    def rows(h, s, dd):
        return [b, s, h, dd] if bshd else [b, h, s, dd]
    op = Op("attn.attention_grad")
    op.add("query", corrupt(g, rows(hq, sq, d), elt))
    op.add("key", corrupt(g, rows(hkv, sk, d), elt))
    op.add("value", corrupt(g, rows(hkv, sk, dv), elt))
    op.add("output", corrupt(g, rows(hq, sq, dv), elt))
    op.add("grad_output", corrupt(g, rows(hq, sq, dv), elt))
    op.add("lse", corrupt(g, [b, hq, sq], "f32"))
    nb, ns = add_bias_sinks(g, op, (b, hq, sq, sk), elt, 0.25)
    op.segments = [1, 1, 1, 1, 1, 1, nb, ns]
    op.results += [corrupt(g, rows(hq, sq, d), elt), corrupt(g, rows(hkv, sk, d), elt),
                   corrupt(g, rows(hkv, sk, dv), elt)]
    if ns or g.maybe(0.05):
        op.results.append(corrupt(g, [hq], rng.choice([elt, "f32"])))
    add_layout(g, op, bshd)
    add_mask(g, op)
    add_scale(g, op, 0.35)
    add_softcap(g, op, 0.25)
    if g.maybe(0.5):  # the attribute dictionary, after the custom keywords
        value = rng.choice(["false", "false", "true", "1 : i32", "unit"])
        op.custom.append(f"{{deterministic = {value}}}" if value != "unit" else "{deterministic}")
        op.props["deterministic"] = None if value == "unit" else value
    return op


def add_bias_sinks(g, op, sizes, elt, p_bias):
    """The optional bias (broadcastable to [B, Hq, Sq, Sk], with probability
    p_bias) and sinks operands of attn.attention and attn.attention_grad;
    returns their segment sizes."""
    rng = g.rng
    b, hq, sq, sk = sizes
    nb = ns = 0
    if g.maybe(p_bias):
        bd = [rng.choice([b, 1]), rng.choice([hq, 1]), rng.choice([sq, 1]), rng.choice([sk, 1])]
        op.add("bias", corrupt(g, bd, rng.choice([elt, "f32"])), "bias")
        nb = 1
    if g.maybe(0.25):
        op.add("sinks", corrupt(g, [hq], rng.choice([elt, "f32"])), "sinks")
        ns = 1
    return nb, ns


def add_layout(g, op, bshd):
    """The layout attribute: always for bshd, now and then the default."""
    if bshd or g.maybe(0.1):
        lay = "bshd" if bshd else "bhsd"
        op.custom.append(f"layout = {lay}")
        op.props["layout"] = f"#attn<layout {lay}>"


def add_mask(g, op):
    m = g.mask()
    op.mask = m
    if m:
        op.custom.append(f"mask = <{m}>")
        op.props["mask"] = f"#attn.mask<{m}>"


def add_softcap(g, op, p):
    if g.maybe(p):
        c = g.softcap()
        op.custom.append(f"softcap = {c}")
        op.props["softcap"] = f"{c} : f32"


def add_scale(g, op, p):
    op.scale = None
    if g.maybe(p):
        op.scale = g.scale()
        op.custom.append(f"scale = {op.scale}")
        op.props["scale"] = f"{op.scale} : f32"


def gen_paged(g):
    rng = g.rng
    b, sq, hkv = g.size([1, 2, 8]), g.size([1, 1, 4, 16]), g.size([1, 2, 8])
    hq = mul(hkv, rng.choice([1, 1, 4, 16]))
    d = g.size([64, 128, 576, 32])
    dv = d if g.maybe(0.7) else g.size([64, 128, 512])
    pages, page = g.size([1, 16, 4096]), g.size([1, 16, 61, 64, 256] + ([0, 257] if g.level else []))
    maxp = g.size([1, 17, 512])
    elt, tab = g.elt(), rng.choice(["i32", "i64"] * 15 + ["i16", "f32", "index"])
    hnd = g.maybe(0.4)
    def cache(dd):
        return [pages, hkv, page, dd] if hnd else [pages, page, hkv, dd]
    op = Op("attn.paged_attention")
    op.add("query", corrupt(g, [b, sq, hq, d], elt))
    op.add("key_cache", corrupt(g, cache(d), elt))
    op.add("value_cache", corrupt(g, cache(dv), elt))
    op.add("block_table", corrupt(g, [b, maxp], tab))
    op.add("seq_lens", corrupt(g, [b], tab if g.maybe(0.95) else "i32"))
    if g.maybe(0.25):
        op.add("sinks", corrupt(g, [hq], rng.choice([elt, "f32"])), "sinks")
    op.results.append(corrupt(g, [b, sq, hq, dv], elt))
    if g.maybe(0.3):
        op.results.append(corrupt(g, [b, hq, sq], "f32"))
    if hnd or g.maybe(0.1):
        lay = "hnd" if hnd else "nhd"
        op.custom.append(f"cache_layout = {lay}")
        op.props["cache_layout"] = f"#attn<cache_layout {lay}>"
    add_mask(g, op)
    add_scale(g, op, 0.35)
    add_softcap(g, op, 0.2)
    return op


def gen_gated_delta(g):
    rng = g.rng
    b, t, hk = g.size([1, 2]), g.size([1, 1, 16, 64, 100]), g.size([1, 2, 16])
    hv = mul(hk, rng.choice([1, 1, 2, 3]))
    dk = g.size([64, 128, 100, 16])
    dv = dk if g.maybe(0.6) else g.size([64, 96, 128])
    elt = g.elt()
    channel = g.maybe(0.4)
    op = Op("attn.gated_delta_rule")
    op.add("query", corrupt(g, [b, t, hk, dk], elt))
    op.add("key", corrupt(g, [b, t, hk, dk], elt))
    op.add("value", corrupt(g, [b, t, hv, dv], elt))
    gate = [b, t, hv, dk] if channel else [b, t, hv]
    op.add("gate", corrupt(g, gate, rng.choice([elt, "f32"])))
    op.add("beta", corrupt(g, [b, t, hv], rng.choice([elt, "f32"])))
    if g.maybe(0.35):
        op.add("initial_state", corrupt(g, [b, hv, dk, dv], "f32"), "initial_state")
    op.results.append(corrupt(g, [b, t, hv, dv], elt))
    op.results.append(corrupt(g, [b, hv, dk, dv], "f32"))
    if channel or g.maybe(0.1):
        kind = "channel" if channel else "head"
        op.custom.append(f"gate_kind = {kind}")
        op.props["gate_kind"] = f"#attn<gate {kind}>"
    if g.maybe(0.5):
        op.custom.append("qk_l2norm")
        op.props["qk_l2norm"] = None
    add_scale(g, op, 0.35)
    if g.maybe(0.4):
        c = g.int_attr([16, 32, 64, 128, 256])
        op.custom.append(f"chunk_size = {c}")
        op.props["chunk_size"] = f"{c} : i64"
    return op


def gen_sparse(g):
    rng = g.rng
    b, sq, sk, hkv = g.size([1, 2]), g.size([1, 16, 64]), g.size([16, 64, 4096]), g.size([1, 2, 4])
    hq = mul(hkv, rng.choice([1, 4, 16, 128]))
    d = g.size([64, 128, 576])
    dv = d if g.maybe(0.6) else g.size([64, 128, 512])
    n = g.size([1, 3, 16, 2048])
    elt, ie = g.elt(), rng.choice(["i32", "i64"] * 12 + ["i8", "f32", "index"])
    op = Op("attn.sparse_attention")
    op.add("query", corrupt(g, [b, sq, hq, d], elt))
    op.add("key", corrupt(g, [b, sk, hkv, d], elt))
    op.add("value", corrupt(g, [b, sk, hkv, dv], elt))
    op.add("indices", corrupt(g, [b, sq, hkv, n], ie))
    if g.maybe(0.25):
        op.add("sinks", corrupt(g, [hq], rng.choice([elt, "f32"])), "sinks")
    op.results.append(corrupt(g, [b, sq, hq, dv], elt))
    if g.maybe(0.3):
        op.results.append(corrupt(g, [b, hq, sq], "f32"))
    if g.maybe(0.5):
        bs = g.int_attr([1, 4, 16, 64])
        op.custom.append(f"block_size = {bs}")
        op.props["block_size"] = f"{bs} : i64"
    add_mask(g, op)
    add_scale(g, op, 0.4)
    add_softcap(g, op, 0.2)
    return op


def gen_indexer(g):
    rng = g.rng
    b, sq, sk, hi = g.size([1, 2]), g.size([1, 16, 4096]), g.size([16, 64, 4096]), g.size([4, 64])
    di = g.size([16, 64, 128])
    top_k = g.int_attr([1, 8, 64, 2048])
    elt = g.elt()
    op = Op("attn.lightning_indexer")
    op.add("query", corrupt(g, [b, sq, hi, di], elt))
    op.add("key", corrupt(g, [b, sk, di], elt))
    op.add("weights", corrupt(g, [b, sq, hi], rng.choice([elt, "f32"])))
    k_dim = top_k if g.maybe(0.9) and 0 <= top_k <= I64_MAX else rng.choice(["?", 0, 1, 2**31])
    if g.maybe(g.p_dyn):
        k_dim = "?"
    if "dynamic-top-k" in AVOID and k_dim == "?":
        k_dim = top_k
    op.results.append(corrupt(g, [b, sq, k_dim], "i32" if g.maybe(0.95) else "i64"))
    if g.maybe(0.3):
        op.results.append(corrupt(g, [b, sq, sk], "f32"))
    op.custom.append(f"top_k = {top_k}")
    op.props["top_k"] = f"{top_k} : i64"
    add_mask(g, op)
    return op


def gen_nsa(g):
    rng = g.rng
    b, sq, sk, hkv = g.size([1, 2]), g.size([1, 16, 64]), g.size([64, 4096]), g.size([1, 2, 4])
    hq = mul(hkv, rng.choice([1, 4, 16]))
    if g.level and g.maybe(0.1):
        hq = 0 if "zero-heads" not in AVOID else hq
    d = g.size([16, 64, 128, 192])
    dv = d if g.maybe(0.6) else g.size([16, 128])
    tc = g.size([1, 3, 255])
    elt = g.elt()
    op = Op("attn.nsa")
    op.add("query", corrupt(g, [b, sq, hq, d], elt))
    op.add("key", corrupt(g, [b, sk, hkv, d], elt))
    op.add("value", corrupt(g, [b, sk, hkv, dv], elt))
    op.add("key_cmp", corrupt(g, [b, tc, hkv, d], elt))
    op.add("value_cmp", corrupt(g, [b, tc, hkv, dv], elt))
    op.add("gates", corrupt(g, [b, sq, hq, 3], rng.choice([elt, "f32"])))
    op.results.append(corrupt(g, [b, sq, hq, dv], elt))
    for name, normal in [("cmp_block", [4, 32]), ("cmp_stride", [2, 16]),
                         ("sel_block", [4, 64]), ("num_selected", [4, 16]),
                         ("window", [8, 512])]:
        v = g.int_attr(normal)
        op.custom.append(f"{name} = {v}")
        op.props[name] = f"{v} : i64"
    for name, normal in [("initial_blocks", [0, 1]), ("local_blocks", [1, 2])]:
        if g.maybe(0.4):
            v = g.int_attr(normal)
            op.custom.append(f"{name} = {v}")
            op.props[name] = f"{v} : i64"
    add_scale(g, op, 0.35)
    return op


GENERATORS = [gen_attention, gen_attention_grad, gen_paged, gen_gated_delta, gen_sparse,
              gen_indexer, gen_nsa]


def float_hex(text):
    if text.startswith(("0x", "-0x")):
        bits = int(text, 16) & 0xFFFFFFFF
        return f"{bits:08x}"
    return struct.pack(">f", float(text)).hex()


def attention_kernel_names(k):
    """The names attn-lower-to-gpu gives an attn.attention's kernel
    (getAttentionKernelName), for a host function to collide with."""
    d, dv = k["d"], k["dv"]
    if not (isinstance(d, int) and isinstance(dv, int) and d > 0):
        return []
    try:
        scale = float_hex(k["scale"]) if k["scale"] else struct.pack(
            ">f", 1 / math.sqrt(d)).hex()
    except (ValueError, OverflowError):
        return []
    m = k["mask"] or "none"
    mk = m.split(",")[0]
    name = f"attn_{k['elt']}_d{d}_dv{dv}_{k['layout']}_{mk}"
    if mk == "window":
        l, r = re.findall(r"-?\d+", m)
        name += f"_l{l}_r{r}"
    name += f"_s{scale}"
    if k["ns"]:
        name += "_sinksf32"
    if k["lse"]:
        name += "_lse"
    return [name, name + "_mma", name + "_wgmma"]


# ---------------------------------------------------------------------------
# Rendering: custom or generic form, in a function or at top level.
# ---------------------------------------------------------------------------

def render_op(g, op, names, results):
    rng = g.rng
    types = [t for _, t in op.operands]
    res = ", ".join(results)
    lhs = f"{res} = " if results else ""
    rtypes = ", ".join(op.results)
    rt = f"({rtypes})" if len(op.results) != 1 or g.maybe(0.2) else rtypes
    ftype = f"({', '.join(types)}) -> {rt}"
    if g.maybe(0.3):
        props = dict(op.props)
        if op.segments is not None:
            seg = list(op.segments)
            r = rng.random()
            if r < 0.35 and "odd-segments" not in AVOID:  # odd operandSegmentSizes
                kind = rng.randrange(8)
                if kind == 0:
                    seg[rng.randrange(6)] += rng.choice([1, 2])
                elif kind == 1:
                    seg[rng.randrange(6)] = 0
                elif kind == 2:
                    seg = seg[:rng.choice([3, 4, 5])] if rng.random() < 0.5 else seg + [1]
                elif kind == 3:
                    seg[rng.randrange(6)] = -1
                elif kind == 4:  # right total, wrong split
                    i, j = rng.sample(range(6), 2)
                    if seg[i] > 0:
                        seg[i] -= 1
                        seg[j] += 1
                elif kind == 5:
                    seg = [sum(seg), 0, 0, 0, 0, 0]
                elif kind == 6:
                    seg[rng.randrange(6)] = 2**31 - 1
                else:
                    seg = None  # missing entirely
            if seg is not None:
                ety = "i64" if rng.random() < 0.05 else "i32"
                props["operandSegmentSizes"] = f"array<{ety}: {', '.join(map(str, seg))}>"
        items = sorted(props.items())
        body = ", ".join(k if v is None else f"{k} = {v}" for k, v in items)
        if g.maybe(0.15):  # inherent attributes in the attribute dictionary
            attrs = f" {{{body}}}" if body else ""
        else:
            attrs = f" <{{{body}}}>" if body else ""
        return f'{lhs}"{op.name}"({", ".join(names)}){attrs} : {ftype}'
    text = f"{lhs}{op.name} "
    plain = [n for (role, _), n in zip(op.operands, names) if role not in op.optional]
    text += ", ".join(plain)
    for (role, _), n in zip(op.operands, names):
        if role in op.optional:
            text += f" {op.optional[role]}({n})"
    if op.custom:
        text += " " + " ".join(op.custom)
    if g.maybe(0.05):
        text += " {fuzz.extra = 1 : i32}"
    return text + f" : {ftype}"


def tensor_dims(t):
    m = re.fullmatch(r"tensor<((?:[^x<>]+x)*)([^<>]+(?:<[^<>]*>)?)>", t)
    if not m or "*" in t:
        return None
    dims = [x for x in m.group(1).split("x") if x]
    return dims


def empty_lines(name, t, consts):
    """Top-level definitions of %name: t from tensor.empty (with index
    constants for its dynamic sizes); None if t is not a ranked tensor."""
    dims = tensor_dims(t)
    if dims is None:
        return None
    lines = []
    for i, d in enumerate(dims):
        if d == "?":
            lines.append(f"%{name}_d{i} = arith.constant "
                         f"{consts.pop(0) if consts else 3} : index")
    dyn = [f"%{name}_d{i}" for i, d in enumerate(dims) if d == "?"]
    lines.append(f"%{name} = tensor.empty({', '.join(dyn)}) : {t}")
    return lines


KERNEL_NAMES = []


def harvest_kernel_names():
    names = set()
    for path in glob.glob(os.path.join(SRC_ROOT, "test", "Conversion", "*.mlir")):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r"@(attn_[A-Za-z0-9_]+)", f.read()))
    names.discard("attn_dynamic_shared_memory")
    KERNEL_NAMES[:] = sorted(names) or ["attn_f16_d64_dv64_bhsd_causal_s3e000000_mma"]


def extras(g, ops):
    """Unrelated top-level ops and host functions named like kernels."""
    rng = g.rng
    out = []
    if g.maybe(0.25) and "extras" not in AVOID:
        out.append(rng.choice([
            "%a = arith.constant 1 : i32",
            "%cst_top = arith.constant dense<0.0> : tensor<4xf32>",
            "%e_top = tensor.empty() : tensor<2x2xf16>",
            "func.func private @external(tensor<4xf32>) -> tensor<4xf32>",
            "memref.global \"private\" @g : memref<4xf32>",
            "gpu.module @attn_stale_module {\n}",
        ]))
    if g.maybe(0.2) and "kernel-names" not in AVOID:
        names = []
        for op in ops:
            if getattr(op, "kernel", None):
                names += attention_kernel_names(op.kernel)
        names = names or KERNEL_NAMES
        name = rng.choice(names + rng.sample(KERNEL_NAMES, min(2, len(KERNEL_NAMES))))
        out.append(rng.choice([
            f"func.func @{name}() {{\n  return\n}}",
            f"func.func private @{name}(memref<?xf16>, index)",
            f"func.func @{name}(%x: i32) -> i32 {{\n  return %x : i32\n}}",
            f"gpu.module @{name} {{\n}}",
        ]))
    return out


def generate(rng):
    """A module text with one to three attn ops."""
    g = Gen(rng)
    n_ops = rng.choice([1, 1, 1, 1, 2, 3])
    ops = [rng.choice(GENERATORS)(g) for _ in range(n_ops)]
    if n_ops > 1 and g.maybe(0.3):  # the same variant twice (kernel reuse)
        ops[1] = ops[0]
    top_lines, funcs = [], []
    consts = [rng.choice([0, 1, 3, 64, 2**31 - 1, 2**62]) if g.level else 3 for _ in range(64)]
    placement = rng.choice(["func", "func", "func", "top", "top", "mixed"])
    if "top-level" in AVOID:
        placement = "func"
    same_func = g.maybe(0.5)
    func_args, func_body, func_rets = [], [], []
    for i, op in enumerate(ops):
        names = [f"%{role[0]}{role.split('_')[-1][:2]}{i}_{j}" for j, (role, _) in enumerate(op.operands)]
        results = [f"%r{i}_{j}" for j in range(len(op.results))]
        at_top = placement == "top" or (placement == "mixed" and i % 2 == 0)
        if at_top:
            defs = []
            ok = True
            for n, (_, t) in zip(names, op.operands):
                lines = empty_lines(n[1:], t, consts)
                if lines is None:
                    ok = False
                    break
                defs += lines
            if ok:
                top_lines.extend(defs)
                top_lines.append(render_op(g, op, names, results if g.maybe(0.9) else []))
                continue
        # In a function: operands are its arguments.
        args = [f"{n}: {t}" for n, (_, t) in zip(names, op.operands)]
        line = render_op(g, op, names, results)
        ret = g.maybe(0.6)
        if g.maybe(0.08):  # inside a region of another op
            line = (f"%cond{i} = arith.constant true\n  scf.if %cond{i} {{\n"
                    f"    {line}\n  }}")
            ret = False
        if same_func:
            func_args += args
            func_body.append(line)
            if ret:
                func_rets += list(zip(results, op.results))
        else:
            rets = list(zip(results, op.results)) if ret else []
            funcs.append(func_text(f"f{i}", args, [line], rets, g))
    if func_body:
        funcs.append(func_text("f", func_args, func_body, func_rets, g))
    parts = []
    ex = extras(g, ops)
    if ex and g.maybe(0.5):
        parts += ex
        ex = []
    if funcs and g.maybe(0.08):  # the functions in a nested module
        funcs = ["module @inner {\n" + "\n".join(funcs) + "\n}"]
    parts += top_lines + funcs + ex
    if g.maybe(0.15):  # the module body is a graph region: any order
        rng.shuffle(parts)
    text = "\n".join(parts) + "\n"
    if g.maybe(0.08):  # an explicit module, sometimes with attributes
        attrs = rng.choice(["", " attributes {gpu.container_module}",
                            " attributes {attn.kernels = {}}", " @named"])
        text = f"module{attrs} {{\n{text}}}\n"
    return text


def func_text(name, args, body, rets, g):
    sig = ", ".join(args)
    rtypes = [t for _, t in rets]
    rt = ""
    if rtypes:
        rt = " -> " + (rtypes[0] if len(rtypes) == 1 else f"({', '.join(rtypes)})")
    ret = "  return" + (f" {', '.join(v for v, _ in rets)} : {', '.join(rtypes)}" if rets else "")
    vis = "private " if g.maybe(0.05) else ""
    return f"func.func {vis}@{name}({sig}){rt} {{\n" + "".join(
        f"  {l}\n" for l in body) + ret + "\n}"


# ---------------------------------------------------------------------------
# Mutating the repository's test files a little.
# ---------------------------------------------------------------------------

CORPUS_GLOBS = ["test/IR/*roundtrip.mlir", "test/Conversion/attn-lower-to-gpu*.mlir",
                "test/Conversion/attn-gpu-module-to-ptx.mlir",
                "test/Transforms/*.mlir", "test/IR/*invalid.mlir"]

ATTR_SWAPS = [
    (r"mask = <causal>", ["mask = <none>", "mask = <window, left = 0, right = 0>",
                          "mask = <window, left = 9223372036854775807, right = 0>"]),
    (r"mask = <window, left = \d+, right = \d+>", ["mask = <causal>",
                                                   "mask = <window, left = 2147483648, right = 4611686018427387904>",
                                                   "mask = <window, left = 0, right = 2147483647>"]),
    (r"layout = bshd", ["layout = bhsd", ""]),
    (r"cache_layout = hnd", ["cache_layout = nhd", ""]),
    (r"gate_kind = channel", ["gate_kind = head", ""]),
    (r"block_size = \d+", ["block_size = 0", "block_size = 1", "block_size = 2147483648",
                           "block_size = 4611686018427387904", "block_size = 3"]),
    (r"top_k = \d+", ["top_k = 0", "top_k = 1", "top_k = 2147483647", "top_k = 4611686018427387904"]),
    (r"chunk_size = \d+", ["chunk_size = 0", "chunk_size = 16", "chunk_size = 4611686018427387904"]),
    (r"(cmp_block|cmp_stride|sel_block|num_selected|window) = \d+",
     ["\\1 = 0", "\\1 = 1", "\\1 = 2147483647", "\\1 = 4611686018427387904", "\\1 = 9223372036854775807"]),
    (r"scale = [-0-9.e+]+", ["scale = 0.0", "scale = 0x7F800000", "scale = 1.0e-45", "scale = -2.0"]),
    (r"softcap = [-0-9.e+]+", ["softcap = 0.0", "softcap = 0x7FC00000"]),
    (r"qk_l2norm", [""]),
]


def corpus_chunks(paths):
    """The inputs' -split-input-file chunks, comments dropped (mutate.chunks,
    with gpu.module-only chunks counted too)."""
    return [c.strip() + "\n" for c in mutate_py.chunks(
        paths, keep=lambda c: re.search(r"func\.func|gpu\.module|attn\.", c))]


def retype(rng, text):
    """Changes one dim of one tensor type everywhere it occurs: types stay
    consistent between the function signature and its ops."""
    types = sorted(set(re.findall(r"tensor<(?:[0-9?]+x)+[a-z0-9A-Z]+>", text)))
    if not types:
        return text
    t = rng.choice(types)
    dims = tensor_dims(t)
    elt = t[len("tensor<"):-1].split("x")[-1]
    i = rng.randrange(len(dims))
    dims[i] = str(pick_size(rng, EXTREME + PRIMES + ["?", "?", 0, 1]))
    return text.replace(t, ttype(dims, elt))


def resize_all(rng, text):
    """Changes one size everywhere: every tensor dim equal to it (at one
    position, or at all) becomes another size, so that shapes which agreed
    still agree (a zero batch, a 2^62 sequence...)."""
    types = re.findall(r"tensor<(?:[0-9?]+x)+[a-z0-9A-Z]+>", text)
    if not types:
        return text
    dims = tensor_dims(rng.choice(types))
    pos = rng.randrange(len(dims))
    old = dims[pos]
    new = str(pick_size(rng, [0, 0, 1, "?", 3, 2**31 - 1, 2**31, 2**32, 2**62, I64_MAX] + PRIMES[:4]))
    anywhere = rng.random() < 0.5

    def sub(m):
        t = m.group(0)
        ds = tensor_dims(t)
        elt = t[len("tensor<"):-1].split("x")[-1]
        ds = [new if d == old and (anywhere or i == pos) else d for i, d in enumerate(ds)]
        return ttype(ds, elt)
    return re.sub(r"tensor<(?:[0-9?]+x)+[a-z0-9A-Z]+>", sub, text)


def reelt(rng, text):
    elts = sorted(set(re.findall(r"x(f16|bf16|f32)>", text)))
    if not elts:
        return text
    a = rng.choice(elts)
    b = rng.choice([e for e in FLOATS + ["f64", "i8"] if e != a])
    return re.sub(rf"x{a}>", f"x{b}>", text)


def flip_attr(rng, text):
    options = [(p, r) for p, r in ATTR_SWAPS if re.search(p, text)]
    if not options:
        return text
    p, repl = rng.choice(options)
    ms = list(re.finditer(p, text))
    m = rng.choice(ms)
    return text[:m.start()] + m.expand(rng.choice(repl)) + text[m.end():]


def hoist(rng, text):
    """Moves a function's body to module top level: its arguments become
    tensor.empty values, its return goes away."""
    m = re.search(r"func\.func (?:private )?@\w+\((.*?)\)[^{\n]*\{\n(.*?)\n\s*(?:func\.)?return[^\n]*\n\}", text, re.S)
    if not m:
        return text
    args = [a.strip() for a in re.split(r",\s*(?=%)", m.group(1)) if a.strip()]
    lines = []
    for a in args:
        am = re.fullmatch(r"%(\w+)\s*:\s*(.+)", a)
        if not am:
            return text
        name, t = am.group(1), am.group(2)
        defs = empty_lines(name, t, [rng.choice([0, 1, 5, 4096])])
        if defs is None:
            return text
        lines += defs
    body = m.group(2)
    if re.search(r"\^bb|\bscf\.|\blinalg\.generic|\bblock_arg|yield", body):
        return text
    new = "\n".join(lines) + "\n" + "\n".join(l.strip() for l in body.splitlines()) + "\n"
    return text[:m.start()] + new + text[m.end():]


def mutate_chunk(rng, text):
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.2:
            text = retype(rng, text)
        elif r < 0.4:
            text = resize_all(rng, text)
        elif r < 0.55:
            text = reelt(rng, text)
        elif r < 0.85:
            text = flip_attr(rng, text)
        else:
            text = hoist(rng, text) if "top-level" not in AVOID else text
    if rng.random() < 0.1:
        text = mutate_py.mutate(rng, text)
    if rng.random() < 0.15 and "extras" not in AVOID:
        text += "\n%a = arith.constant 1 : i32\n"
    if rng.random() < 0.1 and "kernel-names" not in AVOID:
        text += f"\nfunc.func @{rng.choice(KERNEL_NAMES)}() {{\n  return\n}}\n"
    return text


# ---------------------------------------------------------------------------
# Commands and classification.
# ---------------------------------------------------------------------------

GOOD_CHIPS = ["sm_80", "sm_90", "sm_90a"]
BAD_CHIPS = ["sm_75", "sm_100a", "foo", ""]
PTX_FLAGS = ("--attn-to-ptx", "--attn-gpu-module-to-ptx")


def commands(rng):
    """The attn-opt argument lists for one input: every pass, both
    pipelines; option values picked at random. Each is (args, bad_option)
    where bad_option names an option value attn does not support."""
    tile_b = lambda: rng.choice([16, 32, 64, 128, 1, 3, 1000])  # noqa: E731
    cmds = [
        (["--attn-fuse" if rng.random() < 0.7 else "--attn-fuse=report-misses"], None),
        (["--attn-tile"] if rng.random() < 0.6 else
         [f"--attn-tile=block-q={tile_b()} block-kv={tile_b()}"], None),
        (["--attn-decompose-paged"], None),
        (["--attn-decompose-sparse"], None),
        (["--attn-decompose-gated-delta"], None),
        (["--attn-decompose-aggregates"], None),
        (["--attn-to-cpu"] if rng.random() < 0.7 else
         [f"--attn-to-cpu=block-q={tile_b()} block-kv={tile_b()}"], None),
    ]
    lower = []
    chip = rng.choice(GOOD_CHIPS)
    lower.append(f"chip={chip}")
    if rng.random() < 0.4:
        lower.append("kernel=" + rng.choice(["baseline", "mma", "wgmma", "auto"]))
    if rng.random() < 0.4:
        lower.append("drop-host")
    if rng.random() < 0.2:
        lower.append(f"block-q={rng.choice([64, 128])} block-kv={rng.choice([16, 32, 64, 128])}")
    cmds.append((["--attn-lower-to-gpu=" + " ".join(lower)], None))
    # On its own: attn-lower-to-gpu's gpu.modules are not NVVM yet (that is
    # --attn-to-ptx's job); the inputs from test/Conversion hold NVVM ones.
    cmds.append((["--attn-gpu-module-to-ptx"], None))
    for chip in ["sm_80", "sm_90a"]:
        extra = ""
        if rng.random() < 0.3:
            extra = " kernel=" + rng.choice(["baseline", "mma", "auto"])
        if rng.random() < 0.15:
            extra += " fuse"
        if rng.random() < 0.15:
            extra += (f" block-q={rng.choice([64, 128])}"
                      f" block-kv={rng.choice([16, 32, 64, 128])}")
        if rng.random() < 0.1:
            extra += f" opt-level={rng.choice([0, 1, 2])}"
        cmds.append(([f"--attn-to-ptx=chip={chip}{extra}"], None))
    if rng.random() < 0.15 and "bad-chips" not in AVOID:
        bad = rng.choice(BAD_CHIPS)
        flag = rng.choice(["--attn-to-ptx", "--attn-lower-to-gpu"])
        cmds.append(([f"{flag}=chip={bad}"], ("chip", bad, r"chip")))
    if rng.random() < 0.1:  # other unsupported option values
        flag, opt, value, words = rng.choice([
            ("--attn-to-ptx", "block-q", 3, r"block"),
            ("--attn-to-ptx", "block-kv", -1, r"block"),
            ("--attn-lower-to-gpu", "block-q", 0, r"block"),
            ("--attn-lower-to-gpu", "block-kv", 7, r"block"),
            ("--attn-to-ptx", "opt-level", 9, r"opt-level|optimization level"),
            ("--attn-to-ptx", "kernel", "foo", r"kernel"),
            ("--attn-lower-to-gpu", "kernel", "", r"kernel"),
            ("--attn-tile", "block-q", 0, r"block"),
            ("--attn-to-cpu", "block-kv", -3, r"block"),
        ])
        cmds.append(([f"{flag}={opt}={value}"], (opt, str(value), words)))
    return cmds


CRASH = re.compile(r"Stack dump|LLVM ERROR|PLEASE submit a bug report|Assertion .* failed"
                   r"|AddressSanitizer|double free|malloc\(\)|free\(\)|corrupted"
                   r"|terminate called|UNREACHABLE executed|Segmentation fault")
ERROR_LINE = re.compile(r"(?:^|\s)error:", re.M)
LOCATED = re.compile(r"^(?:(.+?):(\d+):(\d+)|loc\((.+)\)): error:")


def classify(rc, err, timed_out):
    """None if fine, else a short reason."""
    if timed_out:
        return "timeout"
    crash = CRASH.search(err)
    if rc < 0:
        return f"signal {signal.Signals(-rc).name}" + (f" ({crash.group(0)})" if crash else "")
    if crash:
        return f"exit {rc} with '{crash.group(0)}'"
    if rc == 0:
        return None
    if rc != 1:
        return f"exit {rc}"
    lines = [l for l in err.splitlines() if ERROR_LINE.search(l)]
    if not lines:
        return "exit 1 without an error message"
    for l in lines:
        m = LOCATED.match(l)
        if not m:
            return "error without a location"
        if m.group(2) is not None and int(m.group(2)) == 0:
            return "error located at 0:0"
        if m.group(4) is not None and "unknown" in m.group(4):
            return "error located at loc(unknown)"
    return None


FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ (.+?)(?: \((/[^()]*)\+0x[0-9a-f]+\)| ([\w.]+):\d+:\d+)?$")


def attn_frames(err):
    """The stack frames of attn's own code (or, failing that, the first
    symbolized frames past the signal handler), function names only."""
    frames, own = [], []
    for l in err.splitlines():
        m = FRAME.match(l)
        if not m or m.group(1).startswith("(/"):
            continue
        name = re.sub(r"\(anonymous namespace\)::", "", m.group(1))
        name = re.sub(r"\(.*", "", name)
        if name.startswith(("llvm::sys::", "__", "raise", "abort")) or name in ("main", "_start"):
            continue
        frames.append(name)
        # attn's code: its source file is named, or it is in attn's binary.
        if m.group(3) or (m.group(2) and "/usr/lib" not in m.group(2)
                          and not m.group(2).startswith("/lib")) or "attn::" in name:
            own.append(name)
    return own or frames[:3]


def first_lines(err, n=12):
    out = [l for l in err.splitlines() if l.strip()]
    if "Stack dump:" in err:
        head = [l for l in out if not FRAME.match(l)][:6]
        return "\n".join(head + ["  frames: " + " <- ".join(attn_frames(err)[:6])])
    return "\n".join(out[:n])


def signature(reason, args, err):
    """What makes two failures the same class: the reason, the pass and the
    first error line without its location and numbers."""
    key = ""
    for l in err.splitlines():
        if FRAME.match(l):
            continue
        if re.search(r"malloc|free\(\)|corrupted|double free", l):
            key = "heap corruption (glibc abort)"
            break
        if re.search(r"LLVM ERROR|Assertion", l):
            key = l
            break
    if not key and "Stack dump:" in err:
        key = "in " + (" <- ".join(attn_frames(err)[:2]) or "(no frames)")
    if not key:
        for l in err.splitlines():
            if ERROR_LINE.search(l):
                key = re.sub(r"^.*?error: ", "", l)
                break
    key = re.sub(r"\d+", "N", key.strip())[:90] or "no message"
    flag = re.sub(r"=.*", "", args[0]) if args else "(parse)"
    if flag == "-o":
        flag = "(parse)"
    return f"{re.sub(r' [(].*', '', reason)} | {flag} | {key}"


TIMES = []  # (seconds, argv) of every run


class Runner:
    def __init__(self, opts):
        self.opts = opts

    def run(self, argv, timeout=None):
        start = time.time()
        try:
            p = subprocess.run(argv, capture_output=True, timeout=timeout or self.opts.timeout)
            res = (p.returncode, p.stdout.decode("utf-8", "replace"),
                   p.stderr.decode("utf-8", "replace"), False)
        except subprocess.TimeoutExpired as e:
            err = (e.stderr or b"").decode("utf-8", "replace")
            res = (-1, "", err, True)
        TIMES.append((time.time() - start, argv))
        return res


def normalize(err):
    return re.sub(r"0x[0-9a-f]{6,}", "0xADDR", err)


def check_input(opts, n, text, cmds, do_compile, compile_chip):
    """Runs every command on one input; returns (failures, outcomes)."""
    runner = Runner(opts)
    path = os.path.join(opts.out, f"seed{opts.seed}-{n}.mlir")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    failures = []
    opt = opts.attn_opt

    def fail(reason, argv, err, extra=""):
        failures.append(dict(reason=reason, argv=argv, err=err, extra=extra,
                             sig=signature(reason, argv[2:] if argv[0] == opt else ["attn-compile"], err)))

    # Parse and verify; the printed form must parse again.
    generic = n % 2 == 0
    printed = path[:-5] + (".generic" if generic else ".printed") + ".mlir"
    argv = [opt, path, "-o", printed] + (["--mlir-print-op-generic"] if generic else [])
    rc, _, err, to = runner.run(argv)
    reason = classify(rc, err, to)
    if reason:
        fail(reason, argv, err)
    if rc != 0:
        return failures, "rejected"
    argv2 = [opt, printed, "-o", os.devnull]
    rc2, _, err2, to2 = runner.run(argv2)
    if rc2 != 0 or to2:
        fail("printed form does not parse again" if not to2 else "timeout", argv2, err2,
             f"(printed by: {' '.join(argv)})")
    else:
        os.unlink(printed)

    for args, bad in cmds:
        if opts.no_ptx and any(a.startswith(PTX_FLAGS) for a in args):
            continue
        argv = [opt, path] + args + (["-o", os.devnull] if not bad else [])
        rc, out, err, to = runner.run(argv)
        if bad:
            # An unsupported option value has no place in the input, so its
            # error may be unlocated (or at 0:0, the module): it must only
            # say what is wrong (name the option), without crashing. Exit 0
            # is fine when nothing used the value (no kernel was made), but
            # not when the output targets the bad chip.
            name, value, words = bad
            if to or rc < 0 or CRASH.search(err) or rc not in (0, 1):
                fail(classify(rc, err, to) or f"exit {rc}", argv, err, f"(bad {name} '{value}')")
            elif rc == 1 and classify(rc, err, to) and not re.search(words, err):
                fail(f"bad {name} not diagnosed as such", argv, err)
            elif rc == 0 and f'chip = "{value}"' in out:
                fail(f"bad {name} '{value}' silently accepted", argv, err,
                     f'(exit 0; its output targets chip = "{value}")')
            continue
        reason = classify(rc, err, to)
        if reason:
            fail(reason, argv, err)
            continue
        if rc == 1:
            # The input verified; did the pass fail, or the verifier after it?
            # Without verification the run must fail the same way.
            argv_nv = argv + ["--verify-each=false"]
            rc3, _, err3, to3 = runner.run(argv_nv)
            if rc3 == 0:
                fail("verifier failure after a pass", argv, err,
                     "(with --verify-each=false the run succeeds)")
            elif normalize(err3) != normalize(err):
                fail("verifier failure after a pass", argv, err,
                     "(with --verify-each=false it fails differently: "
                     + first_lines(err3, 3) + ")")
    if do_compile and not opts.no_ptx and opts.attn_compile:
        outdir = path[:-5] + ".bundles"
        argv = [opts.attn_compile, path, "-o", outdir, f"--chip={compile_chip}"]
        rc, _, err, to = runner.run(argv, timeout=opts.timeout * 2)
        shutil.rmtree(outdir, ignore_errors=True)
        reason = classify(rc, err, to)
        # attn-compile's own messages about the whole input (no attention in
        # it, an unsupported chip) are about the command, not a place in it.
        if reason in ("error without a location", "exit 1 without an error message") \
                and re.match(r"attn-compile: (no attention found|unsupported chip)", err):
            reason = None
        if reason:
            fail(reason, argv, err)
    return failures, "accepted"


def cuda_toolkit():
    for v in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        root = os.environ.get(v)
        if root and os.path.exists(os.path.join(root, "nvvm", "libdevice", "libdevice.10.bc")):
            return root
    if os.path.exists("/usr/local/cuda/nvvm/libdevice/libdevice.10.bc"):
        return "/usr/local/cuda"
    return None


def make_input(opts, corpus, n):
    """Input n of the campaign and its commands, from (seed, n) alone."""
    rng = random.Random(f"fuzz_ops:{opts.seed}:{n}")
    if corpus and rng.random() < opts.mutate_weight:
        text = mutate_chunk(rng, rng.choice(corpus))
    else:
        text = generate(rng)
    cmds = commands(rng)
    do_compile = rng.random() < opts.compile_rate
    return text, cmds, do_compile, rng.choice(GOOD_CHIPS)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--attn-opt", default="attn-opt")
    ap.add_argument("--attn-compile", default=None,
                    help="also run attn-compile on some inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--only", type=int, action="append",
                    help="run only input N of the seed (repeatable)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds per attn-opt run; longer is a hang")
    ap.add_argument("--out", default=None,
                    help="directory for the inputs (failing ones are kept)")
    ap.add_argument("--mutate-weight", type=float, default=0.25,
                    help="share of inputs that are mutated test-file chunks")
    ap.add_argument("--corpus", nargs="*", default=None,
                    help="test files to mutate (default: the repository's)")
    ap.add_argument("--compile-rate", type=float, default=0.1)
    ap.add_argument("--no-ptx", action="store_true",
                    help="skip the runs that emit PTX (no CUDA toolkit)")
    ap.add_argument("--max-shown", type=int, default=3,
                    help="failures shown in full per class")
    ap.add_argument("--avoid", default="",
                    help="comma-separated features to leave out: "
                    + "; ".join(f"{k} ({v})" for k, v in FEATURES.items()))
    ap.add_argument("--inputs", nargs="+", default=None,
                    help="check these files (every command) instead of "
                         "generated inputs")
    ap.add_argument("--print-input", action="store_true",
                    help="print input --only N and exit")
    opts = ap.parse_args()

    harvest_kernel_names()
    AVOID.update(a for a in opts.avoid.split(",") if a)
    unknown = AVOID - set(FEATURES)
    if unknown:
        ap.error(f"unknown --avoid features: {', '.join(sorted(unknown))}")
    paths = opts.corpus
    if paths is None:
        paths = sorted(p for g in CORPUS_GLOBS for p in glob.glob(os.path.join(SRC_ROOT, g)))
    corpus = corpus_chunks(paths)
    if not opts.no_ptx and not cuda_toolkit():
        print("note: no CUDA toolkit with libdevice: skipping the PTX-emitting runs")
        opts.no_ptx = True
    for tool in ("attn_opt", "attn_compile"):
        val = getattr(opts, tool)
        if val and not os.path.sep in val:
            found = shutil.which(val)
            if found:
                setattr(opts, tool, found)
    indices = opts.only if opts.only else list(range(opts.count))
    if opts.print_input:
        for n in indices:
            sys.stdout.write(make_input(opts, corpus, n)[0])
        return 0
    keep_out = opts.out is not None
    opts.out = os.path.abspath(opts.out or tempfile.mkdtemp(prefix="fuzz_ops."))
    os.makedirs(opts.out, exist_ok=True)

    start = time.time()
    jobs = [(n,) + make_input(opts, corpus, n) for n in indices]
    if opts.inputs:
        jobs = []
        for n, p in enumerate(opts.inputs):
            with open(p, encoding="utf-8", errors="surrogateescape") as f:
                jobs.append((n, f.read()) + make_input(opts, corpus, n)[1:])
        indices = list(range(len(jobs)))
    total_failures = 0
    classes = {}
    outcomes = {"accepted": 0, "rejected": 0}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
        futures = [ex.submit(check_input, opts, n, text, cmds, dc, cc)
                   for n, text, cmds, dc, cc in jobs]
        for (n, text, _, _, _), fut in zip(jobs, futures):
            failures, outcome = fut.result()
            outcomes[outcome] += 1
            path = os.path.join(opts.out, f"seed{opts.seed}-{n}.mlir")
            if not failures:
                os.unlink(path)
                continue
            total_failures += 1
            for f in failures:
                cls = classes.setdefault(f["sig"], [])
                cls.append((n, f))
                cmd = " ".join(a if a and " " not in a else repr(a) for a in f["argv"])
                if len(cls) > opts.max_shown:
                    print(f"FAIL input {n}: {f['reason']} [class #{list(classes).index(f['sig']) + 1}]: {cmd}")
                    continue
                avoid = f" --avoid {opts.avoid}" if opts.avoid else ""
                print(f"FAIL input {n} (--seed {opts.seed} --only {n}{avoid}): {f['reason']} {f['extra']}\n"
                      f"  command: {cmd}\n"
                      f"--- input {path} ---\n{text.rstrip()}\n"
                      f"--- stderr (first lines) ---\n{first_lines(f['err'])}\n---")
    print(f"\n{len(classes)} failure classes:")
    for i, (sig, cls) in enumerate(classes.items()):
        n, f = cls[0]
        print(f"  #{i + 1} x{len(cls)}: {sig}\n      e.g. input {n}: "
              + " ".join(a if a and " " not in a else repr(a) for a in f["argv"]))
    TIMES.sort(key=lambda t: -t[0])
    print(f"{len(TIMES)} runs; slowest: " + "; ".join(
        f"{t:.1f} s {' '.join(a[1:])}" for t, a in TIMES[:3]))
    print(f"{len(indices)} inputs, {total_failures} failures ({outcomes['accepted']} "
          f"verified, {outcomes['rejected']} rejected; seed {opts.seed}; "
          f"{time.time() - start:.0f} s; failing inputs in {opts.out})")
    if not keep_out and not total_failures:
        shutil.rmtree(opts.out, ignore_errors=True)
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
