# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Paged decode bandwidth: attn's paged kernels against torch SDPA on the same
KV laid out contiguously, and against the card's copy bandwidth.

    # where the compiler is:
    python3 -m attn.bundles -o build/bundles/paged --paged-bench
    # on the GPU machine:
    ATTN_BUNDLES=build/bundles/paged python3 -m attn.bench_paged -o build/bench-paged

Shapes: one new token per sequence (Llama-3.1-8B heads: 32 query / 8 KV
heads, head dim 128, bf16), pages of 16 in a random order, batch 8 and 32,
every sequence at the context length (4k ... 64k); and DeepSeek MLA's
absorbed decode (16 query heads -- DeepSeek-V3's 128 over 8-way tensor
parallelism, memory-bound -- and 128, compute-bound; one latent KV head of
576, values its first 512 columns, pages of 64, batch 1 ... 64, contexts 4k
and 16k), with its TFLOP/s. Bandwidth counts each K/V
byte once: B * L * Hkv * (D + Dv) * 2 bytes per call. Copy bandwidth is a
device-to-device copy of 2 GiB, counted as bytes read plus bytes written.
Median of device-event timings after warm-up, over CUDA-graph replays of 10
calls (kernel time, as serving engines launch decode steps; attn's time per
eager call, Python launch overhead included, is in the CSV too). Writes
paged.csv and prints a table.
"""

import argparse
import csv
import os
import sys

HQ, HKV, D, PAGE = 32, 8, 128, 16
BATCHES = (8, 32)
CONTEXTS = (4096, 8192, 16384, 32768, 65536)


MLA_HEADS, MLA_D, MLA_DV, MLA_PAGE, MLA_SCALE = (16, 128), 576, 512, 64, 0.1352
MLA_BATCHES = (1, 8, 32, 64)
MLA_CONTEXTS = (4096, 16384)


def variants():
    """The bundles the benchmark needs."""
    import math
    base = {"op": "paged_attention", "dtype": "bf16", "cache_layout": "nhd",
            "table_dtype": "i32", "lens_dtype": "i32", "softcap": None, "sinks": False,
            "lse": False}
    return [dict(base, head_dim=D, value_head_dim=D, page_size=PAGE, mask="causal",
                 scale=1 / math.sqrt(D), values="separate"),
            dict(base, head_dim=MLA_D, value_head_dim=MLA_DV, page_size=MLA_PAGE, mask="none",
                 scale=MLA_SCALE, values="key_prefix")]


def main():
    import torch

    from . import gpu
    from .cudatime import median_ms

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench-paged")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles/paged"))
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--contexts", type=int, nargs="*", default=list(CONTEXTS))
    ap.add_argument("--batches", type=int, nargs="*", default=list(BATCHES))
    ap.add_argument("--mla-batches", type=int, nargs="*", default=list(MLA_BATCHES))
    ap.add_argument("--mla-contexts", type=int, nargs="*", default=list(MLA_CONTEXTS))
    ap.add_argument("--mla-heads", type=int, nargs="*", default=list(MLA_HEADS))
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)

    def time_ms(fn, graph=True, reps=10):
        # Graph replay by default: the kernels' own time, as serving engines
        # run decode steps.
        return median_ms(fn, iters=args.iters, graph=graph, reps=reps)

    src = torch.empty(1 << 30, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), graph=False)
    copy_tbs = 2 * src.numel() * 2 / copy_ms / 1e9
    del src, dst
    name = torch.cuda.get_device_name()
    print(f"{name}: copy bandwidth {copy_tbs:.2f} TB/s (2 GiB device-to-device, read + write)")

    rows = []
    for b in args.batches:
        for ctx in args.contexts:
            pages_per = ctx // PAGE
            total = b * pages_per
            kc = torch.randn(total, PAGE, HKV, D, device="cuda", dtype=torch.bfloat16)
            vc = torch.randn(total, PAGE, HKV, D, device="cuda", dtype=torch.bfloat16)
            table = torch.randperm(total, device="cuda", dtype=torch.int64).to(torch.int32)
            table = table.view(b, pages_per).contiguous()
            lens = torch.full((b,), ctx, dtype=torch.int32, device="cuda")
            q = torch.randn(b, HQ, D, device="cuda", dtype=torch.bfloat16)
            nbytes = b * ctx * HKV * 2 * D * 2
            result = {"gpu": name, "batch": b, "context": ctx, "copy_tbs": copy_tbs}
            call = lambda: gpu.paged_attention(q, kc, vc, table, lens, causal=True,
                                               bundles=args.bundles)
            ms = time_ms(call)
            result["attn_ms"] = ms
            result["attn_tbs"] = nbytes / ms / 1e9
            result["attn_eager_ms"] = time_ms(call, graph=False)
            # The same KV contiguous, [B, Hkv, L, D], for SDPA (GQA heads
            # shared through enable_gqa).
            k = kc[table.long()].reshape(b, ctx, HKV, D).transpose(1, 2).contiguous()
            v = vc[table.long()].reshape(b, ctx, HKV, D).transpose(1, 2).contiguous()
            del kc, vc
            qs = q.view(b, HQ, 1, D)
            from torch.nn.attention import SDPBackend, sdpa_kernel
            for label, backend in (("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
                                   ("sdpa-flash", SDPBackend.FLASH_ATTENTION)):
                try:
                    with sdpa_kernel([backend]):
                        fn = lambda: torch.nn.functional.scaled_dot_product_attention(
                            qs, k, v, enable_gqa=True)
                        fn()
                        ms = time_ms(fn)
                    result[f"{label}_ms"] = ms
                    result[f"{label}_tbs"] = nbytes / ms / 1e9
                except RuntimeError as e:
                    result[f"{label}_ms"] = result[f"{label}_tbs"] = None
                    print(f"  {label} unavailable for b={b} ctx={ctx}: {str(e).splitlines()[0][:80]}")
            del k, v
            torch.cuda.empty_cache()
            rows.append(result)
            fmt = lambda x: f"{x:8.2f}" if x is not None else "     n/a"
            print(f"b={b:<3} ctx={ctx:<6} attn {fmt(result['attn_tbs'])} TB/s "
                  f"({100 * result['attn_tbs'] / copy_tbs:5.1f}% of copy; {result['attn_ms'] * 1e3:7.1f} us, "
                  f"eager {result['attn_eager_ms'] * 1e3:7.1f} us)  cuDNN "
                  f"{fmt(result['sdpa-cudnn_tbs'])}  FA2 {fmt(result['sdpa-flash_tbs'])} TB/s")
    # DeepSeek MLA absorbed decode: 16 or 128 query heads on one latent KV
    # head of 576 (values: its first 512 columns, read from the same rows),
    # pages of 64. Bytes: B * L * 576 * 2; FLOPs: 2 * B * Hq * L * (576 + 512).
    for hq, b, ctx in ((h, b, c) for h in args.mla_heads for b in args.mla_batches
                       for c in args.mla_contexts):
        pages_per = ctx // MLA_PAGE
        total = b * pages_per
        kc = torch.randn(total, MLA_PAGE, 1, MLA_D, device="cuda", dtype=torch.bfloat16)
        table = torch.randperm(total, device="cuda", dtype=torch.int64).to(torch.int32)
        table = table.view(b, pages_per).contiguous()
        lens = torch.full((b,), ctx, dtype=torch.int32, device="cuda")
        q = torch.randn(b, hq, MLA_D, device="cuda", dtype=torch.bfloat16)
        ms = time_ms(lambda: gpu.paged_attention(q, kc, kc[..., :MLA_DV], table, lens,
                                                 scale=MLA_SCALE, bundles=args.bundles))
        nbytes = b * ctx * MLA_D * 2
        flops = 2 * b * hq * ctx * (MLA_D + MLA_DV)
        rows.append({"gpu": name, "mla_heads": hq, "batch": b, "context": ctx,
                     "copy_tbs": copy_tbs,
                     "attn_ms": ms, "attn_tbs": nbytes / ms / 1e9, "mla_tflops": flops / ms / 1e9})
        print(f"MLA h={hq:<3} b={b:<3} ctx={ctx:<6} attn {nbytes / ms / 1e9:6.2f} TB/s "
              f"({100 * nbytes / ms / 1e9 / copy_tbs:5.1f}% of copy), {flops / ms / 1e9:6.1f} TFLOP/s, "
              f"{ms * 1e3:8.1f} us")
        del kc
        torch.cuda.empty_cache()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(os.path.join(args.output, "paged.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
