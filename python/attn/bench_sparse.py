# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Sparse attention on the GPU, three parts (--part, default all):

dsa: DeepSeek Sparse Attention decode: attn's token-sparse MLA
(gpu.sparse_attention, top-2048 keys per query token) against attn's dense
MLA decode (gpu.paged_attention over the whole latent cache) at contexts of
8k to 128k keys, DeepSeek-V3.2's shapes (128 query heads, one latent KV head
of 576, values its first 512 columns, bf16). Time per call (the index
compaction included), the speed-up, and
TFLOP/s counted on the keys each call reads. Times are GPU time (calls
captured in a CUDA graph and replayed); the host-inclusive time of a call
from Python (the index compaction is a few torch ops) is printed beside.

nsa: Native Sparse Attention prefill (gpu.nsa: the NSA paper's 27B layer
shape, 64 query heads in 4 GQA groups of 16, head dim 128, l = 32, d = 16,
l' = 64, 16 selected blocks, a 512-token window, bf16) against attn's dense
causal attention (gpu.attention, the same heads) at 8k to 128k tokens: time
per call, speed-up, keys read per query, TFLOP/s on the keys each call
reads, and where a call's GPU time goes (torch.profiler over a few calls:
the compressed branch, the block selection, the window branch, the
selected branch with the gated sum, and the torch ops between them).

indexer: DeepSeek-V3.2's lightning indexer (64 heads x 128, bf16, f32
weights): decode (B = 32 tokens, contexts 8k-128k, top-2048) and prefill
(8k tokens, causal): the scores kernel's TFLOP/s and keys scored per second,
and the top-k's share.

    python3 -m attn.bundles -o ../build/bundles/sparse --sparse-bench   (here)
    python3 -m attn.bench_sparse --bundles ../build/bundles/sparse     (GPU)
