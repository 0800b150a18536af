# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Runs one attn kernel repeatedly on FlashAttention's standard shape, for a
profiler (Nsight Compute) to pick a launch:

    ATTN_BUNDLES=build/bundles/bench ncu --clock-control none \\
        --kernel-name regex:attn_ --launch-skip 5 --launch-count 1 --set full \\
        -o d128 python3 -m attn.profile --head-dim 128 [--causal]

16k tokens, hidden 2048 (heads = 2048 / head dim), bf16 unless --dtype f16 or
fp8 (e4m3 inputs, descales of 1, a bf16 output).
Prints the kernel's median time (device events) when run without a profiler;
with several --bundles directories, their kernels are timed in turns (A B A B
...) on the same inputs, so that a comparison holds when the clocks drift.
"""

import argparse
import sys

import torch

from . import gpu
from .cudatime import times_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=16384)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "fp8"])
    ap.add_argument("--launches", type=int, default=10)
    ap.add_argument("--bundles", nargs="*", default=[None])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    d, s = args.head_dim, args.seqlen
    b, h = max(1, 16384 // s), 2048 // d
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "fp8": torch.float8_e4m3fn}[args.dtype]
    q, k, v = (torch.randn(b, h, s, d, device="cuda").to(dtype) for _ in range(3))
    # FP8: descales of 1 per (batch, KV head), a bf16 output.
    fp8 = {}
    if args.dtype == "fp8":
        ones = torch.ones(b, h, device="cuda")
        fp8 = dict(q_descale=ones, k_descale=ones, v_descale=ones)
    out = torch.empty(q.shape, device="cuda", dtype=torch.bfloat16 if fp8 else dtype)
    times = {bundles: [] for bundles in args.bundles}
    for bundles in args.bundles:  # loads the modules
        gpu.attention(q, k, v, causal=args.causal, bundles=bundles, out=out, **fp8)
    for _ in range(args.rounds):
        for bundles in args.bundles:
            # No warm-up: the profiler's --launch-skip counts these launches.
            times[bundles] += times_ms(
                lambda: gpu.attention(q, k, v, causal=args.causal, bundles=bundles, out=out, **fp8),
                iters=args.launches, warmup=0)
    flops = 4 * b * h * s * s * d * (0.5 if args.causal else 1)
    for bundles, t in times.items():
        ms = sorted(t)[len(t) // 2]
        print(f"{torch.cuda.get_device_name()}: {args.dtype} d{d} b={b} h={h} s={s} "
              f"{'causal' if args.causal else 'non-causal'} [{bundles or 'default'}]: "
              f"{ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s")


if __name__ == "__main__":
    sys.exit(main())
