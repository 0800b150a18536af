# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of attn.sparse_attention and attn.lightning_indexer
(attn-decompose-sparse, then the CPU pipeline) against float64 references
that gather the selected keys row by row. Index lists hold -1 entries, blocks
and tokens past the sequence, keys outside the mask and rows where nothing is
valid (which must give zeros). f32 within 1e-5 of the output's scale.
Skips when attn-opt or mlir-runner is missing.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import (lightning_indexer_reference, nsa_reference,  # noqa: E402
                            sparse_attention_reference)

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")


def case(id, b=2, sq=5, sk=19, hq=4, hkv=2, d=16, dv=None, n=4, block=1, mask="causal",
         left=0, right=0, scale=None, softcap=None, sinks=False, lse=False, itype="i32",
         dynamic=False):
    return pytest.param(dict(b=b, sq=sq, sk=sk, hq=hq, hkv=hkv, d=d, dv=dv or d, n=n,
                             block=block, mask=mask, left=left, right=right, scale=scale,
                             softcap=softcap, sinks=sinks, lse=lse, itype=itype,
                             dynamic=dynamic), id=id)


SPARSE_CASES = [
    case("dsa_tokens_causal_lse", hq=8, hkv=1, d=24, dv=16, n=6, lse=True, scale=0.2),
    case("nsa_blocks4_group4", block=4, n=3, sk=23, itype="i64"),
    case("blocks3_window_softcap_sinks", block=3, n=4, sk=17, mask="window", left=6,
         softcap=5.0, sinks=True, lse=True),
    case("tokens_noncausal_sq_gt_1", sq=7, sk=11, n=5, mask="none"),
    # Batch and sequence lengths dynamic in the IR (tensor<?x?x..>).
    case("dynamic_blocks2_causal", block=2, n=3, sk=13, dynamic=True),
]