"""

import argparse
import csv
import os

B, HQ, D, DV, SCALE, TOPK = 32, 128, 576, 512, 0.1352, 2048
CONTEXTS = (8192, 32768, 131072)


NSA = dict(hq=64, hkv=4, d=128, dv=128, cmp_block=32, cmp_stride=16, sel_block=64,
           num_selected=16, window=512)
# The head dims --nsa-heads takes: 128 / 128, and the NSA paper's 27B model's
# 192 / 128.
NSA_HEAD_DIMS = ((128, 128), (192, 128))
NSA_CONTEXTS = (8192, 16384, 32768, 65536, 131072)
INDEXER_HEADS, INDEXER_DIM = 64, 128


def nsa_variant(d=NSA["d"], dv=NSA["dv"]):
    c = dict(NSA, d=d, dv=dv)
    return {"op": "nsa", "dtype": "bf16", "head_dim": c["d"], "value_head_dim": c["dv"],
            "q_heads": c["hq"],
            "kv_heads": c["hkv"], "cmp_block": c["cmp_block"], "cmp_stride": c["cmp_stride"],
            "sel_block": c["sel_block"], "num_selected": c["num_selected"], "initial_blocks": 1,
            "local_blocks": 2, "scale": 1 / c["d"] ** 0.5, "window": c["window"],
            "page_size": 64}


def variants():
    dense = [{"dtype": "bf16", "head_dim": d, "value_head_dim": dv, "layout": "bshd",
              "mask": "causal", "scale": 1 / d ** 0.5, "softcap": None, "bias": False,
              "sinks": False, "lse": False} for d, dv in NSA_HEAD_DIMS]
    indexer = {"op": "lightning_indexer", "dtype": "bf16", "heads": INDEXER_HEADS,
               "head_dim": INDEXER_DIM, "weights_dtype": "f32"}
    return (dsa_variants() + [nsa_variant(d, dv) for d, dv in NSA_HEAD_DIMS] + dense
            + [dict(indexer, mask="causal")])


def dsa_variants():
    base = {"op": "paged_attention", "dtype": "bf16", "head_dim": D, "value_head_dim": DV,
            "cache_layout": "nhd", "table_dtype": "i32", "lens_dtype": "i32", "mask": "none",
            "scale": SCALE, "softcap": None, "sinks": False, "lse": False,
            "values": "key_prefix"}
    return [dict(base, page_size=1), dict(base, page_size=64)]


def main():
    import torch

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench-sparse")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles/sparse"))
    ap.add_argument("--contexts", type=int, nargs="*", default=list(CONTEXTS))
    ap.add_argument("--batch", type=int, default=B)
    ap.add_argument("--nsa-contexts", type=int, nargs="*", default=list(NSA_CONTEXTS))
    ap.add_argument("--nsa-heads", type=int, nargs=2, default=[NSA["d"], NSA["dv"]],
                    metavar=("D", "DV"), help="NSA's query/key and value head dims "
                    f"(one of {NSA_HEAD_DIMS}; default %(default)s)")
    ap.add_argument("--part", choices=["all", "dsa", "nsa", "indexer"], default="all")
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)
    print(torch.cuda.get_device_name())
    if args.part in ("all", "dsa"):
        bench_dsa(args)
    if args.part in ("all", "nsa"):
        bench_nsa(args)
    if args.part in ("all", "indexer"):
        bench_indexer(args)


def _write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def bench_dsa(args):
    import torch
    from . import gpu
    from .cudatime import median_ms

    b = args.batch

    # GPU time (graph replay) and a plain call's time from Python.
    graph_ms = lambda fn: median_ms(fn, graph=True)
    time_ms = lambda fn: median_ms(fn)

    rows = []
    print(f"DSA decode, B={b} Hq={HQ} D={D}/{DV} bf16, top-{TOPK}")
    for ctx in args.contexts:
        q = torch.randn(b, 1, HQ, D, device="cuda", dtype=torch.bfloat16)
        kv = torch.randn(b, ctx, 1, D, device="cuda", dtype=torch.bfloat16)
        idx = torch.rand(b, 1, ctx, device="cuda").topk(TOPK, dim=-1).indices
        idx = idx.view(b, 1, 1, TOPK).to(torch.int32)
        sparse = lambda: gpu.sparse_attention(q, kv, kv[..., :DV], idx, causal=True,
                                              scale=SCALE, bundles=args.bundles)
        pages = ctx // 64
        cache = kv.view(b * pages, 64, 1, D)
        table = torch.arange(b * pages, device="cuda", dtype=torch.int32).view(b, pages)
        lens = torch.full((b,), ctx, device="cuda", dtype=torch.int32)
        dense = lambda: gpu.paged_attention(q, cache, cache[..., :DV], table, lens,
                                            scale=SCALE, bundles=args.bundles)
        # Same keys: the sparse call over all keys equals the dense one.
        t_s, t_d = graph_ms(sparse), graph_ms(dense)
        host_s, host_d = time_ms(sparse), time_ms(dense)
        flops = lambda keys: 2 * b * HQ * keys * (D + DV)
        row = dict(context=ctx, sparse_ms=t_s, dense_ms=t_d, speedup=t_d / t_s,
                   sparse_tflops=flops(TOPK) / t_s / 1e9, dense_tflops=flops(ctx) / t_d / 1e9,
                   sparsity=ctx / TOPK, sparse_host_ms=host_s, dense_host_ms=host_d)
        rows.append(row)
        print(f"ctx {ctx:6d}: sparse {t_s:7.3f} ms ({row['sparse_tflops']:5.1f} TFLOP/s on "
              f"the keys read)  dense {t_d:7.3f} ms ({row['dense_tflops']:5.1f})  "
              f"speed-up {row['speedup']:5.1f}x (keys {row['sparsity']:.0f}x fewer); "
              f"called from Python: {host_s:.3f} / {host_d:.3f} ms")
    _write(os.path.join(args.output, "sparse.csv"), rows)


def bench_nsa(args):
    import torch
    from . import gpu
    from .cudatime import median_ms

    c = dict(NSA, d=args.nsa_heads[0], dv=args.nsa_heads[1])
    hq, hkv, d, dv = c["hq"], c["hkv"], c["d"], c["dv"]
    l, stride = c["cmp_block"], c["cmp_stride"]
    print(f"NSA prefill, B=1 Hq={hq} Hkv={hkv} D={d} Dv={dv} bf16, l={l} d={stride} "
          f"l'={c['sel_block']} n={c['num_selected']} window={c['window']}")
    rows = []
    for t in args.nsa_contexts:
        gen = torch.Generator(device="cuda").manual_seed(0)
        rnd = lambda *shape: torch.randn(*shape, device="cuda", generator=gen,
                                         dtype=torch.bfloat16)
        tc = (t - l) // stride + 1
        q, k, v = rnd(1, t, hq, d), rnd(1, t, hkv, d), rnd(1, t, hkv, dv)
        kc, vc = rnd(1, tc, hkv, d), rnd(1, tc, hkv, dv)
        gates = torch.sigmoid(rnd(1, t, hq, 3))
        kw = dict(cmp_block=l, cmp_stride=stride, sel_block=c["sel_block"],
                  num_selected=c["num_selected"], window=c["window"], bundles=args.bundles)
        nsa = lambda: gpu.nsa(q, k, v, kc, vc, gates, **kw)
        dense = lambda: gpu.attention(q, k, v, causal=True, layout="bshd", bundles=args.bundles)
        iters = 5 if t >= 65536 else 10
        t_n, t_d = (median_ms(f, iters=iters, warmup=1) for f in (nsa, dense))
        parts = nsa_parts(nsa, calls=2 if t >= 65536 else 5)
        # Keys each query reads per head: compressed (attended and rescored
        # for the selection), selected, window; dense: all up to its own.
        p = torch.arange(t, device="cuda", dtype=torch.float64)
        vis = torch.clamp(torch.floor((p + 1 - l) / stride) + 1, min=0, max=tc)
        sel = torch.clamp(p + 1, max=c["num_selected"] * c["sel_block"])
        win = torch.clamp(p + 1, max=c["window"])
        nsa_flops = hq * ((2 * d + 2 * dv) * (vis + sel + win) + 2 * d * vis).sum().item()
        dense_flops = hq * (2 * d + 2 * dv) * (p + 1).sum().item()
        keys = (vis + sel + win).mean().item()
        # The selected branch's K/V bytes: each (token, KV head) reads its
        # selected keys once (2 bytes an element, D for K and Dv for V).
        sel_bytes = hkv * 2 * (d + dv) * sel.sum().item()
        row = dict(tokens=t, nsa_ms=t_n, dense_ms=t_d, speedup=t_d / t_n,
                   nsa_keys_per_query=keys, dense_keys_per_query=(t + 1) / 2,
                   nsa_tflops=nsa_flops / t_n / 1e9, dense_tflops=dense_flops / t_d / 1e9,
                   **{f"{part}_ms": ms for part, ms in parts.items()},
                   selected_tb_per_s=sel_bytes / parts["selected"] / 1e9
                   if parts["selected"] else 0.0)
        rows.append(row)
        print(f"T {t:6d}: nsa {t_n:8.3f} ms ({row['nsa_tflops']:5.1f} TFLOP/s on the keys read, "
              f"{keys:6.0f} keys/query)  dense {t_d:8.3f} ms ({row['dense_tflops']:5.1f}, "
              f"{(t + 1) / 2:6.0f})  speed-up {row['speedup']:5.2f}x; GPU ms per part: "
              + ", ".join(f"{part} {ms:.3f}" for part, ms in parts.items())
              + f"; selected K/V {row['selected_tb_per_s']:.2f} TB/s")
        del q, k, v, kc, vc, gates
        torch.cuda.empty_cache()
    _write(os.path.join(args.output, "nsa.csv" if (d, dv) == (NSA["d"], NSA["dv"])
                        else f"nsa_d{d}_dv{dv}.csv"), rows)


# Which part of an NSA call a kernel is, by its name (attn's kernel names;
# the rest are torch's).
_NSA_PARTS = (("selection", "attn_nsa_select"), ("selected", "attn_nsa_attend"),
              ("selected", "attn_paged"), ("compressed", "_causal"),
              ("window", "_window"))


def nsa_parts(fn, calls):
    """GPU milliseconds per call of `fn` (an NSA call) by part: the
    kernels' device times from torch.profiler over `calls` calls, summed by
    _NSA_PARTS ("torch": every other kernel, copies included)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    parts = {name: 0.0 for name, _ in _NSA_PARTS}
    parts["torch"] = 0.0
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        part = next((name for name, key in _NSA_PARTS if key in e.name), "torch")
        parts[part] += e.device_time / 1e3 / calls
    return parts


