# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of attn.paged_attention (attn-decompose-paged, then the CPU
pipeline) against the float64 reference, on poisoned caches: pages randomly
permuted, last pages partial, NaN in every unused slot and page, and the
block-table entries past each sequence's live pages a NaN page, -1 or the
index type's largest value in turn (none of it may reach an output or be
dereferenced). f32 within 1e-5 of the output's scale. Skips when attn-opt
or mlir-runner is missing.
"""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import paged_attention_reference  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")


TAILS = ("nan_page", "minus_one", "huge")


def case(id, lens=(5, 0, 33), page=16, sq=1, hq=4, hkv=2, d=32, dv=None,
         layout="nhd", mask="causal", left=0, right=0, softcap=None, scale=None,
         sinks=False, lse=False, itype="i32", tail="nan_page", passed_lens=None):
    """`tail`: what the table holds past each sequence's live pages (None:
    no entries past them, the rows full). `passed_lens`: the lengths given
    to the op when they differ from the ones the caches were filled for."""
    return pytest.param(dict(lens=list(lens), page=page, sq=sq, hq=hq, hkv=hkv, d=d,
                             dv=dv or d, layout=layout, mask=mask, left=left,
                             right=right, softcap=softcap, scale=scale, sinks=sinks,
                             lse=lse, itype=itype, tail=tail, passed_lens=passed_lens),
                        id=f"{id}_{tail}" if tail else id)


CASES = [
    case("decode_gqa_causal"),
    case("page1_mqa", page=1, hkv=1, lens=(3, 7), tail="minus_one"),
    case("odd_page61_hnd_window", page=61, layout="hnd", lens=(130, 61, 1),
         mask="window", left=40, right=0, tail="huge"),
    case("multitoken_sq3_sinks_lse", sq=3, lens=(2, 20, 0), sinks=True, lse=True, itype="i64",
         tail="huge"),
    case("mla_like_d_ne_dv_softcap", hkv=1, hq=8, d=48, dv=32, page=8, lens=(17, 9),
         softcap=20.0, scale=0.1352, mask="none", tail="minus_one"),
    # Lengths outside [0, max_pages * page_size] count as the nearer end: a
    # negative one as 0, one past the table as the table's keys.
    case("lengths_clamped", lens=(5, 0, 48), passed_lens=(-4, 0, 1000), tail=None, lse=True),
] + [
    # The poisoned matrix of issue 17 on the CPU: lengths 0, 1, P - 1, P,
    # P + 1 in one batch, 1 and 4 query tokens, both layouts, each table
    # tail, i32 and i64 tables.
    case(f"poison_p{page}_{layout}_sq{sq}", page=page, layout=layout, sq=sq,
         lens=(0, 1, max(page - 1, 0), page, page + 1), tail=tail, lse=sq > 1,
         itype="i64" if layout == "hnd" else "i32")
    for n, (page, layout, sq) in enumerate(
        (p, l, s) for p in (1, 2, 3, 16) for l in ("nhd", "hnd") for s in (1, 4))
    for tail in [TAILS[n % len(TAILS)]]
]


def build(c, rng):
    b, page = len(c["lens"]), c["page"]
    need = [-(-n // page) for n in c["lens"]]
    # One entry past the live pages in every row (none with tail=None).
    max_pages = max(1, max(need)) + (1 if c["tail"] else 0)
    num_pages = sum(need) + 2  # + a NaN page and one never referenced
    nan_page = num_pages - 1
    perm = rng.permutation(num_pages - 2)
    huge = np.iinfo(np.int32 if c["itype"] == "i32" else np.int64).max
    fill = {"nan_page": nan_page, "minus_one": -1, "huge": huge, None: nan_page}[c["tail"]]
    table = np.full((b, max_pages), fill, np.int64)
    kc = np.full((num_pages, page, c["hkv"], c["d"]), np.nan, np.float32)
    vc = np.full((num_pages, page, c["hkv"], c["dv"]), np.nan, np.float32)
    at = 0
    for i, n in enumerate(c["lens"]):
        table[i, :need[i]] = perm[at:at + need[i]]
        at += need[i]
        for j in range(n):
            kc[table[i, j // page], j % page] = rng.standard_normal((c["hkv"], c["d"]))
            vc[table[i, j // page], j % page] = rng.standard_normal((c["hkv"], c["dv"]))
    if c["layout"] == "hnd":
        kc, vc = kc.transpose(0, 2, 1, 3).copy(), vc.transpose(0, 2, 1, 3).copy()
    q = rng.standard_normal((b, c["sq"], c["hq"], c["d"])).astype(np.float32)
    sinks = rng.standard_normal(c["hq"]).astype(np.float32) if c["sinks"] else None
    lens = np.array(c["passed_lens"] or c["lens"])
    return q, kc, vc, table, lens, sinks


def module_text(c, shapes):
    it = c["itype"]
    names = ["%q", "%kc", "%vc", "%t", "%l"] + (["%s"] if c["sinks"] else [])
    types = [cpu.tensor_type(shapes[0], "f32"), cpu.tensor_type(shapes[1], "f32"),
             cpu.tensor_type(shapes[2], "f32"), cpu.tensor_type(shapes[3], it),
             cpu.tensor_type(shapes[4], it)]
    if c["sinks"]:
        types.append(cpu.tensor_type([c["hq"]], "f32"))
    extra = " sinks(%s)" if c["sinks"] else ""
    if c["layout"] == "hnd":
        extra += " cache_layout = hnd"
    if c["mask"] == "causal":
        extra += " mask = <causal>"
    elif c["mask"] == "window":
        extra += f" mask = <window, left = {c['left']}, right = {c['right']}>"
    if c["scale"] is not None:
        extra += f" scale = {c['scale']}"
    if c["softcap"] is not None:
        extra += f" softcap = {c['softcap']}"
    b, sq = shapes[0][0], shapes[0][1]
    results = [cpu.tensor_type([b, sq, c["hq"], c["dv"]], "f32")]
    if c["lse"]:
        results.append(cpu.tensor_type([b, c["hq"], sq], "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    sig = ", ".join(f"{n}: {t}" for n, t in zip(names, types))
    return (f"func.func @paged({sig}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.paged_attention %q, %kc, %vc, %t, %l{extra} : "
            f"({', '.join(types)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


@pytest.mark.parametrize("c", CASES)
def test_paged_attention_cpu(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    q, kc, vc, table, lens, sinks = build(c, rng)
    args = [(q, "f32"), (kc, "f32"), (vc, "f32"), (table, c["itype"]), (lens, c["itype"])]
    if sinks is not None:
        args.append((sinks, "f32"))
    b, sq = q.shape[0], q.shape[1]
    results = [((b, sq, c["hq"], c["dv"]), "f32")]
    if c["lse"]:
        results.append(((b, c["hq"], sq), "f32"))
    module = module_text(c, [x.shape for x, _ in args])
    got = cpu.run(module, "paged", args, results)
    ref, ref_lse = paged_attention_reference(
        q, kc, vc, table, lens, cache_layout=c["layout"], mask=c["mask"], left=c["left"],
        right=c["right"], scale=c["scale"], softcap=c["softcap"], sinks=sinks)
    o = got[0]
    assert not np.isnan(o).any(), "NaN reached the output"
    err = np.abs(o - ref).max()
    assert err <= 1e-5 * max(1.0, np.abs(ref).max()), f"max error {err:.3g}"
    if sinks is None:
        # Rows that admit no key (an empty sequence, query tokens before a
        # short sequence's first key) give exact zeros.
        empty = np.isneginf(ref_lse).transpose(0, 2, 1)              # [B, Sq, Hq]
        assert (o[empty] == 0).all(), "a row without keys must give zeros"
    if c["lse"]:
        lse = got[1]
        assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
        fin = np.isfinite(ref_lse)
        assert np.abs(lse[fin] - ref_lse[fin]).max() <= 1e-5 * max(1.0, np.abs(ref_lse[fin]).max())
