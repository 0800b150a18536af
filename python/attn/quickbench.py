# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""A quick timing of attn's kernel against torch SDPA on one shape (bf16,
head dim 128, causal), to track the GPU path's speed between sessions.

    ATTN_BUNDLES=build/bundles python3 -m attn.quickbench

The full benchmark of issue 6 is separate; this is a smoke number."""

import os
import sys

import torch

from . import gpu
from .cudatime import median_ms


def tflops(ms, b, h, s, d, causal):
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1)
    return flops / ms / 1e9


def main():
    b, h, s, d = 2, 16, 4096, 128
    bundles = os.environ.get("ATTN_BUNDLES", "build/bundles")
    name = torch.cuda.get_device_name()
    for dtype in (torch.bfloat16, torch.float16):
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dtype) for _ in range(3))
        kern = gpu._find(gpu.load_bundles(bundles), {"dtype": "bf16" if dtype == torch.bfloat16 else "f16",
                                                     "head_dim": d, "value_head_dim": d, "layout": "bhsd",
                                                     "mask": "causal", "bias": False, "sinks": False,
                                                     "lse": False, "softcap": None})
        ours = median_ms(lambda: gpu.attention(q, k, v, causal=True, bundles=bundles))
        sdpa = median_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
        print(f"{name}: {str(dtype)[6:]} d128 causal b={b} h={h} s={s}: attn ({kern.manifest.get('kernel')}) "
              f"{ours:.3f} ms ({tflops(ours, b, h, s, d, True):.1f} TFLOP/s), torch SDPA {sdpa:.3f} ms "
              f"({tflops(sdpa, b, h, s, d, True):.1f} TFLOP/s)")


if __name__ == "__main__":
    sys.exit(main())