def bench_indexer(args):
    import torch
    from . import gpu
    from .cudatime import median_ms

    h, d = INDEXER_HEADS, INDEXER_DIM
    print(f"lightning indexer, {h} heads x {d} bf16, f32 weights, causal")
    rows = []
    for name, b, sq, sk in ([("decode", args.batch, 1, ctx) for ctx in args.contexts]
                            + [("prefill", 1, 8192, 8192)]):
        q = torch.randn(b, sq, h, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(b, sk, d, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(b, sq, h, device="cuda") / h
        full = lambda: gpu.lightning_indexer(q, k, w, TOPK, causal=True, bundles=args.bundles)
        _, scores = gpu.lightning_indexer(q, k, w, TOPK, causal=True, return_scores=True,
                                          bundles=args.bundles)
        topk = lambda: torch.topk(gpu._orderable(scores), min(TOPK, sk), dim=-1)
        t_all = median_ms(full, graph=True)
        t_top = median_ms(topk, graph=True)
        t_scores = t_all - t_top
        pos = torch.arange(sq, device="cuda", dtype=torch.float64) + sk - sq
        admitted = b * (pos + 1).sum().item()
        row = dict(case=name, batch=b, tokens=sq, keys=sk, total_ms=t_all, topk_ms=t_top,
                   scores_ms=t_scores, scores_tflops=2 * h * d * admitted / t_scores / 1e9,
                   gkeys_per_s=admitted / t_scores / 1e6)
        rows.append(row)
        print(f"{name:7s} B={b:3d} Sq={sq:5d} Sk={sk:6d}: {t_all:7.3f} ms (top-k {t_top:.3f}); "
              f"scores {t_scores:.3f} ms = {row['scores_tflops']:5.1f} TFLOP/s, "
              f"{row['gkeys_per_s']:.1f} G (token, key) scores/s")
        del q, k, w, scores
        torch.cuda.empty_cache()
    _write(os.path.join(args.output, "indexer.csv"), rows)


if __name__ == "__main__":
    main()