def sparse_inputs(c, rng):
    q = rng.standard_normal((c["b"], c["sq"], c["hq"], c["d"])).astype(np.float32)
    k = rng.standard_normal((c["b"], c["sk"], c["hkv"], c["d"])).astype(np.float32)
    v = rng.standard_normal((c["b"], c["sk"], c["hkv"], c["dv"])).astype(np.float32)
    blocks = -(-c["sk"] // c["block"])
    idx = np.empty((c["b"], c["sq"], c["hkv"], c["n"]), dtype=np.int64)
    for x in np.ndindex(idx.shape[:3]):
        # Distinct picks from the valid blocks, the blocks past Sk and huge
        # values; then some -1 entries.
        pool = list(range(blocks)) + [blocks, blocks + 5, 2**30]
        idx[x] = rng.choice(pool, size=c["n"], replace=False)
        idx[x][rng.random(c["n"]) < 0.25] = -1
    # A row whose entries are all invalid (past the sequence or -1).
    idx[0, 0, 0] = [-1] + [blocks + 1 + j for j in range(c["n"] - 1)]
    sinks = rng.standard_normal(c["hq"]).astype(np.float32) if c["sinks"] else None
    return q, k, v, idx, sinks


@pytest.mark.parametrize("c", SPARSE_CASES)
def test_sparse_attention_cpu(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    q, k, v, idx, sinks = sparse_inputs(c, rng)
    it = c["itype"]
    dyn = (0, 1) if c["dynamic"] else ()

    def ty(shape, dtype):
        return cpu.tensor_type(["?" if i in dyn else x for i, x in enumerate(shape)], dtype)
    types = [ty(q.shape, "f32"), ty(k.shape, "f32"), ty(v.shape, "f32"), ty(idx.shape, it)]
    names = ["%q", "%k", "%v", "%i"]
    args = [(q, "f32"), (k, "f32"), (v, "f32"), (idx, it)]
    extra = ""
    if sinks is not None:
        types.append(cpu.tensor_type(sinks.shape, "f32"))
        names.append("%s")
        args.append((sinks, "f32"))
        extra += " sinks(%s)"
    if c["block"] != 1:
        extra += f" block_size = {c['block']}"
    if c["mask"] == "causal":
        extra += " mask = <causal>"
    elif c["mask"] == "window":
        extra += f" mask = <window, left = {c['left']}, right = {c['right']}>"
    if c["scale"] is not None:
        extra += f" scale = {c['scale']}"
    if c["softcap"] is not None:
        extra += f" softcap = {c['softcap']}"
    results = [((c["b"], c["sq"], c["hq"], c["dv"]), "f32")]
    if c["lse"]:
        results.append(((c["b"], c["hq"], c["sq"]), "f32"))
    rtypes = [ty(s, t) for s, t in results]
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    sig = ", ".join(f"{n}: {t}" for n, t in zip(names, types))
    module = (f"func.func @sparse({sig}) -> ({', '.join(rtypes)}) {{\n"
              f"  {rn} = attn.sparse_attention %q, %k, %v, %i{extra} : "
              f"({', '.join(types)}) -> ({', '.join(rtypes)})\n"
              f"  return {rn} : {', '.join(rtypes)}\n}}\n")
    got = cpu.run(module, "sparse", args, results, dynamic=dyn)
    ref, ref_lse = sparse_attention_reference(
        q, k, v, idx, block_size=c["block"], mask=c["mask"], left=c["left"], right=c["right"],
        scale=c["scale"], softcap=c["softcap"], sinks=sinks)
    o = got[0]
    assert not np.isnan(o).any()
    err = np.abs(o - ref).max()
    assert err <= 1e-5 * max(1.0, np.abs(ref).max()), f"max error {err:.3g}"
    if sinks is None:
        group = c["hq"] // c["hkv"]
        assert (o[0, 0, :group] == 0).all(), "a row with no valid index must give zeros"
    if c["lse"]:
        lse = got[1]
        assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
        fin = np.isfinite(ref_lse)
        assert np.abs(lse[fin] - ref_lse[fin]).max() <= 1e-5 * max(1.0, np.abs(ref_lse[fin]).max())


def indexer_module(q, k, w, top_k, mask, scores):
    types = [cpu.tensor_type(x.shape, "f32") for x in (q, k, w)]
    rtypes = [cpu.tensor_type((q.shape[0], q.shape[1], top_k), "i32")]
    if scores:
        rtypes.append(cpu.tensor_type((q.shape[0], q.shape[1], k.shape[1]), "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(rtypes)))
    m = " mask = <causal>" if mask == "causal" else ""
    return (f"func.func @indexer(%q: {types[0]}, %k: {types[1]}, %w: {types[2]}) -> "
            f"({', '.join(rtypes)}) {{\n"
            f"  {rn} = attn.lightning_indexer %q, %k, %w top_k = {top_k}{m} : "
            f"({', '.join(types)}) -> ({', '.join(rtypes)})\n"
            f"  return {rn} : {', '.join(rtypes)}\n}}\n")


@pytest.mark.parametrize("mask", ["causal", "none"])
def test_lightning_indexer_cpu_exact(mask):
    """Small integer inputs: every f32 score is exact, so the selection
    (ties to the lower index, -1 past the admitted keys) must equal the
    reference's exactly."""
    rng = np.random.default_rng(7)
    b, sq, sk, hi, di, top_k = 2, 6, 10, 3, 8, 7
    q = rng.integers(-2, 3, (b, sq, hi, di)).astype(np.float32)
    k = rng.integers(-2, 3, (b, sk, di)).astype(np.float32)
    w = rng.integers(-1, 3, (b, sq, hi)).astype(np.float32)
    got = cpu.run(indexer_module(q, k, w, top_k, mask, True), "indexer",
                  [(q, "f32"), (k, "f32"), (w, "f32")],
                  [((b, sq, top_k), "i32"), ((b, sq, sk), "f32")])
    ref_idx, ref_scores = lightning_indexer_reference(q, k, w, top_k, mask=mask)
    assert np.array_equal(got[0], ref_idx), f"{got[0]}\n{ref_idx}"
    assert np.array_equal(np.isneginf(got[1]), np.isneginf(ref_scores))
    fin = np.isfinite(ref_scores)
    assert np.array_equal(got[1][fin], ref_scores[fin])
    if mask == "causal":
        # Row 0 admits sk - sq + 1 = 5 keys: the rest of its 7 are -1.
        assert (got[0][:, 0, 5:] == -1).all()
    # Exact ties exist in these inputs (the test exercises the tie rule).
    assert any(len(set(r[np.isfinite(r)])) < np.isfinite(r).sum() for r in ref_scores.reshape(-1, sk))


def test_lightning_indexer_cpu_random():
    """Gaussian inputs: the selected keys are distinct, admitted, and their
    float64 scores are the top_k best up to f32 rounding."""
    rng = np.random.default_rng(11)
    b, sq, sk, hi, di, top_k = 1, 9, 40, 4, 16, 12
    q = rng.standard_normal((b, sq, hi, di)).astype(np.float32)
    k = rng.standard_normal((b, sk, di)).astype(np.float32)
    w = rng.standard_normal((b, sq, hi)).astype(np.float32)
    got = cpu.run(indexer_module(q, k, w, top_k, "causal", False), "indexer",
                  [(q, "f32"), (k, "f32"), (w, "f32")], [((b, sq, top_k), "i32")])[0]
    ref_idx, ref_scores = lightning_indexer_reference(q, k, w, top_k, mask="causal")
    for t in range(sq):
        admitted = t + sk - sq + 1
        sel = got[0, t]
        valid = sel[sel >= 0]
        assert len(valid) == min(top_k, admitted) and len(set(valid)) == len(valid)
        assert (valid < admitted).all()
        kth = np.sort(ref_scores[0, t, :admitted])[::-1][len(valid) - 1]
        assert (ref_scores[0, t, valid] >= kth - 1e-4 * np.abs(kth) - 1e-5).all()


NSA_CASES = [
    # The paper's shape of configuration: overlapping compression blocks
    # (l = 8, stride 4), selection blocks of 8, GQA groups of 2.
    pytest.param(dict(b=1, sq=40, sk=40, hq=4, hkv=2, d=16, dv=8, l=8, stride=4, lsel=8,
                      n=3, window=6, initial=1, local=2), id="prefill_l8_d4_sel8"),
    # Decode-like rows (Sq < Sk), compression = selection blocks, no forced
    # blocks, a group of 4, more blocks than the rows can see.
    pytest.param(dict(b=2, sq=3, sk=50, hq=4, hkv=1, d=8, dv=8, l=5, stride=5, lsel=5,
                      n=4, window=9, initial=0, local=0), id="decode_sq3_l5_noforced"),
]


def nsa_inputs(c, rng):
    tc = max(0, (c["sk"] - c["l"]) // c["stride"] + 1)
    q = rng.standard_normal((c["b"], c["sq"], c["hq"], c["d"])).astype(np.float32)
    k = rng.standard_normal((c["b"], c["sk"], c["hkv"], c["d"])).astype(np.float32)
    v = rng.standard_normal((c["b"], c["sk"], c["hkv"], c["dv"])).astype(np.float32)
    kc = rng.standard_normal((c["b"], tc, c["hkv"], c["d"])).astype(np.float32)
    vc = rng.standard_normal((c["b"], tc, c["hkv"], c["dv"])).astype(np.float32)
    gates = rng.random((c["b"], c["sq"], c["hq"], 3)).astype(np.float32)
    return q, k, v, kc, vc, gates


@pytest.mark.parametrize("c", NSA_CASES)
def test_nsa_cpu(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    args = nsa_inputs(c, rng)
    ref, sel, scores = nsa_reference(*args, cmp_block=c["l"], cmp_stride=c["stride"],
                                     sel_block=c["lsel"], num_selected=c["n"],
                                     window=c["window"], initial_blocks=c["initial"],
                                     local_blocks=c["local"])
    # The test needs a clear selection: no near-tie at the cut between the
    # last block taken and the first left (f32 vs float64 scores).
    for x in np.ndindex(sel.shape[:3]):
        taken = [j for j in sel[x] if j >= 0]
        pos = x[1] + c["sk"] - c["sq"]
        left = [j for j in range(min(pos // c["lsel"], scores.shape[3] - 1) + 1)
                if j not in taken]
        free = [j for j in taken if not (j < c["initial"] or j > pos // c["lsel"] - c["local"])]
        if left and free:
            gap = min(scores[x][j] for j in free) - max(scores[x][j] for j in left)
            assert abs(gap) > 1e-5, f"near-tie in the block selection at {x}: pick another seed"
    types = [cpu.tensor_type(a.shape, "f32") for a in args]
    rtype = cpu.tensor_type(ref.shape, "f32")
    names = ["%q", "%k", "%v", "%kc", "%vc", "%g"]
    sig = ", ".join(f"{n}: {t}" for n, t in zip(names, types))
    attrs = (f"cmp_block = {c['l']} cmp_stride = {c['stride']} sel_block = {c['lsel']} "
             f"num_selected = {c['n']} window = {c['window']} "
             f"initial_blocks = {c['initial']} local_blocks = {c['local']}")
    module = (f"func.func @nsa({sig}) -> {rtype} {{\n"
              f"  %o = attn.nsa {', '.join(names)} {attrs} : ({', '.join(types)}) -> {rtype}\n"
              f"  return %o : {rtype}\n}}\n")
    got = cpu.run(module, "nsa", [(a, "f32") for a in args], [(ref.shape, "f32")])[0]
    err = np.abs(got - ref).max()
    assert err <= 1e-5 * max(1.0, np.abs(ref).max()), f"max error {err:.3g}"
