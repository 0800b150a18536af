"""Runs one attn kernel repeatedly on FlashAttention's standard shape, for a
profiler (Nsight Compute) to pick a launch:

    ATTN_BUNDLES=build/bundles/bench ncu --clock-control none \\
        --kernel-name regex:attn_ --launch-skip 5 --launch-count 1 --set full \\
        -o d128 python3 -m attn.profile --head-dim 128 [--causal]

16k tokens, hidden 2048 (heads = 2048 / head dim), bf16 unless --dtype f16.
Prints the kernel's median time (device events) when run without a profiler.
"""

import argparse
import sys

import torch

from . import gpu


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=16384)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16"])
    ap.add_argument("--launches", type=int, default=10)
    ap.add_argument("--bundles", default=None)
    args = ap.parse_args()
    d, s = args.head_dim, args.seqlen
    b, h = max(1, 16384 // s), 2048 // d
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dtype) for _ in range(3))
    out = torch.empty_like(q)
    times = []
    for _ in range(args.launches):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        gpu.attention(q, k, v, causal=args.causal, bundles=args.bundles, out=out)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    ms = sorted(times)[len(times) // 2]
    flops = 4 * b * h * s * s * d * (0.5 if args.causal else 1)
    print(f"{torch.cuda.get_device_name()}: {args.dtype} d{d} b={b} h={h} s={s} "
          f"{'causal' if args.causal else 'non-causal'}: {ms:.3f} ms, "
          f"{flops / ms / 1e9:.1f} TFLOP/s")


if __name__ == "__main__":
    sys.exit(main())
