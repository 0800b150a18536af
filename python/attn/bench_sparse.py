"""DeepSeek Sparse Attention decode on the GPU: attn's token-sparse MLA
(gpu.sparse_attention, top-2048 keys per query token) against attn's dense
MLA decode (gpu.paged_attention over the whole latent cache) at contexts of
8k to 128k keys, DeepSeek-V3.2's shapes (128 query heads, one latent KV head
of 576, values its first 512 columns, bf16). Time per call (the index
compaction included), the speed-up, and
TFLOP/s counted on the keys each call reads. Times are GPU time (calls
captured in a CUDA graph and replayed); the host-inclusive time of a call
from Python (the index compaction is a few torch ops) is printed beside.

    python3 -m attn.bundles -o ../build/bundles/sparse --sparse-bench   (here)
    python3 -m attn.bench_sparse --bundles ../build/bundles/sparse     (GPU)
"""

import argparse
import csv
import os

B, HQ, D, DV, SCALE, TOPK = 32, 128, 576, 512, 0.1352, 2048
CONTEXTS = (8192, 32768, 131072)


def variants():
    base = {"op": "paged_attention", "dtype": "bf16", "head_dim": D, "value_head_dim": DV,
            "cache_layout": "nhd", "table_dtype": "i32", "lens_dtype": "i32", "mask": "none",
            "scale": SCALE, "softcap": None, "sinks": False, "lse": False,
            "values": "key_prefix"}
    return [dict(base, page_size=1), dict(base, page_size=64)]


def main():
    import torch
    from . import gpu
    from .cudatime import median_ms

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench-sparse")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles/sparse"))
    ap.add_argument("--contexts", type=int, nargs="*", default=list(CONTEXTS))
    ap.add_argument("--batch", type=int, default=B)
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)
    b = args.batch

    # GPU time (graph replay) and a plain call's time from Python.
    graph_ms = lambda fn: median_ms(fn, graph=True)
    time_ms = lambda fn: median_ms(fn)

    rows = []
    name = torch.cuda.get_device_name()
    print(f"{name}: DSA decode, B={b} Hq={HQ} D={D}/{DV} bf16, top-{TOPK}")
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
    with open(os.path.join(args.output, "sparse.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
